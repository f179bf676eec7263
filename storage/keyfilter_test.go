package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
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
	s, err := OpenShard(l, 0, opsExec, nil, 0, nil)
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

	s, err = OpenShard(l, 0, opsExec, nil, 0, nil)
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

// kept and deleted are how many keys writeKeptAndDeleted leaves in a store
// (k0000..) and deletes from it (d0000..).
const kept, deleted = 1000, 200

// writeKeptAndDeleted applies, as entries 1 and 2, SETs of the kept and
// the deleted keys, then DELs of the deleted ones: a filter built from the
// store holds few of those, one that saw the writes holds them all.
func writeKeptAndDeleted(t *testing.T, s *Shard) {
	t.Helper()
	var cmds [][]string
	for i := range kept {
		cmds = append(cmds, []string{"SET", fmt.Sprintf("k%04d", i), "v"})
	}
	for i := range deleted {
		cmds = append(cmds, []string{"SET", fmt.Sprintf("d%04d", i), "v"})
	}
	s.ApplyBatch([]*raft.Log{opsEntry(t, 1, cmds...)})
	cmds = nil
	for i := range deleted {
		cmds = append(cmds, []string{"DEL", fmt.Sprintf("d%04d", i)})
	}
	s.ApplyBatch([]*raft.Log{opsEntry(t, 2, cmds...)})
}

// mayHold counts the keys prefix0000.. s's filter may hold.
func mayHold(s *Shard, prefix string, n int) int {
	held := 0
	for i := range n {
		if !s.filter.absent([]byte(fmt.Sprintf("%s%04d", prefix, i))) {
			held++
		}
	}
	return held
}

// checkTaken fails t unless s's filter is ready already and holds every
// kept and deleted key: it was taken whole from where (a checkpoint, the
// file Close left), not built from the store.
func checkTaken(t *testing.T, s *Shard, where string) {
	t.Helper()
	if ready, _ := s.filter.state(); !ready {
		t.Fatalf("the filter is not ready at once: it was not taken from %s", where)
	}
	if n := mayHold(s, "k", kept); n != kept {
		t.Fatalf("the filter taken from %s holds %d of the store's %d keys", where, n, kept)
	}
	if n := mayHold(s, "d", deleted); n != deleted {
		t.Fatalf("the filter taken from %s holds %d of %d deleted keys: it was rebuilt", where, n, deleted)
	}
}

// checkBuilt waits for s's filter to be built and fails t unless it holds
// every kept key and at most half the deleted ones (a build drops them).
func checkBuilt(t *testing.T, s *Shard, why string) {
	t.Helper()
	waitFilterReady(t, s)
	if n := mayHold(s, "k", kept); n != kept {
		t.Fatalf("%s: the built filter holds %d of the store's %d keys", why, n, kept)
	}
	if n := mayHold(s, "d", deleted); n > deleted/2 {
		t.Fatalf("%s: the filter holds %d of %d deleted keys: it was not built", why, n, deleted)
	}
}

// A checkpoint carries the shard's ready key filter, and a restore from it
// starts with that filter ready instead of reading the store: keys deleted
// before the checkpoint are still in it (a build would drop them). A
// damaged filter file costs a build; a filter that is not ready is not
// carried.
func TestRestoreTakesTheCheckpointsKeyFilter(t *testing.T) {
	from, err := OpenShard(Layout{Dir: t.TempDir()}, 0, opsExec, nil, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer from.Close()
	waitFilterReady(t, from)
	writeKeptAndDeleted(t, from)
	ckpt := t.TempDir() + "/ckpt"
	if err := from.checkpoint(ckpt); err != nil {
		t.Fatal(err)
	}

	to, err := OpenShard(Layout{Dir: t.TempDir()}, 0, opsExec, nil, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer to.Close()
	waitFilterReady(t, to)
	if err := to.RestoreDir(ckpt); err != nil {
		t.Fatal(err)
	}
	checkTaken(t, to, "the checkpoint")
	if n := mayHold(to, "never", 1000); n > 100 {
		t.Fatalf("the carried filter may hold %d of 1000 keys never written", n)
	}
	if _, err := os.Stat(filepath.Join(to.layout.KVDir(0), keyFilterFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the filter file is in the restored store (it would go stale there): %v", err)
	}
	if got, ok := readCached(t, to, "k0007"); !ok || got != "v" {
		t.Fatalf("k0007 after the restore: %q %v", got, ok)
	}

	// A damaged filter: the restore builds one from the store.
	b, err := os.ReadFile(filepath.Join(ckpt, keyFilterFile))
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x10
	if err := os.WriteFile(filepath.Join(ckpt, keyFilterFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := to.RestoreDir(ckpt); err != nil {
		t.Fatal(err)
	}
	checkBuilt(t, to, "a damaged filter")

	// A filter that is not ready is not carried.
	from.filter.reset()
	ckpt2 := t.TempDir() + "/ckpt"
	if err := from.checkpoint(ckpt2); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(ckpt2, keyFilterFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a checkpoint taken while the filter was not ready carries one: %v", err)
	}
}

// The filter file decodes to the filter encoded, and any damage (a flipped
// bit, a cut, another version) is refused without a large allocation.
func TestKeyFilterFileRefusesDamage(t *testing.T) {
	f := newKeyFilter()
	var keys [][]byte
	for i := range 3 * filterFirstKeys / 2 { // two layers
		keys = append(keys, fmt.Appendf(nil, "key%d", i))
	}
	gen := f.gen
	if !f.addBuilt(gen, keys) {
		t.Fatal("addBuilt refused")
	}
	f.finishBuild(gen, len(keys), nil)
	if _, ok := f.encode(gen + 1); ok {
		t.Fatal("encoded for a generation it is not")
	}
	b, ok := f.encode(gen)
	if !ok {
		t.Fatal("a ready filter was not encoded")
	}
	d, err := decodeKeyFilter(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.layers) != 2 || d.room != f.room || d.added != f.added || d.built != len(keys) {
		t.Fatalf("decoded %d layers, room %d added %d built %d; encoded %d, %d, %d, %d",
			len(d.layers), d.room, d.added, d.built, len(f.layers), f.room, f.added, len(keys))
	}
	g := newKeyFilter()
	if !g.install(g.gen, d) {
		t.Fatal("install refused")
	}
	for _, k := range keys {
		if g.absent(k) {
			t.Fatalf("%s was added; the decoded filter says absent", k)
		}
	}
	if g.install(g.gen-1, d) {
		t.Fatal("installed for a generation cleared since")
	}

	for _, bad := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"cut", b[:len(b)-1]},
		{"header only", b[:len(keyFilterMagic)]},
		{"another version", append([]byte("COPPICE-KEYFILTER-2"), b[len("COPPICE-KEYFILTER-1"):]...)},
		{"a flipped bit", func() []byte { c := bytes.Clone(b); c[len(c)/3] ^= 4; return c }()},
		{"a layer longer than the file", func() []byte {
			c := []byte(keyFilterMagic)
			for _, v := range []uint64{1, 0, 0, 1, 1 << 40} {
				c = binary.AppendUvarint(c, v)
			}
			return binary.BigEndian.AppendUint32(c, crc32.Checksum(c, castagnoli))
		}()},
	} {
		if _, err := decodeKeyFilter(bad.b); err == nil {
			t.Errorf("%s: decoded", bad.name)
		}
	}
}

// A shard closed with a ready filter leaves it beside its store, and the
// next open takes it (ready at once, deleted keys still in it) and removes
// the file; a filter left for another applied index is refused and
// removed, and the open builds one.
func TestKeyFilterKeptAcrossACleanRestart(t *testing.T) {
	l := Layout{Dir: t.TempDir()}
	s, err := OpenShard(l, 0, opsExec, nil, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitFilterReady(t, s)
	writeKeptAndDeleted(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	left := filepath.Join(l.KVDir(0), keyFilterFile+".2")
	if _, err := os.Stat(left); err != nil {
		t.Fatalf("Close left no filter for applied index 2: %v", err)
	}

	s, err = OpenShard(l, 0, opsExec, nil, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkTaken(t, s, "the file Close left")
	if _, err := os.Stat(left); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the taken filter file is still there: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// The same file, said to be of another index: refused, removed, built.
	stale := filepath.Join(l.KVDir(0), keyFilterFile+".3")
	if err := os.Rename(left, stale); err != nil {
		t.Fatal(err)
	}
	s, err = OpenShard(l, 0, opsExec, nil, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a filter file of another index is still there: %v", err)
	}
	checkBuilt(t, s, "a filter left for another index")

	// A filter that cannot be kept (its temporary file's name is taken
	// by a dir that is not empty) is reported by Close, which still
	// closes the store.
	blocker := filepath.Join(l.KVDir(0), keyFilterFile+".2.tmp")
	if err := os.MkdirAll(filepath.Join(blocker, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err == nil || !strings.Contains(err.Error(), "keeping the key filter") {
		t.Fatalf("Close with the filter's file blocked: %v, want the failure to keep it", err)
	}
	s, err = OpenShard(l, 0, opsExec, nil, 0, nil)
	if err != nil {
		t.Fatalf("open after a close that could not keep the filter: %v", err)
	}
	defer s.Close()
	checkBuilt(t, s, "a filter that could not be kept")
}
