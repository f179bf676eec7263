package actors_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coppice-kv/coppice/actors"
	"github.com/coppice-kv/coppice/internal/testwait"
	"github.com/coppice-kv/coppice/kv"
	"github.com/coppice-kv/coppice/messages"
)

func TestStatusViews(t *testing.T) {
	st := &actors.Status{
		Nodes: []actors.NodeStatus{{Name: "n3", Member: true}, {Name: "n9"}, {Name: "n1", Member: true}},
		Shards: []actors.ShardStatus{
			{ID: 0, Leader: "n3", Members: []actors.MemberStatus{
				{Node: "n3", Suffrage: "voter"}, {Node: "n9", Suffrage: "nonvoter"}, {Node: "n1", Suffrage: "voter"}}},
			{ID: 1},
		},
	}
	if got := st.Leaders(); !slices.Equal(got, []string{"n3", ""}) {
		t.Errorf("Leaders() = %q", got)
	}
	if got := st.Members(); !slices.Equal(got, []string{"n1", "n3"}) {
		t.Errorf("Members() = %q", got)
	}
	for kind, want := range map[string][]string{"voter": {"n1", "n3"}, "nonvoter": {"n9"}, "staging": nil} {
		if got := st.Shards[0].WithSuffrage(kind); !slices.Equal(got, want) {
			t.Errorf("WithSuffrage(%s) = %q, want %q", kind, got, want)
		}
	}
}

func TestShardReadiness(t *testing.T) {
	for _, tc := range []struct {
		s    actors.ShardStatus
		want string // "" for ready
	}{
		{actors.ShardStatus{Leader: "n1", CommitIndex: 5, AppliedIndex: 5}, ""},
		{actors.ShardStatus{Leader: "n2", CommitIndex: 5, AppliedIndex: 6}, ""},
		{actors.ShardStatus{CommitIndex: 5, AppliedIndex: 5}, "no leader"},
		{actors.ShardStatus{Leader: "n1", CommitIndex: 5, AppliedIndex: 4}, "applied index 4 is behind commit index 5"},
		{actors.ShardStatus{Leader: "n1", Error: "shard 0: status: timeout"}, "shard 0: status: timeout"},
		// A leader just restarted: its commit index not yet moved, its
		// store behind the log it had when it took the lead.
		{actors.ShardStatus{Leader: "n1", State: "leader", AppliedIndex: 3, TermStartIndex: 5},
			"leader catching up: applied index 3, its log was at 5 when it took the lead"},
		{actors.ShardStatus{Leader: "n1", State: "leader", CommitIndex: 6, AppliedIndex: 6, TermStartIndex: 5}, ""},
		// A follower's term start index means nothing.
		{actors.ShardStatus{Leader: "n2", State: "follower", CommitIndex: 3, AppliedIndex: 3, TermStartIndex: 5}, ""},
		// On a new or lost data dir, not yet caught up with a leader.
		{actors.ShardStatus{Leader: "n2", State: "follower", CommitIndex: 3, AppliedIndex: 3, VotesWithheld: true},
			"started on an empty data dir and not yet caught up with a leader: it grants no vote"},
	} {
		ok, why := tc.s.Ready()
		if ok != (tc.want == "") || why != tc.want {
			t.Errorf("%+v: Ready() = %v %q, want %q", tc.s, ok, why, tc.want)
		}
	}
	st := actors.Status{Shards: []actors.ShardStatus{
		{ID: 0, Leader: "n1"}, {ID: 1}, {ID: 2, Leader: "n1", CommitIndex: 2, AppliedIndex: 1},
	}}
	bad := st.NotReady()
	if len(bad) != 2 || bad[0].ID != 1 || bad[0].Reason != "no leader" || bad[1].ID != 2 {
		t.Errorf("NotReady: %+v", bad)
	}
	// A node removed from a shard's group (its members, as it last saw
	// them, do not include it) is not ready for it, whatever its leader;
	// a shard with no members known yet (a node joining) is judged as
	// before.
	n1, n2, n3 := actors.MemberStatus{Node: "n1"}, actors.MemberStatus{Node: "n2"}, actors.MemberStatus{Node: "n3"}
	st = actors.Status{Node: "n3", Shards: []actors.ShardStatus{
		{ID: 0, Leader: "n1", Members: []actors.MemberStatus{n1, n2}},
		{ID: 1, Leader: "n1", Members: []actors.MemberStatus{n1, n2, n3}},
		{ID: 2, Leader: "n1"},
		{ID: 3, Members: []actors.MemberStatus{n1, n2}},
	}}
	bad = st.NotReady()
	if len(bad) != 2 || bad[0].ID != 0 || bad[1].ID != 3 ||
		!strings.HasPrefix(bad[0].Reason, "this node is not a member of the group") || bad[1].Reason != bad[0].Reason {
		t.Errorf("NotReady of a removed node: %+v", bad)
	}
}

func okWrite(kv.Writer, *messages.Command, *kv.EventLog) *messages.Reply {
	return &messages.Reply{Value: &messages.Reply_Status{Status: "OK"}}
}

func TestGatherStatus(t *testing.T) {
	n := startRuntime(t, &actors.Runtime{Name: "n1", DataDir: t.TempDir(), Shards: 2, ClusterAddr: "127.0.0.1:0",
		ClientAddr: "127.0.0.1:0", Exec: okWrite})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	defer n.Stop(ctx)

	info := actors.StatusInfo{Name: "n1", Shards: 2, Role: "voter"}
	var st *actors.Status
	testwait.For(t, 20*time.Second, 20*time.Millisecond, "a settled standalone status", func() error {
		sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
		defer scancel()
		var err error
		if st, err = n.Status(sctx, info); err != nil {
			t.Fatal(err)
		}
		// A standalone node that bootstrapped its cluster: the only
		// member, synced, each shard's one member at its applied index
		// with no lag, once the leaders' first entries are applied
		// (sampled earlier, the shard and the coordinator may disagree).
		if st.Node != "n1" || st.Mode != actors.ModeStandalone || st.SyncStatus != actors.SyncSynced || st.Coordinator != "n1" ||
			len(st.Nodes) != 1 || st.Nodes[0].Role != "voter" || !st.Nodes[0].Member || st.Nodes[0].Status != "alive" ||
			st.ClusterID == "" {
			return fmt.Errorf("status %+v", st)
		}
		for i, sh := range st.Shards {
			if sh.ID != i || sh.State != "leader" || sh.Leader != "n1" || sh.LeaderAddr == "" || sh.Term == 0 || sh.FirstIndex == 0 ||
				sh.LastIndex < sh.CommitIndex || len(sh.Members) != 1 || sh.Members[0].AppliedIndex == nil ||
				*sh.Members[0].AppliedIndex != sh.AppliedIndex || sh.Members[0].Lag == nil || *sh.Members[0].Lag != 0 {
				return fmt.Errorf("shard %d: %+v", i, sh)
			}
		}
		return nil
	})

	// A shard that does not answer is reported, not fatal.
	info.Shards = 3
	sctx, scancel := context.WithTimeout(ctx, 2*time.Second)
	st, err := actors.GatherStatus(sctx, n.System, info)
	scancel()
	if err != nil {
		t.Fatal(err)
	}
	if ok, why := st.Shards[2].Ready(); ok || !strings.Contains(why, "shard 2: status") || st.Shards[2].State != "unknown" {
		t.Errorf("missing shard: %+v", st.Shards[2])
	}

	// A canceled request ends at once; a bad info is refused.
	cctx, ccancel := context.WithCancel(ctx)
	ccancel()
	if _, err := n.Status(cctx, info); err == nil {
		t.Error("status with a canceled context: no error")
	}
	if _, err := n.Status(ctx, actors.StatusInfo{Name: "n1"}); err == nil {
		t.Error("status of 0 shards: no error")
	}
}
