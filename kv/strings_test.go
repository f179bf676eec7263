package kv

import (
	"strconv"
	"strings"
	"testing"
)

const wrongType = "WRONGTYPE Operation against a key holding the wrong kind of value"

func TestGetSet(t *testing.T) {
	stores(t, func(t *testing.T, h *harness) {
		h.is("nil", "GET", "k")
		h.is("+OK", "SET", "k", "v")
		h.is(`"v"`, "get", "k")
		h.is("+OK", "SET", "k", "")
		h.is(`""`, "GET", "k")
		h.is("+OK", "SET", "k", "v2")
		h.is(`"v2"`, "GET", "k")
		h.is(":0", "SETNX", "k", "x")
		h.is(`"v2"`, "GET", "k")
		h.is(":1", "SETNX", "n", "x")
		h.is(`"v2"`, "GETSET", "k", "v3")
		h.is("nil", "GETSET", "new", "v")
		h.is(`"v3"`, "GETDEL", "k")
		h.is("nil", "GETDEL", "k")
		h.is("nil", "GET", "k")
		h.is(`["v" nil "x"]`, "MGET", "new", "k", "n")
		h.is("+OK", "MSET", "a", "1", "b", "2", "a", "3")
		h.is(`["3" "2"]`, "MGET", "a", "b")
		h.fails("ERR wrong number of arguments for 'mset' command", "MSET", "a", "1", "b")
		h.fails("ERR wrong number of arguments for 'get' command", "GET")
		h.fails("ERR wrong number of arguments for 'get' command", "GET", "a", "b")
		h.fails("ERR wrong number of arguments for 'set' command", "SET", "a")
		h.is(":1", "HSET", "h", "f", "v")
		h.fails(wrongType, "GET", "h")
		h.fails(wrongType, "GETSET", "h", "v")
		h.fails(wrongType, "GETDEL", "h")
		h.is(`["3" nil]`, "MGET", "a", "h")
		// SET overwrites a hash, fields and all.
		h.is("+OK", "SET", "h", "s")
		h.is(`"s"`, "GET", "h")
		h.is(":1", "HSET", "h2", "f", "v")
		h.is("+OK", "MSET", "h2", "s")
		h.is("+string", "TYPE", "h2")
		if d := dump(t, h.w); strings.Contains(d, `\x02`) {
			t.Errorf("hash fields left behind: %s", d)
		}
	})
}

func TestSetOptions(t *testing.T) {
	stores(t, func(t *testing.T, h *harness) {
		now := strconv.FormatInt(h.now, 10)
		h.is("nil", "SET", "k", "v", "XX")
		h.is("nil", "GET", "k")
		h.is("+OK", "SET", "k", "v", "NX")
		h.is("nil", "SET", "k", "w", "NX")
		h.is("+OK", "SET", "k", "w", "XX")
		h.is(`"w"`, "SET", "k", "x", "GET")
		h.is(`"x"`, "SET", "k", "y", "nx", "get") // NX stops it; GET still replies
		h.is(`"x"`, "GET", "k")
		h.is("nil", "SET", "k2", "v", "NX", "GET")
		h.is(`"v"`, "GET", "k2")
		h.is("+OK", "SET", "k", "v", "EX", "10")
		h.is(":10", "TTL", "k")
		h.is(":10000", "PTTL", "k")
		h.is("+OK", "SET", "k", "v", "PX", "1500")
		h.is(":1500", "PTTL", "k")
		h.is(":2", "TTL", "k") // rounded
		h.is("+OK", "SET", "k", "v", "KEEPTTL")
		h.is(":1500", "PTTL", "k")
		h.is("+OK", "SET", "k", "v")
		h.is(":-1", "PTTL", "k")
		h.is("+OK", "SET", "k", "v", "EXAT", strconv.FormatInt(h.now/1000+100, 10))
		h.is(":100000", "PTTL", "k")
		h.is("+OK", "SET", "k", "v", "PXAT", strconv.FormatInt(h.now+5, 10))
		h.is(":5", "PTTL", "k")
		h.is(":"+strconv.FormatInt(h.now+5, 10), "PEXPIRETIME", "k")
		h.is(":"+strconv.FormatInt((h.now+5)/1000, 10), "EXPIRETIME", "k")
		h.is("+OK", "SET", "k", "v", "PXAT", now) // lives through its last ms
		h.is(`"v"`, "GET", "k")
		h.is("+OK", "SET", "k", "v", "PXAT", "1") // in the past: gone
		h.is("nil", "GET", "k")
		h.is(":0", "EXISTS", "k")
		h.is("+OK", "SET", "k", "v", "EX", "1", "EX", "2") // the same option twice: the last wins
		h.is(":2000", "PTTL", "k")

		for _, bad := range [][]string{
			{"NX", "XX"}, {"XX", "NX"}, {"EX", "1", "PX", "1"}, {"EX"}, {"PX", "1", "KEEPTTL"},
			{"KEEPTTL", "EX", "1"}, {"EXAT", "1", "PXAT", "1"}, {"PERSIST"}, {"foo"}, {"GET", "x"},
		} {
			h.fails("ERR syntax error", append([]string{"SET", "k", "v"}, bad...)...)
		}
		h.fails("ERR value is not an integer or out of range", "SET", "k", "v", "EX", "1.5")
		h.fails("ERR value is not an integer or out of range", "SET", "k", "v", "EX", " 1")
		h.fails("ERR value is not an integer or out of range", "SET", "k", "v", "PX", "99999999999999999999")
		h.fails("ERR invalid expire time in 'set' command", "SET", "k", "v", "EX", "0")
		h.fails("ERR invalid expire time in 'set' command", "SET", "k", "v", "PX", "-1")
		h.fails("ERR invalid expire time in 'set' command", "SET", "k", "v", "EXAT", "9223372036854776")
		h.fails("ERR invalid expire time in 'set' command", "SET", "k", "v", "PX", "9223372036854775807") // now+ms overflows
		h.fails("ERR invalid expire time in 'setex' command", "SETEX", "k", "0", "v")
		h.fails("ERR invalid expire time in 'psetex' command", "PSETEX", "k", "-5", "v")
		h.fails("ERR value is not an integer or out of range", "SETEX", "k", "x", "v")
		h.is(":1", "HSET", "h", "f", "v")
		h.fails(wrongType, "SET", "h", "v", "GET")
		h.is(`["f"]`, "HKEYS", "h")
		h.is("+OK", "SETEX", "k", "100", "v")
		h.is(":100", "TTL", "k")
		h.is("+OK", "PSETEX", "k", "100", "v")
		h.is(":100", "PTTL", "k")
		h.is(`"v"`, "GETSET", "k", "w") // GETSET drops the TTL
		h.is(":-1", "TTL", "k")
	})
}

func TestGetEx(t *testing.T) {
	stores(t, func(t *testing.T, h *harness) {
		h.is("nil", "GETEX", "k")
		h.is("nil", "GETEX", "k", "EX", "-1") // a missing key is not checked further
		h.is("+OK", "SET", "k", "v")
		h.is(`"v"`, "GETEX", "k")
		h.is(":-1", "TTL", "k")
		h.is(`"v"`, "GETEX", "k", "EX", "10")
		h.is(":10", "TTL", "k")
		h.is(`"v"`, "GETEX", "k", "PX", "10")
		h.is(":10", "PTTL", "k")
		h.is(`"v"`, "GETEX", "k", "PXAT", strconv.FormatInt(h.now+20, 10))
		h.is(":20", "PTTL", "k")
		h.is(`"v"`, "GETEX", "k", "EXAT", strconv.FormatInt(h.now/1000+20, 10))
		h.is(":20", "TTL", "k")
		h.is(`"v"`, "GETEX", "k", "PERSIST")
		h.is(":-1", "TTL", "k")
		h.is(`"v"`, "GETEX", "k", "PXAT", strconv.FormatInt(h.now, 10)) // not after now: deleted
		h.is(":0", "EXISTS", "k")
		h.is("+OK", "SET", "k", "v")
		h.fails("ERR syntax error", "GETEX", "k", "NX")
		h.fails("ERR syntax error", "GETEX", "k", "KEEPTTL")
		h.fails("ERR syntax error", "GETEX", "k", "EX", "1", "PERSIST")
		h.fails("ERR syntax error", "GETEX", "k", "PERSIST", "EX", "1")
		h.fails("ERR syntax error", "GETEX", "k", "EX")
		h.fails("ERR invalid expire time in 'getex' command", "GETEX", "k", "EX", "0")
		h.fails("ERR value is not an integer or out of range", "GETEX", "k", "EX", "a")
		h.is(":1", "HSET", "h", "f", "v")
		h.fails(wrongType, "GETEX", "h", "EX", "0")
	})
}

func TestIncr(t *testing.T) {
	stores(t, func(t *testing.T, h *harness) {
		h.is(":1", "INCR", "n")
		h.is(":0", "DECR", "n")
		h.is(":-1", "DECR", "n")
		h.is(":9", "INCRBY", "n", "10")
		h.is(":-1", "DECRBY", "n", "10")
		h.is(`"-1"`, "GET", "n")
		h.is("+OK", "SET", "n", "9223372036854775806")
		h.is(":9223372036854775807", "INCR", "n")
		h.fails("ERR increment or decrement would overflow", "INCR", "n")
		h.fails("ERR increment or decrement would overflow", "INCRBY", "n", "1")
		h.is("+OK", "SET", "n", "-9223372036854775808")
		h.fails("ERR increment or decrement would overflow", "DECR", "n")
		h.fails("ERR decrement would overflow", "DECRBY", "n", "-9223372036854775808")
		h.is(":-1", "INCRBY", "n", "9223372036854775807")
		h.is(":-9223372036854775808", "DECRBY", "n", "9223372036854775807")
		for _, v := range []string{"", " 1", "1 ", "+1", "01", "-0", "1.0", "abc", "9223372036854775808", "0x10"} {
			h.is("+OK", "SET", "s", v)
			h.fails("ERR value is not an integer or out of range", "INCR", "s")
			h.fails("ERR value is not an integer or out of range", "INCRBY", "x", v)
		}
		h.is(":1", "HSET", "h", "f", "v")
		h.fails(wrongType, "INCR", "h")
		h.fails("ERR value is not an integer or out of range", "INCRBY", "h", "x") // the argument first
		// INCR keeps the TTL.
		h.is("+OK", "SET", "t", "5", "EX", "100")
		h.is(":6", "INCR", "t")
		h.is(":100", "TTL", "t")
	})
}

func TestIncrByFloat(t *testing.T) {
	stores(t, func(t *testing.T, h *harness) {
		h.is(`"0.1"`, "INCRBYFLOAT", "f", "0.1")
		h.is(`"0.3"`, "INCRBYFLOAT", "f", "0.2") // long double, not float64
		h.is(`"10.8"`, "INCRBYFLOAT", "f", "10.5")
		h.is(`"5000"`, "INCRBYFLOAT", "g", "5.0e3")
		h.is(`"5000"`, "GET", "g")
		h.is(`"5200"`, "INCRBYFLOAT", "g", "2.0e2")
		h.is(`"0"`, "INCRBYFLOAT", "z", "-0")
		h.is(`"3"`, "INCRBYFLOAT", "z", "0x3")
		h.is(`"4.5"`, "INCRBYFLOAT", "z", "0x1.8p0")
		h.is("+OK", "SET", "i", "17179869184")
		h.is(`"17179869185.5"`, "INCRBYFLOAT", "i", "1.5")
		h.is(`"0"`, "INCRBYFLOAT", "tiny", "1e-18") // %.17Lf
		h.fails("ERR increment would produce NaN or Infinity", "INCRBYFLOAT", "f", "inf")
		h.fails("ERR increment would produce NaN or Infinity", "INCRBYFLOAT", "f", "-Infinity")
		for _, v := range []string{"", "abc", "nan", " 1", "1 ", "1e", "0x", ".", "1e5000", "1e-5000", "--1", "1.2.3"} {
			h.fails("ERR value is not a valid float", "INCRBYFLOAT", "f", v)
		}
		h.is("+OK", "SET", "s", "abc")
		h.fails("ERR value is not a valid float", "INCRBYFLOAT", "s", "1")
		h.is("+OK", "SET", "big", "1e4932")
		h.fails("ERR increment would produce NaN or Infinity", "INCRBYFLOAT", "big", "1e4932")
		h.is(":1", "HSET", "h", "f", "v")
		h.fails(wrongType, "INCRBYFLOAT", "h", "1")
		h.fails(wrongType, "INCRBYFLOAT", "h", "x") // the key first
	})
}

func TestAppendRange(t *testing.T) {
	stores(t, func(t *testing.T, h *harness) {
		h.is(":3", "APPEND", "k", "abc")
		h.is(":6", "APPEND", "k", "def")
		h.is(`"abcdef"`, "GET", "k")
		h.is(":6", "STRLEN", "k")
		h.is(":0", "STRLEN", "nope")
		h.is(`"bcd"`, "GETRANGE", "k", "1", "3")
		h.is(`"def"`, "GETRANGE", "k", "-3", "-1")
		h.is(`"abcdef"`, "GETRANGE", "k", "0", "100")
		h.is(`"abcdef"`, "GETRANGE", "k", "-100", "100")
		h.is(`""`, "GETRANGE", "k", "4", "2")
		h.is(`""`, "GETRANGE", "k", "-1", "-3")
		h.is(`""`, "GETRANGE", "k", "10", "20")
		h.is(`""`, "GETRANGE", "nope", "0", "-1")
		h.is(`"a"`, "GETRANGE", "k", "-100", "-6")
		h.fails("ERR value is not an integer or out of range", "GETRANGE", "k", "a", "1")
		h.is(":6", "SETRANGE", "k", "1", "XY")
		h.is(`"aXYdef"`, "GET", "k")
		h.is(":10", "SETRANGE", "k", "8", "zz")
		h.is(`"aXYdef\x00\x00zz"`, "GET", "k")
		h.is(":10", "SETRANGE", "k", "3", "")
		h.is(":0", "SETRANGE", "new", "3", "")
		h.is(":0", "EXISTS", "new")
		h.is(":4", "SETRANGE", "new", "2", "ab")
		h.is(`"\x00\x00ab"`, "GET", "new")
		h.fails("ERR offset is out of range", "SETRANGE", "k", "-1", "x")
		h.fails("ERR value is not an integer or out of range", "SETRANGE", "k", "x", "x")
		h.fails("ERR string exceeds maximum allowed size (proto-max-bulk-len)", "SETRANGE", "k", "536870911", "ab")
		h.fails("ERR string exceeds maximum allowed size (proto-max-bulk-len)", "SETRANGE", "k", "9223372036854775807", "ab")
		h.is(":1", "HSET", "h", "f", "v")
		h.fails(wrongType, "APPEND", "h", "x")
		h.fails(wrongType, "STRLEN", "h")
		h.fails(wrongType, "GETRANGE", "h", "0", "1")
		h.fails(wrongType, "SETRANGE", "h", "0", "x")
		h.fails(wrongType, "SETRANGE", "h", "0", "")
		h.is("+OK", "SET", "t", "a", "EX", "100")
		h.is(":2", "APPEND", "t", "b")
		h.is(":2", "SETRANGE", "t", "0", "c")
		h.is(":100", "TTL", "t")
	})
}

func TestParseInt(t *testing.T) {
	for s, want := range map[string]int64{"0": 0, "-1": -1, "9223372036854775807": 1<<63 - 1, "-9223372036854775808": -1 << 63, "12": 12} {
		if got, ok := parseInt([]byte(s)); !ok || got != want {
			t.Errorf("parseInt(%q) = %d, %v", s, got, ok)
		}
	}
	for _, s := range []string{"", "-", "-0", "00", "01", "+1", " 1", "1 ", "9223372036854775808", "-9223372036854775809", "1a", "123456789012345678901"} {
		if _, ok := parseInt([]byte(s)); ok {
			t.Errorf("parseInt(%q) ok", s)
		}
	}
}

func TestLongDouble(t *testing.T) {
	add := func(a, b string) string {
		x, ok1 := parseLongDouble([]byte(a))
		y, ok2 := parseLongDouble([]byte(b))
		if !ok1 || !ok2 {
			return "invalid"
		}
		s, ok := addLD(x, y)
		if !ok {
			return "naninf"
		}
		return string(formatLD(s))
	}
	for _, c := range []struct{ a, b, want string }{
		{"0.1", "0.2", "0.3"},
		{"10.5", "0.1", "10.6"},
		{"3.0e3", "0", "3000"},
		{"1", "-1", "0"},
		{"-0.00000000000000000001", "0", "0"},
		{"0x1p-18", "0", "0.00000381469726562"}, // a tie at the 18th digit: to even
		{"1e4932", "1e4932", "naninf"},
		{"inf", "1", "naninf"},
		{"1e-4950", "0", "0"},
		{"\x00", "1", "invalid"},
		{"2\x00junk", "1", "invalid"},
	} {
		if got := add(c.a, c.b); got != c.want {
			t.Errorf("%q + %q = %s, want %s", c.a, c.b, got, c.want)
		}
	}
	if _, ok := parseLongDouble([]byte(strings.Repeat("1", 5120))); ok {
		t.Error("5120 bytes parsed")
	}
}
