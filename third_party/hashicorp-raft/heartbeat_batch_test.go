// coppice: a transport may send many groups' periodic heartbeats together
// (transport.go, HeartbeatBatcher; replication.go, heartbeat).

package raft

import (
	"bytes"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// batchingTransport is an InmemTransport that is a HeartbeatBatcher whose
// ticks the test makes, and counts the heartbeats sent each way.
type batchingTransport struct {
	*InmemTransport
	mu      sync.Mutex
	tick    chan struct{}
	refuse  atomic.Bool // answer ErrHeartbeatNotBatched
	report  atomic.Bool // carry the follower's commit index back
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
	if err := b.InmemTransport.AppendEntries(id, target, args, resp); err != nil {
		return err
	}
	resp.FollowerCommitKnown = b.report.Load()
	return nil
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
		waitFor(t, what, func() error {
			if !cond() {
				return fmt.Errorf("%d batched, %d alone", trans.batched.Load(), trans.alone.Load())
			}
			return nil
		})
	}
	waitFor("leader", func() bool { return leader.State() == Leader })
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
	waitFor("heartbeat alone from VerifyLeader", func() bool { return trans.alone.Load() > alone })

	// Refused, the ticks' heartbeats go alone, and the group goes on.
	trans.refuse.Store(true)
	alone = trans.alone.Load()
	waitFor("heartbeats alone after the refusals", func() bool { return trans.alone.Load() > alone+5 })
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

// TestHeartbeatsReportTheCommit: when the batcher carries the follower's
// commit index back with its heartbeats' answers, an idle leader sends
// the follower nothing but heartbeats (no safety net, where
// TestIdleReplication allows one request per HeartbeatTimeout, and none
// either after VerifyLeader's heartbeats, which go alone),
// and a follower that restarted between two heartbeats, its log whole but
// its commit index lost, is sent the commit at once.
func TestHeartbeatsReportTheCommit(t *testing.T) {
	conf := inmemConfig(t)
	_, inner := NewInmemTransport("leader")
	trans := &batchingTransport{InmemTransport: inner, tick: make(chan struct{})}
	trans.report.Store(true)
	// The follower's answers carry its commit index, and it makes the
	// batcher's ticks.
	r, f, followerAddr := soleLeader(t, conf, inner, trans, trans.next)
	holds := func(i uint64) func() error {
		return func() error {
			if !f.holds(i) {
				return fmt.Errorf("the follower does not hold index %d committed", i)
			}
			return nil
		}
	}
	if err := r.AddVoter("follower", followerAddr, 0, 0).Error(); err != nil {
		t.Fatal(err)
	}
	if err := r.Apply([]byte("one"), time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "follower holding the entry and its commit", holds(r.getLastIndex()))

	// The idle second measured; VerifyLeader's heartbeats, which go
	// alone, ten times in it (they tell nothing of the batches).
	h0, n0 := f.counts()
	for range 10 {
		if err := r.VerifyLeader().Error(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	h1, n1 := f.counts()
	// At most one: a safety net armed before the first answer reported
	// the commit (without the reports, one per 50-100 ms: 10-20).
	if n := n1 - n0; n > 1 {
		t.Errorf("an idle second brought the follower %d requests besides heartbeats, want at most one", n)
	}
	if h1-h0 < 10 {
		t.Errorf("an idle second brought the follower %d heartbeats, want one every 5-10 ms", h1-h0)
	}

	// A restart between two heartbeats: its commit index lost.
	f.restart()
	waitFor(t, "commit sent to the restarted follower", holds(r.getCommitIndex()))

	// The batcher no longer carries the commit: the safety net is back.
	trans.report.Store(false)
	f.restart()
	waitFor(t, "commit sent by the safety net", holds(r.getCommitIndex()))
}

// TestFollowerCommitNotOnTheWire: the fork's fields of an
// AppendEntriesResponse stay off the NetworkTransport's msgpack, which a
// server of another version decodes.
func TestFollowerCommitNotOnTheWire(t *testing.T) {
	var buf bytes.Buffer
	in := AppendEntriesResponse{Term: 3, LastLog: 9, Success: true, FollowerCommit: 7, FollowerCommitKnown: true}
	if err := codec.NewEncoder(&buf, &codec.MsgpackHandle{}).Encode(&in); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(buf.Bytes(), []byte("FollowerCommit")) {
		t.Fatalf("the encoding names the fork's fields: %q", buf.Bytes())
	}
	var out AppendEntriesResponse
	if err := codec.NewDecoder(&buf, &codec.MsgpackHandle{}).Decode(&out); err != nil {
		t.Fatal(err)
	}
	if out.Term != 3 || out.LastLog != 9 || !out.Success || out.FollowerCommit != 0 || out.FollowerCommitKnown {
		t.Fatalf("decoded %+v", out)
	}
}
