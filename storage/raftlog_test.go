package storage

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
)

// testLogs opens a RaftLogs in dir, closed when the test ends.
func testLogs(t testing.TB, dir string) *RaftLogs {
	t.Helper()
	r, err := OpenRaftLogs(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Error(err)
		}
	})
	return r
}

// openUnmanaged opens a RaftLogs in dir with journal files of size bytes,
// and its group id, for a test that closes (or crashes) them itself.
func openUnmanaged(t *testing.T, dir string, size int64, id uint32) (*RaftLogs, LogStore) {
	t.Helper()
	r, err := openRaftLogs(vfs.Default, dir, size)
	if err != nil {
		t.Fatal(err)
	}
	g, err := r.Group(id, "")
	if err != nil {
		t.Fatal(err)
	}
	return r, g
}

// openRaftWAL opens (creating) a raft-wal log in dir, as coppice kept a
// group's before RaftLogs; close closes it and its metadata database.
func openRaftWAL(tb testing.TB, dir string) (w *wal.WAL, close func() error) {
	tb.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	meta := &metadb.BoltMetaDB{}
	w, err := wal.Open(dir, wal.WithMetaStore(meta))
	if err != nil {
		tb.Fatal(err)
	}
	return w, func() error { return errors.Join(w.Close(), meta.Close()) }
}

// testGroup opens group id of r, closed when the test ends (before r).
func testGroup(t testing.TB, r *RaftLogs, id uint32) LogStore {
	t.Helper()
	g, err := r.Group(id, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

// entries returns entries from..to of term, each with data naming its
// index and term.
func entries(from, to, term uint64) []*raft.Log {
	var b []*raft.Log
	for i := from; i <= to; i++ {
		b = append(b, &raft.Log{Index: i, Term: term, Type: raft.LogCommand, Data: []byte{byte(i), byte(term)}})
	}
	return b
}

func wantRange(t *testing.T, s raft.LogStore, first, last uint64) {
	t.Helper()
	f, err1 := s.FirstIndex()
	l, err2 := s.LastIndex()
	if err := errors.Join(err1, err2); err != nil || f != first || l != last {
		t.Fatalf("log holds %d..%d (%v), want %d..%d", f, l, err, first, last)
	}
}

// Groups with the same indexes keep their own entries, stable values and
// deletions, also across a reopen.
func TestRaftLogsKeepGroupsApart(t *testing.T) {
	dir := t.TempDir()
	r, err := OpenRaftLogs(dir)
	if err != nil {
		t.Fatal(err)
	}
	var groups []LogStore
	for _, id := range []uint32{0, 1, 2, 256, SystemGroup} {
		g, err := r.Group(id, "")
		if err != nil {
			t.Fatal(err)
		}
		if err := g.StoreLogs(entries(uint64(id%1000)+1, uint64(id%1000)+10, 1)); err != nil {
			t.Fatal(err)
		}
		groups = append(groups, g)
	}
	for _, g := range groups {
		g.Close()
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	r = testLogs(t, dir)
	for _, id := range []uint32{0, 1, 2, 256, SystemGroup} {
		wantRange(t, testGroup(t, r, id), uint64(id%1000)+1, uint64(id%1000)+10)
	}

	a, b := testGroup(t, r, 3), testGroup(t, r, 4)
	if err := a.StoreLogs(entries(1, 20, 1)); err != nil {
		t.Fatal(err)
	}
	if err := b.StoreLogs(entries(5, 30, 7)); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(a.SetUint64([]byte("CurrentTerm"), 1), b.SetUint64([]byte("CurrentTerm"), 7)); err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteRange(1, 10); err != nil {
		t.Fatal(err)
	}
	wantRange(t, a, 11, 20)
	wantRange(t, b, 5, 30)
	var l raft.Log
	if err := b.GetLog(10, &l); err != nil || l.Term != 7 || !bytes.Equal(l.Data, []byte{10, 7}) {
		t.Fatalf("group b's entry 10: %+v, %v", l, err)
	}
	if err := a.GetLog(10, &l); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("group a's deleted entry 10: %v, want raft.ErrLogNotFound", err)
	}
	if ta, err := a.GetUint64([]byte("CurrentTerm")); err != nil || ta != 1 {
		t.Fatalf("group a's term %d, %v; want 1", ta, err)
	}
	if tb, err := b.GetUint64([]byte("CurrentTerm")); err != nil || tb != 7 {
		t.Fatalf("group b's term %d, %v; want 7", tb, err)
	}
}

// Everything stored is there after a reopen: the range, every field of
// every entry, the stable values; a value never set reads as empty.
func TestRaftLogsReopen(t *testing.T) {
	dir := t.TempDir()
	at := time.Unix(1700000000, 123456789)
	want := entries(1, 100, 3)
	want[50].Type, want[50].Extensions, want[50].AppendedAt = raft.LogConfiguration, []byte("ext"), at
	want[60].Data = nil
	r, g := openUnmanaged(t, dir, journalSize, 2)
	err := errors.Join(g.StoreLogs(want[:70]), g.StoreLogs(want[70:]), g.DeleteRange(1, 40),
		g.SetUint64([]byte("CurrentTerm"), 5), g.Set([]byte("LastVoteCand"), []byte("n2")))
	if err := errors.Join(err, g.Close(), r.Close()); err != nil {
		t.Fatal(err)
	}
	// A clean close leaves it all in Pebble, and no journal to replay.
	if nums, err := journalFiles(vfs.Default, filepath.Join(dir, "journal")); err != nil || len(nums) != 0 {
		t.Fatalf("journal files after a clean close: %v, %v", nums, err)
	}
	if n := entriesInPebble(t, dir, 2); n != 60 {
		t.Fatalf("Pebble holds %d entries after a clean close, want 60", n)
	}
	g = testGroup(t, testLogs(t, dir), 2)
	wantRange(t, g, 41, 100)
	for i := uint64(41); i <= 100; i++ {
		var l raft.Log
		if err := g.GetLog(i, &l); err != nil {
			t.Fatal(err)
		}
		w := want[i-1]
		if l.Index != i || l.Term != w.Term || l.Type != w.Type || !bytes.Equal(l.Data, w.Data) ||
			!bytes.Equal(l.Extensions, w.Extensions) || !l.AppendedAt.Equal(w.AppendedAt) {
			t.Fatalf("entry %d read back as %+v, want %+v", i, l, *w)
		}
	}
	if term, err := g.GetUint64([]byte("CurrentTerm")); err != nil || term != 5 {
		t.Fatalf("CurrentTerm %d, %v; want 5", term, err)
	}
	if v, err := g.Get([]byte("LastVoteCand")); err != nil || string(v) != "n2" {
		t.Fatalf("LastVoteCand %q, %v; want n2", v, err)
	}
	if v, err := g.GetUint64([]byte("LastVoteTerm")); err != nil || v != 0 {
		t.Fatalf("a value never set: %d, %v; want 0 and no error", v, err)
	}
	if _, err := g.GetUint64([]byte("LastVoteCand")); err == nil {
		t.Fatal("GetUint64 of a 2-byte value: no error")
	}
}

// What Raft never asks for is refused with an error, and changes nothing.
func TestRaftLogsRefuseWhatBreaksTheLog(t *testing.T) {
	r := testLogs(t, t.TempDir())
	g := testGroup(t, r, 0)
	if err := g.StoreLogs(entries(1, 10, 1)); err != nil {
		t.Fatal(err)
	}
	if err := g.StoreLogs(entries(12, 13, 1)); err == nil {
		t.Fatal("an append leaving a gap after 10: no error")
	}
	if err := g.StoreLogs(entries(5, 6, 2)); err == nil {
		t.Fatal("an append over entries 5 and 6 without deleting them: no error")
	}
	gap := append(entries(11, 11, 1), entries(13, 13, 1)...)
	if err := g.StoreLogs(gap); err == nil {
		t.Fatal("a batch with a gap inside: no error")
	}
	if err := g.DeleteRange(3, 5); err == nil {
		t.Fatal("deleting the middle of the log: no error")
	}
	wantRange(t, g, 1, 10)
	for i := uint64(1); i <= 10; i++ {
		var l raft.Log
		if err := g.GetLog(i, &l); err != nil || l.Term != 1 {
			t.Fatalf("entry %d after refused changes: term %d, %v", i, l.Term, err)
		}
	}
	var l raft.Log
	if err := g.GetLog(11, &l); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("entry 11 of a refused batch: %v, want raft.ErrLogNotFound", err)
	}

	if _, err := r.Group(0, ""); err == nil {
		t.Fatal("a group opened twice: no error")
	}
	if err := r.Close(); err == nil {
		t.Fatal("closing the store with a group open: no error")
	}
	g.Close()
	if _, err := g.LastIndex(); err == nil {
		t.Fatal("a closed group's LastIndex: no error")
	}
	if err := g.StoreLogs(entries(11, 11, 1)); err == nil {
		t.Fatal("a closed group's StoreLogs: no error")
	}
	again := testGroup(t, r, 0)
	wantRange(t, again, 1, 10)
}

// Deleting all of the log empties it; the next append may start anywhere
// (after a snapshot is installed, Raft empties the log and appends from
// the snapshot's index).
func TestRaftLogsEmptiedStartsAnywhere(t *testing.T) {
	g := testGroup(t, testLogs(t, t.TempDir()), 0)
	if err := g.StoreLogs(entries(1, 10, 1)); err != nil {
		t.Fatal(err)
	}
	if err := g.DeleteRange(1, 10); err != nil {
		t.Fatal(err)
	}
	wantRange(t, g, 0, 0)
	if err := g.StoreLogs(entries(500, 501, 2)); err != nil {
		t.Fatal(err)
	}
	wantRange(t, g, 500, 501)
}

// A group's raft-wal directory from before RaftLogs is moved in: its
// entries and stable values replace what the group held (an earlier move
// cut short), and the directory is gone.
func TestRaftLogsMoveALegacyRaftWAL(t *testing.T) {
	legacy := filepath.Join(t.TempDir(), "raft")
	w, closeWAL := openRaftWAL(t, legacy)
	old := entries(1, 300, 4)
	old[7].Extensions = []byte("x")
	if err := w.StoreLogs(old); err != nil {
		t.Fatal(err)
	}
	if err := w.DeleteRange(1, 99); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(w.SetUint64([]byte("CurrentTerm"), 4), w.Set([]byte("LastVoteCand"), []byte("n3"))); err != nil {
		t.Fatal(err)
	}
	if err := closeWAL(); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	r, err := OpenRaftLogs(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []uint32{0, 2} {
		g := testGroup(t, r, id)
		if err := g.StoreLogs(entries(1, 5, 1)); err != nil {
			t.Fatal(err)
		}
		g.Close()
	}
	half := testGroup(t, r, 1)
	if err := half.StoreLogs(entries(1, 1000, 9)); err != nil {
		t.Fatal(err)
	}
	half.Close()
	g, err := r.Group(1, legacy)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(legacy); !os.IsNotExist(err) {
		t.Fatalf("legacy dir after the move: %v", err)
	}
	first, err := g.FirstIndex()
	if err != nil || first < 1 || first > 100 {
		t.Fatalf("first index %d, %v after moving 100..300 (raft-wal trims whole segments)", first, err)
	}
	wantRange(t, g, first, 300)
	for i := first; i <= 300; i++ {
		var l raft.Log
		if err := g.GetLog(i, &l); err != nil || l.Term != 4 || !bytes.Equal(l.Data, old[i-1].Data) || !bytes.Equal(l.Extensions, old[i-1].Extensions) {
			t.Fatalf("moved entry %d: %+v, %v", i, l, err)
		}
	}
	if term, err := g.GetUint64([]byte("CurrentTerm")); err != nil || term != 4 {
		t.Fatalf("moved CurrentTerm %d, %v; want 4", term, err)
	}
	if v, err := g.Get([]byte("LastVoteCand")); err != nil || string(v) != "n3" {
		t.Fatalf("moved LastVoteCand %q, %v; want n3", v, err)
	}
	for _, id := range []uint32{0, 2} {
		g, err := r.Group(id, "")
		if err != nil {
			t.Fatal(err)
		}
		wantRange(t, g, 1, 5)
		g.Close()
	}

	// The move is durable as any write: after a crash the group holds the
	// moved log, not what it held before the move.
	crash(t, r, g)
	g = testGroup(t, testLogs(t, dir), 1)
	wantRange(t, g, first, 300)
	var l raft.Log
	if err := g.GetLog(first, &l); err != nil || l.Term != 4 {
		t.Fatalf("moved entry %d after a crash: term %d, %v; want 4", first, l.Term, err)
	}
}

// A malformed record is an error, never a panic or a wrong entry.
func TestDecodeLogRejectsMalformed(t *testing.T) {
	good := encodeLog(nil, &raft.Log{Term: 300, Type: raft.LogCommand, Data: []byte("value"), Extensions: []byte("e"), AppendedAt: time.Unix(5, 0)})
	var l raft.Log
	if err := decodeLog(good, &l); err != nil || string(l.Data) != "value" || string(l.Extensions) != "e" || l.Term != 300 {
		t.Fatalf("good record: %+v, %v", l, err)
	}
	for n := 0; n < len(good)-len("valuee"); n++ {
		if err := decodeLog(good[:n], &l); err == nil {
			t.Fatalf("record cut to %d bytes: no error", n)
		}
	}
	bad := append([]byte{9}, good[1:]...)
	if err := decodeLog(bad, &l); err == nil {
		t.Fatal("unknown version: no error")
	}
}

// scan collects what s.ScanLogs(from, to) hands over.
func scan(s raft.LogScanner, from, to uint64) ([]*raft.Log, error) {
	var got []*raft.Log
	err := s.ScanLogs(from, to, func(l *raft.Log) error {
		got = append(got, l)
		return nil
	})
	return got, err
}

// A range read in one pass is what GetLog reads entry by entry: from the
// store alone (the group reopened: nothing cached), and across the cache
// and the store; a range the log does not hold whole is
// raft.ErrLogNotFound; fn's error stops the scan.
func TestRaftLogsScanRanges(t *testing.T) {
	dir := t.TempDir()
	want := entries(1, 3000, 2)
	want[1500].Type, want[1500].Extensions = raft.LogConfiguration, []byte("ext")
	r, g := openUnmanaged(t, dir, journalSize, 5)
	t.Cleanup(func() { r.Close() }) // after the groups' (cleanups run last first)
	if err := g.StoreLogs(want[:2000]); err != nil {
		t.Fatal(err)
	}
	// Another group's entries around it, and this group's head compacted.
	other := testGroup(t, r, 6)
	if err := errors.Join(other.StoreLogs(entries(1, 3000, 9)), g.DeleteRange(1, 10)); err != nil {
		t.Fatal(err)
	}
	check := func(s raft.LogScanner, from, to uint64) {
		t.Helper()
		got, err := scan(s, from, to)
		if err != nil || len(got) != int(to-from+1) {
			t.Fatalf("%d..%d: %d entries, %v", from, to, len(got), err)
		}
		for i, l := range got {
			w := want[from-1+uint64(i)]
			if l.Index != w.Index || l.Term != w.Term || l.Type != w.Type || !bytes.Equal(l.Data, w.Data) || !bytes.Equal(l.Extensions, w.Extensions) {
				t.Fatalf("%d..%d: entry %d is %+v, want %+v", from, to, from+uint64(i), l, w)
			}
		}
	}
	gs := g.(*groupStore)
	check(gs.groupLog, 11, 2000)
	check(gs, 11, 2000)
	// The latest entries are cached (logCacheEntries of them): a range
	// across both parts, and one within the cache.
	if err := g.StoreLogs(want[2000:]); err != nil {
		t.Fatal(err)
	}
	check(gs, 1000, 3000)
	check(gs, 2990, 3000)
	check(gs, 1501, 1501)

	for _, c := range []struct{ from, to uint64 }{{5, 20}, {2990, 3001}, {1, 3}} {
		if got, err := scan(gs, c.from, c.to); !errors.Is(err, raft.ErrLogNotFound) {
			t.Errorf("%d..%d: %d entries, %v; want raft.ErrLogNotFound", c.from, c.to, len(got), err)
		}
	}
	if got, err := scan(gs, 20, 19); err != nil || len(got) != 0 {
		t.Errorf("20..19: %d entries, %v; want none", len(got), err)
	}
	stop := errors.New("enough")
	for _, s := range []raft.LogScanner{gs, gs.groupLog} {
		n := 0
		err := s.ScanLogs(100, 2500, func(*raft.Log) error {
			if n++; n == 3 {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) || n != 3 {
			t.Errorf("%T: fn's error after 3 entries: the scan went on to %d, %v", s, n, err)
		}
	}
	g.Close()
	if err := gs.ScanLogs(100, 200, func(*raft.Log) error { return nil }); !errors.Is(err, errLogClosed) {
		t.Errorf("a closed group's scan: %v, want %v", err, errLogClosed)
	}
}

// DropAll empties a group's log for good (also across a reopen) and
// keeps its stable values and the other groups' entries.
func TestRaftLogsDropAll(t *testing.T) {
	dir := t.TempDir()
	r, g := openUnmanaged(t, dir, journalSize, 1)
	other, err := r.Group(2, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []LogStore{g, other} {
		if err := s.StoreLogs(entries(5, 20, 3)); err != nil {
			t.Fatal(err)
		}
	}
	if err := g.SetUint64([]byte("CurrentTerm"), 3); err != nil {
		t.Fatal(err)
	}
	var l raft.Log
	if err := g.GetLog(20, &l); err != nil { // in the cache
		t.Fatal(err)
	}
	if err := g.DropAll(); err != nil {
		t.Fatal(err)
	}
	wantRange(t, g, 0, 0)
	if err := g.GetLog(20, &l); err == nil {
		t.Fatal("an entry dropped is still read (the cache)")
	}
	if err := g.DropAll(); err != nil { // nothing left: nothing to do
		t.Fatal(err)
	}
	wantRange(t, other, 5, 20)
	g.Close()
	other.Close()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	r2, g2 := openUnmanaged(t, dir, journalSize, 1)
	defer r2.Close()
	defer g2.Close()
	wantRange(t, g2, 0, 0)
	if v, err := g2.GetUint64([]byte("CurrentTerm")); err != nil || v != 3 {
		t.Fatalf("term after DropAll and a reopen: %d, %v; want 3", v, err)
	}
	if err := g2.StoreLogs(entries(1, 2, 4)); err != nil { // a log that starts again from 1
		t.Fatal(err)
	}
	wantRange(t, g2, 1, 2)
}
