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
// Its manifest (each file's size and CRC-32C, which the stream's header
// carries) is kept beside them in manifest.json once known: a snapshot
// that arrived as a stream has it from the stream's header, its files
// checked against it as they were written; a checkpoint taken here gets it
// when it is first opened to be sent, by reading its files once. A file
// damaged at rest after that is then caught by the receiver's check.
//
// On the wire (InstallSnapshot, and the sync of a joining node) a snapshot
// is a stream: a header, then each file's bytes in manifest order:
//
//	"COPPICE-SNAPSHOT-1\n"
//	uvarint length, JSON manifest {"dir": ..., "files": [{"name","size","crc32c"}]}
//	file bytes...
//
// dir is the sender's local checkpoint dir; a receiver ignores it. A
// receiving sink checks every file's size and CRC-32C, fsyncs it, and fails
// its Close on any mismatch, so a corrupted transfer is rejected and Raft
// retries it.

const streamMagic = "COPPICE-SNAPSHOT-1\n"

// maxManifest bounds the manifest a stream may announce.
const maxManifest = 16 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type manifest struct {
	Dir   string     `json:"dir,omitempty"`
	Files []fileInfo `json:"files"`
}

type fileInfo struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	CRC32C uint32 `json:"crc32c"`
}

// SnapshotStore keeps a shard's Raft snapshots as Pebble checkpoints
// (raft.SnapshotStore).
type SnapshotStore struct {
	dir    string
	retain int
	mu     sync.Mutex // serialises reaping against opening
	// scanMu serialises the computing of manifests (manifestOf), so two
	// Opens of a new checkpoint read its files once.
	scanMu sync.Mutex
	// The snapshot being received (InstallSnapshot), if any: bytes of its
	// files written so far, and in all.
	recvDone, recvTotal atomic.Int64
}

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
	m, err := st.manifestOf(dir)
	if err != nil {
		return nil, nil, err
	}
	ckpt := filepath.Join(dir, "ckpt")
	r, size, err := streamOf(ckpt, m, ckpt)
	if err != nil {
		return nil, nil, err
	}
	meta.Size = size
	return meta, r, nil
}

// manifestFile holds a snapshot's manifest, beside meta.json.
const manifestFile = "manifest.json"

// manifestOf returns the manifest of the snapshot in dir: the one kept in
// manifestFile, or else one read off its files, which is then kept (if
// keeping it fails, the next Open reads the files again).
func (st *SnapshotStore) manifestOf(dir string) (*manifest, error) {
	st.scanMu.Lock()
	defer st.scanMu.Unlock()
	if b, err := os.ReadFile(filepath.Join(dir, manifestFile)); err == nil {
		if m, err := decodeManifest(b); err == nil {
			return m, nil
		}
	}
	m, err := scanManifest(filepath.Join(dir, "ckpt"), st.knownFiles(dir))
	if err != nil {
		return nil, err
	}
	writeManifest(dir, m)
	return m, nil
}

// knownFiles gathers, from the manifests of the store's snapshots other
// than the one in dir, the checksums of their files, with each file's
// path: successive checkpoints of a shard hard-link mostly the same
// sstables, and a file that is the same inode as one already checksummed
// need not be read again (scanManifest).
func (st *SnapshotStore) knownFiles(dir string) map[string]knownFile {
	known := map[string]knownFile{}
	entries, _ := os.ReadDir(st.dir)
	for _, e := range entries {
		other := filepath.Join(st.dir, e.Name())
		if !e.IsDir() || other == filepath.Clean(dir) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(other, manifestFile))
		if err != nil {
			continue
		}
		m, err := decodeManifest(b)
		if err != nil {
			continue
		}
		for _, f := range m.Files {
			known[f.Name] = knownFile{fileInfo: f, path: filepath.Join(other, "ckpt", f.Name)}
		}
	}
	return known
}

// knownFile is a file some manifest checksummed, and where it is.
type knownFile struct {
	fileInfo
	path string
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
			_, s.meta.Size, err = streamOf(s.ckptDir(), s.stream.m, "")
		}
	case s.checkpointed:
		// Sizes only (O(files)); Open gives the stream's exact size.
		s.meta.Size, err = dirBytes(s.ckptDir())
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
	s.closed = true
	s.received()
	return os.RemoveAll(s.dir)
}

// newStreamReader streams the checkpoint in dir, announcing announceDir as
// its location; it returns the stream's exact length too.
func newStreamReader(dir, announceDir string) (io.ReadCloser, int64, error) {
	m, err := scanManifest(dir, nil)
	if err != nil {
		return nil, 0, err
	}
	return streamOf(dir, m, announceDir)
}

// streamOf streams the files of m from dir, announcing announceDir.
func streamOf(dir string, m *manifest, announceDir string) (io.ReadCloser, int64, error) {
	m = &manifest{Dir: announceDir, Files: m.Files}
	hdr, err := encodeHeader(m)
	if err != nil {
		return nil, 0, err
	}
	size := int64(len(hdr))
	for _, f := range m.Files {
		size += f.Size
	}
	return &streamReader{dir: dir, m: m, hdr: hdr}, size, nil
}

// dirBytes adds up the sizes of the regular files in dir.
func dirBytes(dir string) (int64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return 0, err
		}
		n += info.Size()
	}
	return n, nil
}

// scanManifest checksums the files of the checkpoint in dir. A file that
// is the very file (the same inode: a hard link) of one in known, at the
// size known recorded, keeps the checksum known has: only Pebble's
// immutable tables are hard-linked into checkpoints, and what a copy holds
// is read afresh.
func scanManifest(dir string, known map[string]knownFile) (*manifest, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSnapshot, err)
	}
	m := &manifest{}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		if k, ok := known[e.Name()]; ok {
			this, err1 := os.Stat(filepath.Join(dir, e.Name()))
			that, err2 := os.Stat(k.path)
			if err1 == nil && err2 == nil && os.SameFile(this, that) && this.Size() == k.Size {
				m.Files = append(m.Files, k.fileInfo)
				continue
			}
		}
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		h := crc32.New(castagnoli)
		n, err := io.Copy(h, f)
		f.Close()
		if err != nil {
			return nil, err
		}
		m.Files = append(m.Files, fileInfo{Name: e.Name(), Size: n, CRC32C: h.Sum32()})
	}
	return m, nil
}

func encodeHeader(m *manifest) ([]byte, error) {
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

type streamReader struct {
	dir  string
	m    *manifest
	hdr  []byte
	next int
	cur  *os.File
	left int64
}

func (s *streamReader) Read(p []byte) (int, error) {
	if len(s.hdr) > 0 {
		n := copy(p, s.hdr)
		s.hdr = s.hdr[n:]
		return n, nil
	}
	for s.cur == nil || s.left == 0 {
		if s.cur != nil {
			s.cur.Close()
			s.cur = nil
		}
		if s.next >= len(s.m.Files) {
			return 0, io.EOF
		}
		f := s.m.Files[s.next]
		s.next++
		fh, err := os.Open(filepath.Join(s.dir, f.Name))
		if err != nil {
			return 0, err
		}
		s.cur, s.left = fh, f.Size
	}
	if int64(len(p)) > s.left {
		p = p[:s.left]
	}
	n, err := s.cur.Read(p)
	s.left -= int64(n)
	if err == io.EOF && s.left > 0 {
		return n, fmt.Errorf("%w: file shrank while streaming", ErrBadSnapshot)
	}
	if err == io.EOF {
		err = nil
	}
	return n, err
}

func (s *streamReader) Close() error {
	if s.cur != nil {
		return s.cur.Close()
	}
	return nil
}

// writebackBytes is how much of a received file is written before its
// writeback is started (startWriteback).
const writebackBytes = 8 << 20

// streamWriter writes a stream's files into dir as the bytes arrive,
// checking each one.
type streamWriter struct {
	dir     string
	hdrBuf  []byte
	m       *manifest
	idx     int
	cur     *os.File
	bw      *bufio.Writer
	crc     uint32
	written int64
	// flushed is how much of the current file has been handed to the
	// kernel's writeback (startWriteback).
	flushed int64
	// fileBytes counts every file byte written so far.
	fileBytes int64
	err       error
}

func newStreamWriter(dir string) *streamWriter { return &streamWriter{dir: dir} }

func (w *streamWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
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
		n := int64(len(p))
		if rest := f.Size - w.written; n > rest {
			n = rest
		}
		if _, err := w.bw.Write(p[:n]); err != nil {
			w.err = err
			return 0, err
		}
		w.crc = crc32.Update(w.crc, castagnoli, p[:n])
		w.written += n
		w.fileBytes += n
		p = p[n:]
		if w.written-w.flushed >= writebackBytes && w.written < f.Size {
			if err := w.bw.Flush(); err != nil {
				w.err = err
				return 0, err
			}
			startWriteback(w.cur, w.flushed, w.written-w.flushed)
			w.flushed = w.written
		}
		if w.written == f.Size {
			if err := w.closeCurrent(); err != nil {
				w.err = err
				return 0, err
			}
		}
	}
	return total, nil
}

// openNext opens the next file to fill, creating empty files on the way.
func (w *streamWriter) openNext() error {
	for w.cur == nil && w.idx < len(w.m.Files) {
		fh, err := os.OpenFile(filepath.Join(w.dir, w.m.Files[w.idx].Name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return err
		}
		w.cur, w.bw, w.crc, w.written, w.flushed = fh, bufio.NewWriterSize(fh, 1<<20), 0, 0, 0
		if w.m.Files[w.idx].Size == 0 {
			if err := w.closeCurrent(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *streamWriter) closeCurrent() error {
	f := w.m.Files[w.idx]
	err := w.bw.Flush()
	if err == nil {
		err = w.cur.Sync()
	}
	if cerr := w.cur.Close(); err == nil {
		err = cerr
	}
	w.cur = nil
	w.idx++
	if err != nil {
		return err
	}
	if w.crc != f.CRC32C {
		return fmt.Errorf("%w: %s: checksum %08x, want %08x", ErrBadSnapshot, f.Name, w.crc, f.CRC32C)
	}
	return nil
}

func (w *streamWriter) finish() error {
	if w.err != nil {
		return w.err
	}
	if w.m == nil {
		return fmt.Errorf("%w: stream ended in its header", ErrBadSnapshot)
	}
	if err := w.openNext(); err != nil {
		return err
	}
	if w.cur != nil || w.idx < len(w.m.Files) {
		if w.cur != nil {
			w.cur.Close()
		}
		return fmt.Errorf("%w: stream ended early, in file %d of %d", ErrBadSnapshot, w.idx+1, len(w.m.Files))
	}
	return syncDir(w.dir)
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
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if _, err := io.Copy(w, r); err != nil {
		return err
	}
	return w.finish()
}

// linkTree makes dst a copy of the flat directory src: immutable sstables
// are hard-linked, everything else (manifest, WAL, options) copied.
func linkTree(src, dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		from, to := filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())
		if strings.HasSuffix(e.Name(), ".sst") || strings.HasSuffix(e.Name(), ".blob") {
			if err := os.Link(from, to); err == nil {
				continue
			}
		}
		if err := copyFile(from, to); err != nil {
			return err
		}
	}
	return syncDir(dst)
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
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
