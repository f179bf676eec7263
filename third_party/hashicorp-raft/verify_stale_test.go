// coppice: a VerifyLeader counts only acknowledgements of requests sent
// after it (replication.go, notifyAll).

package raft

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// TestVerifyLeaderCountsNoEarlierAnswer: a leader whose follower's answer
// to a heartbeat sent before a VerifyLeader comes after it (the leader was
// paused with the heartbeat in flight, and the follower has since moved to
// a later term) does not take that answer as confirming its leadership:
// the VerifyLeader fails on the follower's later answer, in its new term.
// Upstream counted the earlier answer, and a read behind the VerifyLeader
// was served stale.
func TestVerifyLeaderCountsNoEarlierAnswer(t *testing.T) {
	conf := inmemConfig(t)
	// Long enough that the leader keeps its lease while answers are held.
	conf.HeartbeatTimeout, conf.ElectionTimeout, conf.LeaderLeaseTimeout = time.Second, time.Second, time.Second
	_, leaderTrans := NewInmemTransport("leader")
	r, f, followerAddr := soleLeader(t, conf, leaderTrans, leaderTrans, nil)
	if err := r.AddVoter("follower", followerAddr, 0, 0).Error(); err != nil {
		t.Fatal(err)
	}
	term := r.getCurrentTerm()
	repl := r.leaderState.replState["follower"] // set before AddVoter returned

	// A heartbeat goes before the VerifyLeader and its answer is held;
	// every request from then on is answered, when released, with a
	// later term.
	f.mu.Lock()
	f.hold = true
	f.mu.Unlock()
	var early int
	waitFor(t, "heartbeat held", func() error {
		f.mu.Lock()
		defer f.mu.Unlock()
		if !slices.ContainsFunc(f.held, func(h heldAnswer) bool { return h.heartbeat }) {
			return fmt.Errorf("%d answers held, no heartbeat's", len(f.held))
		}
		early, f.newTerm = len(f.held), term+1
		return nil
	})
	v := r.VerifyLeader()
	waitFor(t, "VerifyLeader registered", func() error {
		repl.notifyLock.Lock()
		defer repl.notifyLock.Unlock()
		if len(repl.notify) == 0 {
			return fmt.Errorf("no future waits on the follower")
		}
		return nil
	})

	// The early answers (success, in the leader's term) come; the
	// heartbeat goroutine, once it has taken its answer, sends the
	// VerifyLeader's own heartbeat, held in turn.
	f.release(early)
	waitFor(t, "heartbeat sent after the early answers", func() error {
		f.mu.Lock()
		defer f.mu.Unlock()
		if !slices.ContainsFunc(f.held, func(h heldAnswer) bool { return h.heartbeat }) {
			return fmt.Errorf("%d answers held, no heartbeat's", len(f.held))
		}
		return nil
	})
	f.mu.Lock()
	f.hold = false
	f.mu.Unlock()
	f.release(-1)

	done := make(chan error, 1)
	go func() { done <- v.Error() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("VerifyLeader succeeded on an answer to a heartbeat sent before it")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("VerifyLeader not answered after 5 s")
	}
}
