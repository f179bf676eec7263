package actors_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/coppice-kv/coppice/actors"
	"github.com/coppice-kv/coppice/internal/testwait"
	"github.com/coppice-kv/coppice/messages"
	"github.com/coppice-kv/coppice/storage"
	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
)

// A data dir of an earlier coppice keeps each Raft group's log and stable
// store in a raft-wal directory of its own. The node moves them into its
// RaftLogs when it starts: the groups keep their entries and terms, lead
// again and take writes, and the old directories are gone.
func TestNodeMovesLegacyRaftLogsIn(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n := startNode(t, dir)
	waitLeader(t, n, 0)
	waitLeader(t, n, 1)
	set := &messages.Propose{Command: &messages.Command{Args: [][]byte{[]byte("SET"), []byte("k"), []byte("v")}}}
	if pr := request[*messages.ProposeReply](t, n, actors.RaftPath(1), set); pr.Error != "" {
		t.Fatalf("propose: %v", pr.Error)
	}
	before := waitLeader(t, n, 1)
	if err := n.Stop(ctx); err != nil {
		t.Fatal(err)
	}

	// Rewrite the data dir in the earlier layout.
	l := storage.Layout{Dir: dir}
	logs, err := storage.OpenRaftLogs(l.RaftLogDir())
	if err != nil {
		t.Fatal(err)
	}
	legacy := map[uint32]string{0: l.LegacyRaftDir(0), 1: l.LegacyRaftDir(1), storage.SystemGroup: l.LegacySystemRaftDir()}
	for id, to := range legacy {
		g, err := logs.Group(id, "")
		if err != nil {
			t.Fatal(err)
		}
		writeRaftWAL(t, g, to)
		g.Close()
	}
	if err := logs.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(l.RaftLogDir()); err != nil {
		t.Fatal(err)
	}

	n = startNode(t, dir)
	defer n.Stop(ctx)
	// A leader appends its term's first entry just after it takes the
	// lead: wait (bounded) for it rather than read the status once.
	testwait.For(t, 15*time.Second, 20*time.Millisecond, "shard 1 led again, past where it was", func() error {
		after := waitLeader(t, n, 1)
		if after.Term <= before.Term || after.LastIndex <= before.LastIndex || after.AppliedIndex < before.AppliedIndex {
			return fmt.Errorf("shard 1 was at term %d, last %d, applied %d; after the move at term %d, last %d, applied %d",
				before.Term, before.LastIndex, before.AppliedIndex, after.Term, after.LastIndex, after.AppliedIndex)
		}
		return nil
	})
	if pr := request[*messages.ProposeReply](t, n, actors.RaftPath(1), set); pr.Error != "" {
		t.Fatalf("propose after the move: %v", pr.Error)
	}
	waitLeader(t, n, 0)
	for _, d := range legacy {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s after the move: %v", d, err)
		}
	}
}

// writeRaftWAL writes the log and stable values of from into a raft-wal
// directory, as an earlier coppice kept a group's.
func writeRaftWAL(t *testing.T, from storage.LogStore, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	meta := &metadb.BoltMetaDB{}
	w, err := wal.Open(dir, wal.WithMetaStore(meta))
	if err != nil {
		t.Fatal(err)
	}
	defer meta.Close()
	defer w.Close()
	first, err1 := from.FirstIndex()
	last, err2 := from.LastIndex()
	if err := errors.Join(err1, err2); err != nil || last == 0 {
		t.Fatalf("no log to move to %s: %v", dir, err)
	}
	var entries []*raft.Log
	for i := first; i <= last; i++ {
		l := new(raft.Log)
		if err := from.GetLog(i, l); err != nil {
			t.Fatal(err)
		}
		entries = append(entries, l)
	}
	if err := w.StoreLogs(entries); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"CurrentTerm", "LastVoteTerm", "LastVoteCand"} {
		v, err := from.Get([]byte(k))
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Set([]byte(k), v); err != nil {
			t.Fatal(err)
		}
	}
}
