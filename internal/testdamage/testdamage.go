// Package testdamage damages a store's files as bit rot does, for tests
// of what a node does on meeting it.
package testdamage

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/atomicfs"
)

// FlipTables flips one byte of every Pebble table (*.sst) in dir, the
// one at offset at(size) of each, and returns how many tables it damaged.
func FlipTables(dir string, at func(size int) int) (int, error) {
	tables, err := filepath.Glob(filepath.Join(dir, "*.sst"))
	if err != nil {
		return 0, err
	}
	for _, table := range tables {
		b, err := os.ReadFile(table)
		if err != nil {
			return 0, err
		}
		b[at(len(b))] ^= 0xff
		if err := os.WriteFile(table, b, 0o644); err != nil {
			return 0, err
		}
	}
	return len(tables), nil
}

// FlipManifest flips a byte of the first record of the current MANIFEST
// of the Pebble store in dir (the edit Pebble wrote as it last opened
// it, with every edit after it still sound) and returns the file's path.
func FlipManifest(dir string) (string, error) {
	m, name, err := atomicfs.LocateMarker(vfs.Default, dir, "manifest")
	if err != nil {
		return "", err
	}
	m.Close()
	if name == "" {
		return "", fmt.Errorf("%s has no MANIFEST", dir)
	}
	path := filepath.Join(dir, name)
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	const payload = 7 // past the first chunk's header
	if len(b) <= payload+1 {
		return "", fmt.Errorf("%s holds %d bytes: no record to damage", path, len(b))
	}
	b[payload+1] ^= 0xff
	return path, os.WriteFile(path, b, 0o644)
}
