package kv

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/coppice-kv/coppice/messages"
)

// HyperLogLog: PFADD PFCOUNT PFMERGE, on strings in Redis's own format
// (hyperloglog.c), so a value moves between Redis and coppice as it is:
// a 16-byte header ("HYLL", the encoding, three unused bytes, the cached
// cardinality little-endian with its top bit set when stale), then 16384
// six-bit registers, dense (12288 bytes) or sparse (runs of zeros and of
// equal small values, promoted to dense past 3000 bytes or a value over
// 32). The register of an element and its run of zeros come from
// MurmurHash64A, as in Redis, so counts are Redis's.
//
// Unlike Redis, PFCOUNT of one key does not store the cardinality it
// computes in the value's header (it is a read: it changes nothing), so
// the value's bytes after a PFCOUNT differ from Redis's in that cache.

const (
	hllP         = 14
	hllQ         = 64 - hllP
	hllRegisters = 1 << hllP
	hllHdrSize   = 16
	hllDenseSize = hllHdrSize + (hllRegisters*6+7)/8
	hllDense     = 0
	hllSparse    = 1
	hllSparseMax = 3000 // Redis's hll-sparse-max-bytes

	sparseValMaxValue = 32
	sparseValMaxLen   = 4
	sparseZeroMaxLen  = 64
	sparseXZeroMaxLen = 16384
)

var (
	errNotHLL     = errReply("WRONGTYPE Key is not a valid HyperLogLog string value.")
	errInvalidHLL = errReply("INVALIDOBJ Corrupted HLL object detected")
)

// murmur64a is Redis's MurmurHash64A (endian-neutral: words read
// little-endian).
func murmur64a(key []byte, seed uint64) uint64 {
	const m = 0xc6a4a7935bd1e995
	const r = 47
	h := seed ^ (uint64(len(key)) * m)
	for len(key) >= 8 {
		k := binary.LittleEndian.Uint64(key)
		k *= m
		k ^= k >> r
		k *= m
		h ^= k
		h *= m
		key = key[8:]
	}
	if len(key) > 0 {
		for i := len(key) - 1; i >= 0; i-- {
			h ^= uint64(key[i]) << (8 * i)
		}
		h *= m
	}
	h ^= h >> r
	h *= m
	h ^= h >> r
	return h
}

// hllPatLen is an element's register and its run of zeros plus one.
func hllPatLen(ele []byte) (index int, count uint8) {
	hash := murmur64a(ele, 0xadc83b19)
	index = int(hash & (hllRegisters - 1))
	hash >>= hllP
	hash |= 1 << hllQ
	count = 1
	for bit := uint64(1); hash&bit == 0; bit <<= 1 {
		count++
	}
	return index, count
}

// Dense registers: six bits each, from the low bits of each byte up.
func denseGet(regs []byte, i int) uint8 {
	b := i * 6 / 8
	fb := uint(i * 6 & 7)
	v := uint(regs[b]) >> fb
	if b+1 < len(regs) {
		v |= uint(regs[b+1]) << (8 - fb)
	}
	return uint8(v & 63)
}

func denseSet(regs []byte, i int, val uint8) {
	b := i * 6 / 8
	fb := uint(i * 6 & 7)
	regs[b] &^= byte(63 << fb)
	regs[b] |= byte(uint(val) << fb)
	if b+1 < len(regs) {
		regs[b+1] &^= byte(63 >> (8 - fb))
		regs[b+1] |= byte(uint(val) >> (8 - fb))
	}
}

// Sparse opcodes: ZERO 00xxxxxx (1-64 zeros), XZERO 01xxxxxx xxxxxxxx
// (1-16384 zeros), VAL 1vvvvvxx (1-4 registers of value 1-32).
func isZero(b byte) bool  { return b&0xc0 == 0 }
func isXZero(b byte) bool { return b&0xc0 == 0x40 }
func zeroLen(b byte) int  { return int(b&0x3f) + 1 }
func xzeroLen(p []byte) int {
	return int(p[0]&0x3f)<<8 | int(p[1]) + 1
}
func valValue(b byte) uint8 { return (b>>2)&0x1f + 1 }
func valLen(b byte) int     { return int(b&3) + 1 }
func valOp(val uint8, n int) byte {
	return 0x80 | byte(val-1)<<2 | byte(n-1)
}
func appendZeros(b []byte, n int) []byte {
	if n > sparseZeroMaxLen {
		return append(b, 0x40|byte((n-1)>>8), byte((n-1)&0xff))
	}
	return append(b, byte(n-1))
}

// newHLL is an empty HLL, sparse: every register in XZERO runs.
func newHLL() []byte {
	h := make([]byte, hllHdrSize, hllHdrSize+2*(hllRegisters/sparseXZeroMaxLen))
	copy(h, "HYLL")
	h[4] = hllSparse
	for left := hllRegisters; left > 0; left -= sparseXZeroMaxLen {
		h = appendZeros(h, min(left, sparseXZeroMaxLen))
	}
	return h
}

// validHLL is Redis's isHLLObjectOrReply.
func validHLL(v []byte) bool {
	if len(v) < hllHdrSize || !bytes.Equal(v[:4], []byte("HYLL")) || v[4] > hllSparse {
		return false
	}
	return v[4] != hllDense || len(v) == hllDenseSize
}

// invalidateCache marks the cached cardinality stale.
func invalidateCache(h []byte) { h[15] |= 0x80 }

// sparseToDense turns h sparse into dense; false when it is corrupt.
func sparseToDense(h []byte) ([]byte, bool) {
	if h[4] == hllDense {
		return h, true
	}
	d := make([]byte, hllDenseSize)
	copy(d, h[:hllHdrSize])
	d[4] = hllDense
	regs := d[hllHdrSize:]
	ok := eachRun(h, func(idx, n int, v uint8) {
		for i := idx; v > 0 && i < idx+n; i++ {
			denseSet(regs, i, v)
		}
	})
	return d, ok
}

// eachRun walks h's sparse opcodes, handing fn each run of registers (a
// value of 0 for zeros); false when h is corrupt (runs past the registers,
// or short of them).
func eachRun(h []byte, fn func(idx, n int, v uint8)) bool {
	idx := 0
	for p := h[hllHdrSize:]; len(p) > 0; {
		var n, size int
		var v uint8
		switch {
		case isZero(p[0]):
			n, size = zeroLen(p[0]), 1
		case isXZero(p[0]):
			if len(p) < 2 {
				return false
			}
			n, size = xzeroLen(p), 2
		default:
			n, v, size = valLen(p[0]), valValue(p[0]), 1
		}
		if idx+n > hllRegisters {
			return false
		}
		fn(idx, n, v)
		idx += n
		p = p[size:]
	}
	return idx == hllRegisters
}

// hllSet raises register index to count if lower: 1 if it changed, 0 if
// not, -1 for a corrupt value. It returns the value, which it may have
// grown or promoted to dense.
func hllSet(h []byte, index int, count uint8) ([]byte, int) {
	if h[4] == hllDense {
		regs := h[hllHdrSize:]
		if count > denseGet(regs, index) {
			denseSet(regs, index, count)
			return h, 1
		}
		return h, 0
	}
	if count > sparseValMaxValue {
		return promote(h, index, count)
	}
	// Find the opcode covering index.
	sparse := h[hllHdrSize:]
	pos, first, span, prev := 0, 0, 0, -1
	for pos < len(sparse) {
		oplen := 1
		switch b := sparse[pos]; {
		case isZero(b):
			span = zeroLen(b)
		case !isXZero(b):
			span = valLen(b)
		default:
			if pos+1 >= len(sparse) {
				return h, -1
			}
			span, oplen = xzeroLen(sparse[pos:]), 2
		}
		if index <= first+span-1 {
			break
		}
		prev = pos
		pos += oplen
		first += span
	}
	if span == 0 || pos >= len(sparse) {
		return h, -1
	}
	op := sparse[pos]
	oldLen, runlen := 1, 0
	zero, xzero := isZero(op), isXZero(op)
	switch {
	case zero:
		runlen = zeroLen(op)
	case xzero:
		oldLen, runlen = 2, xzeroLen(sparse[pos:])
	default:
		runlen = valLen(op)
		if valValue(op) >= count {
			return h, 0
		}
		if runlen == 1 {
			sparse[pos] = valOp(count, 1)
			return mergeVals(h, prev), 1
		}
	}
	if zero && runlen == 1 {
		sparse[pos] = valOp(count, 1)
		return mergeVals(h, prev), 1
	}
	// Split the opcode: what precedes index, index's value, what follows.
	last := first + span - 1
	seq := make([]byte, 0, 5)
	if zero || xzero {
		if index != first {
			seq = appendZeros(seq, index-first)
		}
		seq = append(seq, valOp(count, 1))
		if index != last {
			seq = appendZeros(seq, last-index)
		}
	} else {
		cur := valValue(op)
		if index != first {
			seq = append(seq, valOp(cur, index-first))
		}
		seq = append(seq, valOp(count, 1))
		if index != last {
			seq = append(seq, valOp(cur, last-index))
		}
	}
	if delta := len(seq) - oldLen; delta > 0 && len(h)+delta > hllSparseMax {
		return promote(h, index, count)
	}
	at := hllHdrSize + pos
	h = append(h[:at:at], append(seq, h[at+oldLen:]...)...)
	return mergeVals(h, prev), 1
}

// promote makes h dense and sets the register there.
func promote(h []byte, index int, count uint8) ([]byte, int) {
	d, ok := sparseToDense(h)
	if !ok {
		return h, -1
	}
	denseSet(d[hllHdrSize:], index, count)
	return d, 1
}

// mergeVals merges adjacent VAL opcodes of one value, scanning up to five
// opcodes from prev (-1: the first), as Redis does after an update.
func mergeVals(h []byte, prev int) []byte {
	p := hllHdrSize + max(prev, 0)
	for scan := 5; p < len(h) && scan > 0; scan-- {
		switch {
		case isXZero(h[p]):
			p += 2
			continue
		case isZero(h[p]):
			p++
			continue
		}
		if p+1 < len(h) && !isZero(h[p+1]) && !isXZero(h[p+1]) && valValue(h[p]) == valValue(h[p+1]) {
			if n := valLen(h[p]) + valLen(h[p+1]); n <= sparseValMaxLen {
				h[p+1] = valOp(valValue(h[p]), n)
				h = append(h[:p], h[p+1:]...)
				continue // try the merged one with the next
			}
		}
		p++
	}
	return h
}

// histogram counts h's registers by value; false when h is corrupt.
func histogram(h []byte, hist *[64]int) bool {
	if h[4] == hllDense {
		regs := h[hllHdrSize:]
		for i := range hllRegisters {
			hist[denseGet(regs, i)]++
		}
		return true
	}
	return eachRun(h, func(_, n int, v uint8) { hist[v] += n })
}

// mergeInto raises max's registers to h's; false when h is corrupt.
func mergeInto(max *[hllRegisters]uint8, h []byte) bool {
	if h[4] == hllDense {
		regs := h[hllHdrSize:]
		for i := range hllRegisters {
			if v := denseGet(regs, i); v > max[i] {
				max[i] = v
			}
		}
		return true
	}
	return eachRun(h, func(idx, n int, v uint8) {
		for i := idx; i < idx+n; i++ {
			if v > max[i] {
				max[i] = v
			}
		}
	})
}

func hllSigma(x float64) float64 {
	if x == 1 {
		return math.Inf(1)
	}
	y, z := 1.0, x
	for {
		x *= x
		zPrime := z
		z += x * y
		y += y
		if zPrime == z {
			return z
		}
	}
}

func hllTau(x float64) float64 {
	if x == 0 || x == 1 {
		return 0
	}
	y, z := 1.0, 1-x
	for {
		x = math.Sqrt(x)
		zPrime := z
		y *= 0.5
		z -= math.Pow(1-x, 2) * y
		if zPrime == z {
			return z / 3
		}
	}
}

// estimate is Redis's hllCount from a register histogram (Ertl's
// estimator).
func estimate(hist *[64]int) int64 {
	const m = float64(hllRegisters)
	z := m * hllTau((m-float64(hist[hllQ+1]))/m)
	for j := hllQ; j >= 1; j-- {
		z += float64(hist[j])
		z *= 0.5
	}
	z += m * hllSigma(float64(hist[0])/m)
	return int64(math.Round(0.721347520444481703680 * m * m / z))
}

// hllFor looks key up as an HLL: its bytes (nil when missing), or an
// error reply.
func (t *txn) hllFor(key []byte) (entry, []byte, *messages.Reply) {
	e, s, r := t.stringFor(key)
	if r != nil {
		return e, nil, r
	}
	if s != nil && !validHLL(s) {
		return e, nil, errNotHLL
	}
	return e, s, nil
}

// PFADD key [element ...]
func cmdPFAdd(t *txn, a [][]byte) *messages.Reply {
	e, h, r := t.hllFor(a[1])
	if r != nil {
		return r
	}
	updated := false
	if h == nil {
		h, updated = newHLL(), true
	} else {
		h = bytes.Clone(h)
	}
	for _, ele := range a[2:] {
		index, count := hllPatLen(ele)
		var res int
		if h, res = hllSet(h, index, count); res < 0 {
			return errInvalidHLL
		}
		updated = updated || res == 1
	}
	if !updated {
		return zero
	}
	invalidateCache(h)
	t.putString(&e, h, true, false, 0)
	t.notify(ClassString, "pfadd", a[1])
	return one
}

// PFCOUNT key [key ...]: one key's cached cardinality, or its count; the
// count of the union of several.
func cmdPFCount(t *txn, a [][]byte) *messages.Reply {
	if len(a) == 2 {
		_, h, r := t.hllFor(a[1])
		if r != nil || h == nil {
			if r != nil {
				return r
			}
			return zero
		}
		if h[15]&0x80 == 0 {
			return integer(int64(binary.LittleEndian.Uint64(h[8:16])))
		}
		var hist [64]int
		if !histogram(h, &hist) {
			return errInvalidHLL
		}
		return integer(estimate(&hist))
	}
	var max [hllRegisters]uint8
	for _, k := range a[1:] {
		_, h, r := t.hllFor(k)
		if r != nil {
			return r
		}
		if h != nil && !mergeInto(&max, h) {
			return errInvalidHLL
		}
	}
	var hist [64]int
	for _, v := range max {
		hist[v]++
	}
	return integer(estimate(&hist))
}

// PFMERGE destkey [sourcekey ...]: the destination's registers are raised
// to the sources' (it is one of them).
func cmdPFMerge(t *txn, a [][]byte) *messages.Reply {
	var max [hllRegisters]uint8
	dense := false
	for _, k := range a[1:] {
		_, h, r := t.hllFor(k)
		if r != nil {
			return r
		}
		if h == nil {
			continue
		}
		dense = dense || h[4] == hllDense
		if !mergeInto(&max, h) {
			return errInvalidHLL
		}
	}
	e, h, _ := t.hllFor(a[1])
	if h == nil {
		h = newHLL()
	} else {
		h = bytes.Clone(h)
	}
	if dense {
		var ok bool
		if h, ok = sparseToDense(h); !ok {
			return errInvalidHLL
		}
	}
	for i, v := range max {
		if v != 0 {
			h, _ = hllSet(h, i, v)
		}
	}
	invalidateCache(h)
	t.putString(&e, h, true, false, 0)
	// Redis fires "pfadd" for a merge too (a mass add).
	t.notify(ClassString, "pfadd", a[1])
	return replyOK
}

// PFDEBUG GETREG|DECODE|ENCODING|TODENSE key, as Redis's pfdebugCommand:
// GETREG and TODENSE turn a sparse value dense (a write), DECODE spells a
// sparse value's opcodes out.
func cmdPFDebug(t *txn, a [][]byte) *messages.Reply {
	e, h, r := t.hllFor(a[2])
	switch {
	case r != nil:
		return r
	case h == nil:
		return errReply("ERR The specified key does not exist")
	}
	dense := func() (converted bool, r *messages.Reply) {
		if h[4] == hllDense {
			return false, nil
		}
		d, ok := sparseToDense(h)
		if !ok {
			return false, errInvalidHLL
		}
		h = d
		t.putString(&e, h, true, false, 0)
		return true, nil
	}
	switch sub := strings.ToLower(string(a[1])); sub {
	case "getreg":
		if _, r := dense(); r != nil {
			return r
		}
		regs := make([]*messages.Reply, hllRegisters)
		for i := range regs {
			regs[i] = integer(int64(denseGet(h[hllHdrSize:], i)))
		}
		return array(regs)
	case "decode":
		if h[4] != hllSparse {
			return errReply("ERR HLL encoding is not sparse")
		}
		var b []byte
		for p := h[hllHdrSize:]; len(p) > 0; {
			switch {
			case isZero(p[0]):
				b, p = fmt.Appendf(b, "z:%d ", zeroLen(p[0])), p[1:]
			case isXZero(p[0]):
				if len(p) < 2 {
					return errInvalidHLL // cut short
				}
				b, p = fmt.Appendf(b, "Z:%d ", xzeroLen(p)), p[2:]
			default:
				b, p = fmt.Appendf(b, "v:%d,%d ", valValue(p[0]), valLen(p[0])), p[1:]
			}
		}
		return bulk(bytes.TrimRight(b, " "))
	case "encoding":
		if h[4] == hllDense {
			return status("dense")
		}
		return status("sparse")
	case "todense":
		converted, r := dense()
		switch {
		case r != nil:
			return r
		case converted:
			return one
		}
		return zero
	default:
		return errReply(fmt.Sprintf("ERR Unknown PFDEBUG subcommand '%s'", a[1]))
	}
}

// HLLSelfTest is PFSELFTEST's answer, from Redis's pfselftestCommand's
// two tests of this implementation: dense registers keep the values set
// (1000 rounds of random values in all of them); and 10 million distinct
// elements added to a dense and to a sparse value (sparse while small,
// promoted past hll-sparse-max-bytes) give the same count at every power
// of ten, within 6 standard errors of the truth. "" when both pass, else
// Redis's TESTFAILED error.
func HLLSelfTest() string {
	regs := make([]byte, hllDenseSize-hllHdrSize)
	var want [hllRegisters]uint8
	for range 1000 {
		for i := range want {
			want[i] = uint8(rand.IntN(64))
			denseSet(regs, i, want[i])
		}
		for i, w := range want {
			if got := denseGet(regs, i); got != w {
				return fmt.Sprintf("TESTFAILED Register %d should be %d but is %d", i, w, got)
			}
		}
	}
	d := make([]byte, hllDenseSize)
	copy(d, "HYLL")
	s := newHLL()
	count := func(h []byte) int64 {
		var hist [64]int
		histogram(h, &hist)
		return estimate(&hist)
	}
	relerr := 1.04 / math.Sqrt(hllRegisters)
	seed := rand.Uint64()
	var ele [8]byte
	checkpoint := int64(1)
	for j := int64(1); j <= 10_000_000; j++ {
		binary.LittleEndian.PutUint64(ele[:], uint64(j)^seed)
		index, n := hllPatLen(ele[:])
		d, _ = hllSet(d, index, n)
		var res int
		if s, res = hllSet(s, index, n); res < 0 {
			return "TESTFAILED sparse value corrupted"
		}
		if j != checkpoint {
			continue
		}
		if j < hllSparseMax/2 && s[4] != hllSparse {
			return "TESTFAILED sparse encoding not used"
		}
		card := count(d)
		if card != count(s) {
			return "TESTFAILED dense/sparse disagree"
		}
		maxErr := int64(math.Ceil(relerr * 6 * float64(checkpoint)))
		if j == 10 {
			maxErr = 1 // Redis's allowance for collisions at 10
		}
		if abs := max(checkpoint-card, card-checkpoint); abs > maxErr {
			return fmt.Sprintf("TESTFAILED Too big error. card:%d abserr:%d", checkpoint, abs)
		}
		checkpoint *= 10
	}
	return ""
}
