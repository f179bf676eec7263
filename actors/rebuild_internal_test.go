package actors

import (
	"strings"
	"testing"

	"github.com/coppice-kv/coppice/messages"
	"github.com/hashicorp/raft"
)

// A damaged replica is rebuilt only when its group's other voters can
// elect a leader without its vote.
func TestRebuildRefusal(t *testing.T) {
	conf := func(servers ...string) raft.Configuration {
		var c raft.Configuration
		for _, s := range servers {
			suffrage := raft.Voter
			if strings.HasSuffix(s, "~") {
				s, suffrage = strings.TrimSuffix(s, "~"), raft.Nonvoter
			}
			c.Servers = append(c.Servers, raft.Server{ID: raft.ServerID(s), Suffrage: suffrage})
		}
		return c
	}
	for _, tc := range []struct {
		c    raft.Configuration
		want string // "" or a part of the refusal
	}{
		{conf("n1"), "no other voter"},
		{conf("n1", "n2~"), "no other voter"},
		{conf("n1", "n2"), "1 other voter(s) of 2 cannot elect"},
		{conf("n1", "n2", "n3"), ""},
		{conf("n1", "n2", "n3", "n4"), ""},
		{conf("n1", "n2", "n3", "n4", "n5~"), ""},
		{conf("n1~", "n2"), ""},    // a non-voter: any voter elsewhere
		{conf("n2", "n3"), ""},     // not a member: nothing lost
		{conf("n2"), ""},           // the same
		{raft.Configuration{}, ""}, // a rebuild a crash cut short
		{conf("n1~", "n2~"), "no other voter"},
	} {
		got := rebuildRefusal(tc.c, "n1")
		if (got == "") != (tc.want == "") || !strings.Contains(got, tc.want) {
			t.Errorf("rebuildRefusal(%v) = %q, want %q", tc.c.Servers, got, tc.want)
		}
	}
}

// A read-only node serves a shard's reads from its own replica only once
// that replica is current (not started on empty stores, or caught up
// since); a voter never does (its reads take the barrier, or it is the
// sole voter).
func TestStaleReadsOnlyFromACurrentReplica(t *testing.T) {
	for _, tc := range []struct {
		role    messages.Role
		current bool
		want    bool
	}{
		{messages.Role_ROLE_READONLY, true, true},
		{messages.Role_ROLE_READONLY, false, false},
		{messages.Role_ROLE_VOTER, true, false},
		{messages.Role_ROLE_REPLICA, true, false},
	} {
		rt := &Runtime{Name: "n1", Shards: 2, Role: tc.role}
		rt.setLead(1, shardLead{current: tc.current})
		if got := rt.staleReads(1); got != tc.want {
			t.Errorf("%v, current %v: staleReads %v, want %v", tc.role, tc.current, got, tc.want)
		}
		if rt.staleReads(0) {
			t.Errorf("%v: stale reads from a shard this node knows nothing of yet", tc.role)
		}
	}
}
