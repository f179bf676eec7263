package storage

import (
	"errors"
	"os"

	"github.com/cockroachdb/pebble/v2/vfs"
	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to start writing n bytes of f from off to
// disk now, without waiting (sync_file_range SYNC_FILE_RANGE_WRITE, as
// Pebble's BytesPerSync does): the fsync at the end of the file then has
// little left to flush, instead of a burst of the whole file that stalls
// every other fsync on the disk (the Raft logs' writes, while a snapshot
// arrives). Errors are ignored: the final fsync still decides.
func startWriteback(f *os.File, off, n int64) {
	_ = unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}

// preallocate reserves size bytes for f (its length becomes size), so
// writes into it do not grow the file and a sync has no length to record
// (vfs.File's Preallocate keeps the length). A file system without
// fallocate(2) gets a growing file; so does a file with no descriptor (an
// in-memory one: tests), which may preallocate its own way.
func preallocate(f vfs.File, size int64) error {
	fd := f.Fd()
	if fd == vfs.InvalidFd {
		return f.Preallocate(0, size)
	}
	err := unix.Fallocate(int(fd), 0, 0, size)
	if errors.Is(err, unix.EOPNOTSUPP) {
		return nil
	}
	return err
}
