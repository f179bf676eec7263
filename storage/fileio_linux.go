package storage

import (
	"errors"
	"os"

	"github.com/cockroachdb/pebble/v2/vfs"
	"golang.org/x/sys/unix"
)

// writeback waits until the range of f from doneOff (doneN bytes), handed
// to the kernel before, is on the disk and drops it from the page cache,
// then starts writing the next n bytes from off without waiting
// (sync_file_range, as Pebble's BytesPerSync does). So a file being
// received never has more than two ranges in the page cache or in the
// disk's queue: the fsync at its end has little left to flush and does not
// stall every other fsync on the disk (the Raft logs' writes) behind a
// burst, and the pages it writes next are those it just gave back. Pages
// the kernel has never handed out are dear on a VM (the hypervisor backs
// each on first touch): writing a 1 GiB snapshot into fresh page cache
// was 57% of a joining node's CPU, all of it in the kernel's copy into the
// new pages (perf, clusterbench -only join). A received snapshot is read
// back only by Pebble, through its own cache, so nothing of value leaves
// the page cache. Errors are ignored: the final fsync still decides.
func writeback(f *os.File, doneOff, doneN, off, n int64) {
	fd := int(f.Fd())
	if doneN > 0 {
		_ = unix.SyncFileRange(fd, doneOff, doneN, unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER)
		_ = unix.Fadvise(fd, doneOff, doneN, unix.FADV_DONTNEED)
	}
	if n > 0 {
		_ = unix.SyncFileRange(fd, off, n, unix.SYNC_FILE_RANGE_WRITE)
	}
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
