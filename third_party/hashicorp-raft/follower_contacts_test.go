// coppice: tests of Raft.FollowerContacts (api.go).

package raft

import (
	"testing"
	"time"
)

// TestRaft_FollowerContacts: the leader tells when each follower last
// answered; a disconnected follower's time stops while the other's goes
// on, and a follower tells nothing.
func TestRaft_FollowerContacts(t *testing.T) {
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
	if got := followers[0].FollowerContacts(); got != nil {
		t.Fatalf("a follower's contacts: %v, want nil", got)
	}
	contacts := leader.FollowerContacts()
	if len(contacts) != 2 {
		t.Fatalf("leader's contacts %v, want one per follower", contacts)
	}
	cut, kept := followers[0], followers[1]
	c.Disconnect(cut.localAddr)
	cutAt := time.Now()
	// The leader keeps its lease with the other follower; the cut one's
	// time stays where it was when it last answered.
	deadline := time.Now().Add(10 * time.Second)
	for {
		contacts = leader.FollowerContacts()
		if contacts == nil {
			t.Fatal("the leader lost its lease with one follower of two cut off")
		}
		silent, fresh := time.Since(contacts[cut.localID]), time.Since(contacts[kept.localID])
		if silent > time.Second && fresh < 500*time.Millisecond {
			if contacts[cut.localID].After(cutAt) {
				t.Fatalf("the cut follower answered at %v, after it was cut off at %v", contacts[cut.localID], cutAt)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10s: cut follower silent %v, the other %v; want over 1s and under 500ms", silent, fresh)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A leader that steps down tells nothing.
	if err := leader.LeadershipTransferToServer(kept.localID, kept.localAddr).Error(); err != nil {
		t.Fatalf("transfer: %v", err)
	}
	if got := leader.FollowerContacts(); got != nil {
		t.Fatalf("a former leader's contacts: %v, want nil", got)
	}
}
