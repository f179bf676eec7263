package storage

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// A backup is every shard of one node, each a Pebble checkpoint at its own
// applied index, in one stream:
//
//	"COPPICE-BACKUP-1\n"
//	uvarint length, JSON BackupInfo (the node, its cluster, each shard's
//	applied index and byte count)
//	for each shard, in order: its checkpoint as a snapshot stream
//	(snapshot.go: a header naming the files, then each file's bytes and
//	their CRC-32C)
//
// The header comes first, so every checkpoint is taken before a byte is
// sent: a node that cannot take one answers an error, not half a backup.
// A reader checks every file against its checksum and the stream against
// the header (each shard, in order, with its byte count, and nothing
// after the last).
//
// A restore makes a new data dir from a backup: the shards' data with
// their applied index cleared (the new node's Raft log starts at 1 and
// each entry must reach the store), a new cluster ID, and no Raft state,
// so the node it is started for founds a new cluster holding the data.

const backupMagic = "COPPICE-BACKUP-1\n"

// BackupFormat is the format this build writes and reads.
const BackupFormat = 1

// maxBackupShards bounds the shard count a backup header may announce.
const maxBackupShards = 4096

// backupPrefix names the checkpoints a backup takes in a shard's dir; a
// crash leaves them behind, and the shard's next open removes them.
const backupPrefix = "backup-"

// ErrBadBackup is a backup stream or file that cannot be read or restored.
var ErrBadBackup = errors.New("storage: bad backup")

// BackupInfo is a backup's header.
type BackupInfo struct {
	Format    int           `json:"format"`
	ClusterID string        `json:"cluster_id"`
	Node      string        `json:"node"`
	Created   time.Time     `json:"created"`
	Shards    []BackupShard `json:"shards"`
}

// BackupShard is one shard of a backup.
type BackupShard struct {
	Shard        int    `json:"shard"`
	AppliedIndex uint64 `json:"applied_index"`
	AppliedTerm  uint64 `json:"applied_term"`
	// Bytes is the size of the shard's files.
	Bytes int64 `json:"bytes"`
}

// Bytes is the size of every shard's files.
func (b BackupInfo) Bytes() int64 {
	var n int64
	for _, s := range b.Shards {
		n += s.Bytes
	}
	return n
}

// ShardCheckpoint is a checkpoint of a shard taken for a backup: hard
// links to its sstables, in the shard's dir until Remove.
type ShardCheckpoint struct {
	Info BackupShard
	tmp  string
	m    *manifest
}

// BackupCheckpoint takes a checkpoint of the shard for a backup. It holds
// everything the shard had applied when it was taken, and says at which
// index: what is applied meanwhile is not in it.
func (s *Shard) BackupCheckpoint() (*ShardCheckpoint, error) {
	tmp, err := os.MkdirTemp(s.layout.ShardDir(s.id), backupPrefix)
	if err != nil {
		return nil, fmt.Errorf("storage: shard %d: backup: %w", s.id, err)
	}
	c := &ShardCheckpoint{tmp: tmp}
	dir := c.dir()
	err = s.checkpoint(dir)
	if err == nil {
		// Applies run while the checkpoint is taken: the applied index it
		// holds, written with the data it covers, is the one to trust.
		c.Info.AppliedIndex, c.Info.AppliedTerm, err = readAppliedAt(dir)
	}
	if err == nil {
		c.m, err = listFiles(dir)
	}
	if err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("storage: shard %d: backup: %w", s.id, err)
	}
	c.Info.Shard, c.Info.Bytes = s.id, filesSize(c.m)-int64(len(c.m.Files))*crcLen
	return c, nil
}

func (c *ShardCheckpoint) dir() string { return filepath.Join(c.tmp, "ckpt") }

// Remove deletes the checkpoint.
func (c *ShardCheckpoint) Remove() error { return os.RemoveAll(c.tmp) }

// readAppliedAt reads the applied index of the Pebble store in dir, opened
// read-only.
func readAppliedAt(dir string) (index, term uint64, err error) {
	db, err := pebble.Open(dir, &pebble.Options{ReadOnly: true, FS: vfs.Default, Logger: quietLogger{}})
	if err != nil {
		return 0, 0, err
	}
	defer db.Close()
	return readApplied(db)
}

// WriteBackup writes a backup of the checkpoints, one per shard in shard
// order, to w, its files' bytes paced by throttle (nil: no limit), and
// returns the header it wrote.
func WriteBackup(w io.Writer, clusterID, node string, ckpts []*ShardCheckpoint, throttle *Throttle) (BackupInfo, error) {
	info := BackupInfo{Format: BackupFormat, ClusterID: clusterID, Node: node, Created: time.Now().UTC()}
	for i, c := range ckpts {
		if c.Info.Shard != i {
			return info, fmt.Errorf("storage: backup: checkpoint %d is of shard %d", i, c.Info.Shard)
		}
		info.Shards = append(info.Shards, c.Info)
	}
	js, err := json.Marshal(info)
	if err != nil {
		return info, err
	}
	hdr := append([]byte(backupMagic), binary.AppendUvarint(nil, uint64(len(js)))...)
	if _, err := w.Write(append(hdr, js...)); err != nil {
		return info, err
	}
	for _, c := range ckpts {
		r, _, err := streamOf(c.dir(), c.m, false, "")
		if err != nil {
			return info, err
		}
		r.throttle = throttle
		_, err = io.Copy(w, r)
		r.Close()
		if err != nil {
			return info, fmt.Errorf("storage: backup: shard %d: %w", c.Info.Shard, err)
		}
	}
	return info, nil
}

// VerifyBackup reads a whole backup from r and checks it, writing nothing.
func VerifyBackup(r io.Reader) (BackupInfo, error) {
	return readBackup(r, func(int) string { return "" })
}

// readBackup reads a backup from r, writing shard i's files into
// dirFor(i) (made if missing; "": checked only).
func readBackup(r io.Reader, dirFor func(shard int) string) (BackupInfo, error) {
	var info BackupInfo
	magic := make([]byte, len(backupMagic))
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != backupMagic {
		return info, fmt.Errorf("%w: not a coppice backup (it starts %q)", ErrBadBackup, magic)
	}
	n, err := binary.ReadUvarint(byteReader{r})
	if err != nil || n > maxManifest {
		return info, fmt.Errorf("%w: header length %d: %v", ErrBadBackup, n, err)
	}
	js := make([]byte, n)
	if _, err := io.ReadFull(r, js); err != nil {
		return info, fmt.Errorf("%w: header: %v", ErrBadBackup, err)
	}
	if err := json.Unmarshal(js, &info); err != nil {
		return info, fmt.Errorf("%w: header: %v", ErrBadBackup, err)
	}
	if info.Format != BackupFormat {
		return info, fmt.Errorf("%w: format %d: this coppice reads format %d", ErrBadBackup, info.Format, BackupFormat)
	}
	if len(info.Shards) < 1 || len(info.Shards) > maxBackupShards {
		return info, fmt.Errorf("%w: %d shards: want 1 to %d", ErrBadBackup, len(info.Shards), maxBackupShards)
	}
	for i, sh := range info.Shards {
		if sh.Shard != i || sh.Bytes < 0 {
			return info, fmt.Errorf("%w: shard entry %d is shard %d of %d bytes", ErrBadBackup, i, sh.Shard, sh.Bytes)
		}
	}
	for i, sh := range info.Shards {
		if err := readShardFiles(r, sh, dirFor(i)); err != nil {
			return info, fmt.Errorf("%w: shard %d: %v", ErrBadBackup, i, err)
		}
	}
	if n, _ := io.ReadFull(r, make([]byte, 1)); n > 0 {
		return info, fmt.Errorf("%w: bytes after the last shard", ErrBadBackup)
	}
	return info, nil
}

// readShardFiles reads one shard's snapshot stream from r into dir ("":
// checked only), checking it against sh.
func readShardFiles(r io.Reader, sh BackupShard, dir string) error {
	m, err := readStreamHeader(r)
	if err != nil {
		return err
	}
	if size := filesSize(m) - int64(len(m.Files))*crcLen; size != sh.Bytes {
		return fmt.Errorf("its files hold %d bytes, the header says %d", size, sh.Bytes)
	}
	if dir != "" {
		if err := mkdirAllSynced(vfs.Default, dir); err != nil {
			return err
		}
	}
	w := &streamWriter{dir: dir, m: m}
	defer w.abort()
	if _, err := io.Copy(w, io.LimitReader(r, filesSize(m))); err != nil {
		return err
	}
	return w.finish()
}

// RestoreBackup makes dataDir, which must be missing or empty, a data dir
// for a node called name from the backup read from r: the shards' data, no
// Raft state, and a new cluster ID. The node started on it founds a new
// cluster (without --join), with --shards the backup's shard count. The
// dir is marked (restoreMarker) until the restore is complete: a node
// refuses to start on a marked dir, and a restore may start again in one.
// A failed restore empties the dir (and removes it if it made it).
func RestoreBackup(r io.Reader, dataDir, name string) (BackupInfo, error) {
	if err := ValidName(name); err != nil {
		return BackupInfo{}, err
	}
	l := Layout{Dir: filepath.Clean(dataDir)}
	made := false
	switch entries, err := os.ReadDir(l.Dir); {
	case errors.Is(err, fs.ErrNotExist):
		if err := mkdirAllSynced(vfs.Default, l.Dir); err != nil {
			return BackupInfo{}, fmt.Errorf("storage: restore: %w", err)
		}
		made = true
	case err != nil:
		return BackupInfo{}, fmt.Errorf("storage: restore: %w", err)
	case len(entries) > 0 && !l.restoring():
		return BackupInfo{}, fmt.Errorf("storage: restore: %s is not empty: restore into a new data dir", l.Dir)
	}
	info, err := l.restore(r, name)
	if err != nil {
		if made {
			os.RemoveAll(l.Dir)
		} else {
			emptyDir(l.Dir)
		}
		return info, err
	}
	return info, nil
}

// restore fills l's dir, marked while it does.
func (l Layout) restore(r io.Reader, name string) (BackupInfo, error) {
	if err := writeFileAtomic(l.restoreMarker(), nil); err != nil {
		return BackupInfo{}, fmt.Errorf("storage: restore: %w", err)
	}
	// What an interrupted restore left.
	if err := emptyDir(l.Dir, filepath.Base(l.restoreMarker())); err != nil {
		return BackupInfo{}, fmt.Errorf("storage: restore: %w", err)
	}
	info, err := readBackup(r, l.KVDir)
	if err != nil {
		return info, err
	}
	for i := range info.Shards {
		if err := clearApplied(l.KVDir(i)); err != nil {
			return info, fmt.Errorf("storage: restore: shard %d: %w", i, err)
		}
	}
	if err := l.WriteIdentity(Identity{Name: name, ClusterID: NewClusterID(), Shards: len(info.Shards)}); err != nil {
		return info, fmt.Errorf("storage: restore: %w", err)
	}
	if err := os.Remove(l.restoreMarker()); err != nil {
		return info, fmt.Errorf("storage: restore: %w", err)
	}
	return info, syncDir(l.Dir)
}

// restoreMarker marks a data dir a restore is filling.
func (l Layout) restoreMarker() string { return filepath.Join(l.Dir, "COPPICE-RESTORING") }

func (l Layout) restoring() bool {
	_, err := os.Stat(l.restoreMarker())
	return err == nil
}

// emptyDir removes what dir holds, but the names in keep.
func emptyDir(dir string, keep ...string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !slices.Contains(keep, e.Name()) {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// clearApplied removes the applied index from the restored store in dir,
// and keeps the key filter its checkpoint carried for the store's first
// open (at index 0).
func clearApplied(dir string) error {
	filter := filepath.Join(dir, keyFilterFile)
	if err := os.Rename(filter, fmt.Sprintf("%s.%d", filter, 0)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	db, err := openPebble(vfs.Default, dir, newFault("restore of "+dir), nil)
	if err != nil {
		return err
	}
	err = db.Delete(appliedKey, pebble.NoSync)
	if err == nil {
		err = db.Flush() // no WAL: the flush makes it durable
	}
	return errors.Join(err, db.Close())
}

// NewClusterID makes a cluster ID: 16 random hex digits.
func NewClusterID() string { return randomID() }

// NewDataDirID makes a data dir's ID (Identity.DataDirID): 16 random hex
// digits.
func NewDataDirID() string { return randomID() }

func randomID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}
