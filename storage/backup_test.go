package storage

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coppice-kv/coppice/internal/testwait"
)

// backupOf writes a backup of a node of two shards, each with keys
// written at indexes 1-3 (and the filters ready), and returns its bytes
// and header.
func backupOf(t *testing.T) ([]byte, BackupInfo) {
	t.Helper()
	l := Layout{Dir: t.TempDir()}
	var ckpts []*ShardCheckpoint
	for i := range 2 {
		s, err := OpenShard(l, i, setExec, nil, 1<<20, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		for n := uint64(1); n <= 3; n++ {
			s.Apply(entry(t, n, 2, fmt.Sprintf("s%d-k%d", i, n), fmt.Sprintf("v%d", n)))
		}
		testwait.For(t, 10*time.Second, 10*time.Millisecond, "the key filter built", func() error {
			if !s.CacheStats().FilterReady {
				return errors.New("not ready")
			}
			return nil
		})
		c, err := s.BackupCheckpoint()
		if err != nil {
			t.Fatal(err)
		}
		// Applied after the checkpoint: not in the backup.
		s.Apply(entry(t, 4, 2, fmt.Sprintf("s%d-late", i), "x"))
		ckpts = append(ckpts, c)
	}
	var buf bytes.Buffer
	info, err := WriteBackup(&buf, "c0ffee", "n1", ckpts, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range ckpts {
		if err := c.Remove(); err != nil {
			t.Fatal(err)
		}
		left, _ := filepath.Glob(filepath.Join(l.ShardDir(i), backupPrefix+"*"))
		if len(left) > 0 {
			t.Fatalf("shard %d: the checkpoint is still there after Remove: %v", i, left)
		}
	}
	return buf.Bytes(), info
}

func TestBackupRestoreRoundTrip(t *testing.T) {
	b, wrote := backupOf(t)
	if len(wrote.Shards) != 2 {
		t.Fatalf("header: %+v", wrote)
	}
	for i, sh := range wrote.Shards {
		if sh.Shard != i || sh.AppliedIndex != 3 || sh.AppliedTerm != 2 || sh.Bytes <= 0 {
			t.Fatalf("shard %d in the header: %+v, want shard %d at index 3, term 2, with bytes", i, sh, i)
		}
	}
	read, err := VerifyBackup(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if read.ClusterID != "c0ffee" || read.Node != "n1" || read.Bytes() != wrote.Bytes() || len(read.Shards) != 2 {
		t.Fatalf("verified %+v, wrote %+v", read, wrote)
	}

	dir := filepath.Join(t.TempDir(), "restored")
	if _, err := RestoreBackup(bytes.NewReader(b), dir, "r1"); err != nil {
		t.Fatal(err)
	}
	l := Layout{Dir: dir}
	id, ok, err := l.ReadIdentity()
	if err != nil || !ok {
		t.Fatalf("node.json: %v, %v", ok, err)
	}
	if id.Name != "r1" || id.Shards != 2 || id.ClusterID == "" || id.ClusterID == "c0ffee" {
		t.Fatalf("node.json %+v: want r1, 2 shards and a new cluster id", id)
	}
	if got, _ := os.ReadDir(dir); len(got) != 2 {
		t.Fatalf("the restored dir holds %v, want node.json and shards", got)
	}
	for i := range 2 {
		s, err := OpenShard(l, i, setExec, nil, 1<<20, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if idx, term := s.Applied(); idx != 0 || term != 0 {
			t.Fatalf("shard %d: restored at index %d term %d, want 0: a new log's entries would be skipped", i, idx, term)
		}
		if !s.CacheStats().FilterReady {
			t.Fatalf("shard %d: the key filter the checkpoint carried was not installed", i)
		}
		for n := 1; n <= 3; n++ {
			if v := get(t, s, fmt.Sprintf("s%d-k%d", i, n)); v != fmt.Sprintf("v%d", n) {
				t.Fatalf("shard %d: key %d = %q", i, n, v)
			}
		}
		if v := get(t, s, fmt.Sprintf("s%d-late", i)); v != "" {
			t.Fatalf("shard %d: a key applied after the checkpoint was restored: %q", i, v)
		}
		// The new cluster's first entries reach the store.
		s.Apply(entry(t, 1, 1, "new", "1"))
		if v := get(t, s, "new"); v != "1" {
			t.Fatalf("shard %d: the new log's first entry was not applied", i)
		}
	}
}

// TestDamagedBackupIsRefused damages a backup in each of its parts: the
// check names what is wrong, and a restore leaves nothing behind.
func TestDamagedBackupIsRefused(t *testing.T) {
	b, info := backupOf(t)
	hdrLen := len(backupMagic)
	n, w := binary.Uvarint(b[hdrLen:])
	hdrEnd := hdrLen + w + int(n)
	// Where shard 0's first file begins, after its stream's header.
	n, w = binary.Uvarint(b[hdrEnd+len(streamMagic):])
	filesStart := hdrEnd + len(streamMagic) + w + int(n)
	withHeader := func(edit func(*BackupInfo)) []byte {
		h := info
		h.Shards = append([]BackupShard(nil), info.Shards...)
		edit(&h)
		js, err := json.Marshal(h)
		if err != nil {
			t.Fatal(err)
		}
		out := append([]byte(backupMagic), binary.AppendUvarint(nil, uint64(len(js)))...)
		return append(append(out, js...), b[hdrEnd:]...)
	}
	flip := func(at int) []byte {
		c := bytes.Clone(b)
		c[at] ^= 0x40
		return c
	}
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "not a coppice backup"},
		{"a snapshot stream", []byte(streamMagic + "xxxxxxxxx"), "not a coppice backup"},
		{"cut in the header", b[:hdrEnd-3], "header"},
		{"header not JSON", flip(hdrEnd - 1), "header"},
		{"another format", withHeader(func(h *BackupInfo) { h.Format = 2 }), "format 2"},
		{"no shards", withHeader(func(h *BackupInfo) { h.Shards = nil }), "0 shards"},
		{"shards out of order", withHeader(func(h *BackupInfo) { h.Shards[0].Shard = 1 }), "shard entry 0 is shard 1"},
		{"a shard's size", withHeader(func(h *BackupInfo) { h.Shards[1].Bytes++ }), "shard 1: its files hold"},
		{"a shard too many", withHeader(func(h *BackupInfo) { h.Shards = append(h.Shards, BackupShard{Shard: 2}) }), "shard 2"},
		{"a shard's manifest", flip(hdrEnd + len(streamMagic) + 3), "shard 0: storage: bad snapshot: manifest"},
		{"a file's byte", flip(filesStart + 10), "shard 0: storage: bad snapshot: 0"},
		{"the last checksum", flip(len(b) - 1), "checksum"},
		{"cut in the last file", b[:len(b)-10], "ended early"},
		{"cut between shards", b[:hdrEnd+len(b[hdrEnd:])/2], "shard 1"},
		{"bytes after", append(bytes.Clone(b), 0), "after the last shard"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := VerifyBackup(bytes.NewReader(c.data))
			if !errors.Is(err, ErrBadBackup) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("check: %v, want ErrBadBackup saying %q", err, c.want)
			}
			parent := t.TempDir()
			dir := filepath.Join(parent, "restored")
			if _, err := RestoreBackup(bytes.NewReader(c.data), dir, "r1"); !errors.Is(err, ErrBadBackup) {
				t.Fatalf("restore: %v, want ErrBadBackup", err)
			}
			if left, _ := os.ReadDir(parent); len(left) > 0 {
				t.Fatalf("a failed restore left %v", left)
			}
		})
	}
}

func TestRestoreRefusesAndChangesNothing(t *testing.T) {
	b, _ := backupOf(t)
	full := t.TempDir()
	if err := os.WriteFile(filepath.Join(full, "keep"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := RestoreBackup(bytes.NewReader(b), full, "r1"); err == nil || !strings.Contains(err.Error(), "is not empty") {
		t.Fatalf("restore into a dir with a file: %v", err)
	}
	if got, _ := os.ReadDir(full); len(got) != 1 {
		t.Fatalf("the dir changed: %v", got)
	}
	empty := filepath.Join(t.TempDir(), "d")
	if _, err := RestoreBackup(bytes.NewReader(b), empty, "-bad"); err == nil || !strings.Contains(err.Error(), "node name") {
		t.Fatalf("restore for a bad name: %v", err)
	}
	if _, err := os.Stat(empty); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused restore made the dir (stat: %v)", err)
	}
	// An empty dir is taken (a volume's mount point), and a failed
	// restore leaves it there, empty.
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := RestoreBackup(bytes.NewReader(b[:len(b)/2]), empty, "r1"); !errors.Is(err, ErrBadBackup) {
		t.Fatalf("restore of half a backup: %v", err)
	}
	if got, err := os.ReadDir(empty); err != nil || len(got) != 0 {
		t.Fatalf("after a failed restore the dir holds %v (%v)", got, err)
	}
	// A restore cut short (the process killed) leaves the dir marked: a
	// node refuses it, and a restore starts again in it.
	l := Layout{Dir: empty}
	if err := writeFileAtomic(l.restoreMarker(), nil); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(l.KVDir(0), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.Check("r1", 2); !errors.Is(err, ErrRestoring) {
		t.Fatalf("a node's check of a dir being restored: %v", err)
	}
	if _, err := RestoreBackup(bytes.NewReader(b), empty, "r1"); err != nil {
		t.Fatalf("restore into an interrupted restore's dir: %v", err)
	}
	if st, _, err := l.Check("r1", 2); err != nil || st != DirSame {
		t.Fatalf("after the restore, the node's check: %v, %v", st, err)
	}
}

// A backup read from a reader that hands out one byte at a time (a slow
// network) is read whole and checked.
func TestBackupReadsByteByByte(t *testing.T) {
	b, info := backupOf(t)
	got, err := VerifyBackup(io.LimitReader(oneByte{bytes.NewReader(b)}, int64(len(b))))
	if err != nil || got.Bytes() != info.Bytes() {
		t.Fatalf("got %+v, %v", got, err)
	}
}

type oneByte struct{ r io.Reader }

func (o oneByte) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return o.r.Read(p[:1])
}
