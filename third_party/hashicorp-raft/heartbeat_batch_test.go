// coppice: a transport may send many groups' periodic heartbeats together
// (transport.go, HeartbeatBatcher; replication.go, heartbeat).

package raft

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// batchingTransport is an InmemTransport that is a HeartbeatBatcher whose
// ticks the test makes, and counts the heartbeats sent each way.
type batchingTransport struct {
	*InmemTransport
	mu      sync.Mutex
	tick    chan struct{}
	refuse  atomic.Bool // answer ErrHeartbeatNotBatched
	batched atomic.Int64
	alone   atomic.Int64 // heartbeats through AppendEntries
}

func (b *batchingTransport) HeartbeatTick() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.tick
}

// next closes the current tick.
func (b *batchingTransport) next() {
	b.mu.Lock()
	defer b.mu.Unlock()
	close(b.tick)
	b.tick = make(chan struct{})
}

func (b *batchingTransport) BatchedHeartbeat(id ServerID, target ServerAddress, args *AppendEntriesRequest, resp *AppendEntriesResponse) error {
	if b.refuse.Load() {
		return ErrHeartbeatNotBatched
	}
	b.batched.Add(1)
	return b.InmemTransport.AppendEntries(id, target, args, resp)
}

func (b *batchingTransport) AppendEntries(id ServerID, target ServerAddress, args *AppendEntriesRequest, resp *AppendEntriesResponse) error {
	if args.PrevLogEntry == 0 && len(args.Entries) == 0 && args.LeaderCommitIndex == 0 {
		b.alone.Add(1)
	}
	return b.InmemTransport.AppendEntries(id, target, args, resp)
}

// TestHeartbeatBatcher: with a HeartbeatBatcher transport, the leader's
// periodic heartbeats go at its ticks and through BatchedHeartbeat, at most
// one per follower per tick, and keep the leadership; VerifyLeader's go alone at
// once; a heartbeat the batcher does not take goes alone.
func TestHeartbeatBatcher(t *testing.T) {
	conf := inmemConfig(t)
	conf.LocalID = "leader"
	store, snaps := NewInmemStore(), NewInmemSnapshotStore()
	leaderAddr, inner := NewInmemTransport("leader")
	trans := &batchingTransport{InmemTransport: inner, tick: make(chan struct{})}
	followerAddr, followerTrans := NewInmemTransport("follower")
	inner.Connect(followerAddr, followerTrans)
	followerTrans.Connect(leaderAddr, inner)
	if err := BootstrapCluster(conf, store, store, snaps, trans, Configuration{Servers: []Server{
		{Suffrage: Voter, ID: "leader", Address: leaderAddr},
		{Suffrage: Voter, ID: "follower", Address: followerAddr},
	}}); err != nil {
		t.Fatal(err)
	}
	leader, err := NewRaft(conf, &MockFSM{}, store, store, snaps, trans)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = leader.Shutdown().Error() }()
	// The follower's store holds the same configuration, and its
	// elections wait far longer than the test: the leader stays.
	fconf := inmemConfig(t)
	fconf.LocalID = "follower"
	fconf.HeartbeatTimeout, fconf.ElectionTimeout = time.Minute, time.Minute
	fstore, fsnaps := NewInmemStore(), NewInmemSnapshotStore()
	if err := BootstrapCluster(fconf, fstore, fstore, fsnaps, followerTrans, Configuration{Servers: []Server{
		{Suffrage: Voter, ID: "leader", Address: leaderAddr},
		{Suffrage: Voter, ID: "follower", Address: followerAddr},
	}}); err != nil {
		t.Fatal(err)
	}
	follower, err := NewRaft(fconf, &MockFSM{}, fstore, fstore, fsnaps, followerTrans)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = follower.Shutdown().Error() }()

	// The ticks, every 5 ms (the leader's HeartbeatTimeout/10).
	stop := make(chan struct{})
	defer close(stop)
	ticks := atomic.Int64{}
	go func() {
		for {
			select {
			case <-time.After(5 * time.Millisecond):
				trans.next()
				ticks.Add(1)
			case <-stop:
				return
			}
		}
	}()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("after 5 s: %s", what)
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitFor("no leader", func() bool { return leader.State() == Leader })
	if err := leader.Apply([]byte("one"), time.Second).Error(); err != nil {
		t.Fatal(err)
	}

	// The ticks bring batched heartbeats, at most one each.
	b0, t0 := trans.batched.Load(), ticks.Load()
	waitFor("20 batched heartbeats", func() bool { return trans.batched.Load() >= b0+20 })
	if b, n := trans.batched.Load()-b0, ticks.Load()-t0; b > n+1 {
		t.Fatalf("%d batched heartbeats in %d ticks", b, n)
	}

	// VerifyLeader's heartbeat goes alone, between ticks.
	alone := trans.alone.Load()
	if err := leader.VerifyLeader().Error(); err != nil {
		t.Fatal(err)
	}
	waitFor("VerifyLeader sent no heartbeat alone", func() bool { return trans.alone.Load() > alone })

	// Refused, the ticks' heartbeats go alone, and the group goes on.
	trans.refuse.Store(true)
	alone = trans.alone.Load()
	waitFor("refused batches sent no heartbeat alone", func() bool { return trans.alone.Load() > alone+5 })
	if leader.State() != Leader {
		t.Fatal("the leader lost its leadership")
	}
	if err := leader.Apply([]byte("two"), time.Second).Error(); err != nil {
		t.Fatal(err)
	}
}

// TestDeliverHeartbeat: a heartbeat handed to a NetworkTransport reaches
// its Raft's heartbeat handler, and the answer comes back.
func TestDeliverHeartbeat(t *testing.T) {
	trans, err := NewTCPTransportWithLogger("127.0.0.1:0", nil, 2, time.Second, newTestLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer trans.Close()
	trans.SetHeartbeatHandler(func(rpc RPC) {
		req := rpc.Command.(*AppendEntriesRequest)
		rpc.Respond(&AppendEntriesResponse{Term: req.Term + 1, Success: true}, nil)
	})
	ch, err := trans.DeliverHeartbeat(&AppendEntriesRequest{Term: 7})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-ch:
		if resp, ok := r.Response.(*AppendEntriesResponse); r.Error != nil || !ok || resp.Term != 8 || !resp.Success {
			t.Fatalf("answer %+v", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no answer after 5 s")
	}
}
