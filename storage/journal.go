package storage

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// journal is RaftLogs' write-ahead log: RaftLogs' Pebble database runs
// without its own WAL, and every write to it is first a record here (the
// Pebble batch's representation). A write that must be durable (an append,
// a stable value) waits for its record's sync; a sync writes and syncs
// every record appended until then, by whichever writer gets there first
// while the others wait for it (group commit in the caller's goroutine: one
// writer alone pays one write and one fdatasync, with no hand-off to a
// flushing goroutine as Pebble's own WAL makes).
//
// Files (<dir>/<number>.journal) are preallocated; a record is a 4-byte
// length, a CRC-32C of the data, and the data; a zero header ends a file
// (its unwritten tail), and so does a write a crash cut short in the
// newest file, while any other bad record is damage (replayJournal). When a
// file is full the next sync starts another, and the full one is retired:
// once every write recorded in it is in Pebble's memtable, Pebble is
// flushed (its tables are synced) and the file removed. Opening replays
// every file into Pebble in order (records are blind writes: replaying one
// already in Pebble changes nothing), flushes, and starts a new file.
type journal struct {
	fs   vfs.FS
	dir  string
	db   *pebble.DB
	size int64 // a file's preallocated size

	mu sync.Mutex
	// syncedCond is signalled when a sync ends (writers wait on it),
	// appliedCond when a write is in Pebble (the retirer waits on it):
	// apart, so every group's writes do not wake the writers waiting for a
	// sync.
	syncedCond, appliedCond *sync.Cond
	// buf holds the records appended and not yet written, the last of
	// them number appended; synced is the last one written and synced.
	buf, spare       []byte
	appended, synced uint64
	syncing          bool
	stats            RaftLogStats
	err              error
	// inflight are the records appended whose write is not yet in
	// Pebble: a file is retired only when none at or below its last is.
	inflight map[uint64]bool
	file     vfs.File // written only by the syncer
	num      uint64   // file's number
	off      int64    // bytes written to file
	retiring chan retiree
	closed   bool
	retired  chan struct{}
	fault    *fault // the store's: a failed write, sync or retirement is one
}

type retiree struct {
	num  uint64
	last uint64 // the last record in it
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

const journalHeader = 8

func journalName(dir string, num uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%06d.journal", num))
}

// journalFiles lists the numbers of dir's journal files, in order.
func journalFiles(fs vfs.FS, dir string) ([]uint64, error) {
	names, err := fs.List(dir)
	if err != nil {
		return nil, err
	}
	var nums []uint64
	for _, file := range names {
		name, ok := strings.CutSuffix(file, ".journal")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(name, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("storage: journal: unexpected file %s", file)
		}
		nums = append(nums, n)
	}
	slices.Sort(nums)
	return nums, nil
}

// openJournal replays dir's journal into db, flushes db, removes the
// replayed files and starts a new one.
func openJournal(fs vfs.FS, dir string, db *pebble.DB, size int64, f *fault) (*journal, error) {
	if err := mkdirAllSynced(fs, dir); err != nil {
		return nil, err
	}
	nums, err := journalFiles(fs, dir)
	if err != nil {
		return nil, err
	}
	for i, n := range nums {
		if err := replayJournal(fs, journalName(dir, n), db, i == len(nums)-1, size, f); err != nil {
			return nil, err
		}
	}
	if len(nums) > 0 {
		if err := f.flush(db); err != nil {
			return nil, fmt.Errorf("storage: journal: flush after replay: %w", err)
		}
		for _, n := range nums {
			if err := removeInOrder(fs, journalName(dir, n)); err != nil {
				return nil, err
			}
		}
	}
	j := &journal{fs: fs, dir: dir, db: db, size: size, inflight: map[uint64]bool{}, fault: f,
		retiring: make(chan retiree, 64), retired: make(chan struct{})}
	j.syncedCond, j.appliedCond = sync.NewCond(&j.mu), sync.NewCond(&j.mu)
	next := uint64(1)
	if len(nums) > 0 {
		next = nums[len(nums)-1] + 1
	}
	if err := j.create(next, size); err != nil {
		return nil, err
	}
	go j.retire()
	return j, nil
}

// replayJournal applies the records of one journal file to db. It reads
// the file as it goes and stops at the first record that is not whole: a
// file is preallocated (journalSize), and reading all of it cost a restart
// 750 ms with a few KiB written.
//
// In an older file than the newest such a record is damage (bit rot): the
// writes after it, in that file and the next, were synced and
// acknowledged, and replaying on without them would leave a hole in a
// group's log or lose a vote; so it is ErrCorrupt, and the store does not
// open. In the newest file it is either the write a crash cut short
// (never acknowledged) or damage to a synced one; torn tells them apart.
// A file's unwritten tail (zeros: the next write did not fit) ends it
// either way. fileSize is the size files are preallocated to; fa is the
// store's fault, whose advice a damage error carries.
func replayJournal(fs vfs.FS, name string, db *pebble.DB, newest bool, fileSize int64, fa *fault) error {
	f, err := fs.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	r := bufio.NewReaderSize(f, 1<<20)
	var h [journalHeader]byte
	// A write can run past the end of a file that was not preallocated
	// (a file system without fallocate): a crash may then cut it there.
	preallocated := st.Size() >= fileSize
	for off, size := int64(0), st.Size(); ; {
		if _, err := io.ReadFull(r, h[:]); err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return nil
			}
			return fmt.Errorf("storage: journal %s: record at %d: %w", name, off, err)
		}
		n := int64(binary.LittleEndian.Uint32(h[:]))
		sum := binary.LittleEndian.Uint32(h[4:])
		if n == 0 && sum == 0 {
			return nil // the unwritten tail
		}
		if n == 0 || n > size-off-journalHeader {
			if newest && (torn(h[:], off) || n != 0 && !preallocated) {
				return nil // a write cut short
			}
			return fa.corruption(name, fmt.Errorf("record at %d: header promises %d bytes, %d left in the file%s", off, n, size-off-journalHeader, notTorn(newest)))
		}
		// The record's own buffer: SetRepr makes it the batch's, which
		// Close hands to Pebble's batch pool (shared by every Pebble in
		// the process).
		rec := make([]byte, n)
		if _, err := io.ReadFull(r, rec); err != nil {
			return fmt.Errorf("storage: journal %s: record at %d: %w", name, off, err)
		}
		if got := crc32.Checksum(rec, crcTable); got != sum {
			if newest && torn(append(h[:], rec...), off) {
				return nil // a write cut short
			}
			return fa.corruption(name, fmt.Errorf("record at %d: crc32c checksum mismatch %x != %x%s", off, got, sum, notTorn(newest)))
		}
		b := db.NewBatch()
		err := b.SetRepr(rec)
		if err == nil {
			err = b.Commit(pebble.NoSync)
		}
		b.Close()
		if err != nil {
			return fmt.Errorf("storage: journal %s: record at %d: %w", name, off, err)
		}
		off += journalHeader + n
	}
}

// tornSector is the smallest unit a disk writes whole.
const tornSector = 512

// torn says whether rec, a bad record at off in the newest journal file
// (its header and as much of its data as the file holds), is a write a
// crash cut short rather than damage to a synced one (etcd's WAL tells
// them apart the same way). The file was preallocated with zeros and never
// written past the last write, and one write is in flight at a time, so a
// crash leaves each sector of the last write either written or zero: a cut
// record has a part in some sector that is all zeros. Rot in a synced
// record changes bits and leaves no such part; a record so damaged fails
// the open instead of silently ending the replay before acknowledged
// writes. Two kinds of damage still pass for a cut write: in a record
// whose data holds a sector's worth of zeros, and in a length that grew
// but still ends within the file (the zeros after the last write are then
// part of the record).
func torn(rec []byte, off int64) bool {
	for len(rec) > 0 {
		k := min(len(rec), tornSector-int(off%tornSector))
		if allZero(rec[:k]) {
			return true
		}
		rec, off = rec[k:], off+int64(k)
	}
	return false
}

// notTorn explains, for the newest file, why a bad record is damage.
func notTorn(newest bool) string {
	if newest {
		return " (no part of it unwritten: damage, not a write a crash cut short)"
	}
	return ""
}

// create starts journal file num, preallocated to size bytes, and syncs
// the directory.
func (j *journal) create(num uint64, size int64) error {
	name := journalName(j.dir, num)
	if _, err := j.fs.Stat(name); err == nil {
		return fmt.Errorf("%s already exists", name)
	}
	f, err := j.fs.Create(name, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	if err := preallocate(f, size); err != nil {
		f.Close()
		return fmt.Errorf("preallocate %s: %w", name, err)
	}
	if err := errors.Join(f.Sync(), syncFSDir(j.fs, j.dir)); err != nil {
		f.Close()
		return err
	}
	j.file, j.num, j.off = f, num, 0
	return nil
}

// add appends the record of a write about to be applied to Pebble and
// returns its number; the caller calls done with it once applied.
func (j *journal) add(rec []byte) (uint64, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err != nil {
		return 0, j.err
	}
	var h [journalHeader]byte
	binary.LittleEndian.PutUint32(h[:], uint32(len(rec)))
	binary.LittleEndian.PutUint32(h[4:], crc32.Checksum(rec, crcTable))
	j.buf = append(append(j.buf, h[:]...), rec...)
	j.appended++
	j.inflight[j.appended] = true
	return j.appended, nil
}

// done reports that record seq's write is in Pebble.
func (j *journal) done(seq uint64) {
	j.mu.Lock()
	delete(j.inflight, seq)
	j.appliedCond.Broadcast()
	j.mu.Unlock()
}

// sync returns once record seq is written and synced: it writes and
// syncs what is appended itself, or waits for the writer doing it.
func (j *journal) sync(seq uint64) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	for j.synced < seq {
		if j.err != nil {
			return j.err
		}
		if j.syncing {
			j.syncedCond.Wait()
			continue
		}
		j.syncing = true
		buf, upto := j.buf, j.appended
		j.buf = j.spare[:0]
		j.mu.Unlock()
		start := time.Now()
		err := j.write(buf)
		took := time.Since(start)
		j.mu.Lock()
		if cap(buf) <= 4<<20 {
			j.spare = buf[:0] // a large record's buffer is not kept
		}
		j.syncing = false
		if err != nil {
			j.err = fmt.Errorf("storage: journal: %w", err)
			j.fault.report(fmt.Errorf("journal: %w", err))
		} else {
			j.stats.count(upto-j.synced, len(buf), took)
			j.synced = upto
		}
		j.syncedCond.Broadcast()
	}
	return nil
}

// write writes buf to the current file, or to a new one when it does not
// fit (the full one is retired), and syncs it. Only the syncer calls it.
func (j *journal) write(buf []byte) error {
	if len(buf) == 0 {
		return nil
	}
	if j.off+int64(len(buf)) > j.size && (j.off > 0 || int64(len(buf)) > j.size) {
		old, last := j.file, j.synced
		if err := j.create(j.num+1, max(j.size, int64(len(buf)))); err != nil {
			return err
		}
		if err := old.Close(); err != nil {
			return err
		}
		j.retiring <- retiree{num: j.num - 1, last: last}
	}
	if _, err := j.file.WriteAt(buf, j.off); err != nil {
		return err
	}
	if err := j.file.SyncData(); err != nil {
		return err
	}
	j.off += int64(len(buf))
	return nil
}

// retire removes full files once Pebble holds their writes durably.
func (j *journal) retire() {
	defer close(j.retired)
	for r := range j.retiring {
		j.mu.Lock()
		for j.pendingUpTo(r.last) && !j.closed {
			j.appliedCond.Wait()
		}
		closed := j.closed
		j.mu.Unlock()
		if closed {
			continue // replayed at the next open
		}
		err := j.fault.flush(j.db)
		if err == nil {
			err = removeInOrder(j.fs, journalName(j.dir, r.num))
		}
		if err != nil {
			j.fault.report(fmt.Errorf("journal: retiring file %d: %w", r.num, err))
			j.mu.Lock()
			if j.err == nil {
				j.err = fmt.Errorf("storage: journal: retiring file %d: %w", r.num, err)
			}
			j.mu.Unlock()
		}
	}
}

// removeInOrder removes a journal file and syncs its directory before the
// next is removed, so that after a crash the files left are always the
// newest ones, never an old file without the newer ones that follow it
// (replaying an old record without the later ones could bring back an
// entry deleted since).
func removeInOrder(fs vfs.FS, name string) error {
	if err := fs.Remove(name); err != nil {
		return err
	}
	return syncFSDir(fs, filepath.Dir(name))
}

// RaftLogStats counts what RaftLogs' journal made durable since the store
// opened: /metrics exports it.
type RaftLogStats struct {
	// Syncs are the journal's writes, each followed by an fdatasync;
	// Records the writes (appends, stable values) they made durable:
	// Records/Syncs is how many the group commit put in each.
	Syncs, Records, Bytes uint64
	// SyncSeconds is the time spent in them (write and fdatasync), and
	// SyncBuckets[i] how many took at most SyncBucketBounds[i] seconds
	// (the last: any time).
	SyncSeconds float64
	SyncBuckets [len(SyncBucketBounds) + 1]uint64
}

// SyncBucketBounds are the upper bounds (seconds) of RaftLogStats'
// latency buckets.
var SyncBucketBounds = [...]float64{50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 100e-3, 1}

func (s *RaftLogStats) count(records uint64, bytes int, took time.Duration) {
	s.Syncs++
	s.Records += records
	s.Bytes += uint64(bytes)
	sec := took.Seconds()
	s.SyncSeconds += sec
	s.SyncBuckets[sort.SearchFloat64s(SyncBucketBounds[:], sec)]++
}

// pendingUpTo tells whether a record at or below last is not yet in
// Pebble. j.mu held.
func (j *journal) pendingUpTo(last uint64) bool {
	for s := range j.inflight {
		if s <= last {
			return true
		}
	}
	return false
}

// close syncs what is appended and closes the file. When every record is
// in Pebble, it flushes Pebble and removes the journal's files, so the
// next open has nothing to replay; otherwise (a failure) the files left
// are replayed then.
func (j *journal) close() error {
	err := j.sync(j.lastAppended())
	j.mu.Lock()
	for j.syncing {
		j.syncedCond.Wait()
	}
	j.closed = true
	clean := j.err == nil && len(j.inflight) == 0
	if j.err == nil {
		j.err = errLogClosed
	}
	j.syncedCond.Broadcast()
	j.appliedCond.Broadcast()
	j.mu.Unlock()
	close(j.retiring)
	<-j.retired
	err = errors.Join(err, j.file.Close())
	if err != nil || !clean {
		return err
	}
	if err := j.fault.flush(j.db); err != nil {
		return fmt.Errorf("storage: journal: flush at close: %w", err)
	}
	nums, err := journalFiles(j.fs, j.dir)
	for _, n := range nums {
		if err == nil {
			err = removeInOrder(j.fs, journalName(j.dir, n))
		}
	}
	if err != nil {
		return fmt.Errorf("storage: journal: retiring at close: %w", err)
	}
	return nil
}

func (j *journal) lastAppended() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.appended
}
