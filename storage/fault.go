package storage

import (
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// ErrStoreFailed marks a store failure that retrying does not mend (Failure
// of Shard and RaftLogs): the node stops rather than serve from a store it
// cannot write.
var ErrStoreFailed = errors.New("storage: store failed")

// fault is a store's first failure that retrying does not mend:
//   - a Pebble flush or compaction that failed (a data dir removed or
//     remounted read-only, a full or failing disk). Pebble retries a
//     failed flush at once, for ever (a core busy and an error logged
//     each time), and Flush waits for it as long; writes stall once the
//     memtables it cannot flush fill up;
//   - a journal write or sync that failed: after a failed fsync the
//     file's pages are in no known state;
//   - a write, sync or file operation of the journal's or Pebble's that
//     has not returned in stallAfter (a disk that hangs).
//
// The first failure is kept; later ones are only counted.
type fault struct {
	what string // the store, for the error: "shard 2 at <dir>"
	// advice says what to do about damage to the store (corruption).
	advice  string
	reports atomic.Uint64
	err     error // set once, before failed is closed
	failed  chan struct{}
}

func newFault(what string) *fault {
	return &fault{what: what, advice: shardDamage, failed: make(chan struct{})}
}

// What to do about damage to a store (fault.advice).
const (
	shardDamage = "this node's copy of the data is damaged: in a cluster, empty the node's data dir " +
		"and start it again with --join, and it gets every shard back from the others; standalone, restore a backup (node restore)"
	// The shards' data is sound: a start with --join keeps it and
	// rebuilds the store (the node's store actor, openRaftLogs).
	raftLogDamage = "this node's Raft log store (every group's log, term and vote) is damaged, its shards' data is not: " +
		"in a cluster, the node's next start rebuilds the store empty (with --join, or knowing its peers), keeps the shards' data, " +
		"and its groups catch up from their leaders; standalone, restore a backup (node restore)"
)

// report records err, if it is the store's first failure. Pebble calls it
// with its mutex held, as often as its flush is retried: it does nothing
// else.
func (f *fault) report(err error) {
	if f.reports.Add(1) == 1 {
		f.err = fmt.Errorf("%w: %s: %w", ErrStoreFailed, f.what, err)
		close(f.failed)
	}
}

// stallAfter is how long a write or sync of a store may take before the
// store is taken for failed (a disk that hangs). A Raft log write that
// hangs holds every group's writes on the node, and a leader whose log
// write hangs keeps its followers from electing another one (its
// heartbeats go on) while it commits nothing; a Pebble flush that hangs
// stalls the shard's applies once its memtables are full, so its
// clients' writes commit and are never answered. CockroachDB's
// storage.max_sync_duration is the same 20 s. A variable for tests.
var stallAfter = 20 * time.Second

// watchStalls returns fs wrapped so that a write, sync or file operation
// (create, rename, remove...) made through it that has not returned in
// stallAfter is the store's failure, and what stops the watch: Pebble's
// disk-health checker, which looks every 2 s, so a stall is seen 20-22 s
// in.
func (f *fault) watchStalls(fs vfs.FS) (vfs.FS, io.Closer) { return watchStalls(fs, f.report) }

// watchStalls is fault.watchStalls reporting to report.
func watchStalls(fs vfs.FS, report func(error)) (vfs.FS, io.Closer) {
	return vfs.WithDiskHealthChecks(fs, stallAfter, nil, func(info vfs.DiskSlowInfo) {
		report(fmt.Errorf("a %s of %s has not returned in %s: the disk is stalled",
			info.OpType, info.Path, info.Duration.Round(time.Millisecond)))
	})
}

// get returns the failure, or nil.
func (f *fault) get() error {
	select {
	case <-f.failed:
		return f.err
	default:
		return nil
	}
}

// listener reports Pebble's background errors (failed flushes and
// compactions) as the store's failure, in place of Pebble's log line per
// retry.
func (f *fault) listener() *pebble.EventListener {
	return &pebble.EventListener{BackgroundError: f.report, DataCorruption: f.corrupt}
}

// corrupt reports on-disk corruption (a read, a compaction or a checkpoint
// met a block whose checksum does not match) as the store's failure, with
// what to do about it: the read that met it returns the error, and the
// node stops in order. Pebble's default is its logger's Fatalf, which
// ended the process there and then, leadership and clients included, and
// the next start ended the same way at the first read of that block.
func (f *fault) corrupt(info pebble.DataCorruptionInfo) {
	f.report(f.corruption(info.Path, info.Details))
}

// corruption is err, corruption found in path, a file of f's store, as
// ErrCorrupt with what to do about it.
func (f *fault) corruption(path string, err error) error {
	return fmt.Errorf("%w in %s: %w: %s", ErrCorrupt, path, err, f.advice)
}

// flush flushes db's memtables, or returns the store's failure as soon as
// there is one, where db.Flush would wait for good.
func (f *fault) flush(db *pebble.DB) error {
	if err := f.get(); err != nil {
		return err
	}
	done, err := db.AsyncFlush()
	if err != nil {
		return err
	}
	select {
	case <-done:
		return nil
	case <-f.failed:
		return f.err
	}
}

// failedCloseWait bounds the close of a failed store: a write stalled on
// memtables Pebble cannot flush holds the store for good.
const failedCloseWait = 5 * time.Second

// closeFailed runs lockAndClose (which takes the store's lock and closes
// its db), or gives up after failedCloseWait and leaves the db open: its
// files go with the process.
func (f *fault) closeFailed(lockAndClose func()) error {
	done := make(chan struct{})
	go func() {
		lockAndClose()
		close(done)
	}()
	t := time.NewTimer(failedCloseWait)
	defer t.Stop()
	select {
	case <-done:
		return f.err
	case <-t.C:
		return fmt.Errorf("%w; left open: a write is stalled on it", f.err)
	}
}

// fault is the shard's current store's fault.
func (s *Shard) fault() *fault { return s.faults.Load() }

func (s *Shard) newFault() *fault {
	return newFault(fmt.Sprintf("shard %d at %s", s.id, s.layout.KVDir(s.id)))
}

// Failed is closed when the shard's store fails in a way that retrying
// does not mend (Failure says how). After a Renew it is the new store's.
func (s *Shard) Failed() <-chan struct{} { return s.fault().failed }

// Failure returns the shard store's failure (ErrStoreFailed), or nil.
func (s *Shard) Failure() error { return s.fault().get() }

// Failed is closed when the Raft log store fails in a way that retrying
// does not mend (Failure says how).
func (r *RaftLogs) Failed() <-chan struct{} { return r.fault.failed }

// Failure returns the Raft log store's failure (ErrStoreFailed), or nil.
func (r *RaftLogs) Failure() error { return r.fault.get() }
