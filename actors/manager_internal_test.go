package actors

import (
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
			toldRemoved: map[string]bool{}}
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
