package storage

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Layout of a node's data dir:
//
//	<data>/node.json             node name, cluster ID, shard count (the identity marker)
//	<data>/raftlog/db/           Pebble: every group's Raft log and stable store (RaftLogs)
//	<data>/raftlog/journal/      RaftLogs' write-ahead journal
//	<data>/system/               the system group: snapshots
//	<data>/system/acl.json       the cluster's ACL users as this node last applied them
//	<data>/shards/<i>/kv/        Pebble: the shard's keys, plus its applied index and term
//	<data>/shards/<i>/snapshots/ checkpoints that serve as Raft snapshots and sync sources
//
// Before RaftLogs, each group kept its log in a raft-wal directory of its
// own (<data>/system/raft, <data>/shards/<i>/raft): RaftLogs.Group moves
// one it finds.
type Layout struct{ Dir string }

func (l Layout) IdentityFile() string { return filepath.Join(l.Dir, "node.json") }
func (l Layout) SystemDir() string    { return filepath.Join(l.Dir, "system") }
func (l Layout) ShardDir(shard int) string {
	return filepath.Join(l.Dir, "shards", strconv.Itoa(shard))
}
func (l Layout) KVDir(shard int) string { return filepath.Join(l.ShardDir(shard), "kv") }
func (l Layout) RaftLogDir() string     { return filepath.Join(l.Dir, "raftlog") }

// LegacyRaftDir and LegacySystemRaftDir are where a group's raft-wal log
// was kept before RaftLogs.
func (l Layout) LegacyRaftDir(shard int) string { return filepath.Join(l.ShardDir(shard), "raft") }
func (l Layout) LegacySystemRaftDir() string    { return filepath.Join(l.SystemDir(), "raft") }
func (l Layout) SnapshotDir(shard int) string {
	return filepath.Join(l.ShardDir(shard), "snapshots")
}

// Identity is node.json: who the data dir belongs to.
type Identity struct {
	Name      string `json:"name"`
	ClusterID string `json:"cluster_id,omitempty"`
	Shards    int    `json:"shards"`
	// Founder is set on a node started with --join that founded its
	// cluster (--bootstrap-expect): like a node started without --join,
	// it makes itself the first voter of every group that has no Raft
	// state yet, also after a restart between this record and that.
	Founder bool `json:"founder,omitempty"`
	// DataDirID is made with the data dir (NewClusterID's form): a node
	// that comes back with another one runs on a new data dir.
	DataDirID string `json:"data_dir_id,omitempty"`
	// RaftLogDamaged is why the node's Raft log store failed with
	// on-disk corruption (ErrCorrupt), recorded as the node stopped for
	// it: the next start rebuilds the store (DropRaftLogs). RaftLogRebuilt
	// is when the last rebuild was.
	RaftLogDamaged string    `json:"raft_log_damaged,omitempty"`
	RaftLogRebuilt time.Time `json:"raft_log_rebuilt,omitzero"`
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// ValidName reports whether name can name a node: 1 to 63 letters, digits,
// '.', '_' or '-', starting with a letter or digit.
func ValidName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("storage: node name %q: want 1-63 of [A-Za-z0-9._-], starting with a letter or digit", name)
	}
	return nil
}

// ReadIdentity reads node.json; ok is false when there is none (a new
// data dir).
func (l Layout) ReadIdentity() (id Identity, ok bool, err error) {
	b, err := os.ReadFile(l.IdentityFile())
	if errors.Is(err, fs.ErrNotExist) {
		return Identity{}, false, nil
	}
	if err != nil {
		return Identity{}, false, fmt.Errorf("%w: %v", ErrBadIdentity, err)
	}
	if err := json.Unmarshal(b, &id); err != nil {
		return Identity{}, false, fmt.Errorf("%w: %s: %v", ErrBadIdentity, l.IdentityFile(), err)
	}
	if id.Shards < 1 || ValidName(id.Name) != nil {
		return Identity{}, false, fmt.Errorf("%w: %s: name %q, shards %d", ErrBadIdentity, l.IdentityFile(), id.Name, id.Shards)
	}
	return id, true, nil
}

// WriteIdentity writes node.json atomically (temp file, fsync, rename).
func (l Layout) WriteIdentity(id Identity) error {
	if err := mkdirAllSynced(vfs.Default, l.Dir); err != nil {
		return err
	}
	b, err := json.MarshalIndent(id, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(l.IdentityFile(), append(b, '\n'))
}

// CloneOf tells what the data dir is to a node called name with shards
// shards: new (no node.json), the same node, or a disk clone (another
// node's data, same shard count). A different shard count is refused.
type DirState int

const (
	DirNew DirState = iota
	DirSame
	DirClone
)

// Check compares node.json with the node about to use the dir.
func (l Layout) Check(name string, shards int) (DirState, Identity, error) {
	if l.restoring() {
		return 0, Identity{}, fmt.Errorf("%w: %s: a restore into it did not finish: run node restore again, or empty the dir", ErrRestoring, l.Dir)
	}
	id, ok, err := l.ReadIdentity()
	switch {
	case err != nil:
		return 0, id, err
	case !ok:
		return DirNew, id, nil
	case id.Shards != shards:
		return 0, id, fmt.Errorf("%w: %s holds %d shards, the node is configured with %d", ErrShardCount, l.Dir, id.Shards, shards)
	case id.Name != name:
		return DirClone, id, nil
	}
	return DirSame, id, nil
}

// ReadLastApplied returns the applied index and term stored in a shard's
// Pebble store, or zeros when the store is missing or unreadable. It opens
// the store read-only, so the shard must not be open in this process.
func ReadLastApplied(dataDir string, shard int) (index, term uint64) {
	dir := Layout{Dir: dataDir}.KVDir(shard)
	if _, err := os.Stat(filepath.Join(dir, "CURRENT")); err != nil {
		// Pebble marks its current manifest with a marker file; without
		// a store there is nothing to read (and Open would create one).
		if !hasPebbleMarker(dir) {
			return 0, 0
		}
	}
	index, term, err := readAppliedAt(dir)
	if err != nil {
		return 0, 0
	}
	return index, term
}

func hasPebbleMarker(dir string) bool {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range entries {
		if len(e.Name()) > 7 && e.Name()[:7] == "marker." {
			return true
		}
	}
	return false
}

// ACLUsers is the cluster's ACL users as a node last applied them: its
// client port starts with them, before the system group catches up.
type ACLUsers struct {
	ClusterID string   `json:"cluster_id"`
	Version   uint64   `json:"version"`
	Users     []string `json:"users"` // ACL LIST's lines
}

// ACLFile is where the node keeps the ACL users it last applied.
func (l Layout) ACLFile() string { return filepath.Join(l.SystemDir(), "acl.json") }

// WriteACL writes the ACL users, whole or not at all, readable by the
// node's user only (they hold password hashes).
func (l Layout) WriteACL(a ACLUsers) error {
	data, err := json.Marshal(a)
	if err != nil {
		return err
	}
	path := l.ACLFile()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return writeAtomic(vfs.Default, path, data, func(tmp string) (syncWriter, error) {
		return os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	})
}

// ReadACL reads the ACL users the node last applied; ok is false when it
// has none.
func (l Layout) ReadACL() (a ACLUsers, ok bool, err error) {
	data, err := os.ReadFile(l.ACLFile())
	if errors.Is(err, os.ErrNotExist) {
		return a, false, nil
	}
	if err != nil {
		return a, false, err
	}
	if err := json.Unmarshal(data, &a); err != nil {
		return a, false, fmt.Errorf("storage: %s: %w", l.ACLFile(), err)
	}
	return a, true, nil
}

func writeFileAtomic(path string, data []byte) error {
	return writeFSFileAtomic(vfs.Default, path, data)
}

// writeFSFileAtomic writes data to path on fs: a temporary file, synced,
// renamed into place, and the dir synced; a failed write leaves no file.
func writeFSFileAtomic(fs vfs.FS, path string, data []byte) error {
	return writeAtomic(fs, path, data, func(tmp string) (syncWriter, error) {
		return fs.Create(tmp, vfs.WriteCategoryUnspecified)
	})
}

// syncWriter is a file writeAtomic writes: vfs's, or the os's.
type syncWriter interface {
	Write(p []byte) (int, error)
	Sync() error
	Close() error
}

// writeAtomic is writeFSFileAtomic with the temporary file made by
// create.
func writeAtomic(fs vfs.FS, path string, data []byte, create func(tmp string) (syncWriter, error)) error {
	tmp := path + ".tmp"
	f, err := create(tmp)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fs.Rename(tmp, path)
	}
	if err != nil {
		fs.Remove(tmp)
		return err
	}
	return syncFSDir(fs, fs.PathDir(path))
}
