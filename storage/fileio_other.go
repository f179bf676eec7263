//go:build !linux

package storage

import (
	"errors"
	"os"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// writeback does nothing here: the final fsync writes the file.
func writeback(f *os.File, doneOff, doneN, off, n int64) {}

// preallocate leaves it to the file (vfs.File's Preallocate): here the
// file may grow as it is written.
func preallocate(f vfs.File, size int64) error { return f.Preallocate(0, size) }

// directFile is Linux's O_DIRECT writer; openDirect never makes one here.
type directFile struct{ f *os.File }

func openDirect(string, *directFile) (*directFile, error) { return nil, nil }

func (d *directFile) Write(p []byte) (int, error) { return d.f.Write(p) }

func (d *directFile) finish(size int64) error { return d.f.Sync() }

func (d *directFile) Close() error { return d.f.Close() }

// DiskSpace is Linux's (statfs); here it tells nothing.
func DiskSpace(dir string) (free, total uint64, err error) {
	return 0, 0, errors.ErrUnsupported
}
