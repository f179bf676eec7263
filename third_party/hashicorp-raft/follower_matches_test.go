// coppice: tests of Raft.FollowerMatches (api.go).

package raft

import (
	"testing"
	"time"
)

// TestRaft_FollowerMatches: the leader tells up to where each follower
// stores its log, and its channel closes when that changes; a follower cut
// off stays behind the entries committed without it; a follower, or a
// leader that steps down, tells nothing, and stepping down closes the
// channel.
func TestRaft_FollowerMatches(t *testing.T) {
	conf := inmemConfig(t)
	conf.HeartbeatTimeout = 100 * time.Millisecond
	conf.ElectionTimeout = 100 * time.Millisecond
	conf.LeaderLeaseTimeout = 100 * time.Millisecond
	c := MakeCluster(3, t, conf)
	defer c.Close()
	leader := c.Leader()
	followers := c.Followers()
	if len(followers) != 2 {
		t.Fatalf("%d followers, want 2", len(followers))
	}
	if got, ch := followers[0].FollowerMatches(); got != nil || ch != nil {
		t.Fatalf("a follower's matches: %v, %v; want nil", got, ch)
	}
	cut, kept := followers[0], followers[1]

	// until waits (5s at most) until cond holds of the leader's matches,
	// woken by their channel only: a change it misses fails the test.
	until := func(what string, cond func(map[ServerID]uint64) bool) map[ServerID]uint64 {
		t.Helper()
		timeout := time.After(5 * time.Second)
		for {
			m, changed := leader.FollowerMatches()
			if m == nil {
				t.Fatalf("%s: the leader lost its lead", what)
			}
			if cond(m) {
				return m
			}
			select {
			case <-changed:
			case <-timeout:
				t.Fatalf("%s: not within 5s of waiting on the channel; matches %v", what, m)
			}
		}
	}

	// Both followers catch up with the leader's log as it stands.
	last := leader.LastIndex()
	until("both followers at the last index", func(m map[ServerID]uint64) bool {
		return len(m) == 2 && m[cut.localID] >= last && m[kept.localID] >= last
	})
	// An entry: the channel taken before it closes, both store it.
	_, changed := leader.FollowerMatches()
	f := leader.Apply([]byte("one"), time.Second)
	if err := f.Error(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Fatal("the channel did not close when the followers stored an entry")
	}
	until("both followers storing the entry", func(m map[ServerID]uint64) bool {
		return m[cut.localID] >= f.Index() && m[kept.localID] >= f.Index()
	})

	// A follower cut off does not get the next entry; the other does.
	c.Disconnect(cut.localAddr)
	f2 := leader.Apply([]byte("two"), time.Second)
	if err := f2.Error(); err != nil {
		t.Fatal(err)
	}
	m := until("the connected follower storing the second entry", func(m map[ServerID]uint64) bool {
		return m[kept.localID] >= f2.Index()
	})
	if m[cut.localID] >= f2.Index() {
		t.Fatalf("the cut follower's match %d, at or past the entry made after it was cut off (%d)", m[cut.localID], f2.Index())
	}
	if m[cut.localID] < f.Index() {
		t.Fatalf("the cut follower's match fell back to %d, below the entry it stored (%d)", m[cut.localID], f.Index())
	}

	// Stepping down closes the channel, and a former leader tells nothing.
	_, changed = leader.FollowerMatches()
	if err := leader.LeadershipTransferToServer(kept.localID, kept.localAddr).Error(); err != nil {
		t.Fatalf("transfer: %v", err)
	}
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Fatal("the channel did not close when the leader stepped down")
	}
	if got, ch := leader.FollowerMatches(); got != nil || ch != nil {
		t.Fatalf("a former leader's matches: %v, %v; want nil", got, ch)
	}
}
