// coppice: an entry still queued for the leader loop when Raft shuts down
// is answered (ApplyLog, api.go; deferError.Error, future.go).

package raft

import (
	"testing"
	"time"
)

// gatedLogs holds the leader's write of command entries until gate is
// closed, and says on entered when one is held.
type gatedLogs struct {
	LogStore
	gate    chan struct{}
	entered chan struct{}
}

func (g *gatedLogs) StoreLogs(ls []*Log) error {
	if len(ls) > 0 && ls[0].Type == LogCommand {
		select {
		case g.entered <- struct{}{}:
		default:
		}
		<-g.gate
	}
	return g.LogStore.StoreLogs(ls)
}

// TestRaft_ApplyQueuedAtShutdownIsAnswered: an Apply that the leader loop
// has not taken from its queue when Raft shuts down gets ErrRaftShutdown.
// Upstream never answers it (hashicorp/raft#498): the leader loop, once
// its write returns, takes the shutdown or the queued entry at random, and
// a waiter on the one left queued waits for good. Ten rounds, so that
// upstream passes only once in about a thousand runs.
func TestRaft_ApplyQueuedAtShutdownIsAnswered(t *testing.T) {
	for round := 0; round < 10; round++ {
		conf := inmemConfig(t)
		conf.BatchApplyCh = true
		conf.MaxAppendEntries = 1 // the queue holds one entry
		store := NewInmemStore()
		logs := &gatedLogs{LogStore: store, gate: make(chan struct{}), entered: make(chan struct{}, 1)}
		addr, trans := NewInmemTransport("")
		conf.LocalID = ServerID(addr)
		snaps := NewInmemSnapshotStore()
		if err := BootstrapCluster(conf, store, store, snaps, trans, Configuration{Servers: []Server{
			{Suffrage: Voter, ID: conf.LocalID, Address: addr},
		}}); err != nil {
			t.Fatal(err)
		}
		r, err := NewRaft(conf, &MockFSM{}, logs, store, snaps, trans)
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-r.LeaderCh():
		case <-time.After(10 * time.Second):
			t.Fatal("no leader within 10s")
		}
		held := r.Apply([]byte("held"), 0)
		select {
		case <-logs.entered:
		case <-time.After(10 * time.Second):
			t.Fatal("the first entry's write did not start within 10s")
		}
		queued := r.Apply([]byte("queued"), time.Second)
		shutdown := r.Shutdown()
		close(logs.gate)
		answered := make(chan error, 2)
		go func() { answered <- held.Error() }()
		go func() { answered <- queued.Error() }()
		for i := 0; i < 2; i++ {
			select {
			case <-answered:
			case <-time.After(10 * time.Second):
				t.Fatalf("round %d: an entry queued at shutdown is not answered within 10s", round)
			}
		}
		if err := shutdown.Error(); err != nil {
			t.Fatal(err)
		}
	}
}
