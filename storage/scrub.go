package storage

// Scrubbing: every table of a shard's store, and of the Raft log store,
// read back from the disk and each block's checksum checked, so that
// damage to data nobody reads (bit rot in cold keys) is found while the
// other replicas still hold good copies, not when the last of them is
// read.

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// ScrubResult is what one scrub of a shard's store read.
type ScrubResult struct {
	// Tables checked, and their bytes.
	Tables, Bytes uint64
}

// Scrub reads every table of the shard's store from the disk (not the
// block cache, which holds blocks checked when they were read) and checks
// each block's checksum, at most as fast as t lets it (nil: no limit),
// until ctx ends. Damage found is the store's failure (ErrCorrupt, as a
// read meeting it would make it) and Scrub's error; a table compacted
// away meanwhile is skipped. Other errors (the disk's) are returned and
// change nothing.
func (s *Shard) Scrub(ctx context.Context, t *Throttle) (ScrubResult, error) {
	s.mu.RLock()
	if s.db == nil {
		s.mu.RUnlock()
		return ScrubResult{}, ErrClosed
	}
	levels, err := s.db.SSTables()
	s.mu.RUnlock()
	if err != nil {
		return ScrubResult{}, err
	}
	res, err := scrubTables(ctx, levels, s.fs, s.layout.KVDir(s.id), s.tableOpts, s.fault(), t)
	if err != nil && !errors.Is(err, ErrCorrupt) && ctx.Err() == nil {
		err = fmt.Errorf("storage: shard %d: %w", s.id, err)
	}
	return res, err
}

// Scrub reads every table of the Raft log store back from the disk and
// checks each block's checksum, as Shard.Scrub does: the entries before a
// group's snapshot, which no start reads, are read again only by a
// follower's catch-up. Damage found is the store's failure (ErrCorrupt,
// with what to do about it: the node stops and its next start rebuilds
// the store).
func (r *RaftLogs) Scrub(ctx context.Context, t *Throttle) (ScrubResult, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ScrubResult{}, ErrClosed
	}
	levels, err := r.db.SSTables()
	r.mu.Unlock()
	if err != nil {
		return ScrubResult{}, err
	}
	return scrubTables(ctx, levels, r.fs, r.dbDir, r.tableOpts, r.fault, t)
}

// scrubTables checks the tables of levels, a store's in dir on fs, read
// with opts; damage found is f's failure. Scrub's common part.
func scrubTables(ctx context.Context, levels [][]pebble.SSTableInfo, fs vfs.FS, dir string,
	opts sstable.ReaderOptions, f *fault, t *Throttle) (ScrubResult, error) {
	var res ScrubResult
	for _, level := range levels {
		for _, info := range level {
			if err := ctx.Err(); err != nil {
				return res, err
			}
			if info.Virtual || info.BackingType != pebble.BackingTypeLocal {
				continue
			}
			path := fs.PathJoin(dir, fmt.Sprintf("%06d.sst", uint64(info.BackingSSTNum)))
			size, err := checkTable(ctx, fs, path, opts)
			switch {
			case errors.Is(err, os.ErrNotExist):
				continue // compacted away
			case err != nil && pebble.IsCorruptionError(err):
				err = f.corruption(path, err)
				f.report(err)
				return res, err
			case err != nil:
				return res, fmt.Errorf("scrubbing %s: %w", path, err)
			}
			res.Tables++
			res.Bytes += uint64(size)
			t.take(int(min(size, 1<<30)))
		}
	}
	return res, nil
}

// checkTable reads the table at path on fs and checks every block's
// checksum; it returns the table's size.
func checkTable(ctx context.Context, fs vfs.FS, path string, opts sstable.ReaderOptions) (int64, error) {
	f, err := fs.Open(path)
	if err != nil {
		return 0, err
	}
	readable, err := objstorageprovider.NewFileReadable(f, fs, objstorageprovider.NewReadaheadConfig(), path)
	if err != nil {
		f.Close()
		return 0, err
	}
	r, err := sstable.NewReader(ctx, readable, opts)
	if err != nil {
		readable.Close()
		return 0, err
	}
	defer r.Close() // closes readable
	return readable.Size(), r.ValidateBlockChecksums()
}
