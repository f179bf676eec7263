package storage

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/coppice-kv/coppice/internal/testwait"
	"github.com/coppice-kv/coppice/kv"
	"github.com/coppice-kv/coppice/messages"
	"github.com/hashicorp/raft"
)

// failingWrites returns fs wrapped so that every write operation fails
// once the returned toggle is on: a disk gone bad, full or read-only.
func failingWrites(fs vfs.FS) (vfs.FS, *errorfs.Toggle) {
	t := &errorfs.Toggle{Injector: errorfs.InjectorFunc(func(op errorfs.Op) error {
		if op.Kind.ReadOrWrite() == errorfs.OpIsWrite {
			return errorfs.ErrInjected
		}
		return nil
	})}
	return errorfs.Wrap(fs, t), t
}

// A shard whose memtable cannot be flushed reports the failure, and its
// snapshot and Close return it instead of waiting for good on Pebble,
// which retries a failed flush without end.
func TestShardStoreFailure(t *testing.T) {
	fs, bad := failingWrites(vfs.NewMem())
	s := shardOn(t, fs)
	if err := s.Failure(); err != nil {
		t.Fatalf("failure before any: %v", err)
	}
	bad.On()

	err := s.checkpoint("/snap")
	if !errors.Is(err, ErrStoreFailed) || !strings.Contains(err.Error(), "shard 0 at /node/shards/0/kv") {
		t.Fatalf("checkpoint on a failing disk: %v", err)
	}
	select {
	case <-s.Failed():
	default:
		t.Fatal("Failed is not closed")
	}
	if err := s.Failure(); !errors.Is(err, errorfs.ErrInjected) {
		t.Fatalf("Failure() = %v, want the injected error", err)
	}
	if err := s.Close(); !errors.Is(err, ErrStoreFailed) {
		t.Fatalf("Close() = %v, want the failure", err)
	}
	if r := s.ApplyBatch([]*raft.Log{shardEntry(t, 3)}); r[0] != ErrClosed {
		t.Fatalf("apply after close: %v", r[0])
	}
}

// A block whose checksum does not match, met by a read, is the store's
// failure (ErrCorrupt, naming the file, saying what to do) and an error
// of the read; met as the shard opens, the open's error. Pebble's default
// ends the process on the spot.
func TestShardCorruptionIsAFailure(t *testing.T) {
	s, _, table := openDamaged(t, nearTheEnd)
	defer s.Close()
	if _, _, _, err := s.Checksum(); err == nil {
		t.Fatal("a read of the damaged block succeeded")
	}
	testwait.Recv(t, s.Failed(), 10*time.Second, "close of Failed")
	checkCorruptionErr(t, s.Failure(), table)

	// The first block, which the open reads: the shard opens without a
	// store, damaged.
	s, _, table = openDamaged(t, func(int64) int64 { return 8 })
	checkCorruptionErr(t, s.Failure(), table)
	if err := s.View(func(kv.Reader) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("a read of a shard opened damaged: %v, want ErrClosed", err)
	}
	if r := s.ApplyBatch([]*raft.Log{shardEntry(t, 1)}); r[0] != ErrClosed {
		t.Fatalf("an apply on a shard opened damaged: %v, want ErrClosed", r[0])
	}
	if err := s.Renew(); err != nil {
		t.Fatal(err)
	}
	if err := s.Failure(); err != nil {
		t.Fatalf("renewed: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// An apply whose read meets a damaged block does not end the process (a
// panic on Raft's goroutine did): the store takes it for its failure,
// commits none of the batch, answers every entry with the failure, keeps
// its applied index, and applies nothing more until it is renewed.
func TestApplyMeetingDamageFailsTheStore(t *testing.T) {
	s, _, table := openDamaged(t, nearTheEnd)
	defer s.Close()
	// As kv.Exec: a SET reads the key first, and a read error panics
	// with a kv.StorageError.
	s.exec = func(w kv.Writer, c *messages.Command, ev *kv.EventLog) *messages.Reply {
		if _, _, err := w.Get(append([]byte{1}, c.Args[1]...)); err != nil {
			panic(&kv.StorageError{Err: err})
		}
		return setExec(w, c, ev)
	}
	before, _ := s.Applied()
	var batch []*raft.Log
	for i := uint64(1); i <= 400; i++ {
		batch = append(batch, entry(t, before+i, 2, fmt.Sprintf("key%04d", i), "new"))
	}
	for i, r := range s.ApplyBatch(batch) {
		if err, ok := r.(error); !ok || !errors.Is(err, ErrCorrupt) {
			t.Fatalf("entry %d of a batch that met the damage: %v, want the store's failure", i, r)
		}
	}
	checkCorruptionErr(t, s.Failure(), table)
	if after, _ := s.Applied(); after != before {
		t.Fatalf("applied index %d after a failed batch, want %d", after, before)
	}
	if got := get(t, s, "key0001"); got != strings.Repeat("v", 100) {
		t.Fatalf("key0001 = %q after a failed batch: part of it was committed", got)
	}
	r := s.ApplyBatch([]*raft.Log{entry(t, before+401, 2, "other", "v")})
	if err, ok := r[0].(error); !ok || !errors.Is(err, ErrStoreFailed) {
		t.Fatalf("an apply on a failed store: %v, want the failure", r[0])
	}
	if err := s.Renew(); err != nil {
		t.Fatal(err)
	}
	if r := s.ApplyBatch([]*raft.Log{entry(t, 1, 3, "other", "v")}); r[0] == nil {
		t.Fatal("no result for an entry applied after Renew")
	} else if err, ok := r[0].(error); ok {
		t.Fatalf("an apply after Renew: %v", err)
	}
}

// A damaged shard renewed is an empty store with a fault of its own: it
// applies and reads again, its Failed channel is a new one, Renewed was
// closed, and nothing of the damaged store is left for the next open.
func TestShardRenewReplacesADamagedStore(t *testing.T) {
	s, fs, table := openDamaged(t, nearTheEnd)
	l := Layout{Dir: "/node"}
	defer s.Close()
	if _, _, _, err := s.Checksum(); err == nil {
		t.Fatal("a read of the damaged block succeeded")
	}
	failed, renewed := s.Failed(), s.Renewed()
	testwait.Recv(t, failed, 10*time.Second, "close of Failed")

	if err := s.Renew(); err != nil {
		t.Fatal(err)
	}
	testwait.Recv(t, renewed, time.Second, "close of Renewed")
	if err := s.Failure(); err != nil {
		t.Fatalf("Failure() after Renew = %v, want nil", err)
	}
	select {
	case <-s.Failed():
		t.Fatal("the renewed store's Failed is closed")
	default:
	}
	if i, term := s.Applied(); i != 0 || term != 0 {
		t.Fatalf("applied %d/%d after Renew, want 0/0", i, term)
	}
	if applied, _, keys, err := s.Checksum(); err != nil || applied != 0 || keys != 0 {
		t.Fatalf("Checksum after Renew: applied %d, %d keys, %v; want an empty store", applied, keys, err)
	}
	if r := s.ApplyBatch([]*raft.Log{entry(t, 1, 1, "a", "1")}); r[0] != nil {
		if _, ok := r[0].(error); ok {
			t.Fatalf("apply after Renew: %v", r[0])
		}
	}
	if got := get(t, s, "a"); got != "1" {
		t.Fatalf("a = %q after Renew and an apply, want 1", got)
	}
	if _, err := fs.Stat(table); err == nil {
		t.Fatalf("the damaged table %s is still there", table)
	}
	if _, err := fs.Stat(l.KVDir(0) + ".old"); err == nil {
		t.Fatal("the damaged store's dir is still there")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	reopened, err := openShard(fs, l, 0, setExec, nil, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer reopened.Close()
	if i, _ := reopened.Applied(); i != 1 || get(t, reopened, "a") != "1" {
		t.Fatalf("reopened: applied %d, a = %q; want 1 and 1", i, get(t, reopened, "a"))
	}
}

// A scrub reads every table back and checks its blocks: a damaged block
// nobody read is found, as the store's failure; a sound store scrubs
// clean, every table counted.
func TestShardScrubFindsDamageNoReadMet(t *testing.T) {
	fs := vfs.NewMem()
	table := damagedTable(t, fs)
	s, err := openShard(fs, Layout{Dir: "/node"}, 0, setExec, nil, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := fs.Stat(table)
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Scrub(context.Background(), nil)
	if err != nil || res.Tables != 1 || res.Bytes != uint64(st.Size()) {
		t.Fatalf("scrub of a sound store: %+v, %v; want 1 table of %d bytes", res, err, st.Size())
	}
	if err := s.Failure(); err != nil {
		t.Fatalf("a sound store scrubbed: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	flipByte(t, fs, table, st.Size()*2/3)
	s, err = openShard(fs, Layout{Dir: "/node"}, 0, setExec, nil, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Failure() != nil {
		t.Fatal("the open met the damage: the test wants it left to the scrub")
	}
	_, err = s.Scrub(context.Background(), nil)
	checkCorruptionErr(t, err, table)
	checkCorruptionErr(t, s.Failure(), table)
}

func checkCorruptionErr(t *testing.T, err error, table string) {
	t.Helper()
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("got %v, want ErrCorrupt", err)
	}
	for _, want := range []string{table, "checksum", "empty the node's data dir and start it again with --join"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want it to say %q", err, want)
		}
	}
}

// openDamaged writes a table into shard 0 on a new in-memory fs, flips
// its byte at at(size), and opens the shard again (the open itself may
// meet the damage); it returns the shard, the fs and the table's path.
func openDamaged(t *testing.T, at func(size int64) int64) (*Shard, vfs.FS, string) {
	t.Helper()
	fs := vfs.NewMem()
	table := damagedTable(t, fs)
	st, err := fs.Stat(table)
	if err != nil {
		t.Fatal(err)
	}
	flipByte(t, fs, table, at(st.Size()))
	s, err := openShard(fs, Layout{Dir: "/node"}, 0, setExec, nil, 0, nil)
	if err != nil {
		t.Fatalf("open of a damaged store: %v, want a shard", err)
	}
	return s, fs, table
}

// nearTheEnd is a block near a table's end: the open reads the applied
// index record, which sorts first, and a Checksum every key.
func nearTheEnd(size int64) int64 { return size * 2 / 3 }

// damagedTable writes 400 keys into shard 0 on fs, closes it, and returns
// the path of the table that holds them.
func damagedTable(t *testing.T, fs vfs.FS) string {
	t.Helper()
	s, err := openShard(fs, Layout{Dir: "/node"}, 0, setExec, nil, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	var batch []*raft.Log
	for i := uint64(1); i <= 400; i++ {
		batch = append(batch, entry(t, i, 1, fmt.Sprintf("key%04d", i), strings.Repeat("v", 100)))
	}
	for _, r := range s.ApplyBatch(batch) {
		if err, ok := r.(error); ok {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil { // flushes: the keys are in a table
		t.Fatal(err)
	}
	dir := Layout{Dir: "/node"}.KVDir(0)
	names, err := fs.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if strings.HasSuffix(n, ".sst") {
			return fs.PathJoin(dir, n)
		}
	}
	t.Fatalf("no table in %v", names)
	return ""
}

// flipByte inverts the byte at off of the file at path on fs.
func flipByte(t *testing.T, fs vfs.FS, path string, off int64) {
	t.Helper()
	f, err := fs.OpenReadWrite(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// shardOn opens shard 0 on fs, holding entries 1 and 2.
func shardOn(t *testing.T, fs vfs.FS) *Shard {
	t.Helper()
	s, err := openShard(fs, Layout{Dir: "/node"}, 0, setExec, nil, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range s.ApplyBatch([]*raft.Log{shardEntry(t, 1), shardEntry(t, 2)}) {
		if err, ok := r.(error); ok {
			t.Fatal(err)
		}
	}
	return s
}

// heldSyncs returns fs wrapped so that every sync waits, once hold is
// called, until release is: a disk that hangs.
func heldSyncs(fs vfs.FS) (held vfs.FS, hold, release func()) {
	ch := make(chan struct{})
	var holding atomic.Bool
	held = errorfs.Wrap(fs, errorfs.InjectorFunc(func(op errorfs.Op) error {
		switch op.Kind {
		case errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo:
			if holding.Load() {
				<-ch
			}
		}
		return nil
	}))
	return held, func() { holding.Store(true) }, func() { holding.Store(false); close(ch) }
}

// raftLogOn opens a Raft log store on fs with group 0 holding entries 1
// and 2.
func raftLogOn(t *testing.T, fs vfs.FS) (*RaftLogs, LogStore) {
	t.Helper()
	r, err := openRaftLogs(fs, "/node/raftlog", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	g, err := r.Group(0, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := g.StoreLogs(entries(1, 2, 1)); err != nil {
		t.Fatal(err)
	}
	return r, g
}

// A journal write that fails is the Raft log store's failure: every later
// write fails with it, and Close returns.
func TestRaftLogStoreFailure(t *testing.T) {
	fs, bad := failingWrites(vfs.NewMem())
	r, g := raftLogOn(t, fs)
	bad.On()
	if err := g.StoreLogs(entries(3, 3, 1)); err == nil {
		t.Fatal("a write on a failing disk succeeded")
	}
	err := r.Failure()
	if !errors.Is(err, ErrStoreFailed) || !errors.Is(err, errorfs.ErrInjected) || !strings.Contains(err.Error(), "raft log at /node/raftlog: journal") {
		t.Fatalf("Failure() = %v", err)
	}
	select {
	case <-r.Failed():
	default:
		t.Fatal("Failed is not closed")
	}
	bad.Off() // the failure stays
	if err := g.StoreLogs(entries(3, 3, 1)); err == nil {
		t.Fatal("a write after the failure succeeded")
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); !errors.Is(err, errorfs.ErrInjected) {
		t.Fatalf("Close() = %v, want the failure", err)
	}
}

// A journal write and sync that does not return (a disk that hangs) is
// the Raft log store's failure once it has taken stallAfter: every write
// of the node waits behind it.
func TestRaftLogStoreStall(t *testing.T) {
	defer func(was time.Duration) { stallAfter = was }(stallAfter)
	stallAfter = 100 * time.Millisecond
	fs, hold, release := heldSyncs(vfs.NewMem())
	r, g := raftLogOn(t, fs)
	hold()
	stored := make(chan error, 1)
	go func() { stored <- g.StoreLogs(entries(3, 3, 1)) }()
	select {
	case <-r.Failed():
	case <-time.After(10 * time.Second):
		t.Fatal("a sync held for 10s is not a failure")
	}
	if err := r.Failure(); !errors.Is(err, ErrStoreFailed) || !strings.Contains(err.Error(), "the disk is stalled") {
		t.Fatalf("Failure() = %v", err)
	}
	release()
	select {
	case err := <-stored:
		if err != nil {
			t.Fatalf("the held write, once released: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the held write did not return once released")
	}
	// The failure stays: the node stops all the same.
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); !errors.Is(err, ErrStoreFailed) {
		t.Fatalf("Close() = %v, want the failure", err)
	}
}

// A Pebble sync that does not return (a disk that hangs under a flush) is
// the shard store's failure once it has taken stallAfter: the flush that
// waited on it gives up, where it would wait for good, and so does Close.
func TestShardStoreStall(t *testing.T) {
	defer func(was time.Duration) { stallAfter = was }(stallAfter)
	stallAfter = 100 * time.Millisecond
	fs, hold, release := heldSyncs(vfs.NewMem())
	s := shardOn(t, fs)
	hold()
	flushed := make(chan error, 1)
	go func() { flushed <- s.checkpoint("/snap") }() // flushes first
	select {
	case <-s.Failed():
	case <-time.After(10 * time.Second):
		t.Fatal("a sync held for 10s is not a failure")
	}
	if err := s.Failure(); !errors.Is(err, ErrStoreFailed) || !strings.Contains(err.Error(), "shard 0 at /node/shards/0/kv") || !strings.Contains(err.Error(), "the disk is stalled") {
		t.Fatalf("Failure() = %v", err)
	}
	select {
	case err := <-flushed:
		if !errors.Is(err, ErrStoreFailed) {
			t.Fatalf("checkpoint on a stalled disk: %v, want the failure", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the checkpoint's flush still waits on the stalled disk")
	}
	release()
	if err := s.Close(); !errors.Is(err, ErrStoreFailed) {
		t.Fatalf("Close() = %v, want the failure", err)
	}
}

// A read of a group's Raft log that fails (here every read of the disk,
// once the entries are in a table) is the store's failure, as a failed
// write is: Raft cannot go on without its log (the fork shuts the group
// down), and the node stops in order. An error of ScanLogs' callback is
// the caller's, not the store's.
func TestRaftLogReadFailure(t *testing.T) {
	type scanner interface {
		ScanLogs(from, to uint64, fn func(*raft.Log) error) error
	}
	for _, tc := range []struct {
		name string
		read func(LogStore) error
	}{
		{"GetLog", func(g LogStore) error { return g.GetLog(1500, new(raft.Log)) }},
		{"ScanLogs", func(g LogStore) error {
			return g.(scanner).ScanLogs(1000, 2000, func(*raft.Log) error { return nil })
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var failing atomic.Bool
			fs := errorfs.Wrap(vfs.NewMem(), errorfs.InjectorFunc(func(op errorfs.Op) error {
				if failing.Load() && op.Kind.ReadOrWrite() == errorfs.OpIsRead {
					return errorfs.ErrInjected
				}
				return nil
			}))
			r, g := raftLogOn(t, fs)
			stop := errors.New("enough")
			if err := g.(scanner).ScanLogs(1, 2, func(*raft.Log) error { return stop }); err != stop || r.Failure() != nil {
				t.Fatalf("ScanLogs with a callback that fails: %v, store failure %v; want the callback's error and no failure", err, r.Failure())
			}
			// Read back from a table's blocks that no read has cached,
			// not from the group's cache or the memtable: the group's
			// open reads the first and the last.
			storeBlocks(t, g)
			if err := g.Close(); err != nil {
				t.Fatal(err)
			}
			if err := r.db.Flush(); err != nil {
				t.Fatal(err)
			}
			g, err := r.Group(0, "")
			if err != nil {
				t.Fatal(err)
			}
			failing.Store(true)
			if err := tc.read(g); !errors.Is(err, errorfs.ErrInjected) {
				t.Fatalf("a read on a failing disk: %v", err)
			}
			if err := r.Failure(); !errors.Is(err, ErrStoreFailed) || !errors.Is(err, errorfs.ErrInjected) {
				t.Fatalf("Failure() = %v, want the read's error", err)
			}
			failing.Store(false)
			g.Close()
			r.Close()
		})
	}
}

// A scrub of the Raft log store reads every table back and finds damage
// no read has met (a block of entries from before a group's snapshot,
// which no start reads): it is the store's failure, with what to do.
func TestRaftLogScrubFindsDamageNoReadMet(t *testing.T) {
	fs := vfs.NewMem()
	r, g := raftLogOn(t, fs)
	storeBlocks(t, g)
	if err := r.db.Flush(); err != nil {
		t.Fatal(err)
	}
	res, err := r.Scrub(context.Background(), nil)
	if err != nil || res.Tables != 1 || r.Failure() != nil {
		t.Fatalf("scrub of a sound store: %+v, %v (failure %v); want 1 table, no failure", res, err, r.Failure())
	}
	tables, err := fs.List("/node/raftlog/db")
	if err != nil {
		t.Fatal(err)
	}
	var table string
	for _, name := range tables {
		if strings.HasSuffix(name, ".sst") {
			table = "/node/raftlog/db/" + name
		}
	}
	st, err := fs.Stat(table)
	if err != nil {
		t.Fatal(err)
	}
	flipByte(t, fs, table, st.Size()/2)
	// Entry 1, in the table's first block, read from the disk (the
	// group's cache holds the newest entries only).
	if err := g.GetLog(1, new(raft.Log)); err != nil || r.Failure() != nil {
		t.Fatalf("a read of a sound block: %v (failure %v)", err, r.Failure())
	}
	_, err = r.Scrub(context.Background(), nil)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), table) || !strings.Contains(err.Error(), "Raft log store") {
		t.Fatalf("scrub of a damaged table: %v, want ErrCorrupt naming %s and what to do", err, table)
	}
	if !errors.Is(r.Failure(), ErrCorrupt) {
		t.Fatalf("Failure() = %v, want the damage", r.Failure())
	}
	g.Close()
	r.Close()
}

// A scrub of a closed Raft log store reads nothing: the node's scrub may
// end its pass as the store worker closes the store.
func TestRaftLogScrubAfterClose(t *testing.T) {
	r, g := raftLogOn(t, vfs.NewMem())
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Scrub(context.Background(), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Scrub after Close: %v, want ErrClosed", err)
	}
}

// storeBlocks appends entries 3..3000 of 200 bytes to g (raftLogOn's):
// tables of many blocks once flushed.
func storeBlocks(t *testing.T, g LogStore) {
	t.Helper()
	batch := entries(3, 3000, 1)
	for _, e := range batch {
		e.Data = make([]byte, 200)
	}
	if err := g.StoreLogs(batch); err != nil {
		t.Fatal(err)
	}
}
