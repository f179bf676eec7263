package actors

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coppice-kv/coppice/internal/testdamage"
	"github.com/coppice-kv/coppice/storage"
	"github.com/hashicorp/raft"
)

// A scrub pass ends with the Raft log store: damage there that no read
// has met is the store's failure (which stops the node, and its next
// start rebuilds the store), logged as such; the pass still ends.
func TestScrubPassReadsTheRaftLogStore(t *testing.T) {
	dir := t.TempDir()
	logs, err := storage.OpenRaftLogs(dir)
	if err != nil {
		t.Fatal(err)
	}
	g, err := logs.Group(0, "")
	if err != nil {
		t.Fatal(err)
	}
	var batch []*raft.Log
	for i := uint64(1); i <= 3000; i++ {
		batch = append(batch, &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: []byte(fmt.Sprintf("%0200d", i))})
	}
	if err := g.StoreLogs(batch); err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if err := logs.Close(); err != nil { // flushes: the entries go to a table
		t.Fatal(err)
	}
	if n, err := testdamage.FlipTables(filepath.Join(dir, "db"), func(size int) int { return size / 2 }); err != nil || n == 0 {
		t.Fatalf("damaged %d table(s) (%v), want some", n, err)
	}
	if logs, err = storage.OpenRaftLogs(dir); err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	var out bytes.Buffer
	rt := &Runtime{Name: "n1", Log: slog.New(slog.NewTextHandler(&out, nil))}
	if !scrubPass(context.Background(), rt, nil, logs, nil) {
		t.Fatal("the pass did not end")
	}
	if err := logs.Failure(); !errors.Is(err, storage.ErrCorrupt) {
		t.Fatalf("Failure() = %v, want the damage the scrub found", err)
	}
	for _, want := range []string{"scrub: Raft log store damaged", "scrub: every shard store read back"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the log does not say %q:\n%s", want, out.String())
		}
	}
	if rt.scrubs.passes.Load() != 1 {
		t.Errorf("passes %d, want 1", rt.scrubs.passes.Load())
	}
}
