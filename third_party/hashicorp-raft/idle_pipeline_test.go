// coppice: an idle leader sends its followers heartbeats and, far less
// often than upstream, an AppendEntries (replication.go,
// pipelineReplicate's safety net).

package raft

import (
	"errors"
	"sync"
	"testing"
	"time"
)

// TestIdleReplication: a leader whose follower holds every entry and the
// commit index sends it heartbeats and, besides them, an AppendEntries
// every HeartbeatTimeout or more (here 50 ms: at most 20 in the second the
// test idles); upstream sent one every CommitTimeout (here 5-10 ms: about
// 124 in that second), which, in a node running hundreds of groups, was
// most of its idle CPU. An entry written after the idle time still reaches
// the follower, with its commit; and so does the commit when the follower
// restarts.
func TestIdleReplication(t *testing.T) {
	conf := inmemConfig(t)
	conf.LocalID = "leader"
	store := NewInmemStore()
	snaps := NewInmemSnapshotStore()
	leaderAddr, leaderTrans := NewInmemTransport("leader")
	followerAddr, followerTrans := NewInmemTransport("follower")
	leaderTrans.Connect(followerAddr, followerTrans)
	followerTrans.Connect(leaderAddr, leaderTrans)
	if err := BootstrapCluster(conf, store, store, snaps, leaderTrans, Configuration{
		Servers: []Server{{Suffrage: Voter, ID: "leader", Address: leaderAddr}},
	}); err != nil {
		t.Fatal(err)
	}
	r, err := NewRaft(conf, &MockFSM{}, store, store, snaps, leaderTrans)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = r.Shutdown().Error() }()

	// The follower is the test: it takes every request, and tells apart
	// heartbeats (no log position, no entries, no commit) from the rest.
	var (
		mu                   sync.Mutex
		heartbeats, requests int
		commit, last         uint64
		down                 bool // failing every request, as a follower down does
		failed               int  // heartbeats failed while down
	)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case rpc := <-followerTrans.Consumer():
				req, ok := rpc.Command.(*AppendEntriesRequest)
				if !ok {
					rpc.Respond(nil, ErrUnsupportedProtocol)
					continue
				}
				mu.Lock()
				if down {
					if req.PrevLogEntry == 0 && len(req.Entries) == 0 && req.LeaderCommitIndex == 0 {
						failed++
					}
					mu.Unlock()
					rpc.Respond(nil, errors.New("down"))
					continue
				}
				if req.PrevLogEntry == 0 && len(req.Entries) == 0 && req.LeaderCommitIndex == 0 {
					heartbeats++
				} else {
					requests++
					last = max(last, req.PrevLogEntry+uint64(len(req.Entries)))
					commit = max(commit, req.LeaderCommitIndex)
				}
				resp := &AppendEntriesResponse{RPCHeader: RPCHeader{ID: []byte("follower")}, Term: req.Term, LastLog: last, Success: true}
				mu.Unlock()
				rpc.Respond(resp, nil)
			case <-stop:
				return
			}
		}
	}()
	// seen waits until the follower holds and knows committed index i.
	seen := func(i uint64) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			mu.Lock()
			c, l := commit, last
			mu.Unlock()
			if c >= i && l >= i {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("after 5 s the follower holds %d with commit %d, want %d", l, c, i)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	deadline := time.Now().Add(5 * time.Second)
	for r.State() != Leader {
		if time.Now().After(deadline) {
			t.Fatal("no leader after 5 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := r.AddNonvoter("follower", followerAddr, 0, 0).Error(); err != nil {
		t.Fatal(err)
	}
	seen(r.getCommitIndex())

	mu.Lock()
	h0, n0 := heartbeats, requests
	mu.Unlock()
	time.Sleep(time.Second) // the idle time measured: nothing to wait for
	mu.Lock()
	h1, n1 := heartbeats, requests
	mu.Unlock()
	if n := n1 - n0; n > int(time.Second/conf.HeartbeatTimeout) {
		t.Errorf("an idle second brought the follower %d requests besides heartbeats, want at most one per HeartbeatTimeout (%v)", n, conf.HeartbeatTimeout)
	}
	if h1-h0 < 10 {
		t.Errorf("an idle second brought the follower %d heartbeats, want one every 5-10 ms", h1-h0)
	}

	if err := r.Apply([]byte("after"), time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	seen(r.getLastIndex())

	// The follower goes down for a few heartbeats and restarts with its
	// log but not the commit index, which a restarted Raft learns from
	// its leader: with nothing new to send, the leader sends it the
	// commit once its heartbeats are answered again.
	mu.Lock()
	down = true
	mu.Unlock()
	deadline = time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		f := failed
		mu.Unlock()
		if f >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 5 s, %d heartbeats failed", f)
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	down, commit = false, 0
	mu.Unlock()
	seen(r.getCommitIndex())

	// And a restart between two heartbeats, none failed: the safety net.
	mu.Lock()
	commit = 0
	mu.Unlock()
	seen(r.getCommitIndex())
}
