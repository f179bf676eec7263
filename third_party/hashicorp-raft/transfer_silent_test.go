// coppice: a leadership transfer whose TimeoutNow request gets no answer
// ends at the transfer's timeout (raft.go, leadershipTransfer).

package raft

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// silentTimeoutNow is an InmemTransport whose TimeoutNow requests get no
// answer until released: a target that went silent, as one cut off on a
// real network is until the transport's deadline.
type silentTimeoutNow struct {
	*InmemTransport
	release chan struct{}
	waiting atomic.Int32
}

func (s *silentTimeoutNow) TimeoutNow(id ServerID, target ServerAddress, args *TimeoutNowRequest, resp *TimeoutNowResponse) error {
	s.waiting.Add(1)
	defer s.waiting.Add(-1)
	<-s.release
	return errors.New("no answer")
}

// TestTransferToASilentTargetEndsAtItsTimeout: the leader takes writes
// again once a transfer to a target that does not answer TimeoutNow has
// timed out (its ElectionTimeout), while the request still waits; upstream
// it took none until the request ended.
func TestTransferToASilentTargetEndsAtItsTimeout(t *testing.T) {
	conf := inmemConfig(t)
	conf.LocalID = "leader"
	store, snaps := NewInmemStore(), NewInmemSnapshotStore()
	leaderAddr, inner := NewInmemTransport("leader")
	trans := &silentTimeoutNow{InmemTransport: inner, release: make(chan struct{})}
	defer close(trans.release)
	followerAddr, followerTrans := NewInmemTransport("follower")
	inner.Connect(followerAddr, followerTrans)
	followerTrans.Connect(leaderAddr, inner)
	servers := Configuration{Servers: []Server{
		{Suffrage: Voter, ID: "leader", Address: leaderAddr},
		{Suffrage: Voter, ID: "follower", Address: followerAddr},
	}}
	if err := BootstrapCluster(conf, store, store, snaps, trans, servers); err != nil {
		t.Fatal(err)
	}
	leader, err := NewRaft(conf, &MockFSM{}, store, store, snaps, trans)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = leader.Shutdown().Error() }()
	// The follower's elections wait far longer than the test.
	fconf := inmemConfig(t)
	fconf.LocalID = "follower"
	fconf.HeartbeatTimeout, fconf.ElectionTimeout = time.Minute, time.Minute
	fstore, fsnaps := NewInmemStore(), NewInmemSnapshotStore()
	if err := BootstrapCluster(fconf, fstore, fstore, fsnaps, followerTrans, servers); err != nil {
		t.Fatal(err)
	}
	follower, err := NewRaft(fconf, &MockFSM{}, fstore, fstore, fsnaps, followerTrans)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = follower.Shutdown().Error() }()
	waitFor(t, "a leader that takes writes", func() error {
		return leader.Apply([]byte("x"), time.Second).Error()
	})

	if err := leader.LeadershipTransferToServer("follower", followerAddr).Error(); err == nil {
		t.Fatal("a transfer whose TimeoutNow got no answer succeeded")
	}
	if trans.waiting.Load() != 1 {
		t.Fatalf("%d TimeoutNow requests waiting, want the transfer's", trans.waiting.Load())
	}
	waitFor(t, "a write taken after the transfer's timeout", func() error {
		if err := leader.Apply([]byte("y"), time.Second).Error(); err != nil {
			return fmt.Errorf("%w (TimeoutNow requests waiting: %d)", err, trans.waiting.Load())
		}
		return nil
	})
	if trans.waiting.Load() != 1 {
		t.Fatal("the TimeoutNow request ended: the test proves nothing")
	}
	if leader.State() != Leader {
		t.Fatalf("the leader is %v", leader.State())
	}
}
