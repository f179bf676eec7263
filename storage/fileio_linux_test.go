package storage

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A file system that refuses an O_DIRECT write (here: a buffer out of
// alignment) gets the file through the page cache instead, whole.
func TestDirectFileFallsBackWhenAWriteIsRefused(t *testing.T) {
	root, err := os.MkdirTemp(".", "direct-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	name := filepath.Join(root, "f")
	d, err := openDirect(name, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d == nil {
		t.Skip("the checkout's file system does not take O_DIRECT")
	}
	d.buf = d.buf[1 : directBuf/2+1] // misaligned: O_DIRECT writes fail with EINVAL
	want := make([]byte, directBuf+12345)
	rand.NewChaCha8([32]byte{7}).Read(want)
	if _, err := d.Write(want); err != nil {
		t.Fatal(err)
	}
	if err := d.finish(int64(len(want))); err != nil {
		t.Fatal(err)
	}
	d.Close()
	if !d.buffered {
		t.Fatal("a misaligned O_DIRECT write was taken: the test tests nothing")
	}
	got, err := os.ReadFile(name)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("%d bytes back (%v), want the %d written", len(got), err, len(want))
	}
}

// A received snapshot's files are on the disk and out of the page cache
// once the stream is in: written with O_DIRECT they never enter it, and
// through the page cache each range is dropped once written back
// (writeback), so receiving a large snapshot never fills fresh page cache.
func TestReceivedFilesLeaveThePageCache(t *testing.T) {
	forEachWriteMode(t, testReceivedFilesLeaveThePageCache)
}

func testReceivedFilesLeaveThePageCache(t *testing.T) {
	// In the package's dir, not t.TempDir: /tmp may be a tmpfs, whose pages
	// are the files themselves.
	root, err := os.MkdirTemp(".", "pagecache-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	var fs unix.Statfs_t
	if err := unix.Statfs(root, &fs); err != nil {
		t.Fatal(err)
	}
	if fs.Type == unix.TMPFS_MAGIC {
		t.Skip("the checkout is on a tmpfs: its files have no page cache apart from their pages")
	}
	src := filepath.Join(root, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	const size = 3*writebackBytes + 12345
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(rng.IntN(256))
	}
	if err := os.WriteFile(filepath.Join(src, "big.sst"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	r, _, err := newStreamReader(src, "")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	dst := filepath.Join(root, "dst")
	w := newStreamWriter(dst)
	if _, err := io.Copy(w, r); err != nil {
		t.Fatal(err)
	}
	if err := w.finish(); err != nil {
		t.Fatal(err)
	}

	f, err := os.Open(filepath.Join(dst, "big.sst"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	pages := (size + os.Getpagesize() - 1) / os.Getpagesize()
	vec := make([]byte, pages)
	if _, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		t.Fatal(e)
	}
	resident := 0
	for _, v := range vec {
		resident += int(v & 1)
	}
	if resident > pages/20 {
		t.Fatalf("%d of the received file's %d pages are still in the page cache", resident, pages)
	}
}
