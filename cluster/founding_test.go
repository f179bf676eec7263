package cluster

import (
	"strings"
	"testing"

	"github.com/coppice-kv/coppice/messages"
)

// newMember is a live gossip member with no cluster, started with
// --bootstrap-expect expect.
func newMember(name string, expect uint32) *messages.Member {
	return &messages.Member{Name: name, Status: messages.MemberStatus_ALIVE, BootstrapExpect: expect}
}

func TestDecideFounding(t *testing.T) {
	inCluster := newMember("n2", 0)
	inCluster.ClusterId = "c1"
	failed := newMember("n0", 3)
	failed.Status = messages.MemberStatus_FAILED
	for _, tc := range []struct {
		name    string
		self    string
		expect  int // 3 if 0
		members []*messages.Member
		want    Founding
		wait    string // held by Wait
	}{
		{name: "the first of three founds", self: "n1",
			members: []*messages.Member{newMember("n1", 3), newMember("n2", 3), newMember("n3", 3)}, want: Founding{Found: true}},
		{name: "the others wait for it", self: "n3",
			members: []*messages.Member{newMember("n3", 3), newMember("n1", 3), newMember("n2", 3)},
			wait:    "n1 founds the cluster (the first by name of n1, n2, n3)"},
		{name: "too few seen", self: "n1",
			members: []*messages.Member{newMember("n1", 3), newMember("n2", 3)},
			wait:    "2 of the 3 nodes of --bootstrap-expect seen (n1, n2), and no cluster"},
		{name: "gossip has not listed this node yet", self: "n1", expect: 2,
			members: []*messages.Member{newMember("n2", 2)}, want: Founding{Found: true}},
		{name: "a failed node does not count", self: "n1",
			members: []*messages.Member{failed, newMember("n1", 3), newMember("n2", 3)},
			wait:    "2 of the 3 nodes of --bootstrap-expect seen"},
		{name: "a node in a cluster: join it, found nothing", self: "n1",
			members: []*messages.Member{newMember("n1", 3), inCluster, newMember("n3", 3), newMember("n4", 3)},
			want:    Founding{Join: "c1"}},
		{name: "a lost data dir rejoins: its peers are in the cluster", self: "n1",
			members: []*messages.Member{newMember("n1", 3), inCluster}, want: Founding{Join: "c1"}},
		{name: "another count stops the founding", self: "n1",
			members: []*messages.Member{newMember("n1", 3), newMember("n2", 3), newMember("n3", 5)},
			wait:    "nodes ask for another --bootstrap-expect than this node's 3 (n3 5)"},
		{name: "plain joiners are not counted and stop nothing", self: "n1", expect: 2,
			members: []*messages.Member{newMember("n1", 2), newMember("n0", 0), newMember("n2", 2)}, want: Founding{Found: true}},
		{name: "plain joiners do not make up the count", self: "n1",
			members: []*messages.Member{newMember("n1", 3), newMember("n0", 0), newMember("n2", 3)},
			wait:    "2 of the 3 nodes"},
		{name: "more than the count: the first of them all", self: "n2", expect: 2,
			members: []*messages.Member{newMember("n1", 2), newMember("n2", 2), newMember("n3", 2)},
			wait:    "n1 founds the cluster"},
	} {
		expect := tc.expect
		if expect == 0 {
			expect = 3
		}
		got := DecideFounding(tc.self, expect, tc.members)
		if tc.wait != "" {
			if got.Found || got.Join != "" || !strings.Contains(got.Wait, tc.wait) {
				t.Errorf("%s: got %+v, want to wait with %q", tc.name, got, tc.wait)
			}
			continue
		}
		if got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
	}
}
