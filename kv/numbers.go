package kv

import (
	"bytes"
	"math"
	"math/big"
	"strconv"
)

// ParseInt parses b as Redis's string2ll does (parseInt): for the node's
// own commands' integer arguments (WAIT).
func ParseInt(b []byte) (int64, bool) { return parseInt(b) }

// parseInt parses b as Redis's string2ll does: an optional '-', then no
// leading zeros (except "0" itself), no '+', no spaces, at most 20 bytes,
// within int64.
func parseInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) >= 21 {
		return 0, false
	}
	if len(b) == 1 && b[0] == '0' {
		return 0, true
	}
	neg := false
	p := b
	if p[0] == '-' {
		neg = true
		p = p[1:]
		if len(p) == 0 {
			return 0, false
		}
	}
	if p[0] < '1' || p[0] > '9' {
		return 0, false
	}
	var v uint64
	for _, c := range p {
		if c < '0' || c > '9' {
			return 0, false
		}
		if v > math.MaxUint64/10 {
			return 0, false
		}
		v *= 10
		if v > math.MaxUint64-uint64(c-'0') {
			return 0, false
		}
		v += uint64(c - '0')
	}
	if neg {
		if v > 1<<63 {
			return 0, false
		}
		return -int64(v), true // -(1<<63) wraps to itself, as wanted
	}
	if v > math.MaxInt64 {
		return 0, false
	}
	return int64(v), true
}

func appendInt(b []byte, n int64) []byte { return strconv.AppendInt(b, n, 10) }

// Redis computes INCRBYFLOAT and HINCRBYFLOAT in C's long double, on amd64
// the x87 80-bit extended format: a 64-bit significand, exponents from
// -16382 to 16383, subnormals down to 2^-16445. A float64 would give other
// answers (0.1+0.2 is "0.3" in Redis, 0.30000000000000004 in float64), so
// the engine computes on big.Float values rounded to that format.
const (
	ldPrec    = 64
	ldMaxExp  = 16384  // |x| < 2^16384 (big.Float exponents: x = m*2^exp, 0.5 <= m < 1)
	ldMinExp  = -16381 // smallest normal: 2^-16382
	ldSubBits = 16445  // subnormals are multiples of 2^-16445
	// maxLDChars is Redis's MAX_LONG_DOUBLE_CHARS: longer inputs are not
	// valid floats.
	maxLDChars = 5 * 1024
)

// ldouble is a finite x87 extended value, or an infinity.
type ldouble struct {
	f   *big.Float // finite value, precision 64; nil when inf
	inf int        // +1 or -1 when infinite
}

func ldFromInt(n int64) ldouble {
	f := new(big.Float).SetPrec(ldPrec)
	f.SetInt64(n)
	return ldouble{f: f}
}

// parseLongDouble parses b as Redis's string2ld does: strtold over the whole
// string (C syntax: decimal or hexadecimal floats, inf, infinity; nan is
// refused), no leading space, and results that overflow, or underflow to
// zero, refused. strtold must read the whole string: a NUL byte ends it
// early, so a string with a NUL is not a float.
func parseLongDouble(b []byte) (ldouble, bool) {
	if len(b) == 0 || len(b) >= maxLDChars {
		return ldouble{}, false
	}
	if bytes.IndexByte(b, 0) >= 0 {
		return ldouble{}, false
	}
	switch b[0] {
	case ' ', '\t', '\n', '\v', '\f', '\r':
		return ldouble{}, false
	}
	s := b
	neg := false
	if s[0] == '+' || s[0] == '-' {
		neg = s[0] == '-'
		s = s[1:]
	}
	var v ldouble
	var ok bool
	switch {
	case equalFoldASCII(s, "inf") || equalFoldASCII(s, "infinity"):
		v, ok = ldouble{inf: 1}, true
	case len(s) >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'):
		v, ok = parseHexLD(s[2:])
	default:
		v, ok = parseDecLD(s)
	}
	if !ok {
		return ldouble{}, false
	}
	if neg {
		if v.f != nil {
			v.f.Neg(v.f)
		} else {
			v.inf = -v.inf
		}
	}
	return v, true
}

func equalFoldASCII(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// parseDecLD parses digits[.digits][e[+-]digits] (at least one digit).
func parseDecLD(s []byte) (ldouble, bool) {
	mant := make([]byte, 0, len(s))
	exp10 := int64(0)
	i, digits := 0, 0
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		mant = append(mant, s[i])
		digits++
	}
	if i < len(s) && s[i] == '.' {
		i++
		for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			mant = append(mant, s[i])
			exp10--
			digits++
		}
	}
	if digits == 0 {
		return ldouble{}, false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		e, n, ok := parseExpDigits(s[i+1:])
		if !ok {
			return ldouble{}, false // strtold stops before the 'e': trailing bytes
		}
		exp10 += e
		i += 1 + n
	}
	if i != len(s) {
		return ldouble{}, false
	}
	m, _ := new(big.Int).SetString(string(mant), 10)
	if m.Sign() == 0 {
		return ldFromInt(0), true
	}
	// Magnitude: m has len(strip(mant)) digits; decide far-out values
	// without building huge powers of ten.
	nd := int64(len(m.String()))
	if mag := nd + exp10; mag > 4934 {
		return ldouble{}, false // overflow: HUGE_VALL, ERANGE
	} else if mag < -4952 {
		return ldouble{}, false // underflow to zero, ERANGE
	}
	r := new(big.Rat)
	if exp10 >= 0 {
		r.SetInt(new(big.Int).Mul(m, new(big.Int).Exp(big.NewInt(10), big.NewInt(exp10), nil)))
	} else {
		r.SetFrac(m, new(big.Int).Exp(big.NewInt(10), big.NewInt(-exp10), nil))
	}
	return ldFromRat(r)
}

// parseHexLD parses hexdigits[.hexdigits][p[+-]digits] (after "0x").
func parseHexLD(s []byte) (ldouble, bool) {
	mant := make([]byte, 0, len(s))
	exp2 := int64(0)
	i, digits := 0, 0
	for ; i < len(s) && isHex(s[i]); i++ {
		mant = append(mant, s[i])
		digits++
	}
	if i < len(s) && s[i] == '.' {
		i++
		for ; i < len(s) && isHex(s[i]); i++ {
			mant = append(mant, s[i])
			exp2 -= 4
			digits++
		}
	}
	if digits == 0 {
		return ldouble{}, false // "0x" alone: strtold reads "0", "x..." trails
	}
	if i < len(s) && (s[i] == 'p' || s[i] == 'P') {
		e, n, ok := parseExpDigits(s[i+1:])
		if !ok {
			return ldouble{}, false
		}
		exp2 += e
		i += 1 + n
	}
	if i != len(s) {
		return ldouble{}, false
	}
	m, _ := new(big.Int).SetString(string(mant), 16)
	if m.Sign() == 0 {
		return ldFromInt(0), true
	}
	if mag := int64(m.BitLen()) + exp2; mag > ldMaxExp+1 {
		return ldouble{}, false
	} else if mag < -ldSubBits-1 {
		return ldouble{}, false
	}
	r := new(big.Rat)
	if exp2 >= 0 {
		r.SetInt(new(big.Int).Lsh(m, uint(exp2)))
	} else {
		r.SetFrac(m, new(big.Int).Lsh(big.NewInt(1), uint(-exp2)))
	}
	return ldFromRat(r)
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// parseExpDigits parses [+-]digits, saturating; n is the bytes used.
func parseExpDigits(s []byte) (e int64, n int, ok bool) {
	neg := false
	if n < len(s) && (s[n] == '+' || s[n] == '-') {
		neg = s[n] == '-'
		n++
	}
	start := n
	for ; n < len(s) && s[n] >= '0' && s[n] <= '9'; n++ {
		if e < 1e12 {
			e = e*10 + int64(s[n]-'0')
		}
	}
	if n == start {
		return 0, 0, false
	}
	if neg {
		e = -e
	}
	return e, n, true
}

// ldFromRat rounds a positive exact value to the extended format, refusing
// overflow and underflow to zero (as string2ld refuses strtold's ERANGE).
func ldFromRat(r *big.Rat) (ldouble, bool) {
	f := new(big.Float).SetPrec(ldPrec).SetMode(big.ToNearestEven)
	f.SetRat(r)
	if f.MantExp(nil) > ldMaxExp {
		return ldouble{}, false
	}
	if f.MantExp(nil) >= ldMinExp {
		return ldouble{f: f}, true
	}
	// Subnormal: round r to a multiple of 2^-16445, ties to even.
	scaled := new(big.Rat).Mul(r, new(big.Rat).SetInt(new(big.Int).Lsh(big.NewInt(1), ldSubBits)))
	n := roundHalfEven(scaled)
	if n.Sign() == 0 {
		return ldouble{}, false
	}
	f.SetInt(n)
	f.SetMantExp(f, -ldSubBits)
	return ldouble{f: f}, true
}

func roundHalfEven(r *big.Rat) *big.Int {
	q, m := new(big.Int).QuoRem(r.Num(), r.Denom(), new(big.Int))
	twice := m.Lsh(m, 1)
	switch twice.Cmp(r.Denom()) {
	case 1:
		q.Add(q, big.NewInt(1))
	case 0:
		if q.Bit(0) == 1 {
			q.Add(q, big.NewInt(1))
		}
	}
	return q
}

// addLD returns a+b as x87 long double arithmetic does, and false when the
// result is NaN or infinite.
func addLD(a, b ldouble) (ldouble, bool) {
	if a.f == nil || b.f == nil {
		return ldouble{}, false
	}
	f := new(big.Float).SetPrec(ldPrec).SetMode(big.ToNearestEven)
	f.Add(a.f, b.f)
	if f.MantExp(nil) > ldMaxExp {
		return ldouble{}, false
	}
	return ldouble{f: f}, true
}

// formatLD formats v as Redis's ld2string in LD_STR_HUMAN mode: "%.17Lf",
// trailing zeros (and a trailing '.') removed, "-0" written "0".
func formatLD(v ldouble) []byte {
	s := []byte(v.f.Text('f', 17))
	for len(s) > 0 && s[len(s)-1] == '0' {
		s = s[:len(s)-1]
	}
	if len(s) > 0 && s[len(s)-1] == '.' {
		s = s[:len(s)-1]
	}
	if len(s) == 2 && s[0] == '-' && s[1] == '0' {
		s = s[1:]
	}
	return s
}
