package actors

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coppice-kv/coppice/messages"
)

// A shard sync that used its attempts gets a new set: syncRearm after it
// gave up, or at once when its node comes back in gossip after being seen
// down; not before, and not while it runs.
func TestGivenUpSyncsGetNewAttempts(t *testing.T) {
	newManager := func() *managerActor {
		return &managerActor{rt: &Runtime{SyncRetries: 2}, members: map[string]*messages.Member{},
			downSince: map[string]time.Time{}, syncs: map[syncKey]*messages.ShardSync{},
			attempts: map[syncKey]int{}, running: map[syncKey]*actor.PID{}, gaveUp: map[syncKey]time.Time{},
			removedSeen: map[string]*seenRemoved{}}
	}
	k := syncKey{op: 7, shard: 1}
	giveUp := func(m *managerActor) {
		t.Helper()
		for range m.rt.SyncRetries {
			m.progress(&messages.SyncProgress{Op: k.op, Sync: &messages.ShardSync{Shard: k.shard, Node: "n4",
				State: messages.SyncState_SYNC_FAILED, Error: "target n4: connection refused"}})
		}
		if m.attempts[k] != m.rt.SyncRetries {
			t.Fatalf("attempts %d after %d failures", m.attempts[k], m.rt.SyncRetries)
		}
	}

	m := newManager()
	giveUp(m)
	since := m.gaveUp[k]
	m.rearm(since.Add(syncRearm - time.Millisecond))
	if m.attempts[k] != m.rt.SyncRetries {
		t.Fatal("given new attempts before syncRearm passed")
	}
	m.running[k] = actor.NewPID("nonhost", "sync-1") // still stopping
	m.rearm(since.Add(syncRearm))
	if m.attempts[k] != m.rt.SyncRetries {
		t.Fatal("given new attempts while it runs")
	}
	delete(m.running, k)
	m.rearm(since.Add(syncRearm))
	if _, ok := m.attempts[k]; ok {
		t.Fatalf("attempts %d after syncRearm, want a new set", m.attempts[k])
	}
	if _, ok := m.gaveUp[k]; ok {
		t.Fatal("still marked given up")
	}

	// Seen down, then alive: at once.
	m = newManager()
	member := func(s messages.MemberStatus) *messages.MemberEvent {
		return &messages.MemberEvent{Members: []*messages.Member{{Name: "n4", Status: s}}}
	}
	m.memberEvent(member(messages.MemberStatus_ALIVE))
	giveUp(m)
	m.memberEvent(member(messages.MemberStatus_ALIVE)) // no change: nothing
	if m.attempts[k] != m.rt.SyncRetries {
		t.Fatal("given new attempts with the node never seen down")
	}
	m.memberEvent(member(messages.MemberStatus_FAILED))
	m.memberEvent(member(messages.MemberStatus_ALIVE))
	if _, ok := m.attempts[k]; ok {
		t.Fatalf("attempts %d after the node came back, want a new set", m.attempts[k])
	}
}

// A sync stopped while its change adding the node to a shard was on its
// way (an abandoned join's) must not add the node behind the removal: the
// removal, finding the node absent, still moves the shard's configuration
// on, and the change, decided on the configuration before, fails. A sync
// still running decides again instead.
func TestRemovalFencesAChangeOnItsWay(t *testing.T) {
	n, rt := startCatchUpNode(t, t.TempDir())
	defer stopCatchUpNode(t, n)
	const shard = 0
	waitSole(t, rt, shard)
	ctx := context.Background()
	ghost := &messages.ClusterMember{Name: "n9", ClusterAddr: "127.0.0.1:1"}
	s := &shardSync{rt: rt, job: &messages.SyncShard{Shard: shard, Node: ghost}}
	// What the sync read before deciding to add the node.
	before, err := s.leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if before.ConfigurationIndex == 0 || member(before, ghost.Name) != messages.Suffrage_SUFFRAGE_UNSPECIFIED {
		t.Fatalf("status before: configuration index %d, %s's suffrage %v", before.ConfigurationIndex, ghost.Name, member(before, ghost.Name))
	}
	in := &managerInputs{rt: rt, members: map[string]*messages.Member{}}
	if err := in.removeFromShard(ctx, shard, ghost, messages.ChangeMembership_REMOVE); err != nil {
		t.Fatalf("removing the absent node: %v", err)
	}
	after, err := s.leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.ConfigurationIndex <= before.ConfigurationIndex {
		t.Fatalf("the removal left the configuration at index %d (was %d)", after.ConfigurationIndex, before.ConfigurationIndex)
	}
	// The change on its way: it carries the configuration it was decided
	// on, and is refused.
	err = s.changeOnce(ctx, before, messages.ChangeMembership_ADD_NONVOTER)
	if err == nil || !strings.Contains(err.Error(), configChanged) {
		t.Fatalf("the change decided before the removal: %v, want it refused", err)
	}
	if last, err := s.leader(ctx); err != nil || member(last, ghost.Name) != messages.Suffrage_SUFFRAGE_UNSPECIFIED {
		t.Fatalf("after the refused change: %v, %s's suffrage %v", err, ghost.Name, member(last, ghost.Name))
	}
	// A sync still running whose change another one beat (another node
	// joining the shard) decides again on the configuration as it is now,
	// and its change lands.
	if err := s.change(ctx, before, messages.ChangeMembership_ADD_NONVOTER); err != nil {
		t.Fatalf("a running sync's change after another: %v", err)
	}
	if last, err := s.leader(ctx); err != nil || member(last, ghost.Name) != messages.Suffrage_NONVOTER {
		t.Fatalf("after the change: %v, %s's suffrage %v", err, ghost.Name, member(last, ghost.Name))
	}
}

// A reconcile pass that fails as the one before, figures aside, is a
// warning once a minute and a debug line in between; another failure is
// a warning at once.
func TestReconcileWarningsAreNotRepeated(t *testing.T) {
	var buf strings.Builder
	m := &managerActor{rt: &Runtime{Log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}}
	count := func(level, text string) int {
		n := 0
		for _, line := range strings.Split(buf.String(), "\n") {
			if strings.Contains(line, "level="+level) && strings.Contains(line, text) {
				n++
			}
		}
		return n
	}
	m.warnReconcile(errors.New("shard 2 would keep 2 voters of which 1 are up (n3 has not answered the group's leader for 2.1s)"))
	m.warnReconcile(errors.New("shard 2 would keep 2 voters of which 1 are up (n3 has not answered the group's leader for 2.6s)"))
	m.warnReconcile(errors.New("node does not answer on its cluster address: rogue at 127.0.0.1:40411"))
	m.warnReconcile(errors.New("shard 2 would keep 2 voters of which 1 are up (n2 has not answered the group's leader for 2.6s)"))
	if w := count("WARN", "n2 has not answered"); w != 1 {
		t.Fatalf("the same refusal for another node: %d warnings, want 1:\n%s", w, buf.String())
	}
	if w, d := count("WARN", "n3 has not answered"), count("DEBUG", "n3 has not answered"); w != 1 || d != 1 {
		t.Fatalf("the same refusal twice: %d warnings and %d debug lines, want 1 and 1:\n%s", w, d, buf.String())
	}
	if w := count("WARN", "rogue"); w != 1 {
		t.Fatalf("another failure: %d warnings, want 1:\n%s", w, buf.String())
	}
	for key := range m.warned {
		m.warned[key] = time.Now().Add(-reconcileWarnEvery)
	}
	m.warnReconcile(errors.New("shard 2 would keep 2 voters of which 1 are up (n3 has not answered the group's leader for 62.3s)"))
	if w := count("WARN", "n3 has not answered"); w != 2 {
		t.Fatalf("the same refusal a minute later: %d warnings, want 2:\n%s", w, buf.String())
	}
}

// Gossip's word that a member's disk is low refuses writes that free
// nothing on this node, naming the member, until the member says it has
// room again, fails or is reaped; this node's own word is the watcher's.
func TestDiskLowFromGossip(t *testing.T) {
	m := &managerActor{rt: &Runtime{Name: "n1"}, members: map[string]*messages.Member{},
		downSince: map[string]time.Time{}, removedSeen: map[string]*seenRemoved{}}
	b := &backend{rt: m.rt}
	set := &messages.Command{Args: [][]byte{[]byte("SET"), []byte("k"), []byte("v")}}
	del := &messages.Command{Args: [][]byte{[]byte("del"), []byte("k")}}
	refused := func() string {
		r := b.Propose(0, set)
		if rd, ok := r.(ready); ok {
			return rd.r.GetError()
		}
		return ""
	}
	event := func(kind messages.MemberEventKind, name string, status messages.MemberStatus, low bool) {
		m.memberEvent(&messages.MemberEvent{Kind: kind, Members: []*messages.Member{{Name: name, Status: status, DiskLow: low}}})
	}
	alive, failed := messages.MemberStatus_ALIVE, messages.MemberStatus_FAILED
	update, reap := messages.MemberEventKind_MEMBER_UPDATE, messages.MemberEventKind_MEMBER_REAP

	event(update, "n3", alive, true)
	if got := m.rt.diskLowNode(); got != "n3" {
		t.Fatalf("low disk node %q, want n3", got)
	}
	if err := refused(); !strings.Contains(err, "disk space low on n3") {
		t.Fatalf("SET with n3 low: %q", err)
	}
	if addsData(del) || !addsData(set) {
		t.Fatal("DEL is taken for a write that adds data, or SET is not")
	}
	event(update, "n1", alive, false) // gossip's echo of this node: not its word
	m.rt.setDiskLow("n1", true)       // the watcher's
	event(update, "n1", alive, false)
	if got := m.rt.diskLowNode(); got != "n1" {
		t.Fatalf("low disk node %q, want this node first", got)
	}
	m.rt.setDiskLow("n1", false)
	event(update, "n3", alive, false)
	if got := m.rt.diskLowNode(); got != "" {
		t.Fatalf("low disk node %q after n3 has room", got)
	}
	event(update, "n2", alive, true)
	event(update, "n2", failed, true)
	if got := m.rt.diskLowNode(); got != "" {
		t.Fatalf("low disk node %q after n2 failed", got)
	}
	event(update, "n2", alive, true)
	event(reap, "n2", failed, true)
	if got := m.rt.diskLowNode(); got != "" {
		t.Fatalf("low disk node %q after n2 was reaped", got)
	}
}

// A disk is low below its floor, and back only a tenth above it.
func TestDiskLowHasHysteresis(t *testing.T) {
	const floor = 1000
	for _, c := range []struct {
		was  bool
		free uint64
		want bool
	}{
		{false, 1000, false}, {false, 999, true}, {true, 1000, true}, {true, 1099, true}, {true, 1100, false},
	} {
		if got := diskLow(c.was, c.free, floor); got != c.want {
			t.Errorf("diskLow(was %v, %d free of floor %d) = %v", c.was, c.free, floor, got)
		}
	}
}
