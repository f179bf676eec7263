// coppice: a leadership transfer to a target that went silent ends at the
// transfer's timeout, and the leader takes writes again (raft.go,
// leadershipTransfer).

package raft

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// silentTarget is an InmemTransport whose TimeoutNow requests get no
// answer until released, nor, while silent is set, its AppendEntries to
// the target: a target that went silent, as one cut off on a real network
// is until the transport's deadline. It makes no pipelines, so every
// replication goes through AppendEntries.
type silentTarget struct {
	*InmemTransport
	target  ServerAddress
	silent  atomic.Bool
	release chan struct{}
	waiting atomic.Int32 // requests waiting for the release
}

func (s *silentTarget) wait() error {
	s.waiting.Add(1)
	defer s.waiting.Add(-1)
	<-s.release
	return errors.New("no answer")
}

func (s *silentTarget) TimeoutNow(id ServerID, target ServerAddress, args *TimeoutNowRequest, resp *TimeoutNowResponse) error {
	return s.wait()
}

func (s *silentTarget) AppendEntries(id ServerID, target ServerAddress, args *AppendEntriesRequest, resp *AppendEntriesResponse) error {
	if target == s.target && s.silent.Load() {
		return s.wait()
	}
	return s.InmemTransport.AppendEntries(id, target, args, resp)
}

func (s *silentTarget) AppendEntriesPipeline(id ServerID, target ServerAddress) (AppendPipeline, error) {
	return nil, ErrPipelineReplicationNotSupported
}

// groupWithASilentTarget starts a 3-server group whose leader sends
// through a silentTarget to "target"; the followers' elections wait far
// longer than the test, so the leader stays. It returns once the leader
// takes writes.
func groupWithASilentTarget(t *testing.T) (*Raft, *silentTarget) {
	addrs, transports := map[ServerID]ServerAddress{}, map[ServerID]*InmemTransport{}
	var servers Configuration
	for _, id := range []ServerID{"leader", "follower", "target"} {
		addrs[id], transports[id] = NewInmemTransport(ServerAddress(id))
		servers.Servers = append(servers.Servers, Server{Suffrage: Voter, ID: id, Address: addrs[id]})
	}
	for _, a := range transports {
		for id, b := range transports {
			a.Connect(addrs[id], b)
		}
	}
	trans := &silentTarget{InmemTransport: transports["leader"], target: addrs["target"], release: make(chan struct{})}
	var leader *Raft
	for _, id := range []ServerID{"leader", "follower", "target"} {
		conf := inmemConfig(t)
		conf.LocalID = id
		var tr Transport = transports[id]
		if id == "leader" {
			tr = trans
		} else {
			conf.HeartbeatTimeout, conf.ElectionTimeout = time.Minute, time.Minute
		}
		store, snaps := NewInmemStore(), NewInmemSnapshotStore()
		if err := BootstrapCluster(conf, store, store, snaps, tr, servers); err != nil {
			t.Fatal(err)
		}
		r, err := NewRaft(conf, &MockFSM{}, store, store, snaps, tr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Shutdown().Error() })
		if id == "leader" {
			leader = r
		}
	}
	// The requests waiting end before the servers shut down (cleanups
	// run last first): the leader's shutdown waits for its replications.
	t.Cleanup(func() { close(trans.release) })
	waitFor(t, "leader that takes writes", func() error {
		return leader.Apply([]byte("x"), time.Second).Error()
	})
	return leader, trans
}

// writesAgain checks that the leader takes a write within 5 s, while
// the silent target's requests still wait (want of them).
func writesAgain(t *testing.T, leader *Raft, trans *silentTarget, want int32) {
	t.Helper()
	waitFor(t, "write taken after the transfer's timeout", func() error {
		if err := leader.Apply([]byte("y"), time.Second).Error(); err != nil {
			return fmt.Errorf("%w (requests waiting: %d)", err, trans.waiting.Load())
		}
		return nil
	})
	if n := trans.waiting.Load(); n != want {
		t.Fatalf("%d requests to the target waiting, want %d: the test proves nothing", n, want)
	}
	if leader.State() != Leader {
		t.Fatalf("the leader is %v", leader.State())
	}
}

// TestTransferToASilentTargetEndsAtItsTimeout: the leader takes writes
// again once a transfer to a target that does not answer TimeoutNow has
// timed out (its ElectionTimeout), while the request still waits; upstream
// it took none until the request ended.
func TestTransferToASilentTargetEndsAtItsTimeout(t *testing.T) {
	leader, trans := groupWithASilentTarget(t)
	if err := leader.LeadershipTransferToServer("target", trans.target).Error(); err == nil {
		t.Fatal("a transfer whose TimeoutNow got no answer succeeded")
	}
	writesAgain(t, leader, trans, 1)
}

// TestTransfersToATargetBehindAndSilent: two transfers in a row to a
// target that went silent while behind (its replication waits in a
// request) each end at their timeout, and the leader takes writes again.
// Upstream the second waited, in progress, until that request ended: the
// first had left its catch-up request with the stuck replication.
func TestTransfersToATargetBehindAndSilent(t *testing.T) {
	leader, trans := groupWithASilentTarget(t)
	trans.silent.Store(true)
	if err := leader.Apply([]byte("z"), time.Second).Error(); err != nil {
		t.Fatal(err) // committed with the other follower
	}
	waitFor(t, "replication to the target waiting in a request", func() error {
		if trans.waiting.Load() == 0 {
			return errors.New("none waiting")
		}
		return nil
	})
	for i := range 2 {
		// Each transfer is let start: the one before may still be
		// ending (Raft answers its future first).
		waitFor(t, fmt.Sprintf("transfer %d that starts and fails", i+1), func() error {
			err := leader.LeadershipTransferToServer("target", trans.target).Error()
			switch {
			case err == nil:
				t.Fatalf("transfer %d to a silent target succeeded", i+1)
			case errors.Is(err, ErrLeadershipTransferInProgress):
				return err
			}
			return nil
		})
	}
	writesAgain(t, leader, trans, trans.waiting.Load())
}
