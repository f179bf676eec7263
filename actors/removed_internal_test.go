package actors

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coppice-kv/coppice/internal/testlog"
	"github.com/coppice-kv/coppice/messages"
	"github.com/coppice-kv/coppice/transport"
	"github.com/hashicorp/raft"
)

// soleSystemGroup runs a one-voter group as rt's system group, rt named
// as its voter, and returns it.
func soleSystemGroup(t *testing.T, rt *Runtime) *raft.Raft {
	c := raft.MakeCluster(1, t, nil)
	t.Cleanup(c.Close)
	r := leaderOf(t, c)
	_, id := r.LeaderWithID()
	rt.Name = string(id)
	rt.setSystem(r, nil)
	return r
}

// A notice for another node or another cluster, or naming no coordinator,
// is refused and changes nothing; a good one makes the node count itself
// removed, until the notices stop for removedLapse or the system group
// takes it back.
func TestRemovedNotice(t *testing.T) {
	rt := &Runtime{}
	sys := soleSystemGroup(t, rt)
	rt.setClusterID("c1", true)
	good := &messages.RemovedNotice{ClusterId: "c1", Node: rt.Name, Coordinator: "n1", CoordinatorAddr: "127.0.0.1:7000"}
	for _, tc := range []struct {
		name string
		edit func(n *messages.RemovedNotice)
		want string
	}{
		{"another node", func(n *messages.RemovedNotice) { n.Node = "n9" }, `removal notice for node "n9"`},
		{"another cluster", func(n *messages.RemovedNotice) { n.ClusterId = "c2" }, `removal notice from cluster "c2"`},
		{"no coordinator", func(n *messages.RemovedNotice) { n.CoordinatorAddr = "" }, "names no coordinator"},
	} {
		n := &messages.RemovedNotice{ClusterId: good.ClusterId, Node: good.Node, Coordinator: good.Coordinator, CoordinatorAddr: good.CoordinatorAddr}
		tc.edit(n)
		if r := rt.removedNotice(n); !strings.Contains(r.Error, tc.want) {
			t.Errorf("%s: %q, want one saying %q", tc.name, r.Error, tc.want)
		}
		if _, removed := rt.removedBy(); removed {
			t.Fatalf("%s: refused, yet the node counts itself removed", tc.name)
		}
	}

	if r := rt.removedNotice(good); r.Error != "" {
		t.Fatal(r.Error)
	}
	by, removed := rt.removedBy()
	if want := (transport.Peer{Name: "n1", Addr: "127.0.0.1:7000"}); !removed || by != want {
		t.Fatalf("after a notice: removed %v by %+v, want by %+v", removed, by, want)
	}

	// Notices stop coming: the removal lapses.
	r := *rt.removal.Load()
	r.at = time.Now().Add(-removedLapse - time.Second)
	rt.removal.Store(&r)
	if _, removed := rt.removedBy(); removed {
		t.Error("removed still, removedLapse after the last notice")
	}

	// A configuration of the system group newer than the first notice,
	// with the node in it: added back.
	if r := rt.removedNotice(good); r.Error != "" {
		t.Fatal(r.Error)
	}
	if err := sys.AddNonvoter("n9", "n9", 0, time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	if _, removed := rt.removedBy(); removed {
		t.Error("removed still, with the node in a newer configuration of its system group")
	}
}

// A configuration of the system group newer than the notice, without
// the node, does not end the removal.
func TestRemovedNoticeOutlivesANewerConfiguration(t *testing.T) {
	rt := &Runtime{}
	sys := soleSystemGroup(t, rt)
	rt.Name = "n3" // not the group's voter
	rt.setClusterID("c1", true)
	if r := rt.removedNotice(&messages.RemovedNotice{ClusterId: "c1", Node: "n3", Coordinator: "n1", CoordinatorAddr: "127.0.0.1:7000"}); r.Error != "" {
		t.Fatal(r.Error)
	}
	if err := sys.AddNonvoter("n9", "n9", 0, time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	if _, removed := rt.removedBy(); !removed {
		t.Error("not removed, though the newer configuration lacks the node")
	}
}

// A removed node refuses what it cannot forward with errRemoved, on every
// shard, at once (no leader will come), and serves no stale read even as
// a read-only node.
func TestForwardFromARemovedNode(t *testing.T) {
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return protoactorLogger(nil) }))
	defer sys.Shutdown()
	rt := &Runtime{Shards: 2, Role: messages.Role_ROLE_READONLY}
	soleSystemGroup(t, rt)
	rt.setClusterID("c1", true)
	rt.setLead(0, shardLead{outside: true, current: true})
	rt.setLead(1, shardLead{current: true})
	if !rt.staleReads(1) {
		t.Fatal("a current read-only replica, a member: no stale reads before the notice")
	}
	if rt.staleReads(0) {
		t.Fatal("stale reads from a replica outside its group's configuration")
	}
	if r := rt.removedNotice(&messages.RemovedNotice{ClusterId: "c1", Node: rt.Name, Coordinator: "n1", CoordinatorAddr: "127.0.0.1:7000"}); r.Error != "" {
		t.Fatal(r.Error)
	}
	b := newBackend(rt, sys)
	get := &messages.Forward{Command: &messages.Command{Args: [][]byte{[]byte("GET"), []byte("k")}}}
	for shard := range 2 {
		if rt.staleReads(shard) {
			t.Errorf("shard %d: stale reads on a removed node", shard)
		}
		r, retry, _ := b.forward(shard, "", "", get)
		if e := r.GetError(); !strings.HasPrefix(e, "TRYAGAIN ") || !strings.Contains(e, errRemoved) || retry {
			t.Errorf("shard %d: %q, retry %v; want TRYAGAIN naming %q, answered without waiting for a leader", shard, e, retry, errRemoved)
		}
	}
}

// Every shard of a removed node is not ready, with errRemoved.
func TestRemovedNodeIsNotReady(t *testing.T) {
	st := &Status{Node: "n3", Removed: true, Shards: []ShardStatus{
		{ID: 0, State: "follower", Leader: "n1", CommitIndex: 5, AppliedIndex: 5, Members: []MemberStatus{{Node: "n3"}}},
		{ID: 1, State: "follower", Leader: "n1", CommitIndex: 5, AppliedIndex: 5},
	}}
	bad := st.NotReady()
	if len(bad) != 2 || bad[0].Reason != errRemoved || bad[1].Reason != errRemoved {
		t.Errorf("not ready: %+v, want both shards with %q", bad, errRemoved)
	}
	st.Removed = false
	if bad := st.NotReady(); len(bad) != 0 {
		t.Errorf("not removed: not ready %+v, want none (the check above must be the removal's)", bad)
	}
}

// The coordinator warns of a removed node alive in gossip once, after
// removedWarnAfter: a node that leaves is seen so for a moment.
func TestRemovedAliveWarnsOnceAfterAWhile(t *testing.T) {
	var out testlog.Buffer
	m := &managerActor{rt: &Runtime{Name: "n1", Log: slog.New(slog.NewTextHandler(&out, nil))}, removedSeen: map[string]*seenRemoved{}}
	const line = "a removed node is alive in gossip"
	t0 := time.Now()
	for _, step := range []struct {
		after time.Duration
		want  int
	}{
		{0, 0},
		{removedWarnAfter / 2, 0},
		{removedWarnAfter, 1},
		{2 * removedWarnAfter, 1},
	} {
		m.removedAlive([]string{"n3"}, t0.Add(step.after))
		if got := out.Count(line); got != step.want {
			t.Fatalf("%v after it was first seen: %d warnings, want %d; log:\n%s", step.after, got, step.want, out.String())
		}
	}
}

// A node that leaves takes the notice of its removal without a warning:
// it is no news.
func TestRemovedNoticeWhileLeaving(t *testing.T) {
	for _, leaving := range []bool{true, false} {
		var out testlog.Buffer
		rt := &Runtime{Log: slog.New(slog.NewTextHandler(&out, nil))}
		soleSystemGroup(t, rt)
		rt.setClusterID("c1", true)
		rt.leaving.Store(leaving)
		if r := rt.removedNotice(&messages.RemovedNotice{ClusterId: "c1", Node: rt.Name, Coordinator: "n1", CoordinatorAddr: "127.0.0.1:7000"}); r.Error != "" {
			t.Fatal(r.Error)
		}
		want := 1
		if leaving {
			want = 0
		}
		if got := out.Count("the cluster removed this node"); got != want {
			t.Errorf("leaving %v: %d warnings, want %d; log:\n%s", leaving, got, want, out.String())
		}
		if _, removed := rt.removedBy(); !removed {
			t.Errorf("leaving %v: the notice not taken", leaving)
		}
	}
}
