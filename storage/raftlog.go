package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
)

// RaftLogs is a node's Raft log and stable store: one Pebble database
// (<data>/raftlog/db) that holds every group's log and stable values (each
// shard's and the system group's), each group under a key prefix of its
// own, behind one write-ahead journal (<data>/raftlog/journal, journal.go).
//
// One store for all groups, not one per group, because an acknowledged
// write must be fsynced, and the fsyncs were a standalone node's largest
// cost: with a raft-wal per shard, 4 shards fsynced 4 files per round, and
// 50 clients wrote 26k SET/s where 1 shard wrote 45k and 4 shards without
// fsync 62k (docs/storage.md). The journal gives every group's concurrent
// StoreLogs one write and one fdatasync (group commit); Pebble indexes the
// entries and drops compacted ones by range deletion, so an idle group
// never pins the space of busy ones. The journal, not Pebble's own WAL:
// Pebble hands each sync to a flushing goroutine and back, which cost one
// client 50 us per write (docs/storage.md).
type RaftLogs struct {
	db    *pebble.DB
	j     *journal
	fault *fault
	watch io.Closer // stops the watch of Pebble's file system for stalls
	// fs, dbDir and tableOpts read the store's tables on their own
	// (Scrub).
	fs        vfs.FS
	dbDir     string
	tableOpts sstable.ReaderOptions

	mu         sync.Mutex
	open       map[uint32]bool
	closed     bool // Close was called: Scrub reads no more of the db
	cacheBytes int  // each group's log cache's bound (SplitLogCache)
}

// SystemGroup is the system Raft group's id in RaftLogs; shard i's is i.
const SystemGroup = ^uint32(0)

// Key kinds: a log entry ('l', group, index) or a stable value ('s',
// group, key).
const (
	kindLog    = 'l'
	kindStable = 's'
)

// journalSize is a journal file's preallocated size.
const journalSize = 64 << 20

// raftLogMemTable is the log store's memtable size.
const raftLogMemTable = 32 << 20

// OpenRaftLogs opens (or creates) the node's Raft log store in dir,
// replaying its journal.
func OpenRaftLogs(dir string) (*RaftLogs, error) {
	return openRaftLogs(vfs.Default, dir, journalSize)
}

// openRaftLogs opens the store in dir of fs (tests: an in-memory one that
// can lose what was not synced, as a power cut does).
func openRaftLogs(fs vfs.FS, dir string, journalSize int64) (*RaftLogs, error) {
	dbDir := filepath.Join(dir, "db")
	if err := mkdirAllSynced(fs, dbDir); err != nil {
		return nil, err
	}
	f := newFault("raft log at " + dir)
	f.advice = raftLogDamage
	// Pebble and the journal write through one watch for stalls.
	fs, watch := f.watchStalls(fs)
	opts := &pebble.Options{
		FS:            fs,
		Logger:        quietLogger{},
		EventListener: f.listener(),
		// Entries are deleted soon after they are applied everywhere (a
		// snapshot compacts them): most never leave the memtable's
		// flush for a compaction.
		MemTableSize: raftLogMemTable,
		CacheSize:    cacheFor(ownBlockCache, raftLogMemTable),
		// The journal is the write-ahead log.
		DisableWAL: true,
	}
	opts.EnsureDefaults()
	db, err := openChecked(fs, dbDir, opts)
	if err != nil {
		watch.Close()
		if pebble.IsCorruptionError(err) {
			// As damage a read meets: the node rebuilds the store.
			return nil, f.corruption(dbDir, err)
		}
		return nil, fmt.Errorf("storage: raft log %s: %w", dir, err)
	}
	j, err := openJournal(fs, filepath.Join(dir, "journal"), db, journalSize, f)
	if err != nil {
		db.Close()
		watch.Close()
		return nil, fmt.Errorf("storage: raft log %s: %w", dir, err)
	}
	return &RaftLogs{db: db, j: j, fault: f, watch: watch, fs: fs, dbDir: dbDir, tableOpts: opts.MakeReaderOptions(),
		open: map[uint32]bool{}, cacheBytes: MaxLogCache}, nil
}

// Close closes the store; every group's LogStore must be closed first.
func (r *RaftLogs) Close() error {
	r.mu.Lock()
	n := len(r.open)
	r.closed = n == 0
	r.mu.Unlock()
	if n > 0 {
		return fmt.Errorf("storage: raft log: closed with %d groups open", n)
	}
	defer r.watch.Close()
	return errors.Join(r.j.close(), r.db.Close())
}

// Stats returns the journal's counters.
func (r *RaftLogs) Stats() RaftLogStats {
	r.j.mu.Lock()
	defer r.j.mu.Unlock()
	return r.j.stats
}

// Group opens group id's LogStore; one at a time per group. legacy names
// the raft-wal directory an earlier coppice kept the group's log in: when
// it exists, its entries and stable values are moved into the store (a
// crash half-way moves them again) and it is removed.
func (r *RaftLogs) Group(id uint32, legacy string) (LogStore, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.open[id] {
		return nil, fmt.Errorf("storage: raft log of group %d is already open", id)
	}
	g := &groupLog{db: r.db, j: r.j, id: id}
	if err := g.importLegacy(legacy); err != nil {
		return nil, fmt.Errorf("storage: raft log of group %d: moving %s: %w", id, legacy, err)
	}
	if err := g.load(); err != nil {
		return nil, fmt.Errorf("storage: raft log of group %d: %w", id, err)
	}
	g.release = func() {
		r.mu.Lock()
		delete(r.open, id)
		r.mu.Unlock()
	}
	r.open[id] = true
	return &groupStore{groupLog: g, cache: newLogCache(g, logCacheEntries, r.cacheBytes)}, nil
}

// A LogStore keeps its latest entries in memory (logCache): at most
// logCacheEntries of them, and a share of the node's budget of their
// bytes (SplitLogCache), between MinLogCache and MaxLogCache.
const (
	logCacheEntries = 1024
	// DefaultLogCache is the node's budget: 4 shards' and the system
	// group's caches of 12.8 MiB.
	DefaultLogCache = 64 << 20
	MaxLogCache     = 16 << 20
	MinLogCache     = 256 << 10
)

// SplitLogCache bounds the log caches of the groups opened from now on to
// an even share of total bytes (0: DefaultLogCache) over groups. The cache
// serves a new entry's reads (each follower's replication, the apply): a
// group's share need only hold what its followers and state machine have
// yet to read, where a fixed 16 MiB a group let a node of 256 shards hold
// 4 GiB of its log in memory.
func (r *RaftLogs) SplitLogCache(total int64, groups int) {
	if total <= 0 {
		total = DefaultLogCache
	}
	r.mu.Lock()
	r.cacheBytes = int(min(max(total/int64(max(groups, 1)), MinLogCache), MaxLogCache))
	r.mu.Unlock()
}

// groupStore is a group's LogStore: its log in RaftLogs with a logCache in
// front.
type groupStore struct {
	*groupLog
	cache *logCache
}

// groupStore reads ranges in one pass (the cache's, then Pebble's).
var _ raft.LogScanner = (*groupStore)(nil)

func (s *groupStore) GetLog(index uint64, log *raft.Log) error { return s.cache.GetLog(index, log) }
func (s *groupStore) StoreLog(l *raft.Log) error               { return s.cache.StoreLog(l) }
func (s *groupStore) StoreLogs(ls []*raft.Log) error           { return s.cache.StoreLogs(ls) }
func (s *groupStore) DeleteRange(min, max uint64) error        { return s.cache.DeleteRange(min, max) }
func (s *groupStore) ScanLogs(from, to uint64, fn func(*raft.Log) error) error {
	return s.cache.ScanLogs(from, to, fn)
}

// groupLog is one group's part of RaftLogs.
type groupLog struct {
	db      *pebble.DB
	j       *journal
	id      uint32
	release func()
	closed  atomic.Bool

	// first and last are the group's first and last index, 0 and 0 when
	// its log is empty. Raft appends from one goroutine and may delete
	// the head from another (a snapshot's compaction): mu guards them,
	// never across a commit.
	mu          sync.RWMutex
	first, last uint64
}

var errLogClosed = errors.New("storage: raft log is closed")

func (g *groupLog) prefix(kind byte) []byte {
	k := make([]byte, 5, 13)
	k[0] = kind
	binary.BigEndian.PutUint32(k[1:], g.id)
	return k
}

func (g *groupLog) logKey(index uint64) []byte {
	return binary.BigEndian.AppendUint64(g.prefix(kindLog), index)
}

// bounds returns the key range [lo, hi) of the group's keys of kind: hi
// is lo, a 5-byte big-endian number, plus one.
func (g *groupLog) bounds(kind byte) (lo, hi []byte) {
	lo, hi = g.prefix(kind), g.prefix(kind)
	for i := len(hi) - 1; i >= 0; i-- {
		if hi[i]++; hi[i] != 0 {
			break
		}
	}
	return lo, hi
}

// load reads the group's first and last index.
func (g *groupLog) load() error {
	lo, hi := g.bounds(kindLog)
	it, err := g.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	if it.First() {
		g.first = binary.BigEndian.Uint64(it.Key()[5:])
		it.Last()
		g.last = binary.BigEndian.Uint64(it.Key()[5:])
	}
	return errors.Join(it.Error(), it.Close())
}

func (g *groupLog) IsMonotonic() bool { return true }

// span returns the group's first and last index, or errLogClosed once
// the group is closed.
func (g *groupLog) span() (first, last uint64, err error) {
	if g.closed.Load() {
		return 0, 0, errLogClosed
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.first, g.last, nil
}

func (g *groupLog) FirstIndex() (uint64, error) {
	first, _, err := g.span()
	return first, err
}

func (g *groupLog) LastIndex() (uint64, error) {
	_, last, err := g.span()
	return last, err
}

func (g *groupLog) GetLog(index uint64, log *raft.Log) error {
	first, last, err := g.span()
	if err != nil {
		return err
	}
	if first == 0 || index < first || index > last {
		return raft.ErrLogNotFound
	}
	v, closer, err := g.db.Get(g.logKey(index))
	if errors.Is(err, pebble.ErrNotFound) {
		return raft.ErrLogNotFound
	}
	if err != nil {
		return g.readFailed(err)
	}
	defer closer.Close()
	if err := decodeLog(v, log); err != nil {
		return g.readFailed(fmt.Errorf("storage: raft log of group %d, entry %d: %w", g.id, index, err))
	}
	log.Index = index
	return nil
}

// readFailed makes err, a read of the group's log that failed (not an
// entry it does not hold), the store's failure, and returns it: Raft
// cannot go on without its log (the fork shuts the group down), and the
// node stops in order, as on a failed write. On-disk corruption is
// reported so already (fault.corrupt), with what to do about it.
func (g *groupLog) readFailed(err error) error {
	if !g.closed.Load() {
		g.j.fault.report(err)
	}
	return err
}

// ScanLogs calls fn with each entry from..to (raft.LogScanner), read by
// one Pebble iterator: GetLog seeks from the top of the LSM tree for each
// entry, which made a restarted node's scan of its log for the Raft
// configuration, and its replay of what the shard's store lost, cost
// about 10 us an entry (docs/storage.md).
func (g *groupLog) ScanLogs(from, to uint64, fn func(*raft.Log) error) error {
	first, last, err := g.span()
	switch {
	case err != nil:
		return err
	case from > to:
		return nil
	case first == 0 || from < first || to > last:
		return raft.ErrLogNotFound
	}
	it, err := g.db.NewIter(&pebble.IterOptions{LowerBound: g.logKey(from), UpperBound: g.logKey(to + 1)})
	if err != nil {
		return g.readFailed(err)
	}
	next := from
	var fnErr error
	for ok := it.First(); ok; ok = it.Next() {
		index := binary.BigEndian.Uint64(it.Key()[5:])
		if index != next {
			break // a hole: a head compacted away meanwhile
		}
		l := new(raft.Log)
		if err = decodeLog(it.Value(), l); err != nil {
			err = fmt.Errorf("storage: raft log of group %d, entry %d: %w", g.id, index, err)
			break
		}
		l.Index = index
		if fnErr = fn(l); fnErr != nil {
			break
		}
		next++
	}
	if err := errors.Join(err, it.Error(), it.Close()); err != nil {
		return g.readFailed(err)
	}
	if fnErr != nil {
		return fnErr
	}
	if next <= to {
		return raft.ErrLogNotFound
	}
	return nil
}

func (g *groupLog) StoreLog(l *raft.Log) error { return g.StoreLogs([]*raft.Log{l}) }

// StoreLogs appends logs, which must follow the last entry (or start
// anywhere in an empty log) and one another, and syncs them to disk.
func (g *groupLog) StoreLogs(logs []*raft.Log) error {
	_, last, err := g.span()
	if err != nil || len(logs) == 0 {
		return err
	}
	if last != 0 && logs[0].Index != last+1 {
		return fmt.Errorf("storage: raft log of group %d: entry %d does not follow the last, %d", g.id, logs[0].Index, last)
	}
	b := g.db.NewBatch()
	defer b.Close()
	var buf []byte
	for i, l := range logs {
		if i > 0 && l.Index != logs[i-1].Index+1 {
			return fmt.Errorf("storage: raft log of group %d: entry %d follows %d", g.id, l.Index, logs[i-1].Index)
		}
		buf = encodeLog(buf[:0], l)
		if err := b.Set(g.logKey(l.Index), buf, nil); err != nil {
			return err
		}
	}
	if err := g.write(b, true); err != nil {
		return err
	}
	g.mu.Lock()
	if g.first == 0 {
		g.first = logs[0].Index
	}
	g.last = logs[len(logs)-1].Index
	g.mu.Unlock()
	return nil
}

// DeleteRange deletes the entries min..max, a head or a tail of the log
// (Raft deletes nothing else). It does not wait for a sync: a head deleted
// again after a crash is a compaction to redo, and a tail is deleted only
// before an append, whose sync covers it (its record comes first in the
// journal).
func (g *groupLog) DeleteRange(min, max uint64) error { return g.deleteRange(min, max, false) }

// deleteRange is DeleteRange, waiting for a sync when durable.
func (g *groupLog) deleteRange(min, max uint64, durable bool) error {
	first, last, err := g.span()
	if err != nil {
		return err
	}
	if first == 0 || max < first || min > last || min > max {
		return nil
	}
	if min > first && max < last {
		return fmt.Errorf("storage: raft log of group %d: deleting %d..%d would leave a hole in %d..%d", g.id, min, max, first, last)
	}
	b := g.db.NewBatch()
	defer b.Close()
	if err := b.DeleteRange(g.logKey(min), g.logKey(max+1), nil); err != nil {
		return err
	}
	if err := g.write(b, durable); err != nil {
		return err
	}
	g.mu.Lock()
	switch {
	case min <= g.first && max >= g.last:
		g.first, g.last = 0, 0
	case min <= g.first:
		g.first = max + 1
	default:
		g.last = min - 1
	}
	g.mu.Unlock()
	return nil
}

// DropAll deletes every entry of the group's log, durably; its stable
// values (term, vote) stay. For a group whose state machine store is
// renewed (the Raft actor's rebuild): once the store is empty, no entry
// of the old log may be applied over it.
func (s *groupStore) DropAll() error {
	if s.closed.Load() {
		return errLogClosed
	}
	first, last, err := s.span()
	if err != nil || first == 0 {
		return err
	}
	s.cache.mu.Lock()
	s.cache.reset()
	s.cache.mu.Unlock()
	return s.deleteRange(first, last, true)
}

func (g *groupLog) stableKey(key []byte) []byte { return append(g.prefix(kindStable), key...) }

// Set stores a stable value (Raft's term and vote), synced.
func (g *groupLog) Set(key, val []byte) error {
	if g.closed.Load() {
		return errLogClosed
	}
	b := g.db.NewBatch()
	defer b.Close()
	if err := b.Set(g.stableKey(key), val, nil); err != nil {
		return err
	}
	return g.write(b, true)
}

// write records b in the journal, waits for its sync when durable, and
// applies it to Pebble.
func (g *groupLog) write(b *pebble.Batch, durable bool) error {
	seq, err := g.j.add(b.Repr())
	if err != nil {
		return err
	}
	defer g.j.done(seq)
	if durable {
		if err := g.j.sync(seq); err != nil {
			return err
		}
	}
	return b.Commit(pebble.NoSync)
}

// Get returns a stable value, empty when it was never set.
func (g *groupLog) Get(key []byte) ([]byte, error) {
	if g.closed.Load() {
		return nil, errLogClosed
	}
	v, closer, err := g.db.Get(g.stableKey(key))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	return append([]byte(nil), v...), nil
}

func (g *groupLog) SetUint64(key []byte, val uint64) error {
	return g.Set(key, binary.LittleEndian.AppendUint64(nil, val))
}

// GetUint64 returns a value SetUint64 stored, 0 when it was never set.
func (g *groupLog) GetUint64(key []byte) (uint64, error) {
	v, err := g.Get(key)
	switch {
	case err != nil:
		return 0, err
	case len(v) == 0:
		return 0, nil
	case len(v) != 8:
		return 0, fmt.Errorf("storage: raft log of group %d: stable value %q is %d bytes, want 8", g.id, key, len(v))
	}
	return binary.LittleEndian.Uint64(v), nil
}

// Close closes the group's view; the store stays open for other groups
// and for the group's next Group.
func (g *groupLog) Close() error {
	if g.closed.Swap(true) {
		return nil
	}
	g.release()
	return nil
}

// stableKeys are the stable values hashicorp/raft keeps (its term and
// vote): what importLegacy moves.
var stableKeys = []string{"CurrentTerm", "LastVoteTerm", "LastVoteCand"}

// importLegacy moves a raft-wal directory's log and stable values into
// the group, replacing whatever the group held, then removes the
// directory. Nothing to do when dir does not exist.
func (g *groupLog) importLegacy(dir string) error {
	if dir == "" {
		return nil
	}
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	meta := &metadb.BoltMetaDB{}
	w, err := wal.Open(dir, wal.WithMetaStore(meta))
	if err != nil {
		meta.Close()
		return err
	}
	err = g.copyFrom(w)
	if cerr := errors.Join(w.Close(), meta.Close()); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.RemoveAll(dir)
}

// importBatchBytes bounds a batch of importLegacy.
const importBatchBytes = 4 << 20

func (g *groupLog) copyFrom(w *wal.WAL) error {
	b := g.db.NewBatch()
	defer func() { b.Close() }()
	for _, kind := range []byte{kindLog, kindStable} {
		lo, hi := g.bounds(kind)
		if err := b.DeleteRange(lo, hi, nil); err != nil {
			return err
		}
	}
	for _, k := range stableKeys {
		v, err := w.Get([]byte(k))
		if err != nil {
			return err
		}
		if len(v) > 0 {
			if err := b.Set(g.stableKey([]byte(k)), v, nil); err != nil {
				return err
			}
		}
	}
	first, err := w.FirstIndex()
	if err != nil {
		return err
	}
	last, err := w.LastIndex()
	if err != nil {
		return err
	}
	var buf []byte
	for i := first; first > 0 && i <= last; i++ {
		var l raft.Log
		if err := w.GetLog(i, &l); err != nil {
			return fmt.Errorf("entry %d of %d..%d: %w", i, first, last, err)
		}
		buf = encodeLog(buf[:0], &l)
		if err := b.Set(g.logKey(i), buf, nil); err != nil {
			return err
		}
		if b.Len() >= importBatchBytes {
			if err := g.write(b, false); err != nil {
				return err
			}
			b.Close()
			b = g.db.NewBatch()
		}
	}
	// Through the journal as any write: the last batch's sync makes the
	// whole move durable before the raft-wal directory is removed.
	return g.write(b, true)
}

// logVersion is the first byte of an encoded entry.
const logVersion = 1

// encodeLog appends l (all but its index, which is in the key) to buf.
func encodeLog(buf []byte, l *raft.Log) []byte {
	buf = append(buf, logVersion, byte(l.Type))
	buf = binary.AppendUvarint(buf, l.Term)
	var at int64
	if !l.AppendedAt.IsZero() {
		at = l.AppendedAt.UnixNano()
	}
	buf = binary.AppendVarint(buf, at)
	buf = binary.AppendUvarint(buf, uint64(len(l.Data)))
	buf = append(buf, l.Data...)
	return append(buf, l.Extensions...)
}

var errBadEntry = errors.New("malformed entry")

// decodeLog decodes an entry encodeLog wrote into l (not its index); l's
// data is a copy.
func decodeLog(v []byte, l *raft.Log) error {
	if len(v) < 2 || v[0] != logVersion {
		return errBadEntry
	}
	l.Type = raft.LogType(v[1])
	v = v[2:]
	term, n := binary.Uvarint(v)
	if n <= 0 {
		return errBadEntry
	}
	v = v[n:]
	at, n := binary.Varint(v)
	if n <= 0 {
		return errBadEntry
	}
	v = v[n:]
	size, n := binary.Uvarint(v)
	if n <= 0 || size > uint64(len(v)-n) {
		return errBadEntry
	}
	v = v[n:]
	l.Term = term
	l.AppendedAt = time.Time{}
	if at != 0 {
		l.AppendedAt = time.Unix(0, at)
	}
	l.Data, l.Extensions = nil, nil
	if size > 0 {
		l.Data = append([]byte(nil), v[:size]...)
	}
	if rest := v[size:]; len(rest) > 0 {
		l.Extensions = append([]byte(nil), rest...)
	}
	return nil
}
