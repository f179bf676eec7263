// coppice: the only voter of its configuration stands as soon as it
// starts (soleVoter).

package raft

import (
	"testing"
	"time"
)

// soleVoterServer is a server whose timers are long (10 s): in these
// tests it leads within soleWithin only if it stands at once. guard is
// its LostStoreGuard; it has SoleVoterStandsAtOnce unless upstream.
func soleVoterServer(t *testing.T, store *InmemStore, snaps *InmemSnapshotStore, trans *InmemTransport, guard, upstream bool) *Raft {
	t.Helper()
	conf := inmemConfig(t)
	conf.HeartbeatTimeout, conf.ElectionTimeout, conf.LeaderLeaseTimeout = 10*time.Second, 10*time.Second, 5*time.Second
	conf.LocalID = ServerID(trans.LocalAddr())
	conf.LostStoreGuard = guard
	conf.SoleVoterStandsAtOnce = !upstream
	r, err := NewRaft(conf, &MockFSM{}, store, store, snaps, trans)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Shutdown().Error() })
	return r
}

// soleWithin bounds the wait for a lone server's leadership: a tenth of
// its heartbeat timeout.
const soleWithin = time.Second

func waitLeader(t *testing.T, r *Raft, what string) {
	t.Helper()
	deadline := time.After(soleWithin)
	for r.State() != Leader {
		select {
		case <-deadline:
			t.Fatalf("%s: state %v after %v, want Leader (HeartbeatTimeout 10s)", what, r.State(), soleWithin)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func TestRaft_SoleVoterStandsAtOnce(t *testing.T) {
	addr, trans := NewInmemTransport("")
	self := Server{Suffrage: Voter, ID: ServerID(addr), Address: addr}

	// Bootstrapped before it starts, as upstream's BootstrapCluster does.
	store, snaps := NewInmemStore(), NewInmemSnapshotStore()
	conf := inmemConfig(t)
	conf.LocalID = self.ID
	if err := BootstrapCluster(conf, store, store, snaps, trans, Configuration{Servers: []Server{self}}); err != nil {
		t.Fatal(err)
	}
	r := soleVoterServer(t, store, snaps, trans, false, false)
	waitLeader(t, r, "bootstrapped before the start")
	if err := r.Apply([]byte("x"), time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	if err := r.Shutdown().Error(); err != nil {
		t.Fatal(err)
	}

	// Started again on the same stores: the configuration is in its log.
	_, trans2 := NewInmemTransport(addr)
	r = soleVoterServer(t, store, snaps, trans2, false, false)
	waitLeader(t, r, "started again")
	if err := r.Shutdown().Error(); err != nil {
		t.Fatal(err)
	}

	// Bootstrapped while it runs (coppice's founding node does this), with
	// the lost store guard, which bootstrapping clears.
	addr3, trans3 := NewInmemTransport("")
	store3, snaps3 := NewInmemStore(), NewInmemSnapshotStore()
	r = soleVoterServer(t, store3, snaps3, trans3, true, false)
	if err := r.BootstrapCluster(Configuration{Servers: []Server{{Suffrage: Voter, ID: ServerID(addr3), Address: addr3}}}).Error(); err != nil {
		t.Fatal(err)
	}
	waitLeader(t, r, "bootstrapped while running")

	// A non-voter beside it does not count: it is still the only voter.
	addr4, trans4 := NewInmemTransport("")
	store4, snaps4 := NewInmemStore(), NewInmemSnapshotStore()
	conf.LocalID = ServerID(addr4)
	if err := BootstrapCluster(conf, store4, store4, snaps4, trans4, Configuration{Servers: []Server{
		{Suffrage: Voter, ID: ServerID(addr4), Address: addr4},
		{Suffrage: Nonvoter, ID: "other", Address: "other"},
	}}); err != nil {
		t.Fatal(err)
	}
	r = soleVoterServer(t, store4, snaps4, trans4, false, false)
	waitLeader(t, r, "beside a non-voter")
}

// A server with another voter in its configuration, one that has not
// caught up since its stores were emptied, and one without the option
// still wait their timeout.
func TestRaft_SoleVoterOnly(t *testing.T) {
	cases := []struct {
		name  string
		other ServerSuffrage
		mark  bool
		off   bool
	}{
		{name: "another voter", other: Voter},
		{name: "unverified", other: Nonvoter, mark: true},
		{name: "option off", other: Nonvoter, off: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			addr, trans := NewInmemTransport("")
			store, snaps := NewInmemStore(), NewInmemSnapshotStore()
			conf := inmemConfig(t)
			conf.LocalID = ServerID(addr)
			if err := BootstrapCluster(conf, store, store, snaps, trans, Configuration{Servers: []Server{
				{Suffrage: Voter, ID: ServerID(addr), Address: addr},
				{Suffrage: c.other, ID: "other", Address: "other"},
			}}); err != nil {
				t.Fatal(err)
			}
			if c.mark {
				if err := MarkUnverified(store); err != nil {
					t.Fatal(err)
				}
			}
			r := soleVoterServer(t, store, snaps, trans, c.mark, c.off)
			// Not standing is seen only by its absence: it stays a
			// follower in the window in which a sole voter leads.
			deadline := time.After(soleWithin)
			for {
				select {
				case <-deadline:
					return
				case <-time.After(5 * time.Millisecond):
				}
				if s := r.State(); s != Follower {
					t.Fatalf("state %v before its heartbeat timeout (10s), want Follower", s)
				}
			}
		})
	}
}
