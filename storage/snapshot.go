package storage

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/raft"
)

// A snapshot is a directory <snapshots>/<term>-<index>-<ms>/ holding
// meta.json (raft.SnapshotMeta) and ckpt/, a Pebble checkpoint: hard links
// to the store's immutable sstables plus copies of its small mutable files.
// Taking one costs O(files), not O(data): nothing reads the files' bytes.
//
// On the wire (InstallSnapshot, and the sync of a joining node) a snapshot
// is a stream: a header naming the files and their sizes, then each file's
// bytes followed by their CRC-32C:
//
//	"COPPICE-SNAPSHOT-2\n"
//	uvarint length, JSON manifest {"dir": ..., "files": [{"name","size"}]}
//	for each file: its bytes, then their CRC-32C (4 bytes, big-endian)
//
// dir is the sender's local checkpoint dir; a receiver ignores it. The
// sender checksums each file as it reads it for the stream, so opening a
// snapshot reads nothing and a send reads each file once. A receiving sink
// checks every file's size and checksum, fsyncs it, and fails its Close on
// any mismatch, so a corrupted transfer is rejected and Raft retries it.
//
// The checksums are kept beside the files in manifest.json: a received
// snapshot's as they were checked, a checkpoint taken here's once a first
// send has read all its files. A later send checks each file against the
// kept checksum and fails if a file was damaged at rest since.

const streamMagic = "COPPICE-SNAPSHOT-2\n"

// streamMagicV1 opened the stream of coppice before 2026-12-03, which
// carried the checksums in the header: it is recognised only to say so.
const streamMagicV1 = "COPPICE-SNAPSHOT-1\n"

// crcLen is the length of the checksum after each file in a stream.
const crcLen = 4

// maxManifest bounds the manifest a stream may announce.
const maxManifest = 16 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type manifest struct {
	Dir   string     `json:"dir,omitempty"`
	Files []fileInfo `json:"files"`
}

// fileInfo is a file of a snapshot. CRC32C is kept in manifest.json and
// left out of a stream's header (a zero is omitted: it is also the
// checksum of an empty file).
type fileInfo struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	CRC32C uint32 `json:"crc32c,omitempty"`
}

// SnapshotStore keeps a shard's Raft snapshots as Pebble checkpoints
// (raft.SnapshotStore).
type SnapshotStore struct {
	dir    string
	retain int
	mu     sync.Mutex // serialises reaping against opening
	// keepMu serialises the keeping of a manifest a send computed, so two
	// sends of a new checkpoint at once do not write one file together.
	keepMu sync.Mutex
	// The snapshot being received (InstallSnapshot), if any: bytes of its
	// files written so far, and in all.
	recvDone, recvTotal atomic.Int64
	// throttle paces the streams the store sends and receives (nil: no
	// limit); set before the store is used.
	throttle *Throttle
}

// SetThrottle makes the store's sends and receives share t's rate (nil:
// no limit). Call it before the store is used; every store of a node is
// given the same t.
func (st *SnapshotStore) SetThrottle(t *Throttle) { st.throttle = t }

// Receiving reports the transfer of a snapshot into the store under way:
// file bytes written and in all (0, 0 when none is).
func (st *SnapshotStore) Receiving() (done, total int64) {
	return st.recvDone.Load(), st.recvTotal.Load()
}

// NewSnapshotStore opens dir, keeping the newest retain snapshots.
func NewSnapshotStore(dir string, retain int) (*SnapshotStore, error) {
	if retain < 1 {
		return nil, fmt.Errorf("storage: snapshot retain %d: want at least 1", retain)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	// Synced into its parent (and any parent made with it): a snapshot
	// lets Raft compact its log, so a store whose directory a power cut
	// takes back would leave the shard's log with a gap at its start.
	if err := mkdirAllSynced(vfs.Default, abs); err != nil {
		return nil, err
	}
	// Leftovers of interrupted snapshots.
	entries, _ := os.ReadDir(abs)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			os.RemoveAll(filepath.Join(abs, e.Name()))
		}
	}
	return &SnapshotStore{dir: abs, retain: retain}, nil
}

// Dir is the store's directory.
func (st *SnapshotStore) Dir() string { return st.dir }

func (st *SnapshotStore) owns(dir string) bool {
	rel, err := filepath.Rel(st.dir, dir)
	return err == nil && !strings.HasPrefix(rel, "..") && rel != "."
}

// Create starts a snapshot (raft.SnapshotStore).
func (st *SnapshotStore) Create(version raft.SnapshotVersion, index, term uint64, configuration raft.Configuration,
	configurationIndex uint64, _ raft.Transport) (raft.SnapshotSink, error) {
	if version != 1 {
		return nil, fmt.Errorf("%w: unsupported snapshot version %d", ErrBadSnapshot, version)
	}
	id := fmt.Sprintf("%d-%d-%d", term, index, time.Now().UnixMilli())
	tmp := filepath.Join(st.dir, id+".tmp")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return nil, err
	}
	return &snapshotSink{
		store: st, dir: tmp,
		meta: raft.SnapshotMeta{Version: version, ID: id, Index: index, Term: term,
			Configuration: configuration, ConfigurationIndex: configurationIndex},
	}, nil
}

// List returns the snapshots, newest first (raft.SnapshotStore).
func (st *SnapshotStore) List() ([]*raft.SnapshotMeta, error) {
	metas, err := st.list()
	if err != nil {
		return nil, err
	}
	if len(metas) > st.retain {
		metas = metas[:st.retain]
	}
	return metas, nil
}

func (st *SnapshotStore) list() ([]*raft.SnapshotMeta, error) {
	entries, err := os.ReadDir(st.dir)
	if err != nil {
		return nil, err
	}
	var metas []*raft.SnapshotMeta
	for _, e := range entries {
		if !e.IsDir() || strings.HasSuffix(e.Name(), ".tmp") {
			continue
		}
		m, err := readMeta(filepath.Join(st.dir, e.Name()))
		if err != nil {
			continue // incomplete: no meta.json yet, or damaged
		}
		metas = append(metas, m)
	}
	sort.Slice(metas, func(i, j int) bool {
		a, b := metas[i], metas[j]
		if a.Term != b.Term {
			return a.Term > b.Term
		}
		if a.Index != b.Index {
			return a.Index > b.Index
		}
		return a.ID > b.ID
	})
	return metas, nil
}

func readMeta(dir string) (*raft.SnapshotMeta, error) {
	b, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if err != nil {
		return nil, err
	}
	var m raft.SnapshotMeta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// Open returns a snapshot's meta and its stream (raft.SnapshotStore).
func (st *SnapshotStore) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	if strings.ContainsAny(id, `/\`) || id == "" || id == "." || id == ".." {
		return nil, nil, fmt.Errorf("%w: bad id %q", ErrSnapshotMissing, id)
	}
	dir := filepath.Join(st.dir, id)
	meta, err := readMeta(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s: %v", ErrSnapshotMissing, id, err)
	}
	ckpt := filepath.Join(dir, "ckpt")
	m, known, err := manifestOf(dir)
	if err != nil {
		return nil, nil, err
	}
	r, size, err := streamOf(ckpt, m, known, ckpt)
	if err != nil {
		return nil, nil, err
	}
	r.throttle = st.throttle
	if !known {
		// Keeping it is a saving and a check for later sends, not a
		// condition of this one: if it fails, the next send checksums
		// the files again.
		r.sent = func(m *manifest) {
			st.keepMu.Lock()
			defer st.keepMu.Unlock()
			writeManifest(dir, m)
		}
	}
	meta.Size = size
	return meta, r, nil
}

// manifestFile holds a snapshot's manifest, beside meta.json.
const manifestFile = "manifest.json"

// manifestOf returns the manifest of the snapshot in dir: the one kept in
// manifestFile, checksums known, or else its files' names and sizes.
func manifestOf(dir string) (m *manifest, known bool, err error) {
	if b, err := os.ReadFile(filepath.Join(dir, manifestFile)); err == nil {
		if m, err := decodeManifest(b); err == nil {
			return m, true, nil
		}
	}
	m, err = listFiles(filepath.Join(dir, "ckpt"))
	return m, false, err
}

// writeManifest keeps m in dir's manifestFile (durably: written, synced,
// renamed into place).
func writeManifest(dir string, m *manifest) error {
	b, err := json.Marshal(&manifest{Files: m.Files})
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, manifestFile), b)
}

// DropAll removes every snapshot of the store, kept or half-written, for
// good: the checkpoints are hard links to the shard's tables, so when the
// shard's store is damaged they may be too (the Raft actor's rebuild).
func (st *SnapshotStore) DropAll() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	entries, err := os.ReadDir(st.dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(st.dir, e.Name())); err != nil {
			return fmt.Errorf("storage: dropping snapshot %s: %w", e.Name(), err)
		}
	}
	return syncFSDir(vfs.Default, st.dir)
}

func (st *SnapshotStore) reap() {
	metas, err := st.list()
	if err != nil {
		return
	}
	for _, m := range metas[min(len(metas), st.retain):] {
		os.RemoveAll(filepath.Join(st.dir, m.ID))
	}
}

// snapshotSink receives a snapshot: either a checkpoint written straight
// into ckptDir (by Shard's Persist) or a stream (InstallSnapshot).
type snapshotSink struct {
	store        *SnapshotStore
	dir          string
	meta         raft.SnapshotMeta
	checkpointed bool
	stream       *streamWriter
	closed       bool
}

func (s *snapshotSink) ckptDir() string { return filepath.Join(s.dir, "ckpt") }

func (s *snapshotSink) ID() string { return s.meta.ID }

func (s *snapshotSink) Write(p []byte) (int, error) {
	if s.stream == nil {
		s.stream = newStreamWriter(s.ckptDir())
		s.stream.throttle = s.store.throttle
	}
	n, err := s.stream.Write(p)
	if m := s.stream.m; m != nil {
		if s.store.recvTotal.Load() == 0 {
			var total int64
			for _, f := range m.Files {
				total += f.Size
			}
			s.store.recvTotal.Store(total)
		}
		s.store.recvDone.Store(s.stream.fileBytes)
	}
	return n, err
}

// received clears the store's transfer progress.
func (s *snapshotSink) received() {
	if s.stream != nil {
		s.store.recvDone.Store(0)
		s.store.recvTotal.Store(0)
	}
}

func (s *snapshotSink) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	defer s.received()
	var err error
	switch {
	case s.stream != nil:
		// The files are checked against the stream's manifest as they
		// arrive (finish checks the last); it is kept beside them.
		err = s.stream.finish()
		if err == nil {
			err = writeManifest(s.dir, s.stream.m)
		}
		if err == nil {
			s.meta.Size = filesSize(s.stream.m)
		}
	case s.checkpointed:
		// Sizes only (O(files)). Here and above, the header is left out
		// of meta.Size: Open gives the exact size of the stream it makes.
		var m *manifest
		if m, err = listFiles(s.ckptDir()); err == nil {
			s.meta.Size = filesSize(m)
		}
	default:
		err = fmt.Errorf("%w: snapshot %s closed with no data", ErrBadSnapshot, s.meta.ID)
	}
	if err != nil {
		os.RemoveAll(s.dir)
		return err
	}
	final := filepath.Join(s.store.dir, s.meta.ID)
	b, err := json.Marshal(&s.meta)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(s.dir, "meta.json"), b); err != nil {
		os.RemoveAll(s.dir)
		return err
	}
	s.store.mu.Lock()
	defer s.store.mu.Unlock()
	if err := os.Rename(s.dir, final); err != nil {
		os.RemoveAll(s.dir)
		return err
	}
	if err := syncDir(s.store.dir); err != nil {
		return err
	}
	s.store.reap()
	return nil
}

func (s *snapshotSink) Cancel() error {
	if s.stream != nil {
		s.stream.abort()
	}
	s.closed = true
	s.received()
	return os.RemoveAll(s.dir)
}

// newStreamReader streams the checkpoint in dir, announcing announceDir as
// its location; it returns the stream's exact length too.
func newStreamReader(dir, announceDir string) (io.ReadCloser, int64, error) {
	m, err := listFiles(dir)
	if err != nil {
		return nil, 0, err
	}
	return streamOf(dir, m, false, announceDir)
}

// streamOf streams the files of m from dir, announcing announceDir; with
// known, each file must match the checksum m has for it. The reader owns
// m: it records in it each file's checksum as it reads the file.
func streamOf(dir string, m *manifest, known bool, announceDir string) (*streamReader, int64, error) {
	hdr, err := encodeHeader(announceDir, m.Files)
	if err != nil {
		return nil, 0, err
	}
	r := &streamReader{dir: dir, m: m, known: known, hdr: hdr}
	return r, int64(len(hdr)) + filesSize(m), nil
}

// filesSize is the length of the part of a stream after its header: each
// file's bytes and checksum.
func filesSize(m *manifest) int64 {
	n := int64(len(m.Files)) * crcLen
	for _, f := range m.Files {
		n += f.Size
	}
	return n
}

// listFiles lists the files of the checkpoint in dir, names and sizes
// (O(files): no file is read).
func listFiles(dir string) (*manifest, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSnapshot, err)
	}
	m := &manifest{}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return nil, err
		}
		m.Files = append(m.Files, fileInfo{Name: e.Name(), Size: info.Size()})
	}
	return m, nil
}

// encodeHeader makes a stream's header announcing dir and the files' names
// and sizes (each file's checksum follows its bytes).
func encodeHeader(dir string, files []fileInfo) ([]byte, error) {
	m := &manifest{Dir: dir, Files: make([]fileInfo, len(files))}
	for i, f := range files {
		m.Files[i] = fileInfo{Name: f.Name, Size: f.Size}
	}
	js, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	hdr := append([]byte(streamMagic), binary.AppendUvarint(nil, uint64(len(js)))...)
	return append(hdr, js...), nil
}

// readStreamHeader reads the magic and the manifest, validating names.
func readStreamHeader(r io.Reader) (*manifest, error) {
	magic := make([]byte, len(streamMagic))
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != streamMagic {
		if string(magic) == streamMagicV1 {
			return nil, fmt.Errorf("%w: a stream of format 1, from a coppice older than this node (format 2): "+
				"every node of a cluster must run the same version", ErrBadSnapshot)
		}
		return nil, fmt.Errorf("%w: not a coppice snapshot stream", ErrBadSnapshot)
	}
	n, err := binary.ReadUvarint(byteReader{r})
	if err != nil || n > maxManifest {
		return nil, fmt.Errorf("%w: manifest length %d", ErrBadSnapshot, n)
	}
	js := make([]byte, n)
	if _, err := io.ReadFull(r, js); err != nil {
		return nil, fmt.Errorf("%w: manifest: %v", ErrBadSnapshot, err)
	}
	return decodeManifest(js)
}

// decodeManifest parses a manifest, validating its file names.
func decodeManifest(js []byte) (*manifest, error) {
	var m manifest
	if err := json.Unmarshal(js, &m); err != nil {
		return nil, fmt.Errorf("%w: manifest: %v", ErrBadSnapshot, err)
	}
	for _, f := range m.Files {
		if f.Name == "" || f.Name != filepath.Base(f.Name) || f.Name == "." || f.Name == ".." || f.Size < 0 {
			return nil, fmt.Errorf("%w: bad file entry %q", ErrBadSnapshot, f.Name)
		}
	}
	return &m, nil
}

// byteReader reads one byte at a time without buffering past the header.
type byteReader struct{ r io.Reader }

func (b byteReader) ReadByte() (byte, error) {
	var p [1]byte
	_, err := io.ReadFull(b.r, p[:])
	return p[0], err
}

// streamReader reads a stream of the files of m in dir, checksumming each
// file as it goes.
type streamReader struct {
	dir string
	m   *manifest
	// known: m has each file's checksum, which it must match.
	known bool
	// sent, if set, is given m with the checksums once the whole stream
	// has been read.
	sent    func(*manifest)
	hdr     []byte
	next    int // the index of the next file to open
	cur     *os.File
	left    int64 // bytes of cur still to read
	crc     uint32
	trailer []byte // the rest of the current file's checksum, to send
	tbuf    [crcLen]byte
	ended   bool
	// throttle paces the file bytes read (nil: no limit).
	throttle *Throttle
}

func (s *streamReader) Read(p []byte) (int, error) {
	if len(s.hdr) > 0 {
		n := copy(p, s.hdr)
		s.hdr = s.hdr[n:]
		return n, nil
	}
	for s.cur == nil || s.left == 0 {
		if len(s.trailer) > 0 {
			n := copy(p, s.trailer)
			s.trailer = s.trailer[n:]
			return n, nil
		}
		if s.cur != nil {
			if err := s.endFile(); err != nil {
				return 0, err
			}
			continue
		}
		if s.next >= len(s.m.Files) {
			s.end()
			return 0, io.EOF
		}
		f := s.m.Files[s.next]
		fh, err := os.Open(filepath.Join(s.dir, f.Name))
		if err != nil {
			return 0, err
		}
		s.cur, s.left, s.crc = fh, f.Size, 0
	}
	if int64(len(p)) > s.left {
		p = p[:s.left]
	}
	n, err := s.cur.Read(p)
	s.throttle.take(n)
	s.crc = crc32.Update(s.crc, castagnoli, p[:n])
	s.left -= int64(n)
	if err == io.EOF && s.left > 0 {
		return n, fmt.Errorf("%w: file shrank while streaming", ErrBadSnapshot)
	}
	if err == io.EOF {
		err = nil
	}
	return n, err
}

// endFile closes the file just read and queues its checksum, after
// checking it against the known one.
func (s *streamReader) endFile() error {
	f := s.m.Files[s.next]
	s.cur.Close()
	s.cur = nil
	if s.known && s.crc != f.CRC32C {
		return fmt.Errorf("%w: %s: checksum %08x, recorded %08x: damaged since it was first sent",
			ErrBadSnapshot, f.Name, s.crc, f.CRC32C)
	}
	s.m.Files[s.next].CRC32C = s.crc
	s.next++
	s.trailer = binary.BigEndian.AppendUint32(s.tbuf[:0], s.crc)
	return nil
}

// end hands m, its checksums now all read, to sent, once.
func (s *streamReader) end() {
	if s.ended || s.sent == nil {
		return
	}
	s.ended = true
	s.sent(s.m)
}

func (s *streamReader) Close() error {
	if s.cur != nil {
		return s.cur.Close()
	}
	return nil
}

// writebackBytes is how much of a received file is written before its
// writeback is started (writeback).
const writebackBytes = 4 << 20

// directBuf is how much a received file's O_DIRECT writer writes at once.
const directBuf = 1 << 20

// directWrites: a received file is written with O_DIRECT where the file
// system takes it (openDirect), else through the page cache with
// writeback's help. A variable for the tests, which try both.
var directWrites = true

// streamWriter writes a stream's files into dir as the bytes arrive,
// checking each one against the checksum that follows it, which it records
// in m. Without a dir it only checks them.
type streamWriter struct {
	dir    string
	hdrBuf []byte
	m      *manifest
	idx    int
	// cur writes the current file (nil: none open); direct and paged
	// are the last of each kind, whose buffer the next one reuses.
	cur     receivedFile
	direct  *directFile
	paged   *pagedFile
	crc     uint32
	sum     []byte // the checksum after the current file, as it arrives
	written int64
	// fileBytes counts every file byte written so far.
	fileBytes int64
	err       error
	// throttle paces the bytes written (nil: no limit).
	throttle *Throttle
}

func newStreamWriter(dir string) *streamWriter { return &streamWriter{dir: dir} }

func (w *streamWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	w.throttle.take(len(p))
	total := len(p)
	if w.m == nil {
		w.hdrBuf = append(w.hdrBuf, p...)
		if len(w.hdrBuf) > maxManifest+64 {
			w.err = fmt.Errorf("%w: header too large", ErrBadSnapshot)
			return 0, w.err
		}
		r := &countingReader{b: w.hdrBuf}
		m, err := readStreamHeader(r)
		if err != nil {
			if r.short {
				return total, nil // wait for more bytes
			}
			w.err = err
			return 0, err
		}
		if err := os.MkdirAll(w.dir, 0o755); err != nil {
			w.err = err
			return 0, err
		}
		w.m = m
		p = w.hdrBuf[r.off:]
		w.hdrBuf = nil
	}
	for len(p) > 0 {
		if err := w.openNext(); err != nil {
			w.err = err
			return 0, err
		}
		if w.cur == nil {
			w.err = fmt.Errorf("%w: %d bytes past the last file", ErrBadSnapshot, len(p))
			return 0, w.err
		}
		f := w.m.Files[w.idx]
		if w.written == f.Size {
			// The file is in: its checksum follows.
			n := min(len(p), crcLen-len(w.sum))
			w.sum = append(w.sum, p[:n]...)
			p = p[n:]
			if len(w.sum) == crcLen {
				if err := w.closeCurrent(); err != nil {
					w.err = err
					return 0, err
				}
			}
			continue
		}
		n := int64(len(p))
		if rest := f.Size - w.written; n > rest {
			n = rest
		}
		if _, err := w.cur.Write(p[:n]); err != nil {
			w.err = err
			return 0, err
		}
		w.crc = crc32.Update(w.crc, castagnoli, p[:n])
		w.written += n
		w.fileBytes += n
		p = p[n:]
	}
	return total, nil
}

// openNext opens the next file to fill, if none is open.
func (w *streamWriter) openNext() error {
	if w.cur != nil || w.idx >= len(w.m.Files) {
		return nil
	}
	w.crc, w.sum, w.written = 0, w.sum[:0], 0
	if w.dir == "" {
		w.cur = discardFile{}
		return nil
	}
	name := filepath.Join(w.dir, w.m.Files[w.idx].Name)
	if directWrites {
		df, err := openDirect(name, w.direct)
		if err != nil {
			return err
		}
		if df != nil {
			w.cur, w.direct = df, df
			return nil
		}
	}
	pf, err := openPaged(name, w.paged)
	if err != nil {
		return err
	}
	w.cur, w.paged = pf, pf
	return nil
}

// receivedFile writes one file of a stream: a directFile where the file
// system takes O_DIRECT, else a pagedFile.
type receivedFile interface {
	Write(p []byte) (int, error)
	// finish writes what is buffered, cuts the file to size and fsyncs
	// it; Close closes it either way.
	finish(size int64) error
	Close() error
}

// discardFile takes a file that is only checked (a streamWriter without a
// dir).
type discardFile struct{}

func (discardFile) Write(p []byte) (int, error) { return len(p), nil }
func (discardFile) finish(int64) error          { return nil }
func (discardFile) Close() error                { return nil }

// pagedFile writes a file through the page cache, and every writebackBytes
// waits for the range before to be on the disk, drops it from the page
// cache and starts the next (writeback).
type pagedFile struct {
	f  *os.File
	bw *bufio.Writer
	// written is how much went in, flushed how much of it has been
	// handed to the kernel's writeback, dropped how much of that is on
	// the disk and out of the page cache.
	written, flushed, dropped int64
}

// openPaged creates name, reusing prev's buffer if prev is set.
func openPaged(name string, prev *pagedFile) (*pagedFile, error) {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, err
	}
	if prev == nil {
		return &pagedFile{f: f, bw: bufio.NewWriterSize(f, 1<<20)}, nil
	}
	prev.bw.Reset(f)
	return &pagedFile{f: f, bw: prev.bw}, nil
}

func (p *pagedFile) Write(b []byte) (int, error) {
	n, err := p.bw.Write(b)
	p.written += int64(n)
	if err == nil && p.written-p.flushed >= writebackBytes {
		if err = p.bw.Flush(); err == nil {
			writeback(p.f, p.dropped, p.flushed-p.dropped, p.flushed, p.written-p.flushed)
			p.dropped, p.flushed = p.flushed, p.written
		}
	}
	return n, err
}

func (p *pagedFile) finish(size int64) error {
	err := p.bw.Flush()
	if err == nil {
		err = p.f.Sync()
	}
	if err == nil {
		writeback(p.f, p.dropped, size-p.dropped, 0, 0) // on the disk: drop the rest
	}
	return err
}

func (p *pagedFile) Close() error { return p.f.Close() }

// closeCurrent fsyncs and closes the current file, whose bytes and
// checksum are in, and checks the checksum.
func (w *streamWriter) closeCurrent() error {
	f := &w.m.Files[w.idx]
	err := w.cur.finish(f.Size)
	if cerr := w.cur.Close(); err == nil {
		err = cerr
	}
	w.cur = nil
	w.idx++
	if err != nil {
		return err
	}
	if sent := binary.BigEndian.Uint32(w.sum); w.crc != sent {
		return fmt.Errorf("%w: %s: checksum %08x, sent %08x", ErrBadSnapshot, f.Name, w.crc, sent)
	}
	f.CRC32C = w.crc
	return nil
}

func (w *streamWriter) finish() error {
	if w.err != nil {
		w.abort()
		return w.err
	}
	if w.m == nil {
		return fmt.Errorf("%w: stream ended in its header", ErrBadSnapshot)
	}
	if w.cur != nil || w.idx < len(w.m.Files) {
		w.abort()
		return fmt.Errorf("%w: stream ended early, in file %d of %d", ErrBadSnapshot, w.idx+1, len(w.m.Files))
	}
	if w.dir == "" {
		return nil
	}
	return syncDir(w.dir)
}

// abort closes the file being written, if any, leaving it unsynced: the
// stream failed.
func (w *streamWriter) abort() {
	if w.cur != nil {
		w.cur.Close()
		w.cur = nil
	}
}

// countingReader reads from a buffer, remembering whether it ran short.
type countingReader struct {
	b     []byte
	off   int
	short bool
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.off >= len(c.b) {
		c.short = true
		return 0, io.ErrUnexpectedEOF
	}
	n := copy(p, c.b[c.off:])
	c.off += n
	if n < len(p) {
		c.short = true
		return n, io.ErrUnexpectedEOF
	}
	return n, nil
}

// writeStreamFiles reads the files of a stream whose header was read.
func writeStreamFiles(r io.Reader, m *manifest, dir string) error {
	w := &streamWriter{dir: dir, m: m}
	defer w.abort()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if _, err := io.Copy(w, r); err != nil {
		return err
	}
	return w.finish()
}

// linkTree makes dst, on fs, a copy of the flat directory src: immutable
// sstables are hard-linked, everything else (manifest, options) copied
// and synced; then dst itself is synced.
func linkTree(fs vfs.FS, src, dst string) error {
	if err := fs.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	names, err := fs.List(src)
	if err != nil {
		return err
	}
	for _, name := range names {
		from, to := fs.PathJoin(src, name), fs.PathJoin(dst, name)
		if fi, err := fs.Stat(from); err != nil {
			return err
		} else if !fi.Mode().IsRegular() || name == keyFilterFile {
			continue // the filter is the restore's to read, not the store's
		}
		if strings.HasSuffix(name, ".sst") || strings.HasSuffix(name, ".blob") {
			if err := fs.Link(from, to); err == nil {
				continue
			}
		}
		if err := copyFile(fs, from, to); err != nil {
			return err
		}
	}
	return syncFSDir(fs, dst)
}

func copyFile(fs vfs.FS, from, to string) error {
	in, err := fs.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := fs.Create(to, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
