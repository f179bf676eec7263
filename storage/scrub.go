package storage

// Scrubbing: every table of a shard's store read back from the disk and
// each block's checksum checked, so that damage to data nobody reads
// (bit rot in cold keys) is found while the other replicas still hold
// good copies, not when the last of them is read.

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
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
	var res ScrubResult
	dir := s.layout.KVDir(s.id)
	s.mu.RLock()
	if s.db == nil {
		s.mu.RUnlock()
		return res, ErrClosed
	}
	levels, err := s.db.SSTables()
	s.mu.RUnlock()
	if err != nil {
		return res, err
	}
	for _, level := range levels {
		for _, info := range level {
			if err := ctx.Err(); err != nil {
				return res, err
			}
			if info.Virtual || info.BackingType != pebble.BackingTypeLocal {
				continue
			}
			path := s.fs.PathJoin(dir, fmt.Sprintf("%06d.sst", uint64(info.BackingSSTNum)))
			size, err := checkTable(ctx, s, path, s.tableOpts)
			switch {
			case errors.Is(err, os.ErrNotExist):
				continue // compacted away
			case err != nil && pebble.IsCorruptionError(err):
				err = s.fault().corruption(path, err)
				s.fault().report(err)
				return res, err
			case err != nil:
				return res, fmt.Errorf("storage: shard %d: scrubbing %s: %w", s.id, path, err)
			}
			res.Tables++
			res.Bytes += uint64(size)
			t.take(int(min(size, 1<<30)))
		}
	}
	return res, nil
}

// checkTable reads the table at path on s's file system and checks every
// block's checksum; it returns the table's size.
func checkTable(ctx context.Context, s *Shard, path string, opts sstable.ReaderOptions) (int64, error) {
	f, err := s.fs.Open(path)
	if err != nil {
		return 0, err
	}
	readable, err := objstorageprovider.NewFileReadable(f, s.fs, objstorageprovider.NewReadaheadConfig(), path)
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
