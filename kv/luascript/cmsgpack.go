package luascript

import (
	"encoding/binary"
	"math"

	lua "github.com/yuin/gopher-lua"
)

// cmsgpackLib is lua-cmsgpack 0.4.0's MessagePack, as Redis ships it:
// integral numbers as the smallest integer, others as float32 when that
// is exact, float64 otherwise; strings as str; a table as an array when
// its keys are 1..n, a map otherwise (a map's keys in the table's order);
// tables nested past 16 as nil.
func (r *run) cmsgpackLib() *lua.LTable {
	L := r.L
	return tableOf(L, map[string]lua.LValue{
		"pack":         L.NewFunction(r.msgpackPack),
		"unpack":       L.NewFunction(func(L *lua.LState) int { return r.msgpackUnpack(L, 0, 0, false) }),
		"unpack_one":   L.NewFunction(func(L *lua.LState) int { return r.msgpackUnpack(L, 1, L.OptInt(2, 0), true) }),
		"unpack_limit": L.NewFunction(func(L *lua.LState) int { return r.msgpackUnpack(L, L.CheckInt(2), L.OptInt(3, 0), true) }),
		"_NAME":        lua.LString("cmsgpack"),
		"_VERSION":     lua.LString("lua-cmsgpack 0.4.0"),
		"_COPYRIGHT":   lua.LString("Copyright (C) 2012, Salvatore Sanfilippo"),
		"_DESCRIPTION": lua.LString("MessagePack C implementation for Lua"),
	})
}

const msgpackMaxNesting = 16

func (r *run) msgpackPack(L *lua.LState) int {
	if L.GetTop() == 0 {
		L.RaiseError("bad argument #0 to 'pack' (MessagePack pack needs input.)")
	}
	var out []byte
	for i := 1; i <= L.GetTop(); i++ {
		out = r.msgpackAppend(L, out, L.Get(i), 0)
	}
	L.Push(lua.LString(out))
	return 1
}

func (r *run) msgpackAppend(L *lua.LState, out []byte, v lua.LValue, depth int) []byte {
	before := len(out)
	charged := func(out []byte) []byte { r.b.charge(L, len(out)-before); return out }
	switch v := v.(type) {
	case lua.LBool:
		if v {
			return charged(append(out, 0xc3))
		}
		return charged(append(out, 0xc2))
	case lua.LNumber:
		return charged(msgpackNumber(out, float64(v)))
	case lua.LString:
		n := len(v)
		r.b.checkLen(L, len(out)+n) // the whole packed string must stay under the longest
		switch {
		case n < 32:
			out = append(out, 0xa0|byte(n))
		case n < 1<<8:
			out = append(out, 0xd9, byte(n))
		case n < 1<<16:
			out = binary.BigEndian.AppendUint16(append(out, 0xda), uint16(n))
		default:
			out = binary.BigEndian.AppendUint32(append(out, 0xdb), uint32(n))
		}
		return charged(append(out, v...)) // its bytes, not the whole output's again
	case *lua.LTable:
		if depth >= msgpackMaxNesting {
			return charged(append(out, 0xc0))
		}
		if n, ok := msgpackArrayLen(v); ok {
			out = charged(msgpackHeader(out, n, 0x90, 0xdc, 0xdd))
			for i := 1; i <= n; i++ {
				out = r.msgpackAppend(L, out, v.RawGetInt(i), depth+1)
			}
			return out
		}
		n := 0
		eachPair(v, func(_, _ lua.LValue) { n++ })
		out = charged(msgpackHeader(out, n, 0x80, 0xde, 0xdf))
		eachPair(v, func(k, val lua.LValue) {
			out = r.msgpackAppend(L, out, k, depth+1)
			out = r.msgpackAppend(L, out, val, depth+1)
		})
		return out
	}
	return charged(append(out, 0xc0)) // nil, and what MessagePack cannot hold
}

// msgpackArrayLen is lua-cmsgpack's table_is_an_array: keys 1..n, none
// missing.
func msgpackArrayLen(t *lua.LTable) (int, bool) {
	count, top, ok := 0, 0, true
	eachPair(t, func(k, _ lua.LValue) {
		n, isNum := k.(lua.LNumber)
		if !isNum || float64(n) < 1 || float64(n) != math.Floor(float64(n)) {
			ok = false
			return
		}
		count++
		top = max(top, int(n))
	})
	return count, ok && top == count
}

func msgpackHeader(out []byte, n int, fix, b16, b32 byte) []byte {
	switch {
	case n < 16:
		return append(out, fix|byte(n))
	case n < 1<<16:
		return binary.BigEndian.AppendUint16(append(out, b16), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(out, b32), uint32(n))
}

func msgpackNumber(out []byte, f float64) []byte {
	if i := int64(f); float64(i) == f && !math.IsInf(f, 0) {
		switch {
		case i >= 0 && i < 128:
			return append(out, byte(i))
		case i >= 0 && i < 1<<8:
			return append(out, 0xcc, byte(i))
		case i >= 0 && i < 1<<16:
			return binary.BigEndian.AppendUint16(append(out, 0xcd), uint16(i))
		case i >= 0 && i < 1<<32:
			return binary.BigEndian.AppendUint32(append(out, 0xce), uint32(i))
		case i >= 0:
			return binary.BigEndian.AppendUint64(append(out, 0xcf), uint64(i))
		case i >= -32:
			return append(out, byte(i))
		case i >= math.MinInt8:
			return append(out, 0xd0, byte(i))
		case i >= math.MinInt16:
			return binary.BigEndian.AppendUint16(append(out, 0xd1), uint16(i))
		case i >= math.MinInt32:
			return binary.BigEndian.AppendUint32(append(out, 0xd2), uint32(i))
		}
		return binary.BigEndian.AppendUint64(append(out, 0xd3), uint64(i))
	}
	if float64(float32(f)) == f || math.IsNaN(f) {
		return binary.BigEndian.AppendUint32(append(out, 0xca), math.Float32bits(float32(f)))
	}
	return binary.BigEndian.AppendUint64(append(out, 0xcb), math.Float64bits(f))
}

// msgpackUnpack decodes up to limit objects (0: all) from the string's
// offset (0-based); with offsets, it returns the offset after them first
// (-1 at the end of the string), as unpack_one and unpack_limit do.
func (r *run) msgpackUnpack(L *lua.LState, limit, offset int, offsets bool) int {
	s := r.str(L, 1, "unpack")
	if offset < 0 || offset > len(s) {
		L.RaiseError("Start offset %d greater than input length %d.", offset, len(s))
	}
	d := &msgpackDecoder{r: r, L: L, s: s, pos: offset}
	var vals []lua.LValue
	for d.pos < len(s) && (limit == 0 || len(vals) < limit) {
		vals = append(vals, d.value(0))
	}
	if offsets {
		next := d.pos
		if next >= len(s) {
			next = -1
		}
		L.Push(lua.LNumber(next))
	}
	r.b.chargeSlots(L, len(vals))
	for _, v := range vals {
		L.Push(v)
	}
	if offsets {
		return len(vals) + 1
	}
	return len(vals)
}

type msgpackDecoder struct {
	r   *run
	L   *lua.LState
	s   string
	pos int
}

func (d *msgpackDecoder) take(n int) string {
	if n < 0 || d.pos+n > len(d.s) {
		d.L.RaiseError("Missing bytes in input.")
	}
	b := d.s[d.pos : d.pos+n]
	d.pos += n
	return b
}

func (d *msgpackDecoder) uint(n int) uint64 {
	var v uint64
	for _, c := range []byte(d.take(n)) {
		v = v<<8 | uint64(c)
	}
	return v
}

func (d *msgpackDecoder) value(depth int) lua.LValue {
	if depth > 1000 {
		d.L.RaiseError("Bad data format in input.")
	}
	c := d.take(1)[0]
	switch {
	case c < 0x80:
		return lua.LNumber(c)
	case c >= 0xe0:
		return lua.LNumber(int8(c))
	case c&0xe0 == 0xa0:
		return d.str(int(c & 0x1f))
	case c&0xf0 == 0x90:
		return d.array(int(c&0x0f), depth)
	case c&0xf0 == 0x80:
		return d.mapOf(int(c&0x0f), depth)
	}
	switch c {
	case 0xc0:
		return lua.LNil
	case 0xc2:
		return lua.LFalse
	case 0xc3:
		return lua.LTrue
	case 0xca:
		return lua.LNumber(math.Float32frombits(uint32(d.uint(4))))
	case 0xcb:
		return lua.LNumber(math.Float64frombits(d.uint(8)))
	case 0xcc, 0xcd, 0xce, 0xcf:
		return lua.LNumber(float64(d.uint(1 << (c - 0xcc))))
	case 0xd0:
		return lua.LNumber(int8(d.uint(1)))
	case 0xd1:
		return lua.LNumber(int16(d.uint(2)))
	case 0xd2:
		return lua.LNumber(int32(d.uint(4)))
	case 0xd3:
		return lua.LNumber(int64(d.uint(8)))
	case 0xd9:
		return d.str(int(d.uint(1)))
	case 0xda:
		return d.str(int(d.uint(2)))
	case 0xdb:
		return d.str(int(d.uint(4)))
	case 0xdc:
		return d.array(int(d.uint(2)), depth)
	case 0xdd:
		return d.array(int(d.uint(4)), depth)
	case 0xde:
		return d.mapOf(int(d.uint(2)), depth)
	case 0xdf:
		return d.mapOf(int(d.uint(4)), depth)
	}
	d.L.RaiseError("Bad data format in input.")
	return lua.LNil
}

func (d *msgpackDecoder) str(n int) lua.LValue {
	s := d.take(n)
	d.r.b.charge(d.L, n)
	return lua.LString(s)
}

func (d *msgpackDecoder) array(n, depth int) lua.LValue {
	if n > len(d.s)-d.pos { // every element takes a byte at least
		d.L.RaiseError("Missing bytes in input.")
	}
	d.r.b.chargeSlots(d.L, n)
	t := d.L.CreateTable(n, 0)
	for i := 1; i <= n; i++ {
		t.RawSetInt(i, d.value(depth+1))
	}
	return t
}

func (d *msgpackDecoder) mapOf(n, depth int) lua.LValue {
	if 2*n > len(d.s)-d.pos {
		d.L.RaiseError("Missing bytes in input.")
	}
	d.r.b.chargeSlots(d.L, 2*n)
	t := d.L.CreateTable(0, n)
	for range n {
		k := d.value(depth + 1)
		v := d.value(depth + 1)
		if k != lua.LNil {
			d.L.RawSet(t, k, v)
		}
	}
	return t
}
