package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/coppice-kv/coppice/kv"
	"github.com/coppice-kv/coppice/messages"
	"github.com/hashicorp/raft"
)

// Executor runs one write command on a shard's batch (kv.ExecEvents),
// adding the keyspace events it fires to ev when ev is not nil.
type Executor func(w kv.Writer, cmd *messages.Command, ev *kv.EventLog) *messages.Reply

// Notifier takes the keyspace events of a shard's writes.
type Notifier interface {
	// Wanted is the classes of events to collect; it is read once per
	// batch of entries.
	Wanted() kv.Classes
	// Fire gets a batch's events, in order, once the batch has committed
	// and before the writes are answered.
	Fire(events []kv.Event)
	// Tracking reports whether a client tracks keys (CLIENT TRACKING):
	// Modified then gets what each command of a committed batch changed,
	// before the writes are answered, and every key when a snapshot
	// replaces the store.
	Tracking() bool
	Modified(mods []kv.Modification)
}

// appliedKey holds the shard's applied Raft index and term. Keys starting
// with 0x00 belong to storage; the engine never sees them.
var appliedKey = []byte("\x00applied")

// Shard is one shard's state machine: its keys in Pebble, and the Raft
// index and term they reflect, written in the same batch as the data. It
// implements raft.FSM and raft.BatchingFSM.
//
// Pebble runs without its WAL: the Raft log is the durable record, and
// whatever Pebble loses in a crash (its memtables) is replayed from it
// (entries at or below the applied index are skipped, so replay is safe).
// What Pebble keeps is always a prefix of the log: the applied index is in
// every batch. A snapshot flushes the memtables into sstables before the
// Raft log behind it may be truncated, and Close flushes them so a restart
// replays nothing. A WAL would write every value twice more on every node
// (the WAL, then its copy in each checkpoint) for nothing the log does not
// already give.
type Shard struct {
	id     int
	layout Layout
	fs     vfs.FS    // the store's file system (vfs.Default but in tests), watched for stalls
	watch  io.Closer // stops the watch
	exec   Executor
	notify Notifier // set before the shard applies anything; nil: no events
	snaps  *SnapshotStore
	// faults holds the store's fault; Renew gives the new store a new
	// one. The stall watch of fs reports to the current one.
	faults atomic.Pointer[fault]
	shared *Stores // what the node's stores share (nil: on its own)
	// renewed is closed and replaced by Renew.
	renewMu sync.Mutex
	renewed chan struct{}
	// tableOpts reads the store's tables on their own (Scrub).
	tableOpts sstable.ReaderOptions

	mu sync.RWMutex // guards db: held for reading while in use, for writing to swap it
	// commitMu is held for writing while a batch commits and the cache,
	// counts and applied index follow it, and for reading by ViewAtOnce.
	commitMu sync.RWMutex
	db       *pebble.DB
	cache    *recordCache
	index    *fieldIndex // big sets' and hashes' fields, for random picks
	filter   *keyFilter
	// counts are the store's keyCounts as of its last commit (nil: not
	// kept, and DBSIZE passes over the keys).
	counts atomic.Pointer[keyCounts]

	watches keyWatches // keys waited for (Watch)

	appliedMu sync.Mutex // guards applied, term and appliedCh
	applied   uint64
	term      uint64
	appliedCh chan struct{} // closed and replaced whenever applied moves
}

// OpenShard opens (or creates) shard id's Pebble store, with a read cache
// of cacheBytes in front of it (0: none), its compactions, block cache and
// memtable budget shared with the node's other shards (nil: on its own).
// A store found damaged as it opens is not an error: the shard opens
// without one, its Failure ErrCorrupt; reads and applies fail, Close
// returns the failure, and Renew gives it an empty store.
func OpenShard(layout Layout, id int, exec Executor, snaps *SnapshotStore, cacheBytes int, shared *Stores) (*Shard, error) {
	return openShard(vfs.Default, layout, id, exec, snaps, cacheBytes, shared)
}

// openShard opens the shard's store on fs, first finishing or undoing a
// restore a crash cut short. Tests cut power under a crashable in-memory
// fs; only a snapshot stream (Restore) is written with the os package.
func openShard(fs vfs.FS, layout Layout, id int, exec Executor, snaps *SnapshotStore, cacheBytes int, shared *Stores) (*Shard, error) {
	if err := recoverSwap(fs, layout.KVDir(id)); err != nil {
		return nil, err
	}
	if err := dropRestoreStreams(fs, layout.ShardDir(id)); err != nil {
		return nil, err
	}
	s := &Shard{id: id, layout: layout, exec: exec, snaps: snaps, shared: shared, appliedCh: make(chan struct{}),
		cache: newRecordCache(cacheBytes), index: newFieldIndex(cacheBytes), filter: newKeyFilter(), renewed: make(chan struct{})}
	s.faults.Store(s.newFault())
	s.fs, s.watch = watchStalls(fs, func(err error) { s.fault().report(err) })
	s.tableOpts = shardOptions(s.fs, s.fault(), shared).MakeReaderOptions()
	db, err := openPebble(s.fs, layout.KVDir(id), s.fault(), shared)
	if err != nil {
		if pebble.IsCorruptionError(err) {
			s.fault().report(s.fault().corruption(layout.KVDir(id), err))
			return s, nil // damaged
		}
		s.watch.Close()
		return nil, err
	}
	s.db = db
	index, term, err := readApplied(db)
	if err != nil {
		db.Close()
		if errors.Is(s.fault().get(), ErrCorrupt) {
			s.db = nil
			return s, nil // damaged: corruption met by the read
		}
		s.watch.Close()
		return nil, fmt.Errorf("storage: shard %d: %w", id, err)
	}
	s.setApplied(index, term)
	s.loadCounts(db, index)
	// No other user yet: gen is read unlocked.
	if d := takeKeyFilter(fs, layout.KVDir(id), index); d == nil || !s.filter.install(s.filter.gen, d) {
		go s.buildFilter(s.filter.gen)
	}
	return s, nil
}

func openPebble(fs vfs.FS, dir string, f *fault, shared *Stores) (*pebble.DB, error) {
	if err := mkdirAllSynced(fs, dir); err != nil {
		return nil, err
	}
	db, err := openChecked(fs, dir, shardOptions(fs, f, shared))
	if err != nil {
		return nil, fmt.Errorf("storage: open %s: %w", dir, err)
	}
	return db, nil
}

// shardOptions are a shard store's Pebble options, its failures reported
// to f.
func shardOptions(fs vfs.FS, f *fault, shared *Stores) *pebble.Options {
	opts := &pebble.Options{
		FS:            fs,
		Logger:        quietLogger{},
		EventListener: f.listener(),
		DisableWAL:    true, // the Raft log is the WAL (Shard)
	}
	shared.options(opts)
	// Bloom filters in every table (lower levels inherit L0's): a Get of
	// a key the key filter cannot rule out reads one table per level
	// that may hold it, not every level's index.
	opts.Levels[0].FilterPolicy = bloom.FilterPolicy(10)
	opts.EnsureDefaults()
	return opts
}

func readApplied(r pebble.Reader) (index, term uint64, err error) {
	v, closer, err := r.Get(appliedKey)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, err
	}
	defer closer.Close()
	if len(v) != 16 {
		return 0, 0, fmt.Errorf("applied index record is %d bytes, want 16", len(v))
	}
	return binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:]), nil
}

// CacheStats reports the shard's read cache and key filter.
func (s *Shard) CacheStats() CacheStats {
	cs := s.cache.stats()
	cs.FilterSkips = s.filter.skips.Load()
	var failed error
	cs.FilterReady, failed = s.filter.state()
	if failed != nil {
		cs.FilterError = fmt.Sprintf("key filter build: %v", failed)
	}
	return cs
}

// ID is the shard's number.
func (s *Shard) ID() int { return s.id }

// Applied returns the index and term of the last entry applied.
func (s *Shard) Applied() (index, term uint64) {
	s.appliedMu.Lock()
	defer s.appliedMu.Unlock()
	return s.applied, s.term
}

func (s *Shard) setApplied(index, term uint64) {
	s.appliedMu.Lock()
	s.applied, s.term = index, term
	close(s.appliedCh)
	s.appliedCh = make(chan struct{})
	s.appliedMu.Unlock()
}

// WaitApplied waits until the shard has applied index, or ctx ends.
func (s *Shard) WaitApplied(ctx context.Context, index uint64) error {
	for {
		s.appliedMu.Lock()
		applied, ch := s.applied, s.appliedCh
		s.appliedMu.Unlock()
		if applied >= index {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("storage: shard %d: waiting for index %d (applied %d): %w", s.id, index, applied, ctx.Err())
		}
	}
}

// View runs fn with a reader of the shard's current state.
func (s *Shard) View(fn func(r kv.Reader) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.viewHeld(fn)
}

// ViewAtOnce is View on one state: no batch commits while fn runs, so
// fn's reads, however many, see the store as one commit left it (View's
// may see a commit between two reads).
func (s *Shard) ViewAtOnce(fn func(r kv.Reader) error) error {
	s.mu.RLock() // first, as ApplyBatch takes them
	defer s.mu.RUnlock()
	s.commitMu.RLock()
	defer s.commitMu.RUnlock()
	return s.viewHeld(fn)
}

// viewHeld runs fn with a reader of the store, with mu held.
func (s *Shard) viewHeld(fn func(r kv.Reader) error) error {
	if s.db == nil {
		return ErrClosed
	}
	return fn(s.reader())
}

// SetNotifier makes the shard hand n the keyspace events of its writes.
// Call it before the shard applies anything (before its Raft group
// starts).
func (s *Shard) SetNotifier(n Notifier) { s.notify = n }

// Close flushes the Pebble store's memtables (it has no WAL), leaves the
// key filter beside it for the next open (saveKeyFilter) and closes it. A
// failed store (Failure) is closed without a flush, and Close returns the
// failure.
func (s *Shard) Close() error {
	defer s.watch.Close()
	if f := s.fault(); f.get() != nil {
		return f.closeFailed(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.db != nil {
				s.db.Close() // the failure is the error
				s.db = nil
			}
		})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return nil
	}
	err := s.fault().flush(s.db)
	if err == nil {
		// Kept only if ready (saveKeyFilter).
		gen, _ := s.filter.readyGen()
		applied, _ := s.Applied()
		if serr := saveKeyFilter(s.fs, s.layout.KVDir(s.id), s.filter, gen, applied); serr != nil {
			// Reported, and the store still closes: the next open builds one.
			err = fmt.Errorf("storage: shard %d: keeping the key filter for the next open: %w", s.id, serr)
		}
	}
	err = errors.Join(err, s.db.Close())
	s.db = nil
	return err
}

// Apply applies one Raft entry (raft.FSM).
func (s *Shard) Apply(l *raft.Log) any {
	return s.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies Raft entries in one Pebble batch (raft.BatchingFSM).
// Each command entry's result is its []*messages.Reply; entries at or below
// the applied index are skipped (nil result).
//
// A store that fails as it applies them (a read of a damaged block, a
// failed commit) makes that its failure (Failure) and commits none of the
// batch: every entry's result is the failure, and a failed store applies
// nothing more, so its applied index stays where its data is. Raft counts
// the entries applied; the store is rebuilt from its group (corruption)
// or the node stops and replays them from the log at its next start. The
// process does not crash: the apply runs on Raft's goroutine, where a
// panic ended the node on the spot.
func (s *Shard) ApplyBatch(logs []*raft.Log) []any {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]any, len(logs))
	if s.db == nil {
		return fill(out, ErrClosed)
	}
	if err := s.fault().get(); err != nil {
		return fill(out, err)
	}
	b := s.db.NewIndexedBatch()
	defer b.Close()
	w := &applyRW{batch: pebbleRW{r: b, w: b}, store: s.reader(), writes: map[string][]byte{}}
	if c := s.counts.Load(); c != nil {
		w.counts, w.countsOK = *c, true
	}
	var ev *kv.EventLog
	if s.notify != nil {
		if want := s.notify.Wanted(); want.Fires() {
			ev = &kv.EventLog{Want: want}
		}
	}
	applied, _ := s.Applied()
	last, lastTerm := applied, uint64(0)
	var changed []changedBy // the commands that wrote, for Modified
	for i, l := range logs {
		if l.Index <= last {
			continue
		}
		last, lastTerm = l.Index, l.Term
		if l.Type != raft.LogCommand {
			continue
		}
		cmds, err := messages.DecodeCommandBatch(l.Data)
		if err != nil {
			out[i] = fmt.Errorf("storage: shard %d: entry %d: %w", s.id, l.Index, err)
			continue
		}
		replies := make([]*messages.Reply, len(cmds))
		for j, c := range cmds {
			keys, ranges := len(w.touched), len(w.touchedRanges)
			var err error
			if replies[j], err = s.execCommand(w, c, ev); err != nil {
				return fill(out, s.applyFailed(fmt.Errorf("entry %d: %w", l.Index, err)))
			}
			if len(w.touched) > keys || len(w.touchedRanges) > ranges {
				changed = append(changed, changedBy{c.Origin, keys, ranges})
			}
		}
		out[i] = replies
	}
	if last == applied {
		return out
	}
	s.filter.written(w.writes) // before the commit: never behind the store
	var rec [16]byte
	binary.BigEndian.PutUint64(rec[:], last)
	binary.BigEndian.PutUint64(rec[8:], lastTerm)
	err := b.Set(appliedKey, rec[:], nil)
	if err == nil && w.countsOK {
		err = b.Set(countsKey, w.counts.encode(last), nil)
	}
	s.commitMu.Lock()
	if err == nil {
		err = b.Commit(pebble.NoSync)
	}
	if err != nil {
		s.commitMu.Unlock()
		return fill(out, s.applyFailed(fmt.Errorf("commit of entries up to %d: %w", last, err)))
	}
	if w.countsChanged {
		c := w.counts
		s.counts.Store(&c)
	}
	s.cache.applied(w.writes, w.ranges)
	s.index.applied(w.writes, w.ranges)
	s.setApplied(last, lastTerm)
	s.commitMu.Unlock()
	s.watches.written(w.writes, w.ranges, false)
	if ev != nil && len(ev.Events) > 0 {
		s.notify.Fire(ev.Events)
	}
	if len(changed) > 0 && s.notify != nil && s.notify.Tracking() {
		s.notify.Modified(modifications(w, changed))
	}
	if gen, due := s.filter.rebuildDue(); due {
		go s.buildFilter(gen)
	}
	return out
}

// execCommand runs one command on the apply's batch, with the error a
// read or write of the store met (kv.StorageError: the batch may hold part
// of the command, and must not be committed).
func (s *Shard) execCommand(w *applyRW, c *messages.Command, ev *kv.EventLog) (reply *messages.Reply, err error) {
	defer func() {
		if p := recover(); p != nil {
			se, ok := p.(*kv.StorageError)
			if !ok {
				panic(p)
			}
			err = se.Err
		}
	}()
	return s.exec(w, c, ev), nil
}

// applyFailed makes err, met applying entries, the store's failure (the
// first one it has: a corruption Pebble reported already, with the
// file), and returns the failure.
func (s *Shard) applyFailed(err error) error {
	f := s.fault()
	if pebble.IsCorruptionError(err) {
		err = f.corruption(s.layout.KVDir(s.id), err)
	}
	f.report(fmt.Errorf("applying: %w", err))
	return f.get()
}

// fill sets every element of out to v and returns out.
func fill(out []any, v any) []any {
	for i := range out {
		out[i] = v
	}
	return out
}

// changedBy is a command that wrote: its origin, and where its writes
// start in the batch's touched keys and ranges.
type changedBy struct {
	origin       string
	keys, ranges int
}

// modifications is what each command in changed wrote: the keys its store
// keys belong to, or every key for a range of more than one key's fields
// (FLUSHALL's).
func modifications(w *applyRW, changed []changedBy) []kv.Modification {
	mods := make([]kv.Modification, len(changed))
	for i, c := range changed {
		keysEnd, rangesEnd := len(w.touched), len(w.touchedRanges)
		if i+1 < len(changed) {
			keysEnd, rangesEnd = changed[i+1].keys, changed[i+1].ranges
		}
		m := kv.Modification{Origin: c.origin}
		for _, sk := range w.touched[c.keys:keysEnd] {
			if k, ok := kv.UserKey(sk); ok {
				m.Keys = append(m.Keys, k)
			}
		}
		for _, r := range w.touchedRanges[c.ranges:rangesEnd] {
			if k, ok := kv.RangeKey(r[0], r[1]); ok {
				m.Keys = append(m.Keys, k)
			} else {
				m.All = true
			}
		}
		mods[i] = m
	}
	return mods
}

// reader reads the shard's committed state. Called with mu held.
func (s *Shard) reader() cachedReader {
	return cachedReader{pebbleRW{r: s.db}, s.cache, s.index, s.filter, &s.counts}
}

// loadCounts reads the counts db keeps at applied, its applied index, or
// counts its keys: a pass over them, once. Without counts DBSIZE passes
// over the keys.
func (s *Shard) loadCounts(db *pebble.DB, applied uint64) {
	c, _, err := readCounts(db, applied)
	if err != nil {
		s.counts.Store(nil)
		return
	}
	s.counts.Store(&c)
}

// filterChunk is how many keys a filter build reads under one hold of the
// shard's read lock.
const filterChunk = 10000

// buildFilter reads every key of the store into the key filter, a chunk
// at a time, and makes it ready, unless the filter is cleared (a restore,
// a rebuild) or the shard closed meanwhile. Keys written while it runs
// are added by the state machine.
func (s *Shard) buildFilter(gen uint64) {
	var after []byte
	found := 0
	for {
		keys, err := s.filterChunk(after)
		switch {
		case errors.Is(err, ErrClosed):
			return
		case err != nil:
			s.filter.finishBuild(gen, found, err) // not ready, and why
			return
		case !s.filter.addBuilt(gen, keys):
			return // cleared for a newer build
		}
		found += len(keys)
		if len(keys) < filterChunk {
			s.filter.finishBuild(gen, found, nil)
			return
		}
		after = keys[len(keys)-1]
	}
}

// filterChunk reads up to filterChunk keys after after (from the first
// with nil).
func (s *Shard) filterChunk(after []byte) ([][]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return nil, ErrClosed
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: after})
	if err != nil {
		return nil, err
	}
	var keys [][]byte
	for ok := it.First(); ok && len(keys) < filterChunk; ok = it.Next() {
		if after != nil && bytes.Equal(it.Key(), after) {
			continue
		}
		keys = append(keys, bytes.Clone(it.Key()))
	}
	return keys, errors.Join(it.Error(), it.Close())
}

// Snapshot captures the shard for Raft (raft.FSM). The checkpoint itself is
// taken in Persist; it may include entries applied after this call, which
// is safe because replaying them is a no-op.
func (s *Shard) Snapshot() (raft.FSMSnapshot, error) {
	return &shardSnapshot{s: s}, nil
}

type shardSnapshot struct{ s *Shard }

// Persist writes a Pebble checkpoint (hard links, O(files)) straight into a
// snapshot of our SnapshotStore; into any other sink it streams the files.
func (p *shardSnapshot) Persist(sink raft.SnapshotSink) error {
	if cs, ok := sink.(*snapshotSink); ok {
		if err := p.s.checkpoint(cs.ckptDir()); err != nil {
			sink.Cancel()
			return err
		}
		cs.checkpointed = true
		return sink.Close()
	}
	tmp, err := os.MkdirTemp(p.s.layout.ShardDir(p.s.id), sendStreamPrefix)
	if err != nil {
		sink.Cancel()
		return err
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "ckpt")
	if err := p.s.checkpoint(dir); err != nil {
		sink.Cancel()
		return err
	}
	r, _, err := newStreamReader(dir, "")
	if err == nil {
		_, err = io.Copy(sink, r)
		r.Close()
	}
	if err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (p *shardSnapshot) Release() {}

func (s *Shard) checkpoint(dir string) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return ErrClosed
	}
	gen, ready := s.filter.readyGen()
	// Flushing first puts everything applied so far into sstables, which
	// the checkpoint hard-links: it copies only Pebble's small files,
	// whatever the data. What is applied after the flush is not in it;
	// the applied index it holds says so.
	if err := s.fault().flush(s.db); err != nil {
		return fmt.Errorf("storage: shard %d: flush: %w", s.id, err)
	}
	if err := s.db.Checkpoint(dir); err != nil {
		return fmt.Errorf("storage: shard %d: checkpoint: %w", s.id, err)
	}
	// The key filter goes with it when it was ready before the checkpoint
	// and is not cleared since: it then holds every key the checkpoint
	// does. Otherwise the restore builds one.
	if !ready {
		return nil
	}
	if b, ok := s.filter.encode(gen); ok {
		if err := writeFSFileAtomic(s.fs, filepath.Join(dir, keyFilterFile), b); err != nil {
			return fmt.Errorf("storage: shard %d: checkpoint: key filter: %w", s.id, err)
		}
	}
	return nil
}

// Restore replaces the shard's data with a snapshot (raft.FSM). A snapshot
// of this node's store is restored from its directory (hard links); any
// other stream is first written out (on disk: the os package) and checked.
func (s *Shard) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	m, err := readStreamHeader(rc)
	if err != nil {
		return err
	}
	dir := m.Dir
	if dir == "" || s.snaps == nil || !s.snaps.owns(dir) {
		tmp, err := os.MkdirTemp(s.layout.ShardDir(s.id), restoreStreamPrefix)
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		if err := writeStreamFiles(rc, m, tmp); err != nil {
			return err
		}
		dir = tmp
	}
	return s.RestoreDir(dir)
}

// restoreStreamPrefix names the directories Restore writes a stream to,
// and sendStreamPrefix those a snapshot sent to another store is
// checkpointed into (Persist); a crash leaves them behind (and backups'
// checkpoints, backupPrefix), and the next open removes them.
const (
	restoreStreamPrefix = "restore-"
	sendStreamPrefix    = "snapshot-stream-"
)

// dropRestoreStreams removes the streams and checkpoints a crash left in
// shardDir.
func dropRestoreStreams(fs vfs.FS, shardDir string) error {
	names, err := fs.List(shardDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil // a new shard
	}
	if err != nil {
		return err
	}
	for _, name := range names {
		if strings.HasPrefix(name, restoreStreamPrefix) || strings.HasPrefix(name, sendStreamPrefix) || strings.HasPrefix(name, backupPrefix) {
			if err := fs.RemoveAll(fs.PathJoin(shardDir, name)); err != nil {
				return fmt.Errorf("storage: removing an interrupted restore's files: %w", err)
			}
		}
	}
	return nil
}

// RestoreDir replaces the shard's data with the checkpoint in dir,
// atomically: the new store is built beside the old one and renamed into
// place; a crash in between leaves one or the other (see recoverSwap).
func (s *Shard) RestoreDir(dir string) error {
	next := s.layout.KVDir(s.id) + ".next"
	s.fs.RemoveAll(next)
	// The filter the checkpoint carries, if any and intact; a damaged one
	// only costs a build.
	var carried *decodedFilter
	if b, err := readFSFile(s.fs, filepath.Join(dir, keyFilterFile)); err == nil {
		carried, _ = decodeKeyFilter(b)
	}
	if err := linkTree(s.fs, dir, next); err != nil {
		return fmt.Errorf("storage: shard %d: restore: %w", s.id, err)
	}
	return s.swapStore(next, carried, nil)
}

// Renew replaces the shard's store with an empty one, at applied index 0
// and with a fault of its own, as RestoreDir replaces it (a crash leaves
// one or the other): for a store that is damaged (ErrCorrupt) and whose
// group has other members to send the data back (the Raft actor's
// rebuild, which has stopped the group and dropped its log and
// snapshots first). Reads meanwhile see the old store, or the empty one.
func (s *Shard) Renew() error {
	next := s.layout.KVDir(s.id) + ".next"
	s.fs.RemoveAll(next)
	if err := mkdirAllSynced(s.fs, next); err != nil {
		return fmt.Errorf("storage: shard %d: renew: %w", s.id, err)
	}
	return s.swapStore(next, nil, s.newFault())
}

// swapStore marks next complete and puts it in place of the shard's store
// (swapIn), opens it, and tells the shard's caches, key filter (carried,
// if any, else one is built), watches and tracking clients that any key
// may have changed. With fresh, the new store reports to that fault
// (Renew): the old store's failure, and its close's error, stay with it,
// and Renewed is closed.
func (s *Shard) swapStore(next string, carried *decodedFilter, fresh *fault) error {
	kvDir := s.layout.KVDir(s.id)
	if err := writeFSFileAtomic(s.fs, filepath.Join(next, completeMarker), nil); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cache.reset()
	s.index.reset()
	gen := s.filter.reset() // not ready: every key may be present
	if s.db != nil {
		if err := s.db.Close(); err != nil && fresh == nil {
			return fmt.Errorf("storage: shard %d: close before restore: %w", s.id, err)
		}
		s.db = nil
	}
	if err := swapIn(s.fs, kvDir, next); err != nil {
		return fmt.Errorf("storage: shard %d: restore: %w", s.id, err)
	}
	f := s.fault()
	if fresh != nil {
		f = fresh
	}
	db, err := openPebble(s.fs, kvDir, f, s.shared)
	if err != nil {
		return err
	}
	s.db = db
	if fresh != nil {
		s.faults.Store(fresh)
		s.renewMu.Lock()
		close(s.renewed)
		s.renewed = make(chan struct{})
		s.renewMu.Unlock()
	}
	index, term, err := readApplied(db)
	s.setApplied(index, term)
	s.loadCounts(db, index)
	s.watches.written(nil, nil, true) // any key may have changed
	if s.notify != nil && s.notify.Tracking() {
		s.notify.Modified([]kv.Modification{{All: true}})
	}
	// Applies wait for mu: no write comes between the swap and the filter.
	if err == nil && carried != nil && s.filter.install(gen, carried) {
		return nil
	}
	go s.buildFilter(gen) // waits for mu
	return err
}

// Renewed is closed by the next Renew.
func (s *Shard) Renewed() <-chan struct{} {
	s.renewMu.Lock()
	defer s.renewMu.Unlock()
	return s.renewed
}

const completeMarker = "COPPICE-COMPLETE"

// swapIn replaces dir by next (which holds completeMarker), on fs.
func swapIn(fs vfs.FS, dir, next string) error {
	old := dir + ".old"
	if err := fs.RemoveAll(old); err != nil {
		return err
	}
	if _, err := fs.Stat(dir); err == nil {
		if err := fs.Rename(dir, old); err != nil {
			return err
		}
	}
	if err := fs.Rename(next, dir); err != nil {
		return err
	}
	if err := syncFSDir(fs, filepath.Dir(dir)); err != nil {
		return err
	}
	return dropSwapLeftovers(fs, dir)
}

// dropSwapLeftovers removes what a swap into dir leaves once dir is in
// place: the marker and the old store.
func dropSwapLeftovers(fs vfs.FS, dir string) error {
	if err := fs.Remove(filepath.Join(dir, completeMarker)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return fs.RemoveAll(dir + ".old")
}

// recoverSwap finishes or undoes a restore into dir that a crash cut
// short: a complete next replaces dir, an incomplete one is dropped, and
// a dir the crash left missing between the two renames is the old one.
func recoverSwap(fs vfs.FS, dir string) error {
	next, old := dir+".next", dir+".old"
	if _, err := fs.Stat(filepath.Join(next, completeMarker)); err == nil {
		return swapIn(fs, dir, next)
	}
	if err := fs.RemoveAll(next); err != nil {
		return err
	}
	if _, err := fs.Stat(dir); err != nil {
		if _, err := fs.Stat(old); err == nil {
			if err := fs.Rename(old, dir); err != nil {
				return err
			}
			return syncFSDir(fs, filepath.Dir(dir))
		}
		return nil
	}
	return dropSwapLeftovers(fs, dir)
}

// quietLogger drops Pebble's info logs and keeps its errors on stderr.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any) {}
func (quietLogger) Errorf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "pebble: "+format+"\n", args...)
}
func (quietLogger) Fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "pebble: "+format+"\n", args...)
	os.Exit(1)
}

// Checksum is a CRC-32C over every key and value of the shard's data (its
// applied index and key counts excluded), read from one consistent snapshot, with
// the applied index that snapshot is at. Two replicas at the same applied
// index must have the same checksum.
func (s *Shard) Checksum() (applied uint64, sum uint32, keys int, err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return 0, 0, 0, ErrClosed
	}
	snap := s.db.NewSnapshot()
	defer snap.Close()
	if v, closer, err := snap.Get(appliedKey); err == nil {
		if len(v) >= 8 {
			applied = binary.BigEndian.Uint64(v)
		}
		closer.Close()
	} else if !errors.Is(err, pebble.ErrNotFound) {
		return 0, 0, 0, err
	}
	h := crc32.New(castagnoli)
	var lenBuf [binary.MaxVarintLen64]byte
	err = pebbleRW{r: snap}.Scan(nil, nil, func(k, v []byte) bool {
		if bytes.Equal(k, appliedKey) || bytes.Equal(k, countsKey) {
			return true // not data: replicas may differ (counts are written from the first commit after they are counted)
		}
		keys++
		for _, b := range [][]byte{k, v} {
			h.Write(lenBuf[:binary.PutUvarint(lenBuf[:], uint64(len(b)))])
			h.Write(b)
		}
		return true
	})
	return applied, h.Sum32(), keys, err
}

// DataBytes is the disk space the shard's store uses: about what a
// checkpoint copy of it moves.
func (s *Shard) DataBytes() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return 0
	}
	return s.db.Metrics().DiskSpaceUsage()
}
