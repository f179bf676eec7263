package luascript

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// structLib is Roberto Ierusalimschy's struct library (0.2), as Redis
// ships it on a 64-bit little-endian machine: pack, unpack and size of
// binary records ('<' '>' '=' '!' 'x' b B h H l L T i I f d c s).
func (r *run) structLib() *lua.LTable {
	L := r.L
	return tableOf(L, map[string]lua.LValue{
		"pack":   L.NewFunction(r.structPack),
		"unpack": L.NewFunction(r.structUnpack),
		"size":   L.NewFunction(r.structSize),
	})
}

const (
	structMaxInt   = 32 // the widest integer
	structMaxAlign = 8
)

// structFormat walks a format string.
type structFormat struct {
	L      *lua.LState
	fn     string // pack, unpack, size: for its errors
	f      string
	i      int
	little bool
	align  int
}

func newStructFormat(L *lua.LState, fn, f string) *structFormat {
	return &structFormat{L: L, fn: fn, f: f, little: true, align: 1}
}

func (s *structFormat) num(def int) int {
	if s.i >= len(s.f) || !isDigit(s.f[s.i]) {
		return def
	}
	n := 0
	for s.i < len(s.f) && isDigit(s.f[s.i]) {
		if n > (math.MaxInt32-int(s.f[s.i]-'0'))/10 {
			s.L.RaiseError("integral size overflow")
		}
		n = n*10 + int(s.f[s.i]-'0')
		s.i++
	}
	return n
}

// next is the next item's option and size, after the control options
// before it; ok is false at the end of the format.
func (s *structFormat) next() (opt byte, size int, ok bool) {
	for s.i < len(s.f) {
		opt = s.f[s.i]
		s.i++
		switch opt {
		case ' ':
		case '>':
			s.little = false
		case '<':
			s.little = true
		case '!':
			a := s.num(structMaxAlign)
			if a&(a-1) != 0 {
				s.L.RaiseError("alignment %d is not a power of 2", a)
			}
			s.align = a
		case 'b', 'B', 'x':
			return opt, 1, true
		case 'h', 'H':
			return opt, 2, true
		case 'l', 'L', 'T', 'd':
			return opt, 8, true
		case 'f':
			return opt, 4, true
		case 'c':
			return opt, s.num(1), true
		case 's':
			return opt, 0, true
		case 'i', 'I':
			n := s.num(4)
			if n > structMaxInt {
				s.L.RaiseError("integral size %d is larger than limit of %d", n, structMaxInt)
			}
			return opt, n, true
		default:
			argError(s.L, 1, s.fn, fmt.Sprintf("invalid format option '%c'", opt))
		}
	}
	return 0, 0, false
}

// pad is the padding before an item of size at offset n.
func (s *structFormat) pad(n, size int, opt byte) int {
	if size == 0 || opt == 'c' {
		return 0
	}
	size = min(size, s.align)
	return (size - (n & (size - 1))) & (size - 1)
}

func (r *run) structPack(L *lua.LState) int {
	s := newStructFormat(L, "pack", r.str(L, 1, "pack"))
	out := builder{r: r, L: L}
	arg := 2
	for {
		opt, size, ok := s.next()
		if !ok {
			break
		}
		out.add(strings.Repeat("\x00", s.pad(out.sb.Len(), size, opt)))
		switch opt {
		case 'b', 'B', 'h', 'H', 'l', 'L', 'T', 'i', 'I':
			n := checkNumber(L, arg, "pack")
			arg++
			v := uint64(n)
			if n < 0 {
				v = uint64(int64(n))
			}
			b := make([]byte, size)
			for i := range size {
				at := size - 1 - i
				if s.little {
					at = i
				}
				b[at] = byte(v)
				v >>= 8
			}
			out.add(string(b))
		case 'x':
			out.add("\x00")
		case 'f', 'd':
			n := checkNumber(L, arg, "pack")
			arg++
			var b []byte
			if opt == 'f' {
				b = binary.BigEndian.AppendUint32(nil, math.Float32bits(float32(n)))
			} else {
				b = binary.BigEndian.AppendUint64(nil, math.Float64bits(n))
			}
			if s.little {
				for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
					b[i], b[j] = b[j], b[i]
				}
			}
			out.add(string(b))
		case 'c', 's':
			str := r.str(L, arg, "pack")
			if size == 0 {
				size = len(str)
			}
			arg++
			if len(str) < size {
				argError(L, arg, "pack", "string too short") // the next argument's number, as struct.c gives it
			}
			out.add(str[:size])
			if opt == 's' {
				out.add("\x00")
			}
		}
	}
	L.Push(lua.LString(out.sb.String()))
	return 1
}

func (r *run) structUnpack(L *lua.LState) int {
	s := newStructFormat(L, "unpack", r.str(L, 1, "unpack"))
	data := r.str(L, 2, "unpack")
	pos := L.OptInt(3, 1) - 1
	if pos < 0 {
		pos = 0
	}
	var vals []lua.LValue
	for {
		opt, size, ok := s.next()
		if !ok {
			break
		}
		pos += s.pad(pos, size, opt)
		if pos+size > len(data) {
			argError(L, 2, "unpack", "data string too short")
		}
		switch opt {
		case 'b', 'B', 'h', 'H', 'l', 'L', 'T', 'i', 'I':
			var v uint64
			for i := range size {
				at := pos + i
				if s.little {
					at = pos + size - 1 - i
				}
				v = v<<8 | uint64(data[at])
			}
			if opt >= 'a' && size < 8 { // signed: extend the sign
				mask := uint64(1) << (size*8 - 1)
				v = (v ^ mask) - mask
			}
			if opt >= 'a' {
				vals = append(vals, lua.LNumber(float64(int64(v))))
			} else {
				vals = append(vals, lua.LNumber(float64(v)))
			}
		case 'f', 'd':
			b := []byte(data[pos : pos+size])
			if s.little {
				for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
					b[i], b[j] = b[j], b[i]
				}
			}
			if opt == 'f' {
				vals = append(vals, lua.LNumber(math.Float32frombits(binary.BigEndian.Uint32(b))))
			} else {
				vals = append(vals, lua.LNumber(math.Float64frombits(binary.BigEndian.Uint64(b))))
			}
		case 'c':
			if size == 0 {
				n, ok := lastNumber(vals)
				if !ok {
					L.RaiseError("format 'c0' needs a previous size")
				}
				vals = vals[:len(vals)-1]
				size = n
				if pos+size > len(data) || size < 0 {
					argError(L, 2, "unpack", "data string too short")
				}
			}
			r.b.charge(L, size)
			vals = append(vals, lua.LString(data[pos:pos+size]))
		case 's':
			end := strings.IndexByte(data[pos:], 0)
			if end < 0 {
				L.RaiseError("unfinished string in data")
			}
			size = end + 1
			r.b.charge(L, end)
			vals = append(vals, lua.LString(data[pos:pos+end]))
		}
		pos += size
	}
	r.b.chargeSlots(L, len(vals)+1)
	for _, v := range vals {
		L.Push(v)
	}
	L.Push(lua.LNumber(pos + 1))
	return len(vals) + 1
}

// checkNumber is Lua's luaL_checknumber (a number, or a string that reads
// as one: luaO_str2d's decimal or hexadecimal, spaces around), with Lua's
// error. gopher-lua's own CheckNumber takes no string.
func checkNumber(L *lua.LState, n int, fn string) float64 {
	switch v := L.Get(n).(type) {
	case lua.LNumber:
		return float64(v)
	case lua.LString:
		s := strings.TrimSpace(string(v))
		if h, ok := strings.CutPrefix(strings.ToLower(s), "0x"); ok {
			if u, err := strconv.ParseUint(h, 16, 64); err == nil {
				return float64(u)
			}
		} else if f, err := strconv.ParseFloat(s, 64); err == nil {
			return f
		}
	}
	argError(L, n, fn, "number expected, got "+L.Get(n).Type().String())
	return 0
}

// checkInt is Lua's luaL_checkint: checkNumber, truncated.
func checkInt(L *lua.LState, n int, fn string) int { return int(checkNumber(L, n, fn)) }

// lastNumber is the last value unpacked, as c0's length.
func lastNumber(vals []lua.LValue) (int, bool) {
	if len(vals) == 0 {
		return 0, false
	}
	n, ok := vals[len(vals)-1].(lua.LNumber)
	return int(n), ok
}

func (r *run) structSize(L *lua.LState) int {
	s := newStructFormat(L, "size", r.str(L, 1, "size"))
	total := 0
	for {
		opt, size, ok := s.next()
		if !ok {
			break
		}
		if size == 0 && (opt == 's' || opt == 'c') {
			name := "s"
			if opt == 'c' {
				name = "c0"
			}
			argError(L, 1, "size", fmt.Sprintf("option '%s' has no fixed size", name))
		}
		total += s.pad(total, size, opt) + size
	}
	L.Push(lua.LNumber(total))
	return 1
}
