package kv

import (
	"math"
	"math/bits"

	"github.com/coppice-kv/coppice/messages"
)

// Bitmaps: SETBIT GETBIT BITCOUNT BITPOS BITOP BITFIELD BITFIELD_RO, on
// strings, as Redis 7.0 (t_bitops.c): bit 0 is the most significant bit of
// the first byte; a string grows with zero bytes to take a bit past its
// end, up to 512 MB (proto-max-bulk-len).

var (
	errBitOffset  = errReply("ERR bit offset is not an integer or out of range")
	errBitValue   = errReply("ERR bit is not an integer or out of range")
	errBitArg     = errReply("ERR The bit argument must be 1 or 0.")
	errBitOpNot   = errReply("ERR BITOP NOT must be called with a single source key.")
	errBitType    = errReply("ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.")
	errBitOverflw = errReply("ERR Invalid OVERFLOW type specified")
	errBitfieldRO = errReply("ERR BITFIELD_RO only supports the GET subcommand")
)

// parseBitOffset reads a bit offset (Redis's getBitOffsetFromArgument):
// "#n" counts in units of width bits when hash; under 512 MB of bits.
func parseBitOffset(b []byte, hash bool, width int64) (int64, bool) {
	mul := int64(1)
	if hash && len(b) > 0 && b[0] == '#' {
		mul, b = width, b[1:]
	}
	n, ok := parseInt(b)
	if !ok || n < 0 || (mul > 1 && n > math.MaxInt64/mul) {
		return 0, false
	}
	n *= mul
	return n, n < maxString*8
}

// stringFor looks key up as a string: its bytes (nil when missing), or
// WRONGTYPE.
func (t *txn) stringFor(key []byte) (entry, []byte, *messages.Reply) {
	e := t.lookup(key)
	if e.exists && e.rec.typ != typeString {
		return e, nil, errWrongType
	}
	if !e.exists {
		return e, nil, nil
	}
	return e, e.rec.payload, nil
}

// GETBIT key offset
func cmdGetBit(t *txn, a [][]byte) *messages.Reply {
	off, ok := parseBitOffset(a[2], false, 0)
	if !ok {
		return errBitOffset
	}
	_, s, r := t.stringFor(a[1])
	if r != nil {
		return r
	}
	return integer(int64(bitAt(s, off)))
}

func bitAt(s []byte, off int64) byte {
	if off>>3 >= int64(len(s)) {
		return 0
	}
	return s[off>>3] >> (7 - off&7) & 1
}

// SETBIT key offset value
func cmdSetBit(t *txn, a [][]byte) *messages.Reply {
	off, ok := parseBitOffset(a[2], false, 0)
	if !ok {
		return errBitOffset
	}
	v, ok := parseInt(a[3])
	if !ok || v&^1 != 0 {
		return errBitValue
	}
	e, s, r := t.stringFor(a[1])
	if r != nil {
		return r
	}
	old := bitAt(s, off)
	buf := grown(s, off>>3+1)
	if v == 1 {
		buf[off>>3] |= 1 << (7 - off&7)
	} else {
		buf[off>>3] &^= 1 << (7 - off&7)
	}
	// Redis fires "setbit" only for a new or grown string, or a bit
	// changed.
	changed := !e.exists || len(buf) > len(s) || old != byte(v)
	t.putString(&e, buf, true, false, 0)
	if changed {
		t.notify(ClassString, "setbit", a[1])
	}
	return integer(int64(old))
}

// grown is a copy of s at least n bytes long, zero-padded.
func grown(s []byte, n int64) []byte {
	buf := make([]byte, max(int64(len(s)), n))
	copy(buf, s)
	return buf
}

// bitRange turns BITCOUNT's and BITPOS's start and end (bytes, or bits
// with isBit) into a byte range and the masks of the bits outside it in
// its first and last bytes, as Redis does. endGiven false: the end is the
// string's.
func bitRange(n, start, end int64, endGiven, isBit bool) (from, to int64, firstMask, lastMask byte) {
	total := n
	if !endGiven {
		end = total - 1
		if isBit {
			end = total<<3 + 7
		}
	}
	if isBit {
		total <<= 3
	}
	start, end = clampIndexes(start, end, total)
	if isBit && start <= end {
		firstMask = ^byte((1<<(8-(start&7)))-1) & 0xff
		lastMask = byte((1 << (7 - (end & 7))) - 1)
		start >>= 3
		end >>= 3
	}
	return start, end, firstMask, lastMask
}

// parseBitUnit reads BYTE or BIT.
func parseBitUnit(b []byte) (isBit bool, ok bool) {
	switch {
	case isOpt(b, "bit"):
		return true, true
	case isOpt(b, "byte"):
		return false, true
	}
	return false, false
}

// BITCOUNT key [start end [BYTE|BIT]]
func cmdBitCount(t *txn, a [][]byte) *messages.Reply {
	_, s, r := t.stringFor(a[1])
	if r != nil {
		return r
	}
	if s == nil {
		return zero // Redis looks the key up before the arguments
	}
	from, to := int64(0), int64(len(s))-1
	var firstMask, lastMask byte
	switch len(a) {
	case 2:
	case 4, 5:
		start, ok := parseInt(a[2])
		if !ok {
			return errNotInteger
		}
		end, ok := parseInt(a[3])
		if !ok {
			return errNotInteger
		}
		isBit := false
		if len(a) == 5 {
			if isBit, ok = parseBitUnit(a[4]); !ok {
				return errSyntax
			}
		}
		if start < 0 && end < 0 && start > end {
			return zero
		}
		from, to, firstMask, lastMask = bitRange(int64(len(s)), start, end, true, isBit)
	default:
		return errSyntax
	}
	if from > to {
		return zero
	}
	count := int64(0)
	for _, b := range s[from : to+1] {
		count += int64(bits.OnesCount8(b))
	}
	count -= int64(bits.OnesCount8(s[from]&firstMask) + bits.OnesCount8(s[to]&lastMask))
	return integer(count)
}

// firstBit is Redis's redisBitpos: the position of the first bit of s set
// to bit; for a clear bit not found, the first position past s (a string
// is zero-padded); for a set bit not found, -1.
func firstBit(s []byte, bit byte) int64 {
	for i, b := range s {
		if bit == 1 && b != 0 {
			return int64(i)<<3 + int64(bits.LeadingZeros8(b))
		}
		if bit == 0 && b != 0xff {
			return int64(i)<<3 + int64(bits.LeadingZeros8(^b))
		}
	}
	if bit == 1 {
		return -1
	}
	return int64(len(s)) << 3
}

// BITPOS key bit [start [end [BYTE|BIT]]]
func cmdBitPos(t *txn, a [][]byte) *messages.Reply {
	v, ok := parseInt(a[2])
	if !ok {
		return errNotInteger
	}
	if v != 0 && v != 1 {
		return errBitArg
	}
	bit := byte(v)
	_, s, r := t.stringFor(a[1])
	if r != nil {
		return r
	}
	if s == nil {
		if bit == 1 {
			return minusOne
		}
		return zero
	}
	from, to := int64(0), int64(len(s))-1
	var firstMask, lastMask byte
	endGiven := false
	switch len(a) {
	case 3:
	case 4, 5, 6:
		start, ok := parseInt(a[3])
		if !ok {
			return errNotInteger
		}
		isBit := false
		if len(a) == 6 {
			if isBit, ok = parseBitUnit(a[5]); !ok {
				return errSyntax
			}
		}
		var end int64
		if len(a) >= 5 {
			if end, ok = parseInt(a[4]); !ok {
				return errNotInteger
			}
			endGiven = true
		}
		from, to, firstMask, lastMask = bitRange(int64(len(s)), start, end, endGiven, isBit)
	default:
		return errSyntax
	}
	if from > to {
		return minusOne
	}
	start, n := from, to-from+1
	var pos int64
	masked := func(b, mask byte) byte {
		if bit == 1 {
			return b &^ mask
		}
		return b | mask
	}
	func() {
		if firstMask != 0 {
			c := masked(s[start], firstMask)
			if lastMask != 0 && n == 1 {
				c = masked(c, lastMask)
			}
			pos = firstBit([]byte{c}, bit)
			if n == 1 || (pos != -1 && pos != 8) {
				return
			}
			start++
			n--
		}
		cur := n
		if lastMask != 0 {
			cur--
		}
		if cur > 0 {
			pos = firstBit(s[start:start+cur], bit)
			if n == cur || (pos != -1 && pos != cur<<3) {
				return
			}
			start += cur
			n -= cur
		}
		pos = firstBit([]byte{masked(s[to], lastMask)}, bit)
	}()
	if endGiven && bit == 0 && pos == n<<3 {
		return minusOne
	}
	if pos != -1 {
		pos += start << 3
	}
	return integer(pos)
}

// BITOP AND|OR|XOR|NOT destkey key [key ...]
func cmdBitOp(t *txn, a [][]byte) *messages.Reply {
	var op byte
	switch {
	case isOpt(a[1], "and"):
		op = '&'
	case isOpt(a[1], "or"):
		op = '|'
	case isOpt(a[1], "xor"):
		op = '^'
	case isOpt(a[1], "not"):
		if len(a) != 4 {
			return errBitOpNot
		}
		op = '~'
	default:
		return errSyntax
	}
	srcs := make([][]byte, 0, len(a)-3)
	n := 0
	for _, k := range a[3:] {
		_, s, r := t.stringFor(k)
		if r != nil {
			return r
		}
		srcs = append(srcs, s)
		n = max(n, len(s))
	}
	out := make([]byte, n)
	for i := range out {
		var b byte
		for j, s := range srcs {
			var c byte
			if i < len(s) {
				c = s[i]
			}
			switch {
			case op == '~':
				b = ^c
			case j == 0:
				b = c
			case op == '&':
				b &= c
			case op == '|':
				b |= c
			default:
				b ^= c
			}
		}
		out[i] = b
	}
	e := t.lookup(a[2])
	if n == 0 {
		if e.exists {
			t.deleteKey(&e)
			t.notify(ClassGeneric, "del", a[2])
		}
		return zero
	}
	t.putString(&e, out, false, false, 0)
	t.notify(ClassString, "set", a[2])
	return integer(int64(n))
}

// bitfieldOp is one BITFIELD operation.
type bitfieldOp struct {
	kind     byte // 'g' GET, 's' SET, 'i' INCRBY
	signed   bool
	width    int64
	offset   int64
	value    int64
	overflow byte // 'w' WRAP, 's' SAT, 'f' FAIL
}

// parseBitfieldType reads i1..i64, u1..u63.
func parseBitfieldType(b []byte) (signed bool, width int64, ok bool) {
	if len(b) < 2 || (b[0] != 'i' && b[0] != 'I' && b[0] != 'u' && b[0] != 'U') {
		return false, 0, false
	}
	signed = b[0] == 'i' || b[0] == 'I'
	w, ok := parseInt(b[1:])
	if !ok || w < 1 || (signed && w > 64) || (!signed && w > 63) {
		return false, 0, false
	}
	return signed, w, true
}

// bitfieldCmd: BITFIELD key [GET type offset] [SET type offset value]
// [INCRBY type offset increment] [OVERFLOW WRAP|SAT|FAIL] ..., and
// BITFIELD_RO key [GET type offset] ...
func bitfieldCmd(ro bool) func(t *txn, a [][]byte) *messages.Reply {
	return func(t *txn, a [][]byte) *messages.Reply {
		var ops []bitfieldOp
		overflow := byte('w')
		writes := false
		for i := 2; i < len(a); i++ {
			more := len(a) - i - 1
			var op bitfieldOp
			switch {
			case isOpt(a[i], "get") && more >= 2:
				op.kind = 'g'
			case isOpt(a[i], "set") && more >= 3:
				op.kind = 's'
			case isOpt(a[i], "incrby") && more >= 3:
				op.kind = 'i'
			case isOpt(a[i], "overflow") && more >= 1:
				i++
				switch {
				case isOpt(a[i], "wrap"):
					overflow = 'w'
				case isOpt(a[i], "sat"):
					overflow = 's'
				case isOpt(a[i], "fail"):
					overflow = 'f'
				default:
					return errBitOverflw
				}
				continue
			default:
				return errSyntax
			}
			var ok bool
			if op.signed, op.width, ok = parseBitfieldType(a[i+1]); !ok {
				return errBitType
			}
			if op.offset, ok = parseBitOffset(a[i+2], true, op.width); !ok {
				return errBitOffset
			}
			if op.kind != 'g' {
				if op.value, ok = parseInt(a[i+3]); !ok {
					return errNotInteger
				}
				writes = true
				i++
			}
			op.overflow = overflow
			ops = append(ops, op)
			i += 2
		}
		if ro && writes {
			return errBitfieldRO
		}
		e, s, r := t.stringFor(a[1])
		if r != nil {
			return r
		}
		buf := s
		if writes {
			need := int64(len(s))
			for _, op := range ops {
				if op.kind != 'g' {
					need = max(need, (op.offset+op.width-1)>>3+1)
				}
			}
			buf = grown(s, need)
		}
		out := make([]*messages.Reply, 0, len(ops))
		// Redis fires "setbit" if a write (one not failed by OVERFLOW
		// FAIL) changed its field, or any did on a new or grown string.
		grew := !e.exists || len(buf) > len(s)
		changed := false
		for _, op := range ops {
			if op.kind == 'g' {
				out = append(out, integer(getField(buf, op)))
				continue
			}
			old := getField(buf, op)
			next, overflowed := bitfieldWrite(old, op)
			if overflowed && op.overflow == 'f' {
				out = append(out, nullBulk)
				continue
			}
			setField(buf, op, next)
			changed = changed || grew || getField(buf, op) != old
			if op.kind == 'i' {
				out = append(out, integer(next))
			} else {
				out = append(out, integer(old))
			}
		}
		if writes {
			// Grown even when every write failed (OVERFLOW FAIL), as Redis.
			t.putString(&e, buf, true, false, 0)
			if changed {
				t.notify(ClassString, "setbit", a[1])
			}
		}
		return array(out)
	}
}

// getField reads op's field of s (zero past its end).
func getField(s []byte, op bitfieldOp) int64 {
	var v uint64
	for j := int64(0); j < op.width; j++ {
		v = v<<1 | uint64(bitAt(s, op.offset+j))
	}
	if op.signed && op.width < 64 && v&(1<<(op.width-1)) != 0 {
		v |= ^uint64(0) << op.width // sign-extend
	}
	return int64(v)
}

// setField writes v's low op.width bits at op's offset of s.
func setField(s []byte, op bitfieldOp, v int64) {
	for j := int64(0); j < op.width; j++ {
		off := op.offset + j
		bit := uint64(v) >> (op.width - 1 - j) & 1
		if bit == 1 {
			s[off>>3] |= 1 << (7 - off&7)
		} else {
			s[off>>3] &^= 1 << (7 - off&7)
		}
	}
}

// unsignedOverflow is Redis's checkUnsignedBitfieldOverflow: whether
// value plus incr overflows a field of width bits (1 above, -1 below),
// and then the value to write (WRAP: the low bits; SAT: the bound).
func unsignedOverflow(value uint64, incr int64, width int64, ow byte) (limit uint64, over int) {
	hi := uint64(1)<<width - 1
	maxIncr, minIncr := int64(hi-value), int64(-value)
	switch {
	case value > hi || (incr > 0 && incr > maxIncr):
		over, limit = 1, hi
	case incr < 0 && incr < minIncr:
		over, limit = -1, 0
	default:
		return 0, 0
	}
	if ow == 'w' {
		limit = (value + uint64(incr)) &^ (^uint64(0) << width)
	}
	return limit, over
}

// signedOverflow is Redis's checkSignedBitfieldOverflow.
func signedOverflow(value, incr int64, width int64, ow byte) (limit int64, over int) {
	hi := int64(math.MaxInt64)
	if width < 64 {
		hi = 1<<(width-1) - 1
	}
	lo := -hi - 1
	maxIncr := int64(uint64(hi) - uint64(value))
	minIncr := lo - value
	switch {
	case value > hi || (width != 64 && incr > maxIncr) || (value >= 0 && incr > 0 && incr > maxIncr):
		over, limit = 1, hi
	case value < lo || (width != 64 && incr < minIncr) || (value < 0 && incr < 0 && incr < minIncr):
		over, limit = -1, lo
	default:
		return 0, 0
	}
	if ow == 'w' {
		c := uint64(value) + uint64(incr)
		if width < 64 {
			mask := ^uint64(0) << width
			if c&(1<<(width-1)) != 0 {
				c |= mask
			} else {
				c &^= mask
			}
		}
		limit = int64(c)
	}
	return limit, over
}

// bitfieldWrite is a SET's or INCRBY's new value of op's field holding
// old, as Redis computes it, and whether it overflowed.
func bitfieldWrite(old int64, op bitfieldOp) (int64, bool) {
	value, incr := op.value, int64(0)
	if op.kind == 'i' {
		value, incr = old, op.value
	}
	if op.signed {
		limit, over := signedOverflow(value, incr, op.width, op.overflow)
		if over != 0 {
			return limit, true
		}
		return value + incr, false
	}
	limit, over := unsignedOverflow(uint64(value), incr, op.width, op.overflow)
	if over != 0 {
		return int64(limit), true
	}
	return int64(uint64(value) + uint64(incr)), false
}
