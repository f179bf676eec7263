package actors

import (
	"strings"
	"testing"
	"time"

	"github.com/coppice-kv/coppice/storage"
	"github.com/hashicorp/raft"
)

// A Raft log store recorded damaged is rebuilt at the next start of a
// node started with --join: empty (no log, term or vote left), every
// group marked to withhold its vote until a leader has caught it up, and
// the node no longer a founder, so it never bootstraps its empty groups.
// Without --join, or again within raftLogRebuildAgainAfter, the start
// fails and the store is left as it was.
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
		logs, err := (&storeActor{rt: rt}).openRaftLogs(l, id)
		return logs, rt, err
	}

	t.Run("rebuilt", func(t *testing.T) {
		l, id := damaged(t)
		logs, rt, err := open(l, &id, []string{"127.0.0.1:7946"})
		if err != nil {
			t.Fatal(err)
		}
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
	})

	t.Run("refused", func(t *testing.T) {
		l, id := damaged(t)
		recent := id
		recent.RaftLogRebuilt = time.Now().Add(-time.Minute)
		for _, tc := range []struct {
			id   storage.Identity
			join []string
			want string
		}{
			{id, nil, "this node was started without --join"},
			{recent, []string{"127.0.0.1:7946"}, "it was rebuilt 1m0s ago and is damaged again: check the disk"},
		} {
			_, _, err := open(l, &tc.id, tc.join)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "checksum mismatch") {
				t.Errorf("open: %v, want an error saying %q and why", err, tc.want)
			}
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
