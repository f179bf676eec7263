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

// coppice fork: a follower sent a snapshot whose last entry it already
// holds keeps its log (the Raft paper's figure 13, step 6). Upstream
// installed it and discarded the log after it: the follower fell back to
// the snapshot's index, behind entries it had acknowledged.
func TestLateSnapshotKeepsTheFollowersLog(t *testing.T) {
	// A monotonic log store (coppice's is one): upstream removes all of
	// its entries after installing a snapshot.
	c := MakeClusterCustom(t, &MakeClusterOpts{Peers: 3, Bootstrap: true, Conf: inmemConfig(t), MonotonicLogs: true})
	defer c.Close()
	leader := c.Leader()
	follower := c.GetInState(Follower)[0]
	apply := func(n int) {
		t.Helper()
		var f ApplyFuture
		for range n {
			f = leader.Apply([]byte("test"), 0)
		}
		if err := f.Error(); err != nil {
			t.Fatal(err)
		}
	}
	apply(20)
	if err := leader.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	apply(20)
	c.WaitForReplication(40)
	last := follower.getLastIndex()

	snapshots, err := leader.snapshots.List()
	if err != nil || len(snapshots) == 0 {
		t.Fatalf("leader's snapshots: %v, %v", snapshots, err)
	}
	meta, data, err := leader.snapshots.Open(snapshots[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	defer data.Close()
	if meta.Index >= last {
		t.Fatalf("snapshot at %d, follower's last index %d: want the follower ahead", meta.Index, last)
	}
	req := InstallSnapshotRequest{
		RPCHeader:          leader.getRPCHeader(),
		SnapshotVersion:    meta.Version,
		Term:               leader.getCurrentTerm(),
		Leader:             leader.trans.EncodePeer(leader.localID, leader.localAddr),
		LastLogIndex:       meta.Index,
		LastLogTerm:        meta.Term,
		Size:               meta.Size,
		Configuration:      EncodeConfiguration(meta.Configuration),
		ConfigurationIndex: meta.ConfigurationIndex,
	}
	var resp InstallSnapshotResponse
	if err := leader.trans.InstallSnapshot(follower.localID, follower.localAddr, &req, &resp, data); err != nil {
		t.Fatal(err)
	}
	if !resp.Success {
		t.Fatalf("the follower refused the snapshot: %+v", resp)
	}
	if got := follower.getLastIndex(); got != last {
		t.Fatalf("the follower's last index went from %d to %d", last, got)
	}
	var entry Log
	if err := follower.logs.GetLog(last, &entry); err != nil {
		t.Fatalf("the follower's log lost entry %d: %v", last, err)
	}
	apply(5)
	c.WaitForReplication(45)
}
