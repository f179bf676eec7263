package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/bits"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// keyFilter is a Bloom filter of every key a shard's store holds, so that
// a lookup of a key that is not there (a SET of a new key reads the old
// record first) usually ends without a Pebble Get: that Get is a skiplist
// search in the memtable with a cache miss on every level, 11% of a
// node's CPU under redis-benchmark SET with fresh keys
// (docs/node-benchmarks.md).
//
// It holds a superset of the store's keys: the state machine adds the keys
// a batch writes before the batch commits, and deletions never take keys
// out. Until a build has read the whole store (after opening it, after a
// restore replaced it, or when keys added since the last build far
// outnumber what that build found) it is not ready and says every key may
// be present. Each layer is a blocked Bloom filter (the bits of a key in
// one 64-byte block, one cache miss per layer) of about 10 bits per key,
// 1-2% false positives; when a layer is full a twice larger one is added.
type keyFilter struct {
	mu     sync.RWMutex
	ready  bool
	gen    uint64     // bumped by clear: a build of an older generation stops
	layers [][]uint64 // each a whole number of 8-word (512-bit) blocks
	room   int        // keys the last layer takes before another is added
	added  int        // keys added since the filter was last cleared
	built  int        // keys the last completed build found in the store
	// failed is why the last build of this generation stopped short (a
	// store read error): the filter stays not ready.
	failed error

	skips atomic.Uint64 // lookups it answered "absent"
}

const (
	filterBitsPerKey = 10
	filterHashes     = 7
	filterFirstKeys  = 1 << 16
	// filterRebuildMin: keys added before a rebuild is considered (keys
	// deleted stay in the filter; a rebuild drops them).
	filterRebuildMin = 1 << 20
)

func newKeyFilter() *keyFilter {
	f := &keyFilter{}
	f.clear()
	return f
}

// clear empties f, makes it not ready and returns the generation a build
// must carry. Called with mu held, or before f is shared.
func (f *keyFilter) clear() uint64 {
	f.ready, f.failed = false, nil
	f.gen++
	f.layers, f.added = nil, 0
	f.grow(filterFirstKeys)
	return f.gen
}

// grow adds a layer for keys keys. Called with mu held.
func (f *keyFilter) grow(keys int) {
	f.layers = append(f.layers, make([]uint64, (keys*filterBitsPerKey+511)/512*8))
	f.room = keys
}

// probe is where a key's bits lie: its hash picks a block in each layer,
// and the same filterHashes bits of that block (a word and a mask each) in
// every layer, so they are worked out once per key, outside the lock.
type probe struct {
	h    uint64
	word [filterHashes]uint8
	mask [filterHashes]uint64
}

// probeOf is the probe of the key whose xxhash is h.
func probeOf(h uint64) probe {
	p := probe{h: h}
	x := bits.RotateLeft64(h, 32) | 1
	for i := range filterHashes {
		x *= 0x9e3779b97f4a7c15
		bit := x >> 55 // 0..511
		p.word[i], p.mask[i] = uint8(bit>>6), 1<<(bit&63)
	}
	return p
}

// block is p's block of layer l.
func (p *probe) block(l []uint64) []uint64 {
	b, _ := bits.Mul64(p.h, uint64(len(l)/8)) // uniform over the blocks
	return l[b*8 : b*8+8 : b*8+8]
}

// in reports whether all of p's bits are set in layer l.
func (p *probe) in(l []uint64) bool {
	b := p.block(l)
	for i := range filterHashes {
		if b[p.word[i]]&p.mask[i] == 0 {
			return false
		}
	}
	return true
}

// has reports whether f may hold p's key. Called with mu held (read or
// write).
func (f *keyFilter) has(p *probe) bool {
	for _, l := range f.layers {
		if p.in(l) {
			return true
		}
	}
	return false
}

// written records that the store may hold each key a batch sets (writes
// as applyRW notes them: a nil value is a deletion, left out). The state
// machine calls it before the batch commits, so f is never behind the
// store; one lock for the batch.
func (f *keyFilter) written(writes map[string][]byte) {
	ps := make([]probe, 0, len(writes))
	for k, v := range writes {
		if v != nil {
			ps = append(ps, probeOf(xxhash.Sum64String(k)))
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range ps {
		f.addProbe(&ps[i])
	}
}

// addProbe adds p's key unless f may already hold it. Called with mu
// held.
func (f *keyFilter) addProbe(p *probe) {
	if f.has(p) {
		return
	}
	if f.room == 0 {
		last := f.layers[len(f.layers)-1]
		f.grow(2 * len(last) * 64 / filterBitsPerKey)
	}
	b := p.block(f.layers[len(f.layers)-1])
	for i := range filterHashes {
		b[p.word[i]] |= p.mask[i]
	}
	f.room--
	f.added++
}

// absent reports whether key is certainly not in the store.
func (f *keyFilter) absent(key []byte) bool {
	p := probeOf(xxhash.Sum64(key))
	f.mu.RLock()
	out := f.ready && !f.has(&p)
	f.mu.RUnlock()
	if out {
		f.skips.Add(1)
	}
	return out
}

// reset clears f (the store was replaced) and returns the generation for
// the build of the new store.
func (f *keyFilter) reset() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.clear()
}

// rebuildDue reports whether so many keys were added since the last build
// that a rebuild (which drops deleted keys) is worth it; if so it clears
// f and returns the generation for the build.
func (f *keyFilter) rebuildDue() (gen uint64, due bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.ready || f.added < max(filterRebuildMin, 4*f.built) {
		return 0, false
	}
	return f.clear(), true
}

// addBuilt adds keys a build of generation gen read from the store; it
// reports false when f was cleared since (the build must stop).
func (f *keyFilter) addBuilt(gen uint64, keys [][]byte) bool {
	ps := make([]probe, len(keys))
	for i, k := range keys {
		ps[i] = probeOf(xxhash.Sum64(k))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gen != gen {
		return false
	}
	for i := range ps {
		f.addProbe(&ps[i])
	}
	return true
}

// finishBuild ends the build of generation gen, unless f was cleared
// since it began: found is how many keys it read; err, when the store
// failed it, leaves f not ready and is kept for the shard's status.
func (f *keyFilter) finishBuild(gen uint64, found int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.gen != gen:
	case err != nil:
		f.failed = err
	default:
		f.ready, f.built = true, found
	}
}

// state is whether f is ready, and why its last build failed, if it did.
func (f *keyFilter) state() (ready bool, failed error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.ready, f.failed
}

// keyFilterFile is the key filter a checkpoint carries: a receiver of the
// snapshot starts with it ready instead of reading its whole store to
// build one (that pass decompresses every value: seconds of CPU per GiB).
const keyFilterFile = "COPPICE-KEYFILTER"

// keyFilterMagic opens keyFilterFile: the encoding's version, and the
// filter's parameters (bits per key, hashes), which a reader must share.
const keyFilterMagic = "COPPICE-KEYFILTER-1 10 7\n"

// readyGen is f's generation and whether it is ready.
func (f *keyFilter) readyGen() (gen uint64, ready bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.gen, f.ready
}

// encode is f as keyFilterFile holds it, if f is ready and still of
// generation gen: a filter ready at some moment and not cleared since
// holds every key the store held at that moment (it only ever adds).
func (f *keyFilter) encode(gen uint64) ([]byte, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if !f.ready || f.gen != gen {
		return nil, false
	}
	b := []byte(keyFilterMagic)
	for _, v := range []int{f.room, f.added, f.built, len(f.layers)} {
		b = binary.AppendUvarint(b, uint64(v))
	}
	for _, l := range f.layers {
		b = binary.AppendUvarint(b, uint64(len(l)))
		for _, w := range l {
			b = binary.LittleEndian.AppendUint64(b, w)
		}
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli)), true
}

// decodedFilter is a keyFilterFile's content.
type decodedFilter struct {
	layers             [][]uint64
	room, added, built int
}

// decodeKeyFilter reads what encode wrote, checking its checksum and every
// length against the bytes there are (a damaged file allocates nothing
// big and is refused).
func decodeKeyFilter(b []byte) (*decodedFilter, error) {
	if len(b) < len(keyFilterMagic)+crcLen || string(b[:len(keyFilterMagic)]) != keyFilterMagic {
		return nil, errors.New("key filter file: not a filter of this version")
	}
	body := b[:len(b)-crcLen]
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(b[len(body):]) {
		return nil, errors.New("key filter file: checksum mismatch")
	}
	r := body[len(keyFilterMagic):]
	next := func() (int, error) {
		v, n := binary.Uvarint(r)
		if n <= 0 || v > uint64(len(b))*8 {
			return 0, errors.New("key filter file: bad number")
		}
		r = r[n:]
		return int(v), nil
	}
	d := &decodedFilter{}
	var layers int
	for _, p := range []*int{&d.room, &d.added, &d.built, &layers} {
		v, err := next()
		if err != nil {
			return nil, err
		}
		*p = v
	}
	if layers == 0 {
		return nil, errors.New("key filter file: no layers")
	}
	for range layers {
		words, err := next()
		if err != nil {
			return nil, err
		}
		if words == 0 || words%8 != 0 || words*8 > len(r) {
			return nil, fmt.Errorf("key filter file: a layer of %d words", words)
		}
		l := make([]uint64, words)
		for i := range l {
			l[i] = binary.LittleEndian.Uint64(r[i*8:])
		}
		r = r[words*8:]
		d.layers = append(d.layers, l)
	}
	if len(r) != 0 {
		return nil, fmt.Errorf("key filter file: %d bytes after the last layer", len(r))
	}
	return d, nil
}

// install makes d f's content, ready, unless f was cleared since
// generation gen began (it reports whether it did).
func (f *keyFilter) install(gen uint64, d *decodedFilter) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gen != gen {
		return false
	}
	f.layers, f.room, f.added, f.built = d.layers, d.room, d.added, d.built
	f.ready, f.failed = true, nil
	return true
}

// A shard's Close leaves its ready key filter in its store's dir, named
// with the applied index it was taken at (keyFilterFile.<index>): the next
// open takes it when the store is at that index, instead of reading every
// key. The store's content at an index is the same whatever its history
// (a restore of a snapshot at that index included), so the index alone
// says the filter is whole. Open removes every such file it finds.

// saveKeyFilter writes f, ready and of generation gen, into dir for
// applied index index (temporary file, sync, rename, sync of dir).
func saveKeyFilter(fs vfs.FS, dir string, f *keyFilter, gen, index uint64) error {
	b, ok := f.encode(gen)
	if !ok {
		return nil
	}
	return writeFSFileAtomic(fs, fs.PathJoin(dir, fmt.Sprintf("%s.%d", keyFilterFile, index)), b)
}

// takeKeyFilter reads the filter a Close left in dir for applied index
// index, if there is one and it is intact, and removes every filter file
// there (one for another index is stale).
func takeKeyFilter(fs vfs.FS, dir string, index uint64) *decodedFilter {
	names, err := fs.List(dir)
	if err != nil {
		return nil
	}
	var d *decodedFilter
	want := fmt.Sprintf("%s.%d", keyFilterFile, index)
	for _, n := range names {
		if !strings.HasPrefix(n, keyFilterFile+".") {
			continue
		}
		if n == want {
			if b, err := readFSFile(fs, fs.PathJoin(dir, n)); err == nil {
				d, _ = decodeKeyFilter(b)
			}
		}
		fs.Remove(fs.PathJoin(dir, n))
	}
	return d
}

// readFSFile is os.ReadFile on fs.
func readFSFile(fs vfs.FS, name string) ([]byte, error) {
	f, err := fs.Open(name)
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(f)
	return data, errors.Join(err, f.Close())
}
