// coppice: an idle leader sends its followers heartbeats and, far less
// often than upstream, an AppendEntries (replication.go,
// pipelineReplicate's safety net).

package raft

import (
	"errors"
	"fmt"
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
	_, leaderTrans := NewInmemTransport("leader")
	r, f, followerAddr := soleLeader(t, conf, leaderTrans, leaderTrans, nil)
	// seen waits until the follower holds and knows committed index i.
	seen := func(i uint64) {
		t.Helper()
		waitFor(t, fmt.Sprintf("follower holding and knowing committed index %d", i), func() error {
			if f.holds(i) {
				return nil
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			return fmt.Errorf("the follower holds %d with commit %d", f.last, f.commit)
		})
	}
	if err := r.AddNonvoter("follower", followerAddr, 0, 0).Error(); err != nil {
		t.Fatal(err)
	}
	seen(r.getCommitIndex())

	h0, n0 := f.counts()
	time.Sleep(time.Second) // the idle time measured: nothing to wait for
	h1, n1 := f.counts()
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
	f.mu.Lock()
	f.down = true
	f.mu.Unlock()
	waitFor(t, "three heartbeats failed", func() error {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.failed < 3 {
			return fmt.Errorf("%d failed", f.failed)
		}
		return nil
	})
	f.mu.Lock()
	f.down = false
	f.mu.Unlock()
	f.restart()
	seen(r.getCommitIndex())

	// And a restart between two heartbeats, none failed: the safety net.
	f.restart()
	seen(r.getCommitIndex())
}

// testFollower is a follower the test plays: it takes every
// AppendEntries, tells heartbeats (no log position, no entries, no commit)
// from the rest, holds what those carry, and answers with its commit
// index; down, it fails every request. While hold is set it keeps its
// answers until release; from newTerm on (not 0) it answers that it is in
// that term; with refuse, it refuses every request but heartbeats (a log
// that does not match).
type testFollower struct {
	mu                   sync.Mutex
	heartbeats, requests int
	commit, last         uint64
	down                 bool
	failed               int // heartbeats failed while down
	hold                 bool
	held                 []heldAnswer
	newTerm              uint64
	refuse               bool // answers requests but heartbeats with Success false
}

// heldAnswer is an answer the follower keeps (testFollower.hold).
type heldAnswer struct {
	rpc       RPC
	resp      *AppendEntriesResponse
	heartbeat bool
}

// release gives the first n answers held (all: n < 0).
func (f *testFollower) release(n int) {
	f.mu.Lock()
	if n < 0 || n > len(f.held) {
		n = len(f.held)
	}
	out := f.held[:n:n]
	f.held = f.held[n:]
	f.mu.Unlock()
	for _, h := range out {
		h.rpc.Respond(h.resp, nil)
	}
}

// serve answers trans's requests, and calls tick (if not nil) every 5 ms,
// until stop.
func (f *testFollower) serve(trans *InmemTransport, tick func(), stop <-chan struct{}) {
	for {
		select {
		case rpc := <-trans.Consumer():
			req, ok := rpc.Command.(*AppendEntriesRequest)
			if !ok {
				rpc.Respond(nil, ErrUnsupportedProtocol)
				continue
			}
			heartbeat := req.PrevLogEntry == 0 && len(req.Entries) == 0 && req.LeaderCommitIndex == 0
			f.mu.Lock()
			if f.down {
				if heartbeat {
					f.failed++
				}
				f.mu.Unlock()
				rpc.Respond(nil, errors.New("down"))
				continue
			}
			if heartbeat {
				f.heartbeats++
			} else {
				f.requests++
				f.last = max(f.last, req.PrevLogEntry+uint64(len(req.Entries)))
				f.commit = max(f.commit, min(req.LeaderCommitIndex, f.last))
			}
			resp := &AppendEntriesResponse{RPCHeader: RPCHeader{ID: []byte("follower")}, Term: req.Term,
				LastLog: f.last, Success: true, FollowerCommit: f.commit}
			if f.newTerm != 0 {
				resp.Term, resp.Success = f.newTerm, false
			}
			if f.refuse && !heartbeat {
				resp.Success = false
			}
			if f.hold {
				f.held = append(f.held, heldAnswer{rpc: rpc, resp: resp, heartbeat: heartbeat})
				f.mu.Unlock()
				continue
			}
			f.mu.Unlock()
			rpc.Respond(resp, nil)
		case <-time.After(5 * time.Millisecond):
			if tick != nil {
				tick()
			}
		case <-stop:
			return
		}
	}
}

// holds tells whether the follower holds index i and knows it committed.
func (f *testFollower) holds(i uint64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.commit >= i && f.last >= i
}

// counts returns the heartbeats and the other requests taken so far.
func (f *testFollower) counts() (heartbeats, requests int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.heartbeats, f.requests
}

// restart loses the commit index, as a Raft restarted with its log whole.
func (f *testFollower) restart() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.commit = 0
}

// waitFor fails t unless cond holds (returns nil) within 5 s.
func waitFor(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 5 s, no %s: %v", what, err)
		}
		time.Sleep(time.Millisecond)
	}
}

// soleLeader starts a Raft "leader" that leads alone on trans (leaderTrans
// is the InmemTransport under it), connected to a testFollower on an
// InmemTransport of its own, which serves with tick (see serve); it
// returns once the Raft leads. Both stop with the test.
func soleLeader(t *testing.T, conf *Config, leaderTrans *InmemTransport, trans Transport, tick func()) (*Raft, *testFollower, ServerAddress) {
	t.Helper()
	conf.LocalID = "leader"
	store, snaps := NewInmemStore(), NewInmemSnapshotStore()
	followerAddr, followerTrans := NewInmemTransport("follower")
	leaderTrans.Connect(followerAddr, followerTrans)
	followerTrans.Connect(leaderTrans.LocalAddr(), leaderTrans)
	if err := BootstrapCluster(conf, store, store, snaps, trans, Configuration{
		Servers: []Server{{Suffrage: Voter, ID: "leader", Address: leaderTrans.LocalAddr()}},
	}); err != nil {
		t.Fatal(err)
	}
	r, err := NewRaft(conf, &MockFSM{}, store, store, snaps, trans)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Shutdown().Error() })
	f := new(testFollower)
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	go f.serve(followerTrans, tick, stop)
	waitFor(t, "leader", func() error {
		if r.State() != Leader {
			return fmt.Errorf("state %v", r.State())
		}
		return nil
	})
	return r, f, followerAddr
}
