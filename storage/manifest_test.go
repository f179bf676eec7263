package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/record"
	"github.com/cockroachdb/pebble/v2/vfs"
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
	path, err := currentManifest(fs, dir)
	if err != nil || path == "" {
		t.Fatalf("no MANIFEST in %s (%v)", dir, err)
	}
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

// syntheticManifest writes a MANIFEST into dir on fs as Pebble's writer
// does (its record package), one record of each size, and its marker:
// records of bytes that are never zero, so that a test of rot and of a
// crash's zeros depends on no encoding. It returns what manifestChunks
// does.
func syntheticManifest(t *testing.T, fs vfs.FS, dir string, sizes ...int) (string, []int) {
	t.Helper()
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := fs.Create(fs.PathJoin(dir, "MANIFEST-000001"), vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	w := record.NewWriter(f)
	for i, n := range sizes {
		if _, err := w.WriteRecord(bytes.Repeat([]byte{byte('a' + i%26)}, n)); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	marker, err := fs.Create(fs.PathJoin(dir, "marker.manifest.000001.MANIFEST-000001"), vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	marker.Close()
	return manifestChunks(t, fs, dir)
}

// A MANIFEST damaged before its last record, in a chunk's payload or its
// length, or in the last chunk of a block (found through the next
// block), is damage; so is its last record whole, with no sector of it
// zeros, and a byte flipped. The last record cut short, or its last
// sector zeros, is what a crash leaves: it is left to Pebble, and so is a
// length grown past the block, which cannot be told from a cut one.
func TestCheckManifest(t *testing.T) {
	fs := vfs.NewMem()
	if err := fs.MkdirAll("/new", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := checkManifest(fs, "/new"); err != nil {
		t.Fatalf("a dir with no store: %v", err)
	}
	// Records of 300 bytes, and one of 40 KiB that spans two blocks.
	sizes := []int{300, 300, 300, 40 << 10, 300, 300, 700}
	path, chunks := syntheticManifest(t, fs, "/db", sizes...)
	if n := len(readAll(t, fs, path)); n <= manifestBlock {
		t.Fatalf("the MANIFEST is %d bytes, want more than a block", n)
	}
	if err := checkManifest(fs, "/db"); err != nil {
		t.Fatalf("a sound MANIFEST: %v", err)
	}
	orig := readAll(t, fs, path)
	damaged := func(what string, damage func(b []byte) []byte, want bool) {
		t.Helper()
		writeFile(t, fs, path, damage(append([]byte(nil), orig...)))
		err := checkManifest(fs, "/db")
		switch {
		case want && (err == nil || !pebble.IsCorruptionError(err)):
			t.Errorf("%s: %v, want a corruption error", what, err)
		case !want && err != nil:
			t.Errorf("%s: %v, want none (left to Pebble)", what, err)
		}
	}
	flip := func(at int) func([]byte) []byte {
		return func(b []byte) []byte { b[at] ^= 0xff; return b }
	}
	damaged("an early record's payload", flip(chunks[1]+manifestHeader+1), true)
	damaged("an early record's length", flip(chunks[1]+4), true)
	lastInFirst := 0
	for _, c := range chunks {
		if c < manifestBlock {
			lastInFirst = c
		}
	}
	damaged("the first block's last chunk", flip(lastInFirst+manifestHeader+1), true)

	last := chunks[len(chunks)-1]
	damaged("the last record's payload", flip(last+manifestHeader+1), true)
	damaged("the last record cut short", func(b []byte) []byte { return b[:last+manifestHeader+200] }, false)
	damaged("the last record's last sector zeros", func(b []byte) []byte {
		clear(b[max(last, (len(b)-1)/tornSector*tornSector):])
		return b
	}, false)
	// A crash's cut record whose payload holds what looks like a sound
	// chunk (a user key can be made to): not taken for a record after
	// damage, whether the cut left its header or zeroed it.
	crafted := append([]byte(nil), orig[:last]...)
	fake := make([]byte, manifestHeader+5)
	copy(fake[manifestHeader:], "fake!")
	fake[6] = chunkFull
	binary.LittleEndian.PutUint16(fake[4:], 5)
	sum := crc32.Checksum(fake[6:], crcTable)
	binary.LittleEndian.PutUint32(fake, (sum>>15|sum<<17)+0xa282ead8)
	payload := append(bytes.Repeat([]byte{'z'}, 1100), fake...)
	payload = append(payload, bytes.Repeat([]byte{'z'}, 100)...)
	h := make([]byte, manifestHeader)
	h[6] = chunkFull
	binary.LittleEndian.PutUint16(h[4:], uint16(len(payload)))
	binary.LittleEndian.PutUint32(h, 12345) // its sum: the cut record's is wrong anyway
	crafted = append(append(crafted, h...), payload...)
	fakeAt, firstSector := last+manifestHeader+1100, (last/tornSector+1)*tornSector
	if !sound(crafted, fakeAt) || fakeAt < firstSector+tornSector {
		t.Fatalf("the fake chunk at %d: sound %v, want it sound and past the record's second sector (%d)", fakeAt, sound(crafted, fakeAt), firstSector+tornSector)
	}
	damaged("a cut record holding a fake chunk, its header written", func([]byte) []byte {
		b := append([]byte(nil), crafted...)
		clear(b[firstSector : firstSector+tornSector]) // its second sector unwritten
		return b
	}, false)
	damaged("a cut record holding a fake chunk, its header unwritten", func([]byte) []byte {
		b := append([]byte(nil), crafted...)
		clear(b[last:firstSector])
		return b
	}, false)

	// Its length shrunk (700 to 579): the shorter chunk is whole, rot. Grown
	// past its block (to 64956): it cannot be told from a cut one.
	damaged("the last record's length shrunk", flip(last+4), true)
	damaged("the last record's length grown", flip(last+5), false)
}

// The premise of checkManifest: Pebble itself opens a store whose
// MANIFEST is damaged in an early edit, without the tables flushed after
// it, and says nothing.
func TestPebbleOpensWithoutEditsAfterADamagedOne(t *testing.T) {
	fs := vfs.NewMem()
	path, chunks := manifestStore(t, fs, "/premise", 5)
	flipByte(t, fs, path, int64(chunks[1]+manifestHeader+1))
	db, err := pebble.Open("/premise", &pebble.Options{FS: fs, Logger: quietLogger{}, DisableAutomaticCompactions: true, DisableWAL: true})
	if err != nil {
		t.Fatalf("Pebble refused the damaged MANIFEST (%v): checkManifest may be needless", err)
	}
	_, closer, err := db.Get([]byte("k4"))
	if err == nil {
		closer.Close()
	}
	db.Close()
	if !errors.Is(err, pebble.ErrNotFound) {
		t.Fatalf("Pebble opened the damaged MANIFEST with the last table's key (%v)", err)
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
