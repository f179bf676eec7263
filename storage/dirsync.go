package storage

import (
	"errors"
	"path/filepath"
	"slices"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Directory syncs: a file's entry in its directory (and a directory's in
// its parent) survives a power cut only once the directory is synced.

// mkdirAllSynced makes dir and any missing parents, each one's entry
// synced in its parent: a file synced in a new directory is lost in a
// power cut if the directory itself is.
func mkdirAllSynced(fs vfs.FS, dir string) error {
	var missing []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := fs.Stat(d); err == nil {
			break
		}
		missing = append(missing, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, d := range slices.Backward(missing) {
		if err := syncFSDir(fs, filepath.Dir(d)); err != nil {
			return err
		}
	}
	return nil
}

// syncFSDir syncs directory dir of fs.
func syncFSDir(fs vfs.FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// syncDir syncs directory dir on disk.
func syncDir(dir string) error { return syncFSDir(vfs.Default, dir) }
