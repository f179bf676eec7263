// Package testdamage damages a store's files as bit rot does, for tests
// of what a node does on meeting it.
package testdamage

import (
	"os"
	"path/filepath"
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
