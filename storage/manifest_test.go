package storage

import (
	"errors"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/atomicfs"
	"github.com/hashicorp/raft"
)

// manifestStore writes keys k0..k(flushes-1) into a Pebble store in dir
// with no WAL (as coppice's: the Raft log, the journal)
// on fs, each flushed to its own table (one MANIFEST edit each), and
// returns the MANIFEST's path and the offsets of its chunks.
func manifestStore(t *testing.T, fs vfs.FS, dir string, flushes int) (string, []int) {
	t.Helper()
	db, err := pebble.Open(dir, &pebble.Options{FS: fs, Logger: quietLogger{}, DisableAutomaticCompactions: true, DisableWAL: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := range flushes {
		if err := db.Set(fmt.Appendf(nil, "k%d", i), []byte("v"), pebble.NoSync); err != nil {
			t.Fatal(err)
		}
		if err := db.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return manifestChunks(t, fs, dir)
}

// manifestChunks is the current MANIFEST of the store in dir and the
// offsets of its chunks, all sound.
func manifestChunks(t *testing.T, fs vfs.FS, dir string) (string, []int) {
	t.Helper()
	m, name, err := atomicfs.LocateMarker(fs, dir, "manifest")
	if err != nil || name == "" {
		t.Fatalf("no MANIFEST in %s (%v)", dir, err)
	}
	m.Close()
	path := fs.PathJoin(dir, name)
	b := readAll(t, fs, path)
	var chunks []int
	for at := 0; at+manifestHeader <= len(b); {
		if !sound(b, at) {
			t.Fatalf("%s: no sound chunk at %d of %d bytes", path, at, len(b))
		}
		chunks = append(chunks, at)
		at += manifestHeader + int(b[at+4]) | int(b[at+5])<<8
	}
	if len(chunks) < 4 {
		t.Fatalf("%s holds %d chunks, want one per edit", path, len(chunks))
	}
	return path, chunks
}

func readAll(t *testing.T, fs vfs.FS, path string) []byte {
	t.Helper()
	f, err := fs.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, st.Size())
	if _, err := f.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return b
}

// A byte flipped in an early edit of a MANIFEST: Pebble opens the store
// without the tables flushed after it (its premise), and checkManifest
// calls the file damaged. A byte flipped in the last edit, or the file cut
// in it, is what a crash leaves: checkManifest leaves it to Pebble, which
// opens without that edit.
func TestCheckManifest(t *testing.T) {
	fs := vfs.NewMem()
	if err := fs.MkdirAll("/new", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := checkManifest(fs, "/new"); err != nil {
		t.Fatalf("a dir with no store: %v", err)
	}
	path, chunks := manifestStore(t, fs, "/db", 5)
	if err := checkManifest(fs, "/db"); err != nil {
		t.Fatalf("a sound MANIFEST: %v", err)
	}
	sound := readAll(t, fs, path)
	restore := func() { writeFile(t, fs, path, sound) }

	// An early edit (the second chunk's payload: past the store's
	// first description of itself).
	flipByte(t, fs, path, int64(chunks[1]+manifestHeader+1))
	err := checkManifest(fs, "/db")
	if err == nil || !pebble.IsCorruptionError(err) {
		t.Fatalf("an early edit damaged: %v, want a corruption error", err)
	}
	// Its header, not its payload: the same.
	restore()
	flipByte(t, fs, path, int64(chunks[2]+4))
	if err := checkManifest(fs, "/db"); err == nil || !pebble.IsCorruptionError(err) {
		t.Fatalf("an early edit's length damaged: %v, want a corruption error", err)
	}

	last := chunks[len(chunks)-1]
	restore()
	flipByte(t, fs, path, int64(last+manifestHeader+1))
	if err := checkManifest(fs, "/db"); err != nil {
		t.Fatalf("the last edit damaged (as a crash may leave it): %v", err)
	}
	restore()
	writeFile(t, fs, path, sound[:last+manifestHeader+2])
	if err := checkManifest(fs, "/db"); err != nil {
		t.Fatalf("the last edit cut short: %v", err)
	}
	// A MANIFEST of several blocks: sound, it passes; the last chunk of
	// its first block damaged is found by the records of the next.
	path, chunks = manifestStore(t, fs, "/big", 1500)
	if st, err := fs.Stat(path); err != nil || st.Size() < 2*manifestBlock {
		t.Fatalf("the MANIFEST of 1500 flushes: %v (%v), want more than two blocks", st, err)
	}
	if err := checkManifest(fs, "/big"); err != nil {
		t.Fatalf("a sound MANIFEST of several blocks: %v", err)
	}
	lastInFirst := 0
	for _, c := range chunks {
		if c < manifestBlock {
			lastInFirst = c
		}
	}
	flipByte(t, fs, path, int64(lastInFirst+manifestHeader))
	if err := checkManifest(fs, "/big"); err == nil || !pebble.IsCorruptionError(err) {
		t.Fatalf("the first block's last chunk damaged: %v, want a corruption error", err)
	}

	// The premise: Pebble itself opens a store so damaged, without the
	// tables flushed after the damaged edit (and writes a new MANIFEST
	// without them).
	path, chunks = manifestStore(t, fs, "/premise", 5)
	flipByte(t, fs, path, int64(chunks[1]+manifestHeader+1))
	db, err := pebble.Open("/premise", &pebble.Options{FS: fs, Logger: quietLogger{}, DisableAutomaticCompactions: true, DisableWAL: true})
	if err != nil {
		t.Fatalf("premise: Pebble refused the damaged MANIFEST (%v); checkManifest may be needless", err)
	}
	_, closer, err := db.Get([]byte("k4"))
	if err == nil {
		closer.Close()
	}
	db.Close()
	if !errors.Is(err, pebble.ErrNotFound) {
		t.Fatalf("premise: Pebble opened the damaged MANIFEST with the last table's key (%v)", err)
	}
}

func writeFile(t *testing.T, fs vfs.FS, path string, b []byte) {
	t.Helper()
	f, err := fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// A shard store and the Raft log store whose MANIFEST is damaged in an
// early edit open as damaged (ErrCorrupt), as when a read meets a damaged
// table: the node rebuilds them, where Pebble would have opened them
// without their later tables.
func TestDamagedManifestIsTheStoresDamage(t *testing.T) {
	fs := vfs.NewMem()
	l := Layout{Dir: "/node"}
	s, err := openShard(fs, l, 0, setExec, nil, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 5; i++ {
		if r := s.ApplyBatch([]*raft.Log{entry(t, i, 1, fmt.Sprintf("k%d", i), "v")}); r[0] != nil {
			if err, ok := r[0].(error); ok {
				t.Fatal(err)
			}
		}
		if err := s.fault().flush(s.db); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	path, chunks := manifestChunks(t, fs, l.KVDir(0))
	flipByte(t, fs, path, int64(chunks[1]+manifestHeader+1))
	s, err = openShard(fs, l, 0, setExec, nil, 0, nil)
	if err != nil {
		t.Fatalf("open of a shard store with a damaged MANIFEST: %v, want a damaged shard", err)
	}
	if err := s.Failure(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("the shard's failure: %v, want ErrCorrupt", err)
	}
	s.Close()

	r, err := openRaftLogs(fs, "/node/raftlog", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := r.db.Set(fmt.Appendf(nil, "x%d", i), []byte("v"), pebble.NoSync); err != nil {
			t.Fatal(err)
		}
		if err := r.fault.flush(r.db); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	path, chunks = manifestChunks(t, fs, "/node/raftlog/db")
	flipByte(t, fs, path, int64(chunks[1]+manifestHeader+1))
	if _, err := openRaftLogs(fs, "/node/raftlog", 1<<20); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open of a Raft log store with a damaged MANIFEST: %v, want ErrCorrupt", err)
	}
}
