package luascript

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/pm"
)

// builder is a string a library function makes, charged as it grows.
type builder struct {
	r  *run
	L  *lua.LState
	sb strings.Builder
}

func (b *builder) add(s string) {
	if b.sb.Len()+len(s) > maxString {
		b.L.RaiseError("%s", errLong.Error())
	}
	b.r.b.charge(b.L, len(s))
	b.sb.WriteString(s)
}

// strFormat is Lua 5.1's string.format: C's conversions, a width and a
// precision of two digits at most, %s of strings and numbers only (a
// table's address would differ between replicas).
func (r *run) strFormat(L *lua.LState) int {
	f := r.str(L, 1, "format")
	out := builder{r: r, L: L}
	arg := 1
	for i := 0; i < len(f); i++ {
		if f[i] != '%' {
			j := strings.IndexByte(f[i:], '%')
			if j < 0 {
				j = len(f) - i
			}
			out.add(f[i : i+j])
			i += j - 1
			continue
		}
		i++
		if i < len(f) && f[i] == '%' {
			out.add("%")
			continue
		}
		// flags, width, precision
		start := i
		for i < len(f) && strings.IndexByte("-+ #0", f[i]) >= 0 {
			i++
		}
		if i-start > 5 {
			L.RaiseError("invalid format (repeated flags)")
		}
		for k := 0; k < 3 && i < len(f) && isDigit(f[i]); k++ {
			if k == 2 {
				L.RaiseError("invalid format (width or precision too long)")
			}
			i++
		}
		hasPrec := false
		if i < len(f) && f[i] == '.' {
			hasPrec = true
			i++
			for k := 0; k < 3 && i < len(f) && isDigit(f[i]); k++ {
				if k == 2 {
					L.RaiseError("invalid format (width or precision too long)")
				}
				i++
			}
		}
		if i >= len(f) {
			L.RaiseError("invalid option '%%' to 'format'")
		}
		spec, conv := f[start:i], f[i]
		arg++
		if arg > L.GetTop() {
			argError(L, arg, "format", "no value")
		}
		switch conv {
		case 'c':
			out.add(pad(spec, string([]byte{byte(checkInt(L, arg, "format"))})))
		case 'd', 'i':
			out.add(fmt.Sprintf("%"+spec+"d", int64(checkNumber(L, arg, "format"))))
		case 'o', 'u', 'x', 'X':
			c := string(conv)
			if conv == 'u' {
				c = "d"
			}
			out.add(fmt.Sprintf("%"+spec+c, uint64(int64(checkNumber(L, arg, "format")))))
		case 'e', 'E', 'f', 'g', 'G':
			n := checkNumber(L, arg, "format")
			if math.IsInf(n, 0) || math.IsNaN(n) {
				s := numberString(n)
				if strings.Contains(spec, "+") && s[0] != '-' {
					s = "+" + s
				}
				if conv == 'E' || conv == 'G' {
					s = strings.ToUpper(s)
				}
				out.add(pad(strings.ReplaceAll(spec, "0", ""), s))
				continue
			}
			if !hasPrec && (conv == 'g' || conv == 'G') {
				spec += ".6" // C's default; Go's %g would give the shortest form
			}
			out.add(fmt.Sprintf("%"+spec+string(conv), n))
		case 'q':
			out.add(quote(r.str(L, arg, "format")))
		case 's':
			s := r.str(L, arg, "format")
			if !hasPrec && len(s) >= 100 {
				out.add(s) // Lua 5.1 adds a long string as it is
				continue
			}
			if hasPrec {
				p, _ := strconv.Atoi(spec[strings.IndexByte(spec, '.')+1:])
				s = s[:min(p, len(s))]
			}
			out.add(pad(spec, s))
		default:
			L.RaiseError("invalid option '%%%c' to 'format'", conv)
		}
	}
	L.Push(lua.LString(out.sb.String()))
	return 1
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// pad pads s to spec's width (left-justified with '-'), in bytes.
func pad(spec string, s string) string {
	left := strings.Contains(spec, "-")
	w := strings.TrimLeft(spec, "-+ #0")
	if dot := strings.IndexByte(w, '.'); dot >= 0 {
		w = w[:dot]
	}
	width, _ := strconv.Atoi(w)
	if len(s) >= width {
		return s
	}
	fill := strings.Repeat(" ", width-len(s))
	if left {
		return s + fill
	}
	return fill + s
}

// quote is %q: Lua 5.1's addquoted.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case '\n':
			b.WriteString("\\\n")
		case '\r':
			b.WriteString("\\r")
		case 0:
			b.WriteString("\\000")
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// strGsub is Lua's string.gsub, building its result as it goes (and
// charging it): gopher-lua's copies the whole string at every match.
func (r *run) strGsub(L *lua.LState) int {
	src := r.str(L, 1, "gsub")
	pat := r.str(L, 2, "gsub")
	repl := L.Get(3)
	switch repl.Type() {
	case lua.LTString, lua.LTNumber, lua.LTTable, lua.LTFunction:
	default:
		argError(L, 3, "gsub", "string/function/table expected, got "+repl.Type().String())
	}
	limit := L.OptInt(4, -1)
	matches, err := pm.Find(pat, []byte(src), 0, limit)
	if err != nil {
		L.RaiseError("%s", err.Error())
	}
	r.b.chargeSlots(L, len(matches))
	out := builder{r: r, L: L}
	last := 0
	for _, m := range matches {
		start, end := m.Capture(0), m.Capture(1)
		out.add(src[last:start])
		whole := src[start:end]
		var rep string
		keep := false
		switch v := repl.(type) {
		case lua.LString:
			rep = r.expand(L, string(v), src, m)
		case lua.LNumber:
			rep = r.expand(L, numberString(float64(v)), src, m)
		case *lua.LTable:
			val := L.GetTable(v, capture(src, m, 1))
			rep, keep = r.replacement(L, val, whole)
		case *lua.LFunction:
			L.Push(v)
			n := 0
			if m.CaptureLength() > 2 {
				for c := 1; c < m.CaptureLength()/2; c++ {
					L.Push(capture(src, m, c))
					n++
				}
			} else {
				L.Push(lua.LString(whole))
				n = 1
			}
			L.Call(n, 1)
			val := L.Get(-1)
			L.Pop(1)
			rep, keep = r.replacement(L, val, whole)
		}
		if keep {
			rep = whole
		}
		out.add(rep)
		last = end
	}
	out.add(src[last:])
	L.Push(lua.LString(out.sb.String()))
	L.Push(lua.LNumber(len(matches)))
	return 2
}

// capture is a match's capture c (1-based; the whole match when the
// pattern has none), a position capture as a number.
func capture(src string, m *pm.MatchData, c int) lua.LValue {
	idx := 2 * c
	if m.CaptureLength() <= 2 {
		idx = 0
	}
	if m.IsPosCapture(idx) {
		return lua.LNumber(m.Capture(idx)) // pm counts positions from 1
	}
	return lua.LString(src[m.Capture(idx):m.Capture(idx+1)])
}

// replacement is a table's or function's value as gsub uses it: false or
// nil keeps the match, a string or number replaces it.
func (r *run) replacement(L *lua.LState, v lua.LValue, whole string) (string, bool) {
	switch v := v.(type) {
	case lua.LString:
		return string(v), false
	case lua.LNumber:
		return numberString(float64(v)), false
	}
	if !lua.LVAsBool(v) {
		return "", true
	}
	L.RaiseError("invalid replacement value (a %s)", v.Type().String())
	return "", false
}

// expand is a replacement string with its %0-%9 and %% expanded.
func (r *run) expand(L *lua.LState, repl, src string, m *pm.MatchData) string {
	if strings.IndexByte(repl, '%') < 0 {
		return repl
	}
	out := builder{r: r, L: L}
	for i := 0; i < len(repl); i++ {
		c := repl[i]
		if c != '%' || i+1 == len(repl) {
			out.add(string(c))
			continue
		}
		i++
		d := repl[i]
		switch {
		case d == '0':
			out.add(src[m.Capture(0):m.Capture(1)])
		case '1' <= d && d <= '9':
			n := int(d - '0')
			if m.CaptureLength() <= 2 && n == 1 {
				out.add(src[m.Capture(0):m.Capture(1)])
				continue
			}
			if 2*n >= m.CaptureLength() {
				L.RaiseError("invalid capture index")
			}
			out.add(lua.LVAsString(capture(src, m, n)))
		default:
			out.add(string(d))
		}
	}
	return out.sb.String()
}
