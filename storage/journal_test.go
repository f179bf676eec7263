package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/coppice-kv/coppice/internal/testwait"
	"github.com/hashicorp/raft"
)

// crash ends r as a killed process would: Pebble's memtable (no WAL of
// its own) is lost, the journal's files stay as written.
func crash(t *testing.T, r *RaftLogs, groups ...LogStore) {
	t.Helper()
	for _, g := range groups {
		g.Close()
	}
	r.j.mu.Lock()
	r.j.closed, r.j.err = true, errLogClosed
	r.j.syncedCond.Broadcast()
	r.j.appliedCond.Broadcast()
	r.j.mu.Unlock()
	close(r.j.retiring)
	<-r.j.retired
	if err := r.j.file.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.db.Close(); err != nil {
		t.Fatal(err)
	}
}

// crashAfter stores entries 1..last (term 1) in group 0 of a new store
// in dir and crashes it; it returns the journal file they went to, its
// number, and the offset after them.
func crashAfter(t *testing.T, dir string, last uint64) (name string, num uint64, off int64) {
	t.Helper()
	r, g := openUnmanaged(t, dir, journalSize, 0)
	if err := g.StoreLogs(entries(1, last, 1)); err != nil {
		t.Fatal(err)
	}
	name, num, off = journalName(r.j.dir, r.j.num), r.j.num, r.j.off
	crash(t, r, g)
	return name, num, off
}

// entriesInPebble counts group id's entries Pebble alone holds in dir.
func entriesInPebble(t *testing.T, dir string, id uint32) int {
	t.Helper()
	db, err := pebble.Open(filepath.Join(dir, "db"), &pebble.Options{Logger: quietLogger{}, DisableWAL: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	g := &groupLog{id: id}
	lo, hi := g.bounds(kindLog)
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for it.First(); it.Valid(); it.Next() {
		n++
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	return n
}

// Appends, deletions and stable values acknowledged before a crash are
// back after it, from the journal: Pebble alone lost them.
func TestJournalReplaysAfterACrash(t *testing.T) {
	dir := t.TempDir()
	r, g := openUnmanaged(t, dir, journalSize, 3)
	for i := uint64(1); i <= 100; i += 10 {
		if err := g.StoreLogs(entries(i, i+9, 2)); err != nil {
			t.Fatal(err)
		}
	}
	if err := g.DeleteRange(1, 20); err != nil {
		t.Fatal(err)
	}
	if err := g.DeleteRange(91, 100); err != nil {
		t.Fatal(err)
	}
	if err := g.StoreLogs(entries(91, 95, 3)); err != nil { // syncs the deletions too
		t.Fatal(err)
	}
	if err := g.SetUint64([]byte("CurrentTerm"), 3); err != nil {
		t.Fatal(err)
	}
	crash(t, r, g)
	if n := entriesInPebble(t, dir, 3); n != 0 {
		t.Fatalf("Pebble alone holds %d entries after the crash: the test shows nothing", n)
	}

	g = testGroup(t, testLogs(t, dir), 3)
	wantRange(t, g, 21, 95)
	for i := uint64(21); i <= 95; i++ {
		var l raft.Log
		want := uint64(2)
		if i > 90 {
			want = 3
		}
		if err := g.GetLog(i, &l); err != nil || l.Term != want || l.Data[0] != byte(i) {
			t.Fatalf("entry %d after the crash: %+v, %v (want term %d)", i, l, err, want)
		}
	}
	if term, err := g.GetUint64([]byte("CurrentTerm")); err != nil || term != 3 {
		t.Fatalf("CurrentTerm after the crash: %d, %v", term, err)
	}
}

// writeRecord writes a journal record of data at off of file name.
func writeRecord(t *testing.T, name string, off int64, data []byte) {
	t.Helper()
	rec := make([]byte, journalHeader, journalHeader+len(data))
	binary.LittleEndian.PutUint32(rec, uint32(len(data)))
	binary.LittleEndian.PutUint32(rec[4:], crc32.Checksum(data, crcTable))
	f, err := os.OpenFile(name, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(append(rec, data...), off); err != nil {
		t.Fatal(err)
	}
}

// A record a crash cut short ends the replay, what came before it kept:
// the last write's sectors past some point never reached the disk, so
// part of the record reads as the preallocated zeros. The same record
// whole but with a byte changed (rot in a synced write: no part of it
// zero) is damage: the store does not open rather than drop it and what
// follows it without a word.
func TestJournalTellsATornRecordFromADamagedOne(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spoil func(rec []byte, off int64) // rec: the record's bytes at off
		torn  bool
	}{
		{"sectors after the first not written", func(rec []byte, off int64) {
			b := (off/tornSector + 1) * tornSector // the next sector's start
			clear(rec[b-off:])
		}, true},
		{"the first sector not written", func(rec []byte, off int64) {
			b := (off/tornSector + 1) * tornSector
			clear(rec[:b-off])
		}, true},
		{"a byte of the data changed", func(rec []byte, off int64) { rec[journalHeader+700] ^= 0x10 }, false},
		{"the length changed past the file's end", func(rec []byte, off int64) { rec[3] ^= 0x40 }, false},
		{"the checksum changed", func(rec []byte, off int64) { rec[5] ^= 0x01 }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			name, _, off := crashAfter(t, dir, 10)
			// A record of 1000 bytes (no zero byte) after entry 10's,
			// so it spans at least two sectors; then spoiled.
			data := bytes.Repeat([]byte{0x5a}, 1000)
			writeRecord(t, name, off, data)
			b, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			tc.spoil(b[off:off+journalHeader+int64(len(data))], off)
			if err := os.WriteFile(name, b, 0o644); err != nil {
				t.Fatal(err)
			}
			if !tc.torn {
				_, err := OpenRaftLogs(dir)
				if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "damage, not a write a crash cut short") ||
					!strings.Contains(err.Error(), "the node's next start rebuilds the store empty") {
					t.Fatalf("open with a damaged record in the newest journal file: %v, want ErrCorrupt naming %s", err, name)
				}
				return
			}
			g := testGroup(t, testLogs(t, dir), 0)
			wantRange(t, g, 1, 10)
			if err := g.StoreLogs(entries(11, 11, 1)); err != nil {
				t.Fatalf("an append after the replay: %v", err)
			}
		})
	}
}

func TestTorn(t *testing.T) {
	for _, tc := range []struct {
		rec  []byte
		off  int64
		want bool
	}{
		{[]byte{1, 2, 3}, 0, false},
		{[]byte{1, 0, 0, 0}, 0, false},                    // zeros, but in a sector with a written byte
		{[]byte{1, 2, 0, 0}, tornSector - 2, true},        // the second sector's part is zero
		{[]byte{0, 0, 3, 4}, tornSector - 2, true},        // the first's is
		{[]byte{1, 2, 3, 4}, tornSector - 2, false},       // both written
		{bytes.Repeat([]byte{7}, 3*tornSector), 5, false}, // four sectors, all written
	} {
		if got := torn(tc.rec, tc.off); got != tc.want {
			t.Errorf("torn(%v, %d) = %v, want %v", tc.rec, tc.off, got, tc.want)
		}
	}
}

// A bad record in a journal file older than the newest is damage, not a
// write cut short, whatever its bytes: the records after it were
// acknowledged. The store does not open (ErrCorrupt, naming the file)
// rather than replay on without them.
func TestJournalDamagedOlderFileIsCorruption(t *testing.T) {
	dir := t.TempDir()
	name, num, _ := crashAfter(t, dir, 30)
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	clear(b[journalHeader+3 : journalHeader+3+tornSector]) // a sector of the first record's data zeroed
	if err := os.WriteFile(name, b, 0o644); err != nil {
		t.Fatal(err)
	}
	// A newer file after it, as when the damaged one had filled up.
	newer := journalName(filepath.Join(dir, "journal"), num+1)
	if err := os.WriteFile(newer, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = OpenRaftLogs(dir)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Fatalf("open with a damaged older journal file: %v, want ErrCorrupt naming %s", err, name)
	}
}

// Full files are retired once Pebble holds their writes; a crash after
// many of them loses nothing; a record bigger than a file gets one of
// its own.
func TestJournalRetiresFullFiles(t *testing.T) {
	dir := t.TempDir()
	r, g := openUnmanaged(t, dir, 4096, 1)
	for i := uint64(1); i <= 2000; i += 10 {
		if err := g.StoreLogs(entries(i, i+9, 1)); err != nil {
			t.Fatal(err)
		}
	}
	big := &raft.Log{Index: 2001, Term: 1, Type: raft.LogCommand, Data: make([]byte, 20000)}
	if err := g.StoreLogs([]*raft.Log{big}); err != nil {
		t.Fatal(err)
	}
	if err := g.StoreLogs(entries(2002, 2002, 1)); err != nil {
		t.Fatal(err)
	}
	journalDir := filepath.Join(dir, "journal")
	testwait.For(t, 10*time.Second, 10*time.Millisecond, "full journal files retired", func() error {
		nums, err := journalFiles(vfs.Default, journalDir)
		if err != nil {
			return err
		}
		if len(nums) > 2 {
			return fmt.Errorf("%d journal files: %v", len(nums), nums)
		}
		return nil
	})
	crash(t, r, g)
	g = testGroup(t, testLogs(t, dir), 1)
	wantRange(t, g, 1, 2002)
	var l raft.Log
	if err := g.GetLog(2001, &l); err != nil || len(l.Data) != 20000 {
		t.Fatalf("the big entry after the crash: %d bytes, %v", len(l.Data), err)
	}
	for _, i := range []uint64{1, 999, 2000, 2002} {
		if err := g.GetLog(i, &l); err != nil || l.Data[0] != byte(i) {
			t.Fatalf("entry %d after the crash: %+v, %v", i, l, err)
		}
	}
}

// Appends that arrive while a sync is in flight share the next one: eight
// groups append while the journal is held busy, and one sync, by whichever
// of them gets there first, makes all eight durable.
func TestJournalGroupCommits(t *testing.T) {
	dir := t.TempDir()
	r, err := OpenRaftLogs(dir)
	if err != nil {
		t.Fatal(err)
	}
	const groups = 8
	var gs []LogStore
	for i := range groups {
		g, err := r.Group(uint32(i), "")
		if err != nil {
			t.Fatal(err)
		}
		gs = append(gs, g)
	}
	j := r.j
	j.mu.Lock()
	j.syncing = true // as if a sync were in flight
	before := j.stats
	j.mu.Unlock()
	var wg sync.WaitGroup
	for _, g := range gs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := g.StoreLogs(entries(1, 3, 1)); err != nil {
				t.Error(err)
			}
		}()
	}
	testwait.For(t, 10*time.Second, time.Millisecond, "every group's append waiting for a sync", func() error {
		j.mu.Lock()
		defer j.mu.Unlock()
		if n := j.appended; n != groups {
			return fmt.Errorf("%d appended", n)
		}
		return nil
	})
	j.mu.Lock()
	j.syncing = false
	j.syncedCond.Broadcast()
	j.mu.Unlock()
	wg.Wait()
	after := r.Stats()
	if syncs, records := after.Syncs-before.Syncs, after.Records-before.Records; syncs != 1 || records != groups {
		t.Fatalf("%d syncs of %d records for %d appends that waited together, want 1 of %d", syncs, records, groups, groups)
	}
	var inBuckets uint64
	for _, n := range after.SyncBuckets {
		inBuckets += n
	}
	if inBuckets != after.Syncs || after.SyncSeconds <= 0 || after.Bytes <= before.Bytes {
		t.Fatalf("stats after the sync: %+v", after)
	}
	crash(t, r, gs...)
	r2 := testLogs(t, dir)
	for i := range groups {
		wantRange(t, testGroup(t, r2, uint32(i)), 1, 3)
	}
}

// powerCutEntry is entry index of group id in TestRaftLogsSurvivePowerCuts:
// its data names both, in a length that varies so records straddle the
// file system's blocks.
func powerCutEntry(id uint32, index uint64) *raft.Log {
	data := fmt.Appendf(nil, "%d/%d/", id, index)
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand,
		Data: append(data, bytes.Repeat([]byte{'x'}, int(index%300))...)}
}

// A power cut loses what was not synced: file data, new directory
// entries, Pebble's memtable and unsynced tables. Three groups append,
// compact their heads and set stable values while the test takes crash
// images of the file system (Pebble's CrashableMem: everything synced,
// plus each unsynced block and directory entry with some probability);
// opened from each image, the store holds every write acknowledged before
// the cut, every group's log is contiguous with each entry intact, and
// appends go on from there. Journal files are small, so full ones are
// retired (Pebble flushed, the file removed) all along.
func TestRaftLogsSurvivePowerCuts(t *testing.T) {
	const dir, fileSize = "/node/raftlog", 16 << 10
	fs := vfs.NewCrashableMem()
	r, err := openRaftLogs(fs, dir, fileSize)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Error(err)
		}
	})
	ids := []uint32{0, 1, SystemGroup}
	termKey := []byte("CurrentTerm")
	// acked[i] is group ids[i]'s last acknowledged entry and stable value.
	acked := make([]struct{ last, term atomic.Uint64 }, len(ids))
	total := func() (n uint64) {
		for i := range acked {
			n += acked[i].last.Load()
		}
		return n
	}
	stop := make(chan struct{})
	errs := make(chan error, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		g := testGroup(t, r, id)
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := uint64(1)
			for n := uint64(1); ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				var logs []*raft.Log
				for range 1 + n%8 {
					logs = append(logs, powerCutEntry(id, next))
					next++
				}
				if err := g.StoreLogs(logs); err != nil {
					errs <- fmt.Errorf("group %d: StoreLogs: %w", id, err)
					return
				}
				acked[i].last.Store(next - 1)
				if n%10 == 0 {
					if err := g.SetUint64(termKey, n); err != nil {
						errs <- fmt.Errorf("group %d: SetUint64: %w", id, err)
						return
					}
					acked[i].term.Store(n)
				}
				if n%25 == 0 {
					first, err := g.FirstIndex()
					if err == nil {
						err = g.DeleteRange(first, next-30)
					}
					if err != nil {
						errs <- fmt.Errorf("group %d: compacting: %w", id, err)
						return
					}
				}
			}
		}()
	}
	defer func() {
		close(stop)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	}()

	for cut := range 12 {
		target := total() + 300
		testwait.For(t, 30*time.Second, time.Millisecond, "the writers to get ahead", func() error {
			if n := total(); n < target && len(errs) == 0 {
				return fmt.Errorf("%d entries acknowledged, want %d", n, target)
			}
			return nil
		})
		if len(errs) > 0 {
			return // a writer failed: reported when they stop
		}
		wantLast, wantTerm := make([]uint64, len(ids)), make([]uint64, len(ids))
		for i := range acked {
			wantLast[i], wantTerm[i] = acked[i].last.Load(), acked[i].term.Load()
		}
		unsynced := []int{0, 30, 70, 100}[cut%4]
		image := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: unsynced, RNG: rand.New(rand.NewPCG(uint64(cut), 1))})
		t.Run(fmt.Sprintf("cut%d-unsynced%d", cut, unsynced), func(t *testing.T) {
			after, err := openRaftLogs(image, dir, fileSize)
			if err != nil {
				t.Fatalf("opening after the power cut: %v", err)
			}
			defer func() {
				if err := after.Close(); err != nil {
					t.Error(err)
				}
			}()
			for i, id := range ids {
				g, err := after.Group(id, "")
				if err != nil {
					t.Fatalf("group %d after the power cut: %v", id, err)
				}
				defer func() {
					if err := g.Close(); err != nil {
						t.Error(err)
					}
				}()
				checkPowerCutGroup(t, g, id, wantLast[i], wantTerm[i], termKey)
			}
		})
	}
	// The cuts fell among retirements: the first files are gone.
	testwait.For(t, 10*time.Second, time.Millisecond, "full journal files retired", func() error {
		if nums, err := journalFiles(fs, filepath.Join(dir, "journal")); err != nil || len(nums) == 0 || nums[0] < 3 {
			return fmt.Errorf("journal files %v (%v)", nums, err)
		}
		return nil
	})
}

// checkPowerCutGroup checks group id's log and stable value in a store
// opened after a power cut, then appends to it.
func checkPowerCutGroup(t *testing.T, g LogStore, id uint32, wantLast, wantTerm uint64, termKey []byte) {
	t.Helper()
	first, err1 := g.FirstIndex()
	last, err2 := g.LastIndex()
	if err := errors.Join(err1, err2); err != nil {
		t.Fatalf("group %d: %v", id, err)
	}
	if last < wantLast {
		t.Fatalf("group %d holds entries %d..%d: acknowledged entries up to %d are lost", id, first, last, wantLast)
	}
	for index := first; last > 0 && index <= last; index++ {
		var l raft.Log
		if err := g.GetLog(index, &l); err != nil {
			t.Fatalf("group %d holds %d..%d but entry %d: %v", id, first, last, index, err)
		}
		if want := powerCutEntry(id, index); l.Term != want.Term || !bytes.Equal(l.Data, want.Data) {
			t.Fatalf("group %d entry %d: term %d data %.20q, want term %d data %.20q", id, index, l.Term, l.Data, want.Term, want.Data)
		}
	}
	if term, err := g.GetUint64(termKey); err != nil || term < wantTerm {
		t.Fatalf("group %d stable value: %d (%v), acknowledged %d", id, term, err, wantTerm)
	}
	if err := g.StoreLogs([]*raft.Log{powerCutEntry(id, last+1)}); err != nil {
		t.Fatalf("group %d: appending after the power cut: %v", id, err)
	}
}
