package storage

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/coppice-kv/coppice/internal/testwait"
	"github.com/coppice-kv/coppice/kv"
	"github.com/coppice-kv/coppice/messages"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
)

// setExec is a minimal executor: SET k v, and counts applications; and
// DELRANGE lo hi, a range deletion (as FLUSHALL's).
func setExec(w kv.Writer, c *messages.Command, _ *kv.EventLog) *messages.Reply {
	if string(c.Args[0]) == "DELRANGE" {
		if err := w.DeleteRange(c.Args[1], c.Args[2]); err != nil {
			return &messages.Reply{Value: &messages.Reply_Error{Error: err.Error()}}
		}
		return &messages.Reply{Value: &messages.Reply_Status{Status: "OK"}}
	}
	if err := w.Set(append([]byte{1}, c.Args[1]...), c.Args[2]); err != nil {
		return &messages.Reply{Value: &messages.Reply_Error{Error: err.Error()}}
	}
	return &messages.Reply{Value: &messages.Reply_Status{Status: "OK"}}
}

func entry(t testing.TB, index, term uint64, kvs ...string) *raft.Log {
	var b messages.CommandBatch
	for i := 0; i < len(kvs); i += 2 {
		b.Commands = append(b.Commands, &messages.Command{Args: [][]byte{[]byte("SET"), []byte(kvs[i]), []byte(kvs[i+1])}})
	}
	data, err := proto.Marshal(&b)
	if err != nil {
		t.Fatal(err)
	}
	return &raft.Log{Index: index, Term: term, Type: raft.LogCommand, Data: data}
}

func get(t testing.TB, s *Shard, k string) string {
	t.Helper()
	var out string
	err := s.View(func(r kv.Reader) error {
		v, ok, err := r.Get(append([]byte{1}, k...))
		if ok {
			out = string(v)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func openTestShard(t *testing.T, dir string) (*Shard, *SnapshotStore) {
	t.Helper()
	return openShardWith(t, dir, setExec)
}

// openShardWith opens shard 0 in dir, running exec, with a snapshot store.
func openShardWith(t *testing.T, dir string, exec Executor) (*Shard, *SnapshotStore) {
	t.Helper()
	l := Layout{Dir: dir}
	snaps, err := NewSnapshotStore(l.SnapshotDir(0), 2)
	if err != nil {
		t.Fatal(err)
	}
	s, err := OpenShard(l, 0, exec, snaps, 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s, snaps
}

func TestApplyIsIdempotentAndRecordsIndex(t *testing.T) {
	dir := t.TempDir()
	s, _ := openTestShard(t, dir)
	res := s.ApplyBatch([]*raft.Log{entry(t, 1, 1, "a", "1"), entry(t, 2, 1, "b", "2")})
	if r, ok := res[1].([]*messages.Reply); !ok || r[0].GetStatus() != "OK" {
		t.Fatalf("result %v", res[1])
	}
	// Replaying entry 2 with other data changes nothing: it is at or below
	// the applied index.
	if res := s.Apply(entry(t, 2, 1, "b", "changed")); res != nil {
		t.Fatalf("replayed entry returned %v", res)
	}
	if got := get(t, s, "b"); got != "2" {
		t.Fatalf("b = %q after replay, want 2", got)
	}
	s.Apply(entry(t, 3, 2, "c", "3"))
	if i, term := s.Applied(); i != 3 || term != 2 {
		t.Fatalf("applied %d/%d", i, term)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if i, term := ReadLastApplied(dir, 0); i != 3 || term != 2 {
		t.Fatalf("ReadLastApplied = %d/%d, want 3/2", i, term)
	}
	if i, term := ReadLastApplied(dir, 7); i != 0 || term != 0 {
		t.Fatalf("missing shard: %d/%d", i, term)
	}
	os.WriteFile(filepath.Join(dir, "shards", "5", "kv"), []byte("junk"), 0o644)
	if i, _ := ReadLastApplied(dir, 5); i != 0 {
		t.Fatalf("unreadable shard: %d", i)
	}
}

func persist(t *testing.T, s *Shard, snaps *SnapshotStore, index uint64) string {
	t.Helper()
	sink, err := snaps.Create(1, index, 1, raft.Configuration{}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	snap, _ := s.Snapshot()
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	return sink.ID()
}

func TestSnapshotRestoreLocalAndStreamed(t *testing.T) {
	s, snaps := openTestShard(t, t.TempDir())
	defer s.Close()
	waitFilterReady(t, s)
	for i := uint64(1); i <= 50; i++ {
		s.Apply(entry(t, i, 1, "k"+string(rune('a'+i%26)), string(rune('A'+i%26))))
	}
	id := persist(t, s, snaps, 50)
	metas, err := snaps.List()
	if err != nil || len(metas) != 1 || metas[0].Index != 50 {
		t.Fatalf("list: %v %v", metas, err)
	}

	// Change the shard, then restore the snapshot in place.
	s.Apply(entry(t, 51, 1, "kz", "after"))
	restoreFrom(t, snaps, id, s)
	if i, _ := s.Applied(); i != 50 {
		t.Fatalf("applied after restore %d", i)
	}
	if got := get(t, s, "kz"); got != "Z" {
		t.Fatalf("kz = %q after restore, want Z", got)
	}

	// Stream it to another node's store, as InstallSnapshot does.
	t2, snaps2 := openTestShard(t, t.TempDir())
	defer t2.Close()
	meta, rc, sink := openTransfer(t, snaps, snaps2, id)
	// Half the stream in: the receiving store reports its progress.
	half, err := io.CopyN(sink, rc, meta.Size/2)
	if err != nil {
		t.Fatal(err)
	}
	done, total := snaps2.Receiving()
	if total <= 0 || done <= 0 || done > total || total > meta.Size {
		t.Fatalf("receiving %d of %d bytes after %d of a %d-byte stream", done, total, half, meta.Size)
	}
	n, err := io.Copy(sink, rc)
	rc.Close()
	if err != nil || half+n != meta.Size {
		t.Fatalf("copied %d of %d: %v", half+n, meta.Size, err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	if done, total := snaps2.Receiving(); done != 0 || total != 0 {
		t.Fatalf("receiving %d of %d after the transfer ended", done, total)
	}
	// The key filter went with the files.
	if _, err := os.Stat(filepath.Join(snaps2.Dir(), sink.ID(), "ckpt", keyFilterFile)); err != nil {
		t.Fatalf("the streamed snapshot has no key filter: %v", err)
	}
	restoreFrom(t, snaps2, sink.ID(), t2)
	if got := get(t, t2, "kz"); got != "Z" {
		t.Fatalf("streamed restore: kz = %q", got)
	}
	ready, _ := t2.filter.state()
	if holds := !t2.filter.absent(append([]byte{1}, "kz"...)); !ready || !holds {
		t.Fatalf("after the streamed restore the filter is ready %v and holds kz %v", ready, holds)
	}
}

func TestCorruptedSnapshotStreamIsRejected(t *testing.T) {
	s, snaps := openTestShard(t, t.TempDir())
	defer s.Close()
	for i := uint64(1); i <= 20; i++ {
		s.Apply(entry(t, i, 1, "key", "value"))
	}
	id := persist(t, s, snaps, 20)
	meta, rc, err := snaps.Open(id)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(rc)
	rc.Close()
	if int64(len(data)) != meta.Size {
		t.Fatalf("stream is %d bytes, meta says %d", len(data), meta.Size)
	}
	for _, mutate := range []func([]byte) []byte{
		func(b []byte) []byte { b[len(b)-10] ^= 0x40; return b }, // a flipped byte in a file
		func(b []byte) []byte { b[len(b)-1] ^= 0x01; return b },  // a flipped byte in a checksum
		func(b []byte) []byte { return b[:len(b)-7] },            // truncated
		func(b []byte) []byte { return append(b, 'x') },          // trailing junk
		func(b []byte) []byte { b[0] = 'X'; return b },           // bad magic
	} {
		_, snaps2 := openTestShard(t, t.TempDir())
		sink, _ := snaps2.Create(1, 20, 1, raft.Configuration{}, 1, nil)
		_, werr := io.Copy(sink, bytes.NewReader(mutate(append([]byte(nil), data...))))
		cerr := sink.Close()
		if !errors.Is(errors.Join(werr, cerr), ErrBadSnapshot) {
			t.Errorf("corrupted stream accepted: write %v, close %v", werr, cerr)
		}
		if metas, err := snaps2.List(); err != nil || len(metas) != 0 {
			t.Errorf("a rejected snapshot was kept: %v (%v)", metas, err)
		}
	}
	// A stream of the format before checksums followed each file is
	// refused as that, not as noise.
	_, err = readStreamHeader(strings.NewReader(streamMagicV1 + string(data[len(streamMagic):])))
	if !errors.Is(err, ErrBadSnapshot) || !strings.Contains(err.Error(), "format 1") {
		t.Errorf("a format 1 stream: %v", err)
	}
}

// snapshotAndPeer opens a shard holding 20 keys of valueBytes each, takes a
// snapshot of it, and opens a second, empty store to send it to.
func snapshotAndPeer(t *testing.T, valueBytes int) (s *Shard, snaps *SnapshotStore, id string, peer *SnapshotStore) {
	t.Helper()
	s, snaps = openTestShard(t, t.TempDir())
	for i := uint64(1); i <= 20; i++ {
		s.Apply(entry(t, i, 1, fmt.Sprintf("k%d", i), strings.Repeat("v", valueBytes)))
	}
	id = persist(t, s, snaps, 20)
	_, peer = openTestShard(t, t.TempDir())
	return s, snaps, id, peer
}

// A transfer cancelled halfway (the leader went away) leaves no file open
// and nothing in the store.
func TestCancelledSnapshotLeavesNothingOpen(t *testing.T) {
	s, snaps, id, snaps2 := snapshotAndPeer(t, 100000)
	defer s.Close()
	// The files this process holds open in either store (other files,
	// Pebble's, come and go on their own).
	openFiles := func() (open []string) {
		entries, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
			if err == nil && (strings.HasPrefix(target, snaps.Dir()) || strings.HasPrefix(target, snaps2.Dir())) {
				open = append(open, target)
			}
		}
		return open
	}
	meta, rc, sink := openTransfer(t, snaps, snaps2, id)
	if _, err := io.CopyN(sink, rc, meta.Size/2); err != nil {
		t.Fatal(err)
	}
	if err := sink.Cancel(); err != nil {
		t.Fatal(err)
	}
	rc.Close() // the sender's file
	if open := openFiles(); len(open) > 0 {
		t.Errorf("files still open after the cancel: %v", open)
	}
	if metas, err := snaps2.List(); err != nil || len(metas) != 0 {
		t.Errorf("a cancelled snapshot was kept: %v (%v)", metas, err)
	}
}

func TestSnapshotCostDoesNotGrowWithData(t *testing.T) {
	s, snaps := openTestShard(t, t.TempDir())
	defer s.Close()
	fillIncompressible(t, s, 32)
	before := bytesRead(t)
	id := persist(t, s, snaps, 32)
	// Taking it reads no file's bytes: not to checksum them either (a
	// manifest is made when the snapshot is first sent).
	if n := bytesRead(t) - before; n > 4<<20 {
		t.Errorf("taking a snapshot of 32 MiB read %d bytes", n)
	}
	dir := filepath.Join(snaps.Dir(), id, "ckpt")
	// Every sstable in the checkpoint is a hard link to the live store's.
	entries, _ := os.ReadDir(dir)
	ssts := 0
	for _, e := range entries {
		if filepath.Ext(e.Name()) != ".sst" {
			continue
		}
		ssts++
		a, _ := os.Stat(filepath.Join(dir, e.Name()))
		b, err := os.Stat(filepath.Join(s.layout.KVDir(0), e.Name()))
		if err != nil || !os.SameFile(a, b) {
			t.Errorf("%s is not a hard link into the live store", e.Name())
		}
	}
	if ssts == 0 {
		t.Fatal("checkpoint has no sstables: the data was not flushed")
	}
}

// restoreFrom restores snapshot id of snaps into s.
func restoreFrom(t *testing.T, snaps *SnapshotStore, id string, s *Shard) {
	t.Helper()
	_, rc, err := snaps.Open(id)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Restore(rc); err != nil {
		t.Fatal(err)
	}
}

// sendSnapshot streams snapshot id of from into a new snapshot of to, as
// InstallSnapshot does, and returns the receiving sink's Close error.
func sendSnapshot(t *testing.T, from, to *SnapshotStore, id string) (string, error) {
	t.Helper()
	meta, rc, sink := openTransfer(t, from, to, id)
	defer rc.Close()
	n, err := io.Copy(sink, rc)
	if err != nil {
		sink.Cancel()
		return "", err
	}
	if n != meta.Size {
		t.Fatalf("stream of %d bytes, meta says %d", n, meta.Size)
	}
	return sink.ID(), sink.Close()
}

// openTransfer opens snapshot id of from and a sink for it in to, as
// InstallSnapshot does on either side.
func openTransfer(t *testing.T, from, to *SnapshotStore, id string) (*raft.SnapshotMeta, io.ReadCloser, raft.SnapshotSink) {
	t.Helper()
	meta, rc, err := from.Open(id)
	if err != nil {
		t.Fatal(err)
	}
	sink, err := to.Create(1, meta.Index, meta.Term, meta.Configuration, meta.ConfigurationIndex, nil)
	if err != nil {
		rc.Close()
		t.Fatal(err)
	}
	return meta, rc, sink
}

// damageCopiedFile flips a byte of a file of the checkpoint in dir that
// is a copy (not a hard link into a live store), keeping its size.
func damageCopiedFile(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "OPTIONS") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(path)
		if err != nil || len(b) == 0 {
			t.Fatalf("%s: %d bytes, %v", path, len(b), err)
		}
		b[len(b)/2] ^= 0x20
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("no OPTIONS file in %s", dir)
}

// A snapshot's checksums are kept after its first send: a file damaged at
// rest afterwards fails the next send. A snapshot received as a stream
// keeps the checksums its files were checked against.
func TestSnapshotManifestIsKept(t *testing.T) {
	s, snaps, id, snaps2 := snapshotAndPeer(t, 1000)
	defer s.Close()
	got, err := sendSnapshot(t, snaps, snaps2, id)
	if err != nil {
		t.Fatalf("a sound snapshot was rejected: %v", err)
	}

	damageCopiedFile(t, filepath.Join(snaps.Dir(), id, "ckpt"))
	_, snaps3 := openTestShard(t, t.TempDir())
	if _, err := sendSnapshot(t, snaps, snaps3, id); !errors.Is(err, ErrBadSnapshot) {
		t.Fatalf("a snapshot damaged after its first send was accepted: %v", err)
	}
	damageCopiedFile(t, filepath.Join(snaps2.Dir(), got, "ckpt"))
	if _, err := sendSnapshot(t, snaps2, snaps3, got); !errors.Is(err, ErrBadSnapshot) {
		t.Fatalf("a received snapshot damaged at rest was accepted: %v", err)
	}
	if metas, err := snaps3.List(); err != nil || len(metas) != 0 {
		t.Fatalf("rejected snapshots were kept: %v (%v)", metas, err)
	}
}

// fillIncompressible applies entries 1..mib to s, each setting a key to
// 1 MiB that does not compress (so its files hold all of it), and settles
// it.
func fillIncompressible(t *testing.T, s *Shard, mib int) {
	t.Helper()
	rng := rand.NewChaCha8([32]byte{1})
	for i := uint64(1); i <= uint64(mib); i++ {
		big := make([]byte, 1<<20)
		rng.Read(big)
		s.Apply(entry(t, i, 1, fmt.Sprintf("big%d", i), string(big)))
	}
	settle(t, s)
}

// settle flushes s and waits (bounded) for Pebble's compactions to end,
// so that what is read or rewritten next is the test's doing.
func settle(t *testing.T, s *Shard) {
	t.Helper()
	if err := s.db.Flush(); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 30*time.Second, 10*time.Millisecond, "Pebble's compactions done", func() error {
		if n := s.db.Metrics().Compact.NumInProgress; n > 0 {
			return fmt.Errorf("%d compactions in progress", n)
		}
		return nil
	})
}

// bytesRead is how many bytes this process has read with read(2) and the
// like (Linux's /proc/self/io rchar, page cache hits included).
func bytesRead(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "rchar: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no rchar in /proc/self/io: %q", b)
	return 0
}

// Opening a snapshot reads none of its files, and sending it reads each
// once: the sender checksums a file as it streams it. The first send keeps
// the checksums, so later sends can check them.
func TestSnapshotSendReadsEachFileOnce(t *testing.T) {
	s, snaps := openTestShard(t, t.TempDir())
	defer s.Close()
	fillIncompressible(t, s, 32)
	id := persist(t, s, snaps, 32)
	before := bytesRead(t)
	_, rc, err := snaps.Open(id)
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()
	if n := bytesRead(t) - before; n > 1<<20 {
		t.Errorf("opening a snapshot of 32 MiB read %d bytes", n)
	}
	kept := filepath.Join(snaps.Dir(), id, manifestFile)
	if _, err := os.Stat(kept); !os.IsNotExist(err) {
		t.Fatalf("a send that read nothing kept a manifest: %v", err)
	}
	_, other := openTestShard(t, t.TempDir())
	before = bytesRead(t)
	got, err := sendSnapshot(t, snaps, other, id)
	if err != nil {
		t.Fatal(err)
	}
	if n := bytesRead(t) - before; n < 32<<20 || n > 36<<20 {
		t.Errorf("sending a snapshot of 32 MiB read %d bytes, want each file once", n)
	}
	b, err := os.ReadFile(kept)
	if err != nil {
		t.Fatalf("the first send kept no manifest: %v", err)
	}
	m, err := decodeManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range m.Files {
		data, err := os.ReadFile(filepath.Join(snaps.Dir(), id, "ckpt", f.Name))
		if err != nil || crc32.Checksum(data, castagnoli) != f.CRC32C || int64(len(data)) != f.Size {
			t.Errorf("kept %+v for %s (%d bytes, %v)", f, f.Name, len(data), err)
		}
	}
	t2, _ := openTestShard(t, t.TempDir())
	defer t2.Close()
	restoreFrom(t, other, got, t2)
	if v := get(t, t2, "big32"); len(v) != 1<<20 {
		t.Fatalf("big32 is %d bytes after the restore", len(v))
	}
}

func TestIdentityCheck(t *testing.T) {
	l := Layout{Dir: t.TempDir()}
	if st, _, err := l.Check("n1", 4); err != nil || st != DirNew {
		t.Fatalf("new dir: %v %v", st, err)
	}
	if err := l.WriteIdentity(Identity{Name: "n1", ClusterID: "c1", Shards: 4}); err != nil {
		t.Fatal(err)
	}
	if st, _, err := l.Check("n1", 4); err != nil || st != DirSame {
		t.Fatalf("same: %v %v", st, err)
	}
	if st, id, err := l.Check("n2", 4); err != nil || st != DirClone || id.Name != "n1" {
		t.Fatalf("clone: %v %v %v", st, id, err)
	}
	if _, _, err := l.Check("n1", 8); !errors.Is(err, ErrShardCount) {
		t.Fatalf("shard count: %v", err)
	}
	os.WriteFile(l.IdentityFile(), []byte("{not json"), 0o644)
	if _, _, err := l.Check("n1", 4); !errors.Is(err, ErrBadIdentity) {
		t.Fatalf("bad json: %v", err)
	}
	for _, bad := range []string{"", "-x", "a b", "a/b", string(bytes.Repeat([]byte("a"), 64))} {
		if ValidName(bad) == nil {
			t.Errorf("name %q accepted", bad)
		}
	}
}

func TestChecksumAgreesOnEqualDataOnly(t *testing.T) {
	a, _ := openTestShard(t, t.TempDir())
	b, _ := openTestShard(t, t.TempDir())
	defer a.Close()
	defer b.Close()
	// The same entries, applied in different batches, give the same sum.
	a.ApplyBatch([]*raft.Log{entry(t, 1, 1, "x", "1"), entry(t, 2, 1, "y", "2")})
	b.Apply(entry(t, 1, 1, "x", "1"))
	b.Apply(entry(t, 2, 1, "y", "2"))
	ai, asum, akeys, err := a.Checksum()
	if err != nil {
		t.Fatal(err)
	}
	bi, bsum, _, err := b.Checksum()
	if err != nil {
		t.Fatal(err)
	}
	if ai != 2 || bi != 2 || asum != bsum || akeys == 0 {
		t.Fatalf("a: index %d sum %08x keys %d; b: index %d sum %08x", ai, asum, akeys, bi, bsum)
	}
	// One value differs: the sums differ.
	b.Apply(entry(t, 3, 1, "y", "3"))
	a.Apply(entry(t, 3, 1, "y", "4"))
	_, asum, _, _ = a.Checksum()
	_, bsum, _, _ = b.Checksum()
	if asum == bsum {
		t.Fatalf("different values, same checksum %08x", asum)
	}
}

func TestDiskCloneKeepsDataAndMarksApplied(t *testing.T) {
	dir := t.TempDir()
	s, snaps := openTestShard(t, dir)
	s.ApplyBatch([]*raft.Log{entry(t, 7, 3, "a", "1")})
	persist(t, s, snaps, 7) // the original node's own snapshot
	l := Layout{Dir: dir}
	logs, g := openUnmanaged(t, l.RaftLogDir(), journalSize, 0)
	if err := g.StoreLog(&raft.Log{Index: 1, Term: 1}); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(g.Close(), logs.Close(), os.MkdirAll(l.LegacyRaftDir(0), 0o755)); err != nil {
		t.Fatal(err)
	}
	s.Close()

	if err := l.ForgetRaftState(1); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{l.RaftLogDir(), l.LegacyRaftDir(0)} {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Fatalf("%s still there: %v", d, err)
		}
	}
	s, snaps = openTestShard(t, dir)
	defer s.Close()
	if got := get(t, s, "a"); got != "1" {
		t.Fatalf("a = %q after ForgetRaftState, want the data kept", got)
	}
	if err := s.MarkApplied(); err != nil {
		t.Fatal(err)
	}
	list, err := snaps.List()
	if err != nil || len(list) != 1 || list[0].Index != 7 || list[0].Term != 3 || len(list[0].Configuration.Servers) != 0 {
		t.Fatalf("snapshots after MarkApplied: %+v, %v; want one at 7/3 with no configuration", list, err)
	}
}

// TestTrimmedHeadIsGone: after the head of the log is deleted (a snapshot's
// compaction) the entries below the first index are not found.
func TestTrimmedHeadIsGone(t *testing.T) {
	logs := testGroup(t, testLogs(t, t.TempDir()), 0)
	var batch []*raft.Log
	for i := uint64(1); i <= 100; i++ {
		batch = append(batch, &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: []byte{byte(i)}})
	}
	if err := logs.StoreLogs(batch); err != nil {
		t.Fatal(err)
	}
	if err := logs.DeleteRange(1, 60); err != nil {
		t.Fatal(err)
	}
	if first, _ := logs.FirstIndex(); first != 61 {
		t.Fatalf("first index %d, want 61", first)
	}
	var l raft.Log
	for _, i := range []uint64{1, 30, 60} {
		if err := logs.GetLog(i, &l); !errors.Is(err, raft.ErrLogNotFound) {
			t.Fatalf("GetLog(%d) after trimming 1..60: %v, want raft.ErrLogNotFound", i, err)
		}
	}
	if err := logs.GetLog(61, &l); err != nil || l.Data[0] != 61 {
		t.Fatalf("GetLog(61): %v, %v", l.Data, err)
	}
}

// A follower's conflicting tail is deleted and rewritten with a newer
// term: reads see the new entries, not the cached old ones, and nothing
// past the new end.
func TestRewrittenTailIsReadBack(t *testing.T) {
	logs := testGroup(t, testLogs(t, t.TempDir()), 0)
	entries := func(from, to, term uint64) []*raft.Log {
		var b []*raft.Log
		for i := from; i <= to; i++ {
			b = append(b, &raft.Log{Index: i, Term: term, Type: raft.LogCommand, Data: []byte{byte(i), byte(term)}})
		}
		return b
	}
	if err := logs.StoreLogs(entries(1, 10, 1)); err != nil {
		t.Fatal(err)
	}
	var l raft.Log
	if err := logs.GetLog(8, &l); err != nil || l.Term != 1 {
		t.Fatalf("GetLog(8): term %d, %v", l.Term, err)
	}
	if err := logs.DeleteRange(6, 10); err != nil {
		t.Fatal(err)
	}
	if err := logs.StoreLogs(entries(6, 8, 2)); err != nil {
		t.Fatal(err)
	}
	for i := uint64(6); i <= 8; i++ {
		if err := logs.GetLog(i, &l); err != nil || l.Term != 2 || l.Data[1] != 2 {
			t.Fatalf("GetLog(%d) after the rewrite: term %d data %v, %v; want term 2", i, l.Term, l.Data, err)
		}
	}
	if err := logs.GetLog(5, &l); err != nil || l.Term != 1 {
		t.Fatalf("GetLog(5): term %d, %v; want the untouched term 1", l.Term, err)
	}
	if err := logs.GetLog(9, &l); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("GetLog(9) past the rewritten end: %v, want raft.ErrLogNotFound", err)
	}
	if last, _ := logs.LastIndex(); last != 8 {
		t.Fatalf("last index %d, want 8", last)
	}
}

// Files larger than the writeback step arrive whole, byte for byte, in
// uneven chunks (a file's writeback is started every writebackBytes; a
// direct write is a whole buffer but for a file's padded tail), whether
// written with O_DIRECT or through the page cache.
func TestStreamOfLargeFiles(t *testing.T) {
	forEachWriteMode(t, testStreamOfLargeFiles)
}

// forEachWriteMode runs test with received files written with O_DIRECT
// (where the file system takes it) and through the page cache.
func forEachWriteMode(t *testing.T, test func(t *testing.T)) {
	for _, direct := range []bool{true, false} {
		t.Run(fmt.Sprintf("direct=%v", direct), func(t *testing.T) {
			directWrites = direct
			t.Cleanup(func() { directWrites = true })
			test(t)
		})
	}
}

func testStreamOfLargeFiles(t *testing.T) {
	src := t.TempDir()
	rng := rand.New(rand.NewPCG(3, 4))
	want := map[string][]byte{}
	for name, size := range map[string]int{"big.sst": 2*writebackBytes + 12345, "exact.sst": writebackBytes, "buffer.sst": directBuf, "small": 10, "empty": 0} {
		b := make([]byte, size)
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		if err := os.WriteFile(filepath.Join(src, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
		want[name] = b
	}
	r, _, err := newStreamReader(src, "")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	dst := filepath.Join(t.TempDir(), "out")
	w := newStreamWriter(dst)
	buf := make([]byte, 1<<20+7) // chunks that straddle file and writeback boundaries
	if _, err := io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{r}, buf); err != nil {
		t.Fatal(err)
	}
	if err := w.finish(); err != nil {
		t.Fatal(err)
	}
	for name, b := range want {
		got, err := os.ReadFile(filepath.Join(dst, name))
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("%s: %d bytes back (%v), want the %d written", name, len(got), err, len(b))
		}
	}
}

// A stream Restore was writing when the process died is removed when the
// shard opens again; the shard's other files stay.
func TestOpenRemovesInterruptedRestoreStreams(t *testing.T) {
	fs := vfs.NewMem()
	l := Layout{Dir: "/node"}
	// A received stream, a stream being sent, a backup's checkpoint.
	var left []string
	for _, prefix := range []string{restoreStreamPrefix, sendStreamPrefix, backupPrefix} {
		dir := fs.PathJoin(l.ShardDir(0), prefix+"123")
		if err := fs.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := writeFSFileAtomic(fs, fs.PathJoin(dir, "000001.sst"), []byte("part of a file")); err != nil {
			t.Fatal(err)
		}
		left = append(left, dir)
	}
	other := fs.PathJoin(l.ShardDir(0), "other")
	if err := writeFSFileAtomic(fs, other, nil); err != nil {
		t.Fatal(err)
	}
	s, err := openShard(fs, l, 0, setExec, nil, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, dir := range left {
		if _, err := fs.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s is still there (stat: %v)", dir, err)
		}
	}
	if _, err := fs.Stat(other); err != nil {
		t.Fatalf("another file of the shard's dir went: %v", err)
	}
}

// DropAll leaves the snapshot store empty: kept snapshots and a
// half-written one.
func TestSnapshotStoreDropAll(t *testing.T) {
	s, snaps := openTestShard(t, t.TempDir())
	defer s.Close()
	s.Apply(entry(t, 1, 1, "a", "1"))
	persist(t, s, snaps, 1)
	if _, err := snaps.Create(1, 2, 1, raft.Configuration{}, 1, nil); err != nil { // left half-written
		t.Fatal(err)
	}
	if metas, err := snaps.List(); err != nil || len(metas) != 1 {
		t.Fatalf("before DropAll: %d snapshots, %v", len(metas), err)
	}
	if err := snaps.DropAll(); err != nil {
		t.Fatal(err)
	}
	if left, err := os.ReadDir(snaps.Dir()); err != nil || len(left) != 0 {
		t.Fatalf("after DropAll the store holds %v (%v)", left, err)
	}
	if got := get(t, s, "a"); got != "1" {
		t.Fatalf("the shard's own key after DropAll: %q", got)
	}
}

// ViewAtOnce sees the store as one commit left it, however many reads it
// makes: entries that each set two keys to the entry's index, applied
// while a reader reads both keys again and again, are never seen half.
func TestViewAtOnceSeesOneCommit(t *testing.T) {
	s, _ := openTestShard(t, t.TempDir())
	defer s.Close()
	const entries = 3000
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := uint64(1); i <= entries; i++ {
			n := strconv.FormatUint(i, 10)
			if res := s.ApplyBatch([]*raft.Log{entry(t, i, 1, "a", n, "b", n)}); res[0] == nil {
				t.Errorf("entry %d: %v", i, res[0])
				return
			}
		}
	}()
	reads := 0
	for running := true; running; reads++ {
		select {
		case <-done:
			running = false
		default:
		}
		var a, b []byte
		if err := s.ViewAtOnce(func(r kv.Reader) error {
			var err1, err2 error
			a, _, err1 = r.Get([]byte("\x01a"))
			b, _, err2 = r.Get([]byte("\x01b"))
			return errors.Join(err1, err2)
		}); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Fatalf("read %d: a is %q and b %q: a commit between the two reads", reads, a, b)
		}
	}
	t.Logf("%d reads", reads)
}
