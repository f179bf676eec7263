// Command fsynccost measures what one small write plus fsync (or
// fdatasync) costs on this machine's disk: wall time and the process's own
// CPU time per operation, into a preallocated file (as raft-wal's
// segments are) and into a growing one. docs/node-benchmarks.md quotes it.
//
//	go run ./bench/fsynccost -dir . -n 3000
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		log.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func main() {
	dir := flag.String("dir", ".", "directory on the disk to measure (a temporary file is made and removed)")
	n := flag.Int("n", 3000, "writes+syncs per row")
	size := flag.Int("size", 200, "bytes per write")
	flag.Parse()
	fsync := func(f *os.File) error { return f.Sync() }
	fdatasync := func(f *os.File) error { return unix.Fdatasync(int(f.Fd())) }
	fmt.Printf("%d writes of %d bytes, each followed by the sync, in %s\n\n", *n, *size, *dir)
	fmt.Println("| file | sync | wall us/op | process CPU us/op |")
	fmt.Println("|---|---|---|---|")
	for _, prealloc := range []prealloc{fallocated, zeroFilled, growing} {
		for _, s := range []struct {
			name string
			fn   func(*os.File) error
		}{{"fsync", fsync}, {"fdatasync", fdatasync}} {
			wall, cpu, err := measure(*dir, *n, *size, prealloc, s.fn)
			if err != nil {
				log.Fatal(err)
			}
			fmt.Printf("| %s | %s | %.0f | %.0f |\n", prealloc, s.name, wall, cpu)
		}
	}
}

// prealloc is how the file is made before the timed writes.
type prealloc int

const (
	// fallocated: fallocate(2), so the file's blocks are reserved but
	// unwritten: the first write to each changes the file's extents,
	// which the sync then commits to the file system's journal.
	fallocated prealloc = iota
	// zeroFilled: zeros written and synced first, so a sync has only the
	// data to write.
	zeroFilled
	// growing: each write extends the file.
	growing
)

func (p prealloc) String() string {
	return [...]string{"fallocated", "zero-filled", "growing"}[p]
}

func measure(dir string, n, size int, prealloc prealloc, sync func(*os.File) error) (wallUs, cpuUs float64, err error) {
	f, err := os.CreateTemp(dir, "fsynccost-*.dat")
	if err != nil {
		return 0, 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	switch prealloc {
	case fallocated:
		if err := unix.Fallocate(int(f.Fd()), 0, 0, int64(n*size)); err != nil {
			return 0, 0, fmt.Errorf("fallocate: %w", err)
		}
	case zeroFilled:
		if _, err := f.Write(make([]byte, n*size)); err != nil {
			return 0, 0, err
		}
		if err := f.Sync(); err != nil {
			return 0, 0, err
		}
	}
	buf := make([]byte, size)
	t0, c0 := time.Now(), cpuTime()
	for i := 0; i < n; i++ {
		if _, err := f.WriteAt(buf, int64(i*size)); err != nil {
			return 0, 0, err
		}
		if err := sync(f); err != nil {
			return 0, 0, err
		}
	}
	wall, cpu := time.Since(t0), cpuTime()-c0
	return float64(wall.Microseconds()) / float64(n), float64(cpu.Microseconds()) / float64(n), nil
}
