package storage

import (
	"errors"
	"os"
	"unsafe"

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

// directFile writes a new file with O_DIRECT, from one aligned buffer
// reused for every write: its bytes go from the buffer to the disk, with
// no page cache in between to fill, copy into or write back.
type directFile struct {
	f   *os.File
	buf []byte // directBuf bytes, aligned to directAlign
	n   int    // bytes in buf
	off int64  // bytes of the file written out
	// buffered: O_DIRECT was turned off after a write it refused.
	buffered bool
}

// directAlign is the alignment O_DIRECT asks of offsets, lengths and
// buffers: the logical block size of any disk in use today or less.
const directAlign = 4096

// openDirect creates name for writing with O_DIRECT, reusing prev's
// buffer if prev is set; nil, nil when the file system does not take
// O_DIRECT (a tmpfs), so the caller writes it through the page cache.
func openDirect(name string, prev *directFile) (*directFile, error) {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_DIRECT, 0o644)
	if errors.Is(err, unix.EINVAL) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if prev != nil {
		return &directFile{f: f, buf: prev.buf}, nil
	}
	raw := make([]byte, directBuf+directAlign)
	skip := directAlign - int(uintptr(unsafe.Pointer(&raw[0]))%directAlign)
	return &directFile{f: f, buf: raw[skip : skip+directBuf]}, nil
}

func (d *directFile) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		c := copy(d.buf[d.n:], p)
		d.n += c
		p = p[c:]
		if d.n == len(d.buf) {
			if err := d.flush(d.n); err != nil {
				return 0, err
			}
		}
	}
	return total, nil
}

// flush writes the buffer's first n bytes (aligned) at the file's end. A
// file system that took O_DIRECT at open may still refuse a write (EINVAL:
// a block size over directAlign, say): O_DIRECT is then turned off and the
// rest of the file goes through the page cache.
func (d *directFile) flush(n int) error {
	_, err := d.f.WriteAt(d.buf[:n], d.off)
	if errors.Is(err, unix.EINVAL) && !d.buffered {
		fd := int(d.f.Fd())
		flags, ferr := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
		if ferr == nil {
			_, ferr = unix.FcntlInt(uintptr(fd), unix.F_SETFL, flags&^unix.O_DIRECT)
		}
		if ferr == nil {
			d.buffered = true
			_, err = d.f.WriteAt(d.buf[:n], d.off)
		}
	}
	if err != nil {
		return err
	}
	d.off += int64(n)
	d.n = 0
	return nil
}

// finish writes what is buffered, padded to the alignment and then cut
// back to size, and fsyncs the file.
func (d *directFile) finish(size int64) error {
	if d.n > 0 {
		pad := (d.n + directAlign - 1) / directAlign * directAlign
		clear(d.buf[d.n:pad])
		if err := d.flush(pad); err != nil {
			return err
		}
	}
	if err := d.f.Truncate(size); err != nil {
		return err
	}
	return d.f.Sync()
}

func (d *directFile) Close() error { return d.f.Close() }

// DiskSpace returns the bytes free to the node (not counting the file
// system's reserve for root) and the total bytes of the file system that
// holds dir.
func DiskSpace(dir string) (free, total uint64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0, err
	}
	return st.Bavail * uint64(st.Bsize), st.Blocks * uint64(st.Bsize), nil
}
