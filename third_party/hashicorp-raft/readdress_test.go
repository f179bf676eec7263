package raft

import (
	"testing"
	"time"
)

// coppice fork: a follower the configuration gives a new address (a node
// restarted elsewhere) gets the entries it lacks at once. Upstream's
// replication, backing off from the failures at the old address, slept
// the backoff out first: here about 4 s more, up to ~41 s.
func TestNewAddressEndsTheBackoff(t *testing.T) {
	c := MakeCluster(3, t, inmemConfig(t))
	defer c.Close()
	leader := c.Leader()
	follower := c.GetInState(Follower)[0]

	// The follower's entry gets an address nothing answers at (and the
	// follower is cut off, which ends the pipeline to it); writes go on
	// with the other follower, and the replication to it fails and backs
	// off: after 6 s of failures, its 11th backoff (5.12 s) runs until
	// about 10.2 s.
	c.Disconnect(follower.localAddr)
	if err := leader.AddVoter(follower.localID, "nowhere", 0, 0).Error(); err != nil {
		t.Fatal(err)
	}
	failing := time.Now()
	var f ApplyFuture
	for time.Since(failing) < 6*time.Second {
		f = leader.Apply([]byte("test"), 0)
		time.Sleep(50 * time.Millisecond)
	}
	if err := f.Error(); err != nil {
		t.Fatal(err)
	}
	want := leader.getLastIndex()
	if got := follower.getLastIndex(); got >= want {
		t.Fatalf("the follower at no address has index %d, the leader %d", got, want)
	}

	c.FullyConnect()
	moved := time.Now()
	if err := leader.AddVoter(follower.localID, follower.localAddr, 0, 0).Error(); err != nil {
		t.Fatal(err)
	}
	for follower.getLastIndex() < want {
		if time.Since(moved) > 2*time.Second {
			t.Fatalf("the follower at its new address is at %d after %v, the leader at %d",
				follower.getLastIndex(), time.Since(moved), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// coppice fork: a follower back after a failure long enough for the
// replication's backoff to grow gets the entries it lacks once a heartbeat
// reaches it again, not when the backoff runs out. Upstream slept it out:
// here about 4 s more, up to ~41 s, with the restarted follower behind
// (and, in a 3-node group with another voter down, no commits).
func TestFollowerBackEndsTheBackoff(t *testing.T) {
	c := MakeCluster(3, t, inmemConfig(t))
	defer c.Close()
	leader := c.Leader()
	follower := c.GetInState(Follower)[0]

	// Cut off for 6 s under writes: the replication's 11th backoff
	// (5.12 s) runs until about 10.2 s.
	c.Disconnect(follower.localAddr)
	failing := time.Now()
	var f ApplyFuture
	for time.Since(failing) < 6*time.Second {
		f = leader.Apply([]byte("test"), 0)
		time.Sleep(50 * time.Millisecond)
	}
	if err := f.Error(); err != nil {
		t.Fatal(err)
	}
	want := leader.getLastIndex()

	c.FullyConnect()
	back := time.Now()
	for follower.getLastIndex() < want {
		if time.Since(back) > 2*time.Second {
			t.Fatalf("the follower is at %d %v after it is back, the leader at %d",
				follower.getLastIndex(), time.Since(back), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// coppice fork: a ServerAddressProvider that has no address for a server
// answers "", and the RPC goes to the address it was given (coppice's
// provider knows the addresses gossip gives; for any other server the
// configuration's stands). Upstream dialled "".
func TestNetworkTransport_NoOverride(t *testing.T) {
	trans1, err := makeTransport(t, false, "localhost:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = trans1.Close() }()
	go func() {
		for rpc := range trans1.Consumer() {
			resp := makeAppendRPCResponse()
			rpc.Respond(&resp, nil)
		}
	}()
	trans2, err := makeTransport(t, true, "") // a provider that answers ""
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = trans2.Close() }()
	args := makeAppendRPC()
	var resp AppendEntriesResponse
	if err := trans2.AppendEntries("id1", trans1.LocalAddr(), &args, &resp); err != nil || !resp.Success {
		t.Fatalf("append entries with no override: %v, %+v", err, resp)
	}
}
