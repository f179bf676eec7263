package raft

import (
	"testing"
	"time"
)

// coppice fork: a follower removed while it was unreachable gets nothing
// more from its stopped replication. Upstream's replication goroutine
// slept out its backoff and then sent the follower the leader's snapshot
// (its log was compacted past the follower's): to a server added back in
// the meantime, which had caught up through its new replication, that
// snapshot discarded the log it had acknowledged.
func TestStoppedReplicationSendsNoSnapshot(t *testing.T) {
	conf := inmemConfig(t)
	conf.TrailingLogs = 10
	c := MakeCluster(3, t, conf)
	defer c.Close()
	leader := c.Leader()
	follower := c.GetInState(Follower)[0]

	c.Disconnect(follower.localAddr)
	var f ApplyFuture
	for range 100 {
		f = leader.Apply([]byte("test"), 0)
	}
	if err := f.Error(); err != nil {
		t.Fatal(err)
	}
	if err := leader.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	last := follower.getLastIndex()
	if err := leader.RemoveServer(follower.localID, 0, 0).Error(); err != nil {
		t.Fatal(err)
	}
	c.FullyConnect()

	// The stopped replication backed off at most a few hundred ms here;
	// upstream's snapshot arrived within that.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if got := follower.getLastIndex(); got != last {
			t.Fatalf("the removed follower's last index moved from %d to %d", last, got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
