package storage

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/coppice-kv/coppice/internal/testwait"
	"github.com/hashicorp/raft"
)

// The filter never calls a key it holds absent, calls few others present
// (about 1%), and grows past its first layer.
func TestKeyFilter(t *testing.T) {
	f := newKeyFilter()
	f.finishBuild(f.gen, 0, nil) // an empty store, read
	const n = 300_000
	for i := range n {
		f.written(map[string][]byte{fmt.Sprintf("key:%d", i): {}})
	}
	for i := range n {
		if k := fmt.Sprintf("key:%d", i); f.absent([]byte(k)) {
			t.Fatalf("%s was added, the filter says absent", k)
		}
	}
	present := 0
	for i := range n {
		if !f.absent([]byte(fmt.Sprintf("other:%d", i))) {
			present++
		}
	}
	if rate := float64(present) / n; rate > 0.03 {
		t.Fatalf("%.2f%% of keys never added may be present, want under 3%%", 100*rate)
	}
	if len(f.layers) < 3 {
		t.Fatalf("%d keys in %d layers (the first takes %d)", n, len(f.layers), filterFirstKeys)
	}
	// A key the filter may already hold is not added again (a SET of an
	// existing key adds nothing): a few new keys are taken for held ones.
	if f.added > n || f.added < n*97/100 {
		t.Fatalf("added counts %d keys of %d", f.added, n)
	}
	before := f.added
	f.written(map[string][]byte{"key:1": {}, "deleted": nil})
	if f.added != before {
		t.Fatal("adding a held key counted it again, or a deleted one at all")
	}
	if !f.absent([]byte("deleted")) {
		t.Fatal("a key a batch deleted was added")
	}
}

// Until a build has read the store the filter calls nothing absent; a
// build of a generation cleared since changes nothing; a build the store
// failed leaves it not ready, with the reason; a rebuild falls due
// when added keys far outnumber what the last build found.
func TestKeyFilterGenerations(t *testing.T) {
	f := newKeyFilter()
	if f.absent([]byte("k")) {
		t.Fatal("a filter not built says absent")
	}
	old := f.gen
	gen := f.reset()
	if f.addBuilt(old, [][]byte{[]byte("k")}) {
		t.Fatal("a build of a cleared generation was taken")
	}
	f.finishBuild(old, 1, nil)
	if f.ready {
		t.Fatal("a build of a cleared generation made the filter ready")
	}
	f.finishBuild(gen, 3, errors.New("disk on fire"))
	if ready, failed := f.state(); ready || failed == nil || f.absent([]byte("k")) {
		t.Fatalf("after a failed build: ready %v, failed %v", ready, failed)
	}
	gen = f.reset()
	if _, failed := f.state(); failed != nil {
		t.Fatalf("a new generation keeps the old build's failure: %v", failed)
	}
	f.finishBuild(gen, 10, nil)
	if !f.absent([]byte("k")) {
		t.Fatal("a ready filter holds a key only a stale build added")
	}
	if _, due := f.rebuildDue(); due {
		t.Fatal("rebuild due with nothing added")
	}
	f.added = filterRebuildMin // as many adds, without the time to make them
	if g, due := f.rebuildDue(); !due || g != f.gen || f.ready {
		t.Fatalf("after %d adds over a build of 10 keys: due %v, ready %v", f.added, due, f.ready)
	}
}

func waitFilterReady(t *testing.T, s *Shard) {
	t.Helper()
	testwait.For(t, 10*time.Second, time.Millisecond, "key filter built", func() error {
		s.filter.mu.RLock()
		defer s.filter.mu.RUnlock()
		if !s.filter.ready {
			return errors.New("not ready")
		}
		return nil
	})
}

// A shard opened over a store builds its filter from it (in chunks); a
// restore replaces the filter with one of the new store.
func TestKeyFilterBuildAndRestore(t *testing.T) {
	l := Layout{Dir: t.TempDir()}
	s, err := OpenShard(l, 0, opsExec, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	const n = 2*filterChunk + 17
	var cmds [][]string
	for i := range n {
		cmds = append(cmds, []string{"SET", fmt.Sprintf("a%05d", i), "v"})
	}
	s.ApplyBatch([]*raft.Log{opsEntry(t, 1, cmds...)})
	ckpt := t.TempDir() + "/ckpt"
	if err := s.checkpoint(ckpt); err != nil {
		t.Fatal(err)
	}
	s.ApplyBatch([]*raft.Log{opsEntry(t, 2, []string{"SET", "later", "v"})})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = OpenShard(l, 0, opsExec, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	waitFilterReady(t, s)
	if cs := s.CacheStats(); !cs.FilterReady || cs.FilterError != "" {
		t.Fatalf("built filter's stats: %+v", cs)
	}
	for i := range n {
		if k := fmt.Sprintf("a%05d", i); s.filter.absent([]byte(k)) {
			t.Fatalf("%s is in the store, the built filter says absent", k)
		}
	}
	if s.filter.absent([]byte("later")) {
		t.Fatal("later is in the store, the built filter says absent")
	}
	if got, ok := readCached(t, s, "nothere"); ok {
		t.Fatalf("nothere reads %q", got)
	}
	if s.filter.skips.Load() == 0 {
		t.Fatal("the read of a key never written went to the store")
	}

	if err := s.RestoreDir(ckpt); err != nil {
		t.Fatal(err)
	}
	waitFilterReady(t, s)
	if !s.filter.absent([]byte("later")) {
		t.Fatal("later is not in the restored store; the filter still holds it")
	}
	if got, ok := readCached(t, s, "a00001"); !ok || got != "v" {
		t.Fatalf("a00001 after the restore: %q %v", got, ok)
	}
}
