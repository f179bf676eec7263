// coppice: a follower hears of a commit soon after the leader makes it,
// not at the next CommitTimeout (replication.go, commitPropagateDelay).

package raft

import (
	"testing"
	"time"
)

// TestRaft_FollowersApplyWithoutCommitTimeout: with the leader's
// CommitTimeout made far longer than the wait, a write and nothing after
// it still reaches every follower's FSM: the commit goes out on its own.
// Upstream's followers learn it at the next CommitTimeout (here 30 s) or
// write.
func TestRaft_FollowersApplyWithoutCommitTimeout(t *testing.T) {
	c := MakeCluster(3, t, inmemConfig(t))
	defer c.Close()
	leader := c.Leader()
	conf := leader.config()
	conf.CommitTimeout = 30 * time.Second
	leader.conf.Store(conf)
	// The first write's sends start the replications' next waits, which
	// read the new CommitTimeout.
	for i, data := range []string{"one", "two"} {
		if err := leader.Apply([]byte(data), time.Second).Error(); err != nil {
			t.Fatalf("apply %d: %v", i, err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		applied := 0
		for _, f := range c.fsms {
			fsm := getMockFSM(f)
			fsm.Lock()
			if len(fsm.logs) == 2 {
				applied++
			}
			fsm.Unlock()
		}
		if applied == len(c.fsms) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 5s, %d of %d FSMs applied both writes", applied, len(c.fsms))
		}
		time.Sleep(5 * time.Millisecond)
	}
}
