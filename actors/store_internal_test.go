package actors

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coppice-kv/coppice/storage"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// A Raft log store recorded damaged is rebuilt at the next start of a
// node that knows another node to catch up from (--join, a member in its
// gossip snapshot, another voter in a group's snapshot): empty (no log,
// term or vote left), every group marked to withhold its vote until a
// leader has caught it up, and the node no longer a founder, so it never
// bootstraps its empty groups. A node that knows none, or is alone in a
// group's snapshot, or whose store was rebuilt minutes ago, fails its
// start and leaves the store as it was.
func TestOpenRaftLogsRebuildsADamagedStore(t *testing.T) {
	const shards = 2
	damaged := func(t *testing.T) (storage.Layout, storage.Identity) {
		l := storage.Layout{Dir: t.TempDir()}
		logs, err := storage.OpenRaftLogs(l.RaftLogDir())
		if err != nil {
			t.Fatal(err)
		}
		g, err := logs.Group(1, "")
		if err != nil {
			t.Fatal(err)
		}
		if err := g.SetUint64([]byte("CurrentTerm"), 7); err != nil {
			t.Fatal(err)
		}
		if err := g.StoreLogs([]*raft.Log{{Index: 1, Term: 7, Type: raft.LogCommand, Data: []byte("x")}}); err != nil {
			t.Fatal(err)
		}
		if err := g.Close(); err != nil {
			t.Fatal(err)
		}
		if err := logs.Close(); err != nil {
			t.Fatal(err)
		}
		id := storage.Identity{Name: "n1", Shards: shards, ClusterID: "c1", Founder: true,
			RaftLogDamaged: "storage: on-disk corruption in 000004.sst: checksum mismatch"}
		if err := l.WriteIdentity(id); err != nil {
			t.Fatal(err)
		}
		return l, id
	}
	open := func(l storage.Layout, id *storage.Identity, join []string) (*storage.RaftLogs, *Runtime, error) {
		rt := &Runtime{Name: "n1", DataDir: l.Dir, Shards: shards, Join: join}
		rt.founder.Store(id.Founder)
		snaps := make([]*storage.SnapshotStore, shards) // as the store worker's open makes them
		for i := range snaps {
			var err error
			if snaps[i], err = storage.NewSnapshotStore(l.SnapshotDir(i), snapshotsRetained); err != nil {
				return nil, rt, err
			}
		}
		logs, err := (&storeActor{rt: rt}).openRaftLogs(l, id, snaps)
		return logs, rt, err
	}

	gossip := func(t *testing.T, l storage.Layout, lines string) {
		if err := os.WriteFile(filepath.Join(l.Dir, "serf.snapshot"), []byte(lines), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	systemSnapshot := func(t *testing.T, l storage.Layout, voters ...string) {
		st, err := raft.NewFileSnapshotStoreWithLogger(l.SystemDir(), systemSnapshotsRetained, hclog.NewNullLogger())
		if err != nil {
			t.Fatal(err)
		}
		var c raft.Configuration
		for _, v := range voters {
			c.Servers = append(c.Servers, raft.Server{ID: raft.ServerID(v), Address: raft.ServerAddress(v), Suffrage: raft.Voter})
		}
		_, trans := raft.NewInmemTransport("")
		sink, err := st.Create(1, 10, 1, c, 1, trans)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sink.Write([]byte("state")); err != nil {
			t.Fatal(err)
		}
		if err := sink.Close(); err != nil {
			t.Fatal(err)
		}
	}

	// shardSnapshot records the meta of a snapshot of shard (only what
	// its store's List reads).
	shardSnapshot := func(t *testing.T, l storage.Layout, shard int, voters ...string) {
		meta := raft.SnapshotMeta{ID: "1-10-1", Index: 10, Term: 1}
		for _, v := range voters {
			meta.Configuration.Servers = append(meta.Configuration.Servers, raft.Server{ID: raft.ServerID(v), Suffrage: raft.Voter})
		}
		dir := filepath.Join(l.SnapshotDir(shard), meta.ID)
		b, err := json.Marshal(meta)
		if err == nil {
			err = os.MkdirAll(dir, 0o755)
		}
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, "meta.json"), b, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}

	for _, tc := range []struct {
		name string
		join []string
		set  func(t *testing.T, l storage.Layout)
	}{
		{"with --join", []string{"127.0.0.1:7946"}, func(*testing.T, storage.Layout) {}},
		// Founded without --join: its gossip snapshot knows the others.
		{"a member in the gossip snapshot", nil, func(t *testing.T, l storage.Layout) {
			gossip(t, l, "alive: n1 127.0.0.1:7946\nalive: n2 127.0.0.1:8946\nclock: 3\nleave\n")
		}},
		{"another voter in a snapshot", nil, func(t *testing.T, l storage.Layout) { systemSnapshot(t, l, "n1", "n2", "n3") }},
		// Shard 0's newest snapshot is from before the others joined
		// (the founder's), the system group's from after.
		{"another voter in one group's snapshot", nil, func(t *testing.T, l storage.Layout) {
			shardSnapshot(t, l, 0, "n1")
			systemSnapshot(t, l, "n1", "n2")
		}},
		// Every snapshot is the founder's from before the others joined:
		// its gossip snapshot knows them.
		{"alone in every snapshot, a member in the gossip snapshot", nil, func(t *testing.T, l storage.Layout) {
			shardSnapshot(t, l, 0, "n1")
			systemSnapshot(t, l, "n1")
			gossip(t, l, "alive: n1 127.0.0.1:7946\nalive: n2 127.0.0.1:8946\n")
		}},
	} {
		t.Run("rebuilt "+tc.name, func(t *testing.T) {
			l, id := damaged(t)
			tc.set(t, l)
			logs, rt, err := open(l, &id, tc.join)
			if err != nil {
				t.Fatal(err)
			}
			checkRebuilt(t, l, id, logs, rt)
		})
	}

	t.Run("refused", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			join []string
			set  func(t *testing.T, l storage.Layout, id *storage.Identity)
			want string
		}{
			{"no --join", nil, func(*testing.T, storage.Layout, *storage.Identity) {},
				"started without --join, and neither its groups' snapshots nor its gossip snapshot know another node"},
			{"the other member gone from the gossip snapshot", nil, func(t *testing.T, l storage.Layout, _ *storage.Identity) {
				gossip(t, l, "alive: n2 127.0.0.1:8946\nalive: n1 127.0.0.1:7946\nnot-alive: n2\n")
			}, "started without --join"},
			{"alone in every snapshot", []string{"127.0.0.1:7946"}, func(t *testing.T, l storage.Layout, _ *storage.Identity) {
				shardSnapshot(t, l, 1, "n1")
				systemSnapshot(t, l, "n1")
			}, "its groups' newest snapshots show no voter but this node, and its gossip snapshot knows no other node"},
			{"alone in every snapshot and in the gossip snapshot", nil, func(t *testing.T, l storage.Layout, _ *storage.Identity) {
				shardSnapshot(t, l, 0, "n1")
				gossip(t, l, "alive: n1 127.0.0.1:7946\nclock: 2\n")
			}, "its groups' newest snapshots show no voter but this node, and its gossip snapshot knows no other node"},
			{"rebuilt a minute ago", []string{"127.0.0.1:7946"}, func(_ *testing.T, _ storage.Layout, id *storage.Identity) {
				id.RaftLogRebuilt = time.Now().Add(-time.Minute)
			}, "it was rebuilt 1m0s ago and is damaged again: check the disk"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				l, id := damaged(t)
				tc.set(t, l, &id)
				_, _, err := open(l, &id, tc.join)
				if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "checksum mismatch") {
					t.Fatalf("open: %v, want an error saying %q and why", err, tc.want)
				}
				// Left as it was: the group still has its term.
				logs, err := storage.OpenRaftLogs(l.RaftLogDir())
				if err != nil {
					t.Fatal(err)
				}
				defer logs.Close()
				g, err := logs.Group(1, "")
				if err != nil {
					t.Fatal(err)
				}
				defer g.Close()
				if term, err := g.GetUint64([]byte("CurrentTerm")); term != 7 || err != nil {
					t.Errorf("a refused rebuild changed the store: term %d, %v", term, err)
				}
			})
		}
	})
}

// checkRebuilt checks a Raft log store just rebuilt (logs) and the
// identity it left.
func checkRebuilt(t *testing.T, l storage.Layout, id storage.Identity, logs *storage.RaftLogs, rt *Runtime) {
	t.Helper()
	defer logs.Close()
	disk, _, err := l.ReadIdentity()
	if err != nil {
		t.Fatal(err)
	}
	for _, got := range []storage.Identity{id, disk} {
		if got.Founder || got.RaftLogDamaged != "" || time.Since(got.RaftLogRebuilt) > time.Minute || got.ClusterID != "c1" {
			t.Errorf("identity after the rebuild: %+v", got)
		}
	}
	if rt.founder.Load() || rt.bootstrap() {
		t.Error("the node would found its cluster again")
	}
	for _, group := range []uint32{storage.SystemGroup, 0, 1} {
		g, err := logs.Group(group, "")
		if err != nil {
			t.Fatal(err)
		}
		last, _ := g.LastIndex()
		term, _ := g.GetUint64([]byte("CurrentTerm"))
		mark, err := g.GetUint64([]byte("CoppiceUnverified"))
		if last != 0 || term != 0 || err != nil || mark != 1 {
			t.Errorf("group %d after the rebuild: last index %d, term %d, unverified mark %d (%v)", group, last, term, mark, err)
		}
		g.Close()
	}
}
