package kv

// The RDB value format DUMP writes and RESTORE reads, Redis 7.0's
// (rdb.c, listpack.c, ziplist.c, intset.c, lzf): a type byte, the value,
// then the RDB version (2 bytes, little-endian) and a CRC-64 (Jones,
// reflected) of everything before it (8 bytes, little-endian).
//
// RESTORE reads what Redis 7.0 (and the versions before it, RDB 10 and
// lower) DUMPs: strings (raw, integer-encoded, LZF-compressed), lists
// (quicklists of listpacks or ziplists, plain nodes, the old linked
// list), sets (plain, intset), sorted sets (plain with binary or text
// scores, listpack, ziplist), hashes (plain, listpack, ziplist, zipmap is
// not read). DUMP writes the plain forms and, for lists, a quicklist of
// listpacks, which Redis 7.0 reads and re-encodes as it would its own.
// Streams and module values are neither written nor read.

import (
	"encoding/binary"
	"errors"
	"hash/crc64"
	"math"
	"strconv"
)

const (
	rdbVersion = 10 // Redis 7.0's

	rdbString         = 0
	rdbList           = 1
	rdbSet            = 2
	rdbZSet           = 3
	rdbHash           = 4
	rdbZSet2          = 5
	rdbListZiplist    = 10
	rdbSetIntset      = 11
	rdbZSetZiplist    = 12
	rdbHashZiplist    = 13
	rdbListQuicklist  = 14
	rdbStreams        = 15
	rdbHashListpack   = 16
	rdbZSetListpack   = 17
	rdbListQuicklist2 = 18
	rdbStreams2       = 19

	quicklistPlain  = 1
	quicklistPacked = 2
)

// crcJones is the table of Redis's crc64 (Jones coefficients, reflected
// in and out): crc64Redis("123456789") = 0xe9c6d914c4b8d9ca.
var crcJones = crc64.MakeTable(0x95ac9329ac4bc9b5)

// crc64Redis is Redis's crc64: Go's crc64 starts from and ends with all
// ones, Redis's from and with zero.
func crc64Redis(b []byte) uint64 {
	crc := uint64(0)
	for _, c := range b {
		crc = crcJones[byte(crc)^c] ^ (crc >> 8)
	}
	return crc
}

// dumpValue is a key's value as DUMP writes it and RESTORE reads it.
type dumpValue struct {
	typ    byte     // typeString, typeHash, typeSet, typeList, typeZSet
	str    []byte   // a string
	elems  [][]byte // a list's elements, a set's members, a hash's fields and values (alternating)
	scores []float64
	stream *dumpStream
}

// errBadDump is RESTORE's answer to a payload it cannot read.
var errBadDump = errors.New("bad data format")

// encodeDump is v's DUMP payload.
func encodeDump(v dumpValue) []byte {
	var b []byte
	switch v.typ {
	case typeString:
		b = append(b, rdbString)
		b = appendRDBString(b, v.str)
	case typeList:
		b = append(b, rdbListQuicklist2)
		b = appendQuicklist(b, v.elems)
	case typeSet:
		b = append(b, rdbSet)
		b = appendRDBLen(b, uint64(len(v.elems)))
		for _, m := range v.elems {
			b = appendRDBString(b, m)
		}
	case typeZSet:
		b = append(b, rdbZSet2)
		b = appendRDBLen(b, uint64(len(v.elems)))
		// Redis writes a sorted set from its highest score down, so that
		// a load inserts each member at the head: the same order here.
		for i := len(v.elems) - 1; i >= 0; i-- {
			b = appendRDBString(b, v.elems[i])
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v.scores[i]))
		}
	case typeHash:
		b = append(b, rdbHash)
		b = appendRDBLen(b, uint64(len(v.elems)/2))
		for _, x := range v.elems {
			b = appendRDBString(b, x)
		}
	case typeStream:
		b = append(b, rdbStreams2)
		b = appendStream(b, v.stream)
	}
	b = binary.LittleEndian.AppendUint16(b, rdbVersion)
	return binary.LittleEndian.AppendUint64(b, crc64Redis(b))
}

// checkDump verifies a payload's footer: its RDB version (at most this
// one) and checksum; it returns the value's bytes.
func checkDump(p []byte) ([]byte, bool) {
	if len(p) < 10 {
		return nil, false
	}
	body, footer := p[:len(p)-10], p[len(p)-10:]
	if binary.LittleEndian.Uint16(footer) > rdbVersion {
		return nil, false
	}
	if crc64Redis(p[:len(p)-8]) != binary.LittleEndian.Uint64(footer[2:]) {
		return nil, false
	}
	return body, true
}

func appendRDBLen(b []byte, n uint64) []byte {
	switch {
	case n < 1<<6:
		return append(b, byte(n))
	case n < 1<<14:
		return append(b, byte(n>>8)|0x40, byte(n))
	case n <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, 0x80), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, 0x81), n)
}

// appendRDBString writes s as Redis's rdbSaveRawString does, but for its
// LZF compression: a string of at most 11 bytes that is an integer in
// canonical form and fits 32 bits as that integer (0xc0, 0xc1, 0xc2 and
// 1, 2 or 4 bytes, little-endian), any other by its length and bytes.
func appendRDBString(b, s []byte) []byte {
	if n, ok := parseInt(s); ok && len(s) <= 11 {
		switch {
		case n >= math.MinInt8 && n <= math.MaxInt8:
			return append(b, 0xc0, byte(n))
		case n >= math.MinInt16 && n <= math.MaxInt16:
			return binary.LittleEndian.AppendUint16(append(b, 0xc1), uint16(n))
		case n >= math.MinInt32 && n <= math.MaxInt32:
			return binary.LittleEndian.AppendUint32(append(b, 0xc2), uint32(n))
		}
	}
	return append(appendRDBLen(b, uint64(len(s))), s...)
}

// appendQuicklist writes elems as a quicklist of listpacks of up to 128
// elements and 8 KiB each (Redis's list-max-listpack-size -2).
func appendQuicklist(b []byte, elems [][]byte) []byte {
	var nodes [][]byte
	for i := 0; i < len(elems); {
		n, size := 0, 0
		for i+n < len(elems) && n < 128 && (n == 0 || size+len(elems[i+n]) <= 8<<10) {
			size += len(elems[i+n]) + 11
			n++
		}
		nodes = append(nodes, listpack(elems[i:i+n]))
		i += n
	}
	b = appendRDBLen(b, uint64(len(nodes)))
	for _, lp := range nodes {
		b = appendRDBLen(b, quicklistPacked)
		b = appendRDBString(b, lp)
	}
	return b
}

// listpack encodes elems as a listpack, integers in listpack's integer
// encodings as Redis writes them (listpackBuilder).
func listpack(elems [][]byte) []byte {
	lp := newListpack()
	for _, e := range elems {
		lp.str(e)
	}
	return lp.bytes()
}

// appendBacklen writes a listpack entry's length backwards, 7 bits a byte.
func appendBacklen(b []byte, l uint64) []byte {
	switch {
	case l <= 127:
		return append(b, byte(l))
	case l < 16383:
		return append(b, byte(l>>7), byte(l&127)|128)
	case l < 2097151:
		return append(b, byte(l>>14), byte((l>>7)&127)|128, byte(l&127)|128)
	case l < 268435455:
		return append(b, byte(l>>21), byte((l>>14)&127)|128, byte((l>>7)&127)|128, byte(l&127)|128)
	}
	return append(b, byte(l>>28), byte((l>>21)&127)|128, byte((l>>14)&127)|128, byte((l>>7)&127)|128, byte(l&127)|128)
}

// rdbReader reads a payload's value.
type rdbReader struct{ p []byte }

func (r *rdbReader) byte() (byte, error) {
	if len(r.p) < 1 {
		return 0, errBadDump
	}
	c := r.p[0]
	r.p = r.p[1:]
	return c, nil
}

func (r *rdbReader) take(n uint64) ([]byte, error) {
	if uint64(len(r.p)) < n {
		return nil, errBadDump
	}
	b := r.p[:n]
	r.p = r.p[n:]
	return b, nil
}

// length reads a length; special is set for a string's special encoding
// (then the length is the encoding: 0 int8, 1 int16, 2 int32, 3 LZF).
func (r *rdbReader) length() (n uint64, special bool, err error) {
	c, err := r.byte()
	if err != nil {
		return 0, false, err
	}
	switch c >> 6 {
	case 0:
		return uint64(c & 0x3f), false, nil
	case 1:
		d, err := r.byte()
		return uint64(c&0x3f)<<8 | uint64(d), false, err
	case 3:
		return uint64(c & 0x3f), true, nil
	}
	switch c {
	case 0x80:
		b, err := r.take(4)
		if err != nil {
			return 0, false, err
		}
		return uint64(binary.BigEndian.Uint32(b)), false, nil
	case 0x81:
		b, err := r.take(8)
		if err != nil {
			return 0, false, err
		}
		return binary.BigEndian.Uint64(b), false, nil
	}
	return 0, false, errBadDump
}

// count reads a collection's length, bounded by what the payload can
// hold (one byte an element at least): a length header alone makes no
// big allocation.
func (r *rdbReader) count() (int, error) {
	n, special, err := r.length()
	if err != nil || special || n > uint64(len(r.p)) {
		return 0, errBadDump
	}
	return int(n), nil
}

// string reads a string in any of its encodings.
func (r *rdbReader) string() ([]byte, error) {
	n, special, err := r.length()
	if err != nil {
		return nil, err
	}
	if !special {
		return r.take(n)
	}
	switch n {
	case 0, 1, 2:
		b, err := r.take(1 << n)
		if err != nil {
			return nil, err
		}
		var v int64
		switch n {
		case 0:
			v = int64(int8(b[0]))
		case 1:
			v = int64(int16(binary.LittleEndian.Uint16(b)))
		case 2:
			v = int64(int32(binary.LittleEndian.Uint32(b)))
		}
		return strconv.AppendInt(nil, v, 10), nil
	case 3:
		clen, s1, err := r.length()
		if err != nil || s1 {
			return nil, errBadDump
		}
		ulen, s2, err := r.length()
		if err != nil || s2 || ulen > maxString {
			return nil, errBadDump
		}
		comp, err := r.take(clen)
		if err != nil {
			return nil, err
		}
		return lzfDecompress(comp, int(ulen))
	}
	return nil, errBadDump
}

// lzfDecompress is liblzf's lzf_decompress; the output must be exactly n
// bytes.
func lzfDecompress(in []byte, n int) ([]byte, error) {
	if n > 90*len(in) { // LZF expands 88 times at most (264 bytes from 3): no allocation from a header alone
		return nil, errBadDump
	}
	out := make([]byte, 0, n)
	for i := 0; i < len(in); {
		ctrl := int(in[i])
		i++
		if ctrl < 32 { // a literal run of ctrl+1 bytes
			l := ctrl + 1
			if i+l > len(in) || len(out)+l > n {
				return nil, errBadDump
			}
			out = append(out, in[i:i+l]...)
			i += l
			continue
		}
		l := ctrl >> 5
		if l == 7 {
			if i >= len(in) {
				return nil, errBadDump
			}
			l += int(in[i])
			i++
		}
		if i >= len(in) {
			return nil, errBadDump
		}
		ref := len(out) - ((ctrl & 0x1f) << 8) - 1 - int(in[i])
		i++
		l += 2
		if ref < 0 || len(out)+l > n {
			return nil, errBadDump
		}
		for j := range l { // may overlap what it writes
			out = append(out, out[ref+j])
		}
	}
	if len(out) != n {
		return nil, errBadDump
	}
	return out, nil
}

// decodeDump reads a payload (its footer checked) into a value.
func decodeDump(body []byte) (dumpValue, error) {
	r := &rdbReader{p: body}
	t, err := r.byte()
	if err != nil {
		return dumpValue{}, err
	}
	v, err := r.value(t)
	if err == nil && len(r.p) != 0 {
		err = errBadDump // bytes after the value
	}
	return v, err
}

func (r *rdbReader) value(t byte) (v dumpValue, err error) {
	switch t {
	case rdbString:
		v.typ = typeString
		v.str, err = r.string()
		return v, err
	case rdbList:
		v.typ = typeList
		v.elems, err = r.strings(1)
	case rdbSet:
		v.typ = typeSet
		v.elems, err = r.strings(1)
	case rdbHash:
		v.typ = typeHash
		v.elems, err = r.strings(2)
	case rdbZSet, rdbZSet2:
		v.typ = typeZSet
		err = r.zset(&v, t == rdbZSet2)
	case rdbSetIntset:
		v.typ = typeSet
		v.elems, err = r.intset()
	case rdbListQuicklist, rdbListQuicklist2:
		v.typ = typeList
		v.elems, err = r.quicklist(t == rdbListQuicklist2)
	case rdbListZiplist, rdbZSetZiplist, rdbHashZiplist, rdbHashListpack, rdbZSetListpack:
		var blob []byte
		if blob, err = r.string(); err != nil {
			return v, err
		}
		var elems [][]byte
		if t == rdbListZiplist || t == rdbZSetZiplist || t == rdbHashZiplist {
			elems, err = ziplistElems(blob)
		} else {
			elems, err = listpackElems(blob)
		}
		if err != nil {
			return v, err
		}
		switch t {
		case rdbListZiplist:
			v.typ, v.elems = typeList, elems
		case rdbHashZiplist, rdbHashListpack:
			if len(elems)%2 != 0 {
				return v, errBadDump
			}
			v.typ, v.elems = typeHash, elems
		default:
			v.typ = typeZSet
			err = v.pairsToZSet(elems)
		}
	case rdbStreams, rdbStreams2:
		v.typ = typeStream
		v.stream, err = r.stream(t == rdbStreams2)
		return v, err
	default:
		return v, errBadDump
	}
	if err == nil && len(v.elems) == 0 {
		err = errBadDump // Redis refuses an empty collection
	}
	return v, err
}

// strings reads a count of groups of per strings each.
func (r *rdbReader) strings(per int) ([][]byte, error) {
	n, err := r.count()
	if err != nil {
		return nil, err
	}
	out := make([][]byte, 0, n*per)
	for range n * per {
		s, err := r.string()
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// zset reads a plain sorted set: members with binary scores (ZSET_2) or
// scores as text (ZSET: a length byte, 253 NaN, 254 +inf, 255 -inf).
func (r *rdbReader) zset(v *dumpValue, binaryScores bool) error {
	n, err := r.count()
	if err != nil {
		return err
	}
	for range n {
		m, err := r.string()
		if err != nil {
			return err
		}
		var score float64
		if binaryScores {
			b, err := r.take(8)
			if err != nil {
				return err
			}
			score = math.Float64frombits(binary.LittleEndian.Uint64(b))
		} else {
			l, err := r.byte()
			if err != nil {
				return err
			}
			switch l {
			case 253:
				return errBadDump // NaN
			case 254:
				score = math.Inf(1)
			case 255:
				score = math.Inf(-1)
			default:
				b, err := r.take(uint64(l))
				if err != nil {
					return err
				}
				if score, err = strconv.ParseFloat(string(b), 64); err != nil {
					return errBadDump
				}
			}
		}
		if math.IsNaN(score) {
			return errBadDump
		}
		v.elems, v.scores = append(v.elems, m), append(v.scores, score)
	}
	return nil
}

// pairsToZSet takes member, score pairs (a listpack's or ziplist's).
func (v *dumpValue) pairsToZSet(elems [][]byte) error {
	if len(elems)%2 != 0 {
		return errBadDump
	}
	for i := 0; i < len(elems); i += 2 {
		score, err := strconv.ParseFloat(string(elems[i+1]), 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) || math.IsNaN(score) {
			return errBadDump
		}
		v.elems, v.scores = append(v.elems, elems[i]), append(v.scores, score)
	}
	return nil
}

func (r *rdbReader) intset() ([][]byte, error) {
	blob, err := r.string()
	if err != nil || len(blob) < 8 {
		return nil, errBadDump
	}
	width := binary.LittleEndian.Uint32(blob)
	n := binary.LittleEndian.Uint32(blob[4:])
	if (width != 2 && width != 4 && width != 8) || uint64(len(blob)-8) != uint64(n)*uint64(width) {
		return nil, errBadDump
	}
	out := make([][]byte, n)
	for i := range out {
		p := blob[8+i*int(width):]
		var x int64
		switch width {
		case 2:
			x = int64(int16(binary.LittleEndian.Uint16(p)))
		case 4:
			x = int64(int32(binary.LittleEndian.Uint32(p)))
		default:
			x = int64(binary.LittleEndian.Uint64(p))
		}
		out[i] = strconv.AppendInt(nil, x, 10)
	}
	return out, nil
}

// quicklist reads a list's nodes: ziplists (QUICKLIST), or listpacks and
// plain elements with their container (QUICKLIST_2).
func (r *rdbReader) quicklist(v2 bool) ([][]byte, error) {
	n, err := r.count()
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for range n {
		container := uint64(quicklistPacked)
		if v2 {
			var special bool
			if container, special, err = r.length(); err != nil || special {
				return nil, errBadDump
			}
		}
		blob, err := r.string()
		if err != nil {
			return nil, err
		}
		switch {
		case container == quicklistPlain && v2:
			out = append(out, blob)
			continue
		case container != quicklistPacked:
			return nil, errBadDump
		}
		var elems [][]byte
		if v2 {
			elems, err = listpackElems(blob)
		} else {
			elems, err = ziplistElems(blob)
		}
		if err != nil {
			return nil, err
		}
		if len(elems) == 0 {
			return nil, errBadDump // Redis refuses an empty node
		}
		out = append(out, elems...)
	}
	return out, nil
}

// listpackElems reads a listpack's entries, integers as their decimal
// strings.
func listpackElems(lp []byte) ([][]byte, error) {
	if len(lp) < 7 || binary.LittleEndian.Uint32(lp) != uint32(len(lp)) || lp[len(lp)-1] != 0xff {
		return nil, errBadDump
	}
	p := lp[6 : len(lp)-1]
	var out [][]byte
	for len(p) > 0 {
		c := p[0]
		var head, size int
		var elem []byte
		integer := func(width int) (err error) {
			elem, err = leInt(p[1:], width)
			head = 1 + width
			return err
		}
		var err error
		switch {
		case c&0x80 == 0: // 7-bit unsigned
			elem, head = strconv.AppendInt(nil, int64(c&0x7f), 10), 1
		case c&0xc0 == 0x80: // 6-bit length string
			head, size = 1, int(c&0x3f)
		case c&0xe0 == 0xc0: // 13-bit signed
			if len(p) < 2 {
				return nil, errBadDump
			}
			x := int64(uint64(c&0x1f)<<8|uint64(p[1])) << 51 >> 51
			elem, head = strconv.AppendInt(nil, x, 10), 2
		case c&0xf0 == 0xe0: // 12-bit length string
			if len(p) < 2 {
				return nil, errBadDump
			}
			head, size = 2, int(c&0x0f)<<8|int(p[1])
		case c == 0xf0: // 32-bit length string
			if len(p) < 5 {
				return nil, errBadDump
			}
			head, size = 5, int(binary.LittleEndian.Uint32(p[1:]))
		case c == 0xf1:
			err = integer(2)
		case c == 0xf2:
			err = integer(3)
		case c == 0xf3:
			err = integer(4)
		case c == 0xf4:
			err = integer(8)
		default:
			return nil, errBadDump
		}
		if err != nil || size < 0 || head+size > len(p) {
			return nil, errBadDump
		}
		if elem == nil {
			elem = p[head : head+size]
		}
		l := uint64(head + size)
		back := len(appendBacklen(nil, l))
		if head+size+back > len(p) {
			return nil, errBadDump
		}
		out = append(out, elem)
		p = p[head+size+back:]
	}
	return out, nil
}

// leInt reads a little-endian signed integer of width bytes at the start
// of b, as its decimal string (listpacks' and ziplists' integers).
func leInt(b []byte, width int) ([]byte, error) {
	if len(b) < width {
		return nil, errBadDump
	}
	var u uint64
	for i := range width {
		u |= uint64(b[i]) << (8 * i)
	}
	bits := uint(8 * width)
	return strconv.AppendInt(nil, int64(u<<(64-bits))>>(64-bits), 10), nil // sign-extended
}

// ziplistElems reads a ziplist's entries (Redis before 7.0), integers as
// their decimal strings.
func ziplistElems(zl []byte) ([][]byte, error) {
	if len(zl) < 11 || binary.LittleEndian.Uint32(zl) != uint32(len(zl)) || zl[len(zl)-1] != 0xff {
		return nil, errBadDump
	}
	p := zl[10 : len(zl)-1]
	var out [][]byte
	for len(p) > 0 {
		// The previous entry's length: 1 byte, or 0xfe and 4 bytes.
		if p[0] == 0xfe {
			if len(p) < 5 {
				return nil, errBadDump
			}
			p = p[5:]
		} else {
			p = p[1:]
		}
		if len(p) == 0 {
			return nil, errBadDump
		}
		c := p[0]
		var head, size int
		var elem []byte
		intOf := func(width int) (err error) {
			elem, err = leInt(p[1:], width)
			head = 1 + width
			return err
		}
		var err error
		switch {
		case c>>6 == 0:
			head, size = 1, int(c&0x3f)
		case c>>6 == 1:
			if len(p) < 2 {
				return nil, errBadDump
			}
			head, size = 2, int(c&0x3f)<<8|int(p[1])
		case c == 0x80:
			if len(p) < 5 {
				return nil, errBadDump
			}
			head, size = 5, int(binary.BigEndian.Uint32(p[1:]))
		case c == 0xc0:
			err = intOf(2)
		case c == 0xd0:
			err = intOf(4)
		case c == 0xe0:
			err = intOf(8)
		case c == 0xf0:
			err = intOf(3)
		case c == 0xfe:
			err = intOf(1)
		case c >= 0xf1 && c <= 0xfd:
			elem, head = strconv.AppendInt(nil, int64(c&0x0f)-1, 10), 1
		default:
			return nil, errBadDump
		}
		if err != nil || size < 0 || head+size > len(p) {
			return nil, errBadDump
		}
		if elem == nil {
			elem = p[head : head+size]
		}
		out = append(out, elem)
		p = p[head+size:]
	}
	return out, nil
}
