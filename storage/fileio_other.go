//go:build !linux

package storage

import "os"

// startWriteback does nothing here: the final fsync writes the file.
func startWriteback(f *os.File, off, n int64) {}

// preallocate does nothing here: the file grows as it is written.
func preallocate(f *os.File, size int64) error { return nil }

// syncData syncs f (fsync: no fdatasync here).
func syncData(f *os.File) error { return f.Sync() }
