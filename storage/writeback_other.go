//go:build !linux

package storage

import "os"

// startWriteback does nothing here: the final fsync writes the file.
func startWriteback(f *os.File, off, n int64) {}
