package luascript

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	lua "github.com/yuin/gopher-lua"
)

// cjsonLib is lua-cjson 2.1.0 as Redis ships it: encode and decode, with
// its defaults (numbers as "%.14g", '/' escaped, an empty table an
// object, arrays as sparse as twice their items past 10, nesting to 1000,
// NaN and Inf refused by encode and read by decode, null as cjson.null),
// the functions that change them, and new, which makes a module with
// settings of its own. Objects list their keys in the table's order, which
// here is the order they were set (Redis's follows its hash table).
func (r *run) cjsonLib() *lua.LTable {
	r.null = r.L.NewUserData()
	return r.cjsonModule(&r.cjson)
}

// cjsonConfig is a cjson module's settings (lua-cjson's json_config_t).
type cjsonConfig struct {
	sparseConvert                  bool
	sparseRatio, sparseSafe        int
	encodeMaxDepth, decodeMaxDepth int
	precision                      int
	keepBuffer                     bool // no effect: lua-cjson's buffer reuse
	encodeInvalid                  int  // 0 refuse NaN and Inf, 1 write them, 2 write null
	decodeInvalid                  bool // read NaN, Inf, hex, + and leading zeros
}

// cjsonDefaults are lua-cjson's settings as a module starts with them.
var cjsonDefaults = cjsonConfig{sparseRatio: 2, sparseSafe: 10, encodeMaxDepth: 1000, decodeMaxDepth: 1000,
	precision: 14, keepBuffer: true, decodeInvalid: true}

// cjsonModule is a cjson module with the settings cfg (cjson's are the
// run's, set back for each run; cjson.new makes a module with its own).
func (r *run) cjsonModule(cfg *cjsonConfig) *lua.LTable {
	L := r.L
	fn := func(f func(*lua.LState) int) lua.LValue { return L.NewFunction(f) }
	return tableOf(L, map[string]lua.LValue{
		"encode": fn(func(L *lua.LState) int { return r.cjsonEncode(L, cfg) }),
		"decode": fn(func(L *lua.LState) int { return r.cjsonDecode(L, cfg) }),
		"encode_sparse_array": fn(func(L *lua.LState) int {
			cjsonArgs(L, "encode_sparse_array", 3)
			cjsonBool(L, "encode_sparse_array", 1, &cfg.sparseConvert)
			cjsonInt(L, "encode_sparse_array", 2, &cfg.sparseRatio, 0, math.MaxInt32)
			cjsonInt(L, "encode_sparse_array", 3, &cfg.sparseSafe, 0, math.MaxInt32)
			return 3
		}),
		"encode_max_depth": fn(func(L *lua.LState) int {
			cjsonArgs(L, "encode_max_depth", 1)
			cjsonInt(L, "encode_max_depth", 1, &cfg.encodeMaxDepth, 1, math.MaxInt32)
			return 1
		}),
		"decode_max_depth": fn(func(L *lua.LState) int {
			cjsonArgs(L, "decode_max_depth", 1)
			cjsonInt(L, "decode_max_depth", 1, &cfg.decodeMaxDepth, 1, math.MaxInt32)
			return 1
		}),
		"encode_number_precision": fn(func(L *lua.LState) int {
			cjsonArgs(L, "encode_number_precision", 1)
			cjsonInt(L, "encode_number_precision", 1, &cfg.precision, 1, 14)
			return 1
		}),
		"encode_keep_buffer": fn(func(L *lua.LState) int {
			cjsonArgs(L, "encode_keep_buffer", 1)
			cjsonBool(L, "encode_keep_buffer", 1, &cfg.keepBuffer)
			return 1
		}),
		"encode_invalid_numbers": fn(func(L *lua.LState) int {
			cjsonArgs(L, "encode_invalid_numbers", 1)
			cjsonOption(L, "encode_invalid_numbers", 1, &cfg.encodeInvalid, []string{"off", "on", "null"})
			return 1
		}),
		"decode_invalid_numbers": fn(func(L *lua.LState) int {
			cjsonArgs(L, "decode_invalid_numbers", 1)
			cjsonBool(L, "decode_invalid_numbers", 1, &cfg.decodeInvalid)
			return 1
		}),
		"new": fn(func(L *lua.LState) int {
			cfg := cjsonDefaults
			L.Push(r.cjsonModule(&cfg))
			return 1
		}),
		"null":     r.null,
		"_NAME":    lua.LString("cjson"),
		"_VERSION": lua.LString("2.1.0"),
	})
}

// cjsonArgs is lua-cjson's json_arg_init: at most max arguments, the
// missing ones nil, so that the settings pushed come after them.
func cjsonArgs(L *lua.LState, name string, max int) {
	if L.GetTop() > max {
		argError(L, max+1, name, "found too many arguments")
	}
	L.SetTop(max)
}

// cjsonInt is json_integer_option: argument i, if given, sets *v (within
// min and max); the setting is pushed.
func cjsonInt(L *lua.LState, name string, i int, v *int, min, max int) {
	if L.Get(i) != lua.LNil {
		// lua-cjson names argument 1 whichever it checks.
		if n := int64(checkNumber(L, i, name)); n >= int64(min) && n <= int64(max) {
			*v = int(n)
		} else {
			argError(L, 1, name, fmt.Sprintf("expected integer between %d and %d", min, max))
		}
	}
	L.Push(lua.LNumber(*v))
}

// cjsonBool is json_enum_option for on and off: a boolean, "on" or "off"
// sets *v; the setting is pushed as a boolean.
func cjsonBool(L *lua.LState, name string, i int, v *bool) {
	n := 0
	if *v {
		n = 1
	}
	cjsonOption(L, name, i, &n, []string{"off", "on"})
	*v = n == 1
}

// cjsonOption is json_enum_option: argument i, a boolean (off or on) or
// one of options, sets *v; the setting is pushed, a boolean for off and
// on, else its name.
func cjsonOption(L *lua.LState, name string, i int, v *int, options []string) {
	switch a := L.Get(i).(type) {
	case *lua.LNilType:
	case lua.LBool:
		*v = 0
		if a {
			*v = 1
		}
	default:
		s, ok := asString(a)
		if !ok {
			argError(L, i, name, "string expected, got "+a.Type().String())
		}
		at := slices.Index(options, s)
		if at < 0 {
			argError(L, i, name, "invalid option '"+s+"'")
		}
		*v = at
	}
	if *v <= 1 {
		L.Push(lua.LBool(*v == 1))
	} else {
		L.Push(lua.LString(options[*v]))
	}
}

func (r *run) cjsonEncode(L *lua.LState, cfg *cjsonConfig) int {
	if L.GetTop() != 1 {
		L.RaiseError("bad argument #1 to 'encode' (expected 1 argument)")
	}
	out := builder{r: r, L: L}
	r.encodeJSON(L, cfg, &out, L.Get(1), 0)
	L.Push(lua.LString(out.sb.String()))
	return 1
}

func (r *run) encodeJSON(L *lua.LState, cfg *cjsonConfig, out *builder, v lua.LValue, depth int) {
	switch v := v.(type) {
	case *lua.LNilType:
		out.add("null")
	case lua.LBool:
		out.add(strconv.FormatBool(bool(v)))
	case lua.LNumber:
		f := float64(v)
		switch invalid := math.IsInf(f, 0) || math.IsNaN(f); {
		case invalid && cfg.encodeInvalid == 0:
			L.RaiseError("Cannot serialise number: must not be NaN or Inf")
		case invalid && cfg.encodeInvalid == 2:
			out.add("null")
		case math.IsNaN(f):
			out.add("nan")
		default:
			out.add(cfg.number(f))
		}
	case lua.LString:
		out.add(jsonQuote(string(v)))
	case *lua.LUserData:
		if v != r.null {
			L.RaiseError("Cannot serialise userdata: type not supported")
		}
		out.add("null")
	case *lua.LTable:
		depth++
		if depth > cfg.encodeMaxDepth {
			L.RaiseError("Cannot serialise, excessive nesting (%d)", depth)
		}
		n := cfg.arrayLength(L, v)
		if n > 0 {
			out.add("[")
			for i := 1; i <= n; i++ {
				if i > 1 {
					out.add(",")
				}
				r.encodeJSON(L, cfg, out, v.RawGetInt(i), depth)
			}
			out.add("]")
			return
		}
		out.add("{")
		first := true
		eachPair(v, func(k, val lua.LValue) {
			if !first {
				out.add(",")
			}
			first = false
			switch k := k.(type) {
			case lua.LString:
				out.add(jsonQuote(string(k)))
			case lua.LNumber:
				out.add(`"` + cfg.number(float64(k)) + `"`)
			default:
				L.RaiseError("Cannot serialise %s: table key must be a number or string", k.Type().String())
			}
			out.add(":")
			r.encodeJSON(L, cfg, out, val, depth)
		})
		out.add("}")
	default:
		L.RaiseError("Cannot serialise %s: type not supported", v.Type().String())
	}
}

// number is f as "%.<precision>g".
func (cfg *cjsonConfig) number(f float64) string {
	if cfg.precision == 14 {
		return numberString(f)
	}
	return strconv.FormatFloat(f, 'g', cfg.precision, 64)
}

// arrayLength is lua-cjson's: the greatest key when every key is a
// positive integer (0 for an empty table), -1 when one is not; an array
// sparser than the ratio allows, past the safe length, is refused, or
// written as an object when sparse arrays are converted.
func (cfg *cjsonConfig) arrayLength(L *lua.LState, t *lua.LTable) int {
	top, items := 0, 0
	ok := true
	eachPair(t, func(k, _ lua.LValue) {
		n, isNum := k.(lua.LNumber)
		if !ok || !isNum || float64(n) < 1 || float64(n) != math.Floor(float64(n)) {
			ok = false
			return
		}
		top = max(top, int(n))
		items++
	})
	if !ok {
		return -1
	}
	if cfg.sparseRatio > 0 && top > items*cfg.sparseRatio && top > cfg.sparseSafe {
		if !cfg.sparseConvert {
			L.RaiseError("Cannot serialise table: excessively sparse array")
		}
		return -1
	}
	return top
}

// jsonQuote is a string as lua-cjson writes it.
func jsonQuote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\' || c == '/':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == '\b':
			b.WriteString(`\b`)
		case c == '\f':
			b.WriteString(`\f`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == '\t':
			b.WriteString(`\t`)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, `\u%04x`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func (r *run) cjsonDecode(L *lua.LState, cfg *cjsonConfig) int {
	if L.GetTop() != 1 {
		L.RaiseError("bad argument #1 to 'decode' (expected 1 argument)")
	}
	d := &jsonDecoder{r: r, L: L, cfg: cfg, s: r.str(L, 1, "decode")}
	tok := d.next()
	v := d.value(tok, 0)
	if tok = d.next(); tok.kind != "T_END" {
		d.fail("the end", tok)
	}
	L.Push(v)
	return 1
}

// jsonDecoder is lua-cjson's parser: tokens, and its errors ("Expected X
// but found Y at character N").
type jsonDecoder struct {
	r   *run
	L   *lua.LState
	cfg *cjsonConfig
	s   string
	pos int
}

type jsonToken struct {
	kind  string // lua-cjson's token names: T_STRING, T_END, ...; "" for an invalid one
	err   string // an invalid token's error
	at    int    // its first byte's index
	value lua.LValue
}

var (
	jsonNumber = regexp.MustCompile(`^-?[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?`)
	jsonHex    = regexp.MustCompile(`^-?0[xX][0-9a-fA-F]+`)
)

func (d *jsonDecoder) next() jsonToken {
	for d.pos < len(d.s) && strings.IndexByte(" \t\n\r", d.s[d.pos]) >= 0 {
		d.pos++
	}
	t := jsonToken{at: d.pos}
	if d.pos == len(d.s) {
		t.kind = "T_END"
		return t
	}
	c := d.s[d.pos]
	if k, ok := map[byte]string{'{': "T_OBJ_BEGIN", '}': "T_OBJ_END", '[': "T_ARR_BEGIN", ']': "T_ARR_END", ',': "T_COMMA", ':': "T_COLON"}[c]; ok {
		d.pos++
		t.kind = k
		return t
	}
	switch {
	case c == '"':
		return d.str(t)
	case c == '-' || ('0' <= c && c <= '9'):
		if !d.cfg.decodeInvalid && jsonInvalidNumber(d.s[d.pos:]) {
			t.err = "invalid number"
			return t
		}
		return d.number(t)
	}
	for word, v := range map[string]lua.LValue{"true": lua.LTrue, "false": lua.LFalse, "null": d.r.null} {
		if strings.HasPrefix(d.s[d.pos:], word) {
			d.pos += len(word)
			t.kind, t.value = "T_BOOLEAN", v
			if word == "null" {
				t.kind = "T_NULL"
			}
			return t
		}
	}
	if d.cfg.decodeInvalid && jsonInvalidNumber(d.s[d.pos:]) {
		return d.number(t) // Inf, NaN, +1: what strtod reads
	}
	t.err = "invalid token"
	return t
}

// jsonInvalidNumber is lua-cjson's json_is_invalid_number: a number JSON
// does not allow but strtod reads (a leading +, hex, a leading zero, Inf,
// NaN).
func jsonInvalidNumber(p string) bool {
	if strings.HasPrefix(p, "+") {
		return true
	}
	p = strings.TrimPrefix(p, "-")
	switch {
	case strings.HasPrefix(p, "0"):
		return len(p) > 1 && (p[1]|0x20 == 'x' || '0' <= p[1] && p[1] <= '9')
	case p != "" && p[0] <= '9':
		return false
	}
	return len(p) >= 3 && (strings.EqualFold(p[:3], "inf") || strings.EqualFold(p[:3], "nan"))
}

// number reads a number token as strtod does: a sign, then Inf (or
// Infinity), NaN, hex digits, or a decimal number.
func (d *jsonDecoder) number(t jsonToken) jsonToken {
	p := d.s[d.pos:]
	sign, body := 1.0, p
	if body != "" && (body[0] == '-' || body[0] == '+') {
		if body[0] == '-' {
			sign = -1
		}
		body = body[1:]
	}
	for _, w := range []struct {
		word string
		v    float64
	}{{"infinity", math.Inf(1)}, {"inf", math.Inf(1)}, {"nan", math.NaN()}} {
		if len(body) >= len(w.word) && strings.EqualFold(body[:len(w.word)], w.word) {
			d.pos += len(p) - len(body) + len(w.word)
			t.kind, t.value = "T_NUMBER", lua.LNumber(sign*w.v)
			return t
		}
	}
	if strings.HasPrefix(p, "+") {
		if strings.HasPrefix(p, "+-") {
			t.err = "invalid number"
			return t
		}
		p = p[1:]
		d.pos++
	}
	if m := jsonHex.FindString(p); m != "" {
		// lua-cjson reads numbers with strtod, which reads hex.
		n, err := strconv.ParseInt(m, 0, 64)
		if err != nil {
			t.err = "invalid number"
			return t
		}
		d.pos += len(m)
		t.kind, t.value = "T_NUMBER", lua.LNumber(n)
		return t
	}
	m := jsonNumber.FindString(p)
	f, err := strconv.ParseFloat(m, 64)
	if m == "" || (err != nil && !strings.Contains(err.Error(), "range")) {
		t.err = "invalid number"
		return t
	}
	d.pos += len(m)
	t.kind, t.value = "T_NUMBER", lua.LNumber(f)
	return t
}

// str reads a string token (d.pos at its quote); an invalid one is
// placed where it goes wrong, as lua-cjson places it.
func (d *jsonDecoder) str(t jsonToken) jsonToken {
	var b strings.Builder
	i := d.pos + 1
	bad := func(err string) jsonToken { t.err, t.at = err, i; return t }
	for {
		if i >= len(d.s) {
			return bad("unexpected end of string")
		}
		c := d.s[i]
		if c == '"' {
			break
		}
		if c != '\\' {
			b.WriteByte(c)
			i++
			continue
		}
		if i+1 >= len(d.s) {
			return bad("invalid escape code")
		}
		switch e := d.s[i+1]; e {
		case '"', '\\', '/':
			b.WriteByte(e)
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			r, n := d.unicode(i)
			if n == 0 {
				return bad("invalid unicode escape code")
			}
			b.WriteRune(r)
			i += n
			continue
		default:
			return bad("invalid escape code")
		}
		i += 2
	}
	d.pos = i + 1
	d.r.b.charge(d.L, b.Len())
	t.kind, t.value = "T_STRING", lua.LString(b.String())
	return t
}

// unicode reads \uXXXX at i (a surrogate pair as one), and how many bytes
// it took; 0 if it is not one.
func (d *jsonDecoder) unicode(i int) (rune, int) {
	hex := func(at int) (rune, bool) {
		if at+6 > len(d.s) || d.s[at+1] != 'u' {
			return 0, false
		}
		n, err := strconv.ParseUint(d.s[at+2:at+6], 16, 16)
		return rune(n), err == nil
	}
	r, ok := hex(i)
	switch {
	case !ok:
		return 0, 0
	case r >= 0xD800 && r < 0xDC00:
		lo, ok := hex(i + 6)
		if i+6 >= len(d.s) || d.s[i+6] != '\\' || !ok || lo < 0xDC00 || lo > 0xDFFF {
			return 0, 0
		}
		return 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00), 12
	case r >= 0xDC00 && r <= 0xDFFF:
		return 0, 0
	}
	if !utf8.ValidRune(r) {
		return 0, 0
	}
	return r, 6
}

func (d *jsonDecoder) fail(expected string, t jsonToken) {
	found := t.kind
	if found == "" {
		found = t.err
	}
	d.L.RaiseError("Expected %s but found %s at character %d", expected, found, t.at+1)
}

func (d *jsonDecoder) value(t jsonToken, depth int) lua.LValue {
	switch t.kind {
	case "T_STRING", "T_NUMBER", "T_BOOLEAN", "T_NULL":
		d.r.b.chargeSlots(d.L, 1)
		return t.value
	case "T_OBJ_BEGIN", "T_ARR_BEGIN":
		depth++
		if depth > d.cfg.decodeMaxDepth {
			d.L.RaiseError("Found too many nested data structures (%d) at character %d", depth, t.at+1)
		}
		tbl := d.L.CreateTable(0, 0)
		d.r.b.chargeSlots(d.L, 1)
		if t.kind == "T_ARR_BEGIN" {
			tok := d.next()
			if tok.kind == "T_ARR_END" {
				return tbl
			}
			for i := 1; ; i++ {
				tbl.RawSetInt(i, d.value(tok, depth))
				if tok = d.next(); tok.kind == "T_ARR_END" {
					return tbl
				}
				if tok.kind != "T_COMMA" {
					d.fail("comma or array end", tok)
				}
				tok = d.next()
			}
		}
		tok := d.next()
		if tok.kind == "T_OBJ_END" {
			return tbl
		}
		for {
			if tok.kind != "T_STRING" {
				d.fail("object key string", tok)
			}
			key := tok.value
			if tok = d.next(); tok.kind != "T_COLON" {
				d.fail("colon", tok)
			}
			d.L.RawSet(tbl, key, d.value(d.next(), depth))
			if tok = d.next(); tok.kind == "T_OBJ_END" {
				return tbl
			}
			if tok.kind != "T_COMMA" {
				d.fail("comma or object end", tok)
			}
			tok = d.next()
		}
	}
	d.fail("value", t)
	return lua.LNil
}
