package kv

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/coppice-kv/coppice/messages"
)

func TestDelExistsType(t *testing.T) {
	stores(t, func(t *testing.T, h *harness) {
		h.is("+OK", "MSET", "a", "1", "b", "2")
		h.is(":1", "HSET", "h", "f", "v")
		h.is(":4", "EXISTS", "a", "a", "h", "nope", "b")
		h.is("+string", "TYPE", "a")
		h.is("+hash", "TYPE", "h")
		h.is("+none", "TYPE", "nope")
		h.is(":2", "DEL", "a", "a", "nope", "h")
		h.is(":1", "UNLINK", "b")
		h.is(":0", "EXISTS", "a", "b", "h")
		if d := dump(t, h.w); d != "" {
			t.Errorf("store not empty: %s", d)
		}
		h.fails("ERR wrong number of arguments for 'del' command", "DEL")
		h.fails("ERR wrong number of arguments for 'exists' command", "EXISTS")
		h.fails("ERR wrong number of arguments for 'type' command", "TYPE", "a", "b")
	})
}

func TestExpire(t *testing.T) {
	stores(t, func(t *testing.T, h *harness) {
		now := h.now
		at := func(ms int64) string { return strconv.FormatInt(ms, 10) }
		h.is(":0", "EXPIRE", "k", "10")
		h.is(":-2", "TTL", "k")
		h.is(":-2", "PTTL", "k")
		h.is(":-2", "EXPIRETIME", "k")
		h.is("+OK", "SET", "k", "v")
		h.is(":-1", "TTL", "k")
		h.is(":-1", "PEXPIRETIME", "k")
		h.is(":1", "EXPIRE", "k", "10")
		h.is(":10000", "PTTL", "k")
		h.is(":1", "PEXPIRE", "k", "5000")
		h.is(":5", "TTL", "k")
		h.is(":1", "EXPIREAT", "k", at(now/1000+20))
		h.is(":20", "TTL", "k")
		h.is(":1", "PEXPIREAT", "k", at(now+300))
		h.is(":300", "PTTL", "k")
		h.is(":"+at(now+300), "PEXPIRETIME", "k")

		// NX XX GT LT.
		h.is(":0", "EXPIRE", "k", "100", "NX")
		h.is(":1", "PEXPIRE", "k", "400", "XX")
		h.is(":0", "PEXPIRE", "k", "400", "GT")
		h.is(":1", "PEXPIRE", "k", "401", "gt")
		h.is(":0", "PEXPIRE", "k", "401", "LT")
		h.is(":1", "PEXPIRE", "k", "399", "LT", "XX")
		h.is(":1", "PERSIST", "k")
		h.is(":0", "PERSIST", "k")
		h.is(":0", "PERSIST", "nope")
		h.is(":0", "EXPIRE", "k", "100", "XX")
		h.is(":0", "EXPIRE", "k", "100", "GT") // no TTL counts as infinite
		h.is(":1", "EXPIRE", "k", "100", "LT")
		h.is(":1", "PERSIST", "k")
		h.is(":1", "EXPIRE", "k", "100", "NX")
		h.is(":100", "TTL", "k")

		// A time not after now deletes the key.
		h.is(":1", "PEXPIREAT", "k", at(now))
		h.is(":0", "EXISTS", "k")
		h.is("+OK", "SET", "k", "v")
		h.is(":1", "EXPIRE", "k", "-5")
		h.is(":0", "EXISTS", "k")
		h.is("+OK", "SET", "k", "v")
		h.is(":1", "EXPIREAT", "k", "0")
		h.is(":0", "EXISTS", "k")

		h.is("+OK", "SET", "k", "v")
		h.fails("ERR Unsupported option foo", "EXPIRE", "k", "10", "foo")
		h.fails("ERR Unsupported option foo", "EXPIRE", "k", "x", "foo") // options first
		h.fails("ERR NX and XX, GT or LT options at the same time are not compatible", "EXPIRE", "k", "10", "NX", "XX")
		h.fails("ERR NX and XX, GT or LT options at the same time are not compatible", "EXPIRE", "k", "10", "LT", "NX")
		h.fails("ERR GT and LT options at the same time are not compatible", "EXPIRE", "k", "10", "GT", "LT")
		h.fails("ERR value is not an integer or out of range", "EXPIRE", "k", "1.5")
		h.fails("ERR invalid expire time in 'expire' command", "EXPIRE", "k", "9223372036854776")
		h.fails("ERR invalid expire time in 'expire' command", "EXPIRE", "k", "-9223372036854776")
		h.fails("ERR invalid expire time in 'pexpire' command", "PEXPIRE", "k", "9223372036854775807")
		h.fails("ERR invalid expire time in 'expireat' command", "EXPIREAT", "k", "9223372036854776")
		h.fails("ERR wrong number of arguments for 'expire' command", "EXPIRE", "k")
		h.is(":-1", "TTL", "k")
	})
}

func TestLazyExpiry(t *testing.T) {
	stores(t, func(t *testing.T, h *harness) {
		h.is("+OK", "SET", "s", "v", "PX", "100")
		h.is(":2", "HSET", "h", "a", "1", "b", "2")
		h.is(":1", "PEXPIRE", "h", "100")
		h.is("+OK", "SET", "keep", "v")
		h.now += 100 // the last millisecond
		h.is(`"v"`, "GET", "s")
		h.is(":2", "HLEN", "h")
		h.is(":0", "PTTL", "s")
		h.now++
		for _, c := range [][]string{
			{"nil", "GET", "s"}, {":0", "EXISTS", "s", "h"}, {"+none", "TYPE", "h"}, {":-2", "TTL", "s"},
			{":0", "HLEN", "h"}, {"{}", "HGETALL", "h"}, {`["keep"]`, "KEYS", "*"}, {":1", "DBSIZE"},
			{`["0" ["keep"]]`, "SCAN", "0"}, {":0", "STRLEN", "s"}, {"nil", "HGET", "h", "a"},
		} {
			h.is(c[0], c[1:]...)
		}
		// Reads leave the expired keys in place; a write deletes them.
		if d := dump(t, h.w); !strings.Contains(d, `"\x01s"`) {
			t.Fatalf("expired key gone before a write: %s", d)
		}
		h.is(":0", "DEL", "s")
		h.is(":1", "HSET", "h", "c", "3") // a new hash: the old fields are gone
		h.is(`{"c" "3"}`, "HGETALL", "h")
		if d := dump(t, h.w); strings.Contains(d, `"\x01s"`) || strings.Contains(" "+d, ` "\x03`) {
			t.Errorf("expired key or expiry entry left: %s", d)
		}
	})
}

func TestExpireDue(t *testing.T) {
	stores(t, func(t *testing.T, h *harness) {
		for i := 0; i < 10; i++ {
			h.is("+OK", "SET", fmt.Sprint("k", i), "v", "PX", fmt.Sprint(10+i))
		}
		h.is(":1", "HSET", "h", "a", "1")
		h.is(":1", "PEXPIRE", "h", "5")
		h.is("+OK", "SET", "forever", "v")
		run := func(now int64, limit int) *messages.Reply {
			return Exec(h.w, ExpireDueCommand(math.MinInt64, now, limit))
		}
		if got := render(run(h.now+5, 100)); got != ":0" {
			t.Errorf("nothing due yet: %s", got)
		}
		// From a floor: the keys due before it stay.
		if got := render(Exec(h.w, ExpireDueCommand(h.now+10, h.now+12, 100))); got != ":2" { // k0 (10), k1 (11)
			t.Errorf("due at +12 from +10: %s", got)
		}
		if when, ok, err := NextExpiry(h.w, h.now+6); err != nil || !ok || when < h.now+12 {
			t.Errorf("due in [+6, +12) once k0 and k1 are gone: at %d (+%d), %v, %v", when, when-h.now, ok, err)
		}
		if when, ok, err := NextExpiry(h.w, math.MinInt64); err != nil || !ok || when != h.now+5 {
			t.Errorf("h (5) not the next due: at %d (+%d), %v, %v", when, when-h.now, ok, err)
		}
		if got := render(run(h.now+12, 100)); got != ":1" { // h (5)
			t.Errorf("due at +12: %s", got)
		}
		if got := render(run(h.now+100, 4)); got != ":4" {
			t.Errorf("limit 4: %s", got)
		}
		n, err := ExpireDue(h.w, h.now+100, 100)
		if err != nil || n != 4 {
			t.Errorf("rest: %d, %v", n, err)
		}
		want := fmt.Sprintf("%q=%q ", "\x01forever", "\x01v")
		if d := dump(t, h.w); d != want {
			t.Errorf("after expiry: %s, want %s", d, want)
		}
		// A client cannot send the internal command.
		if r := CheckArity([][]byte{[]byte(ExpireDueName), []byte("1")}); r.GetError() == "" {
			t.Error("CheckArity accepts the internal command")
		}
		if got := render(Read(h.w, [][]byte{[]byte(ExpireDueName), []byte("1")}, h.now)); !strings.HasPrefix(got, "-ERR unknown command") {
			t.Errorf("Read ran the internal command: %s", got)
		}
	})
}

func TestKeysDBSizeFlush(t *testing.T) {
	stores(t, func(t *testing.T, h *harness) {
		h.is("[]", "KEYS", "*")
		h.is(":0", "DBSIZE")
		h.is("+OK", "MSET", "one", "1", "two", "2", "three", "3", "four", "4", "o*", "x", "\xffz", "y")
		h.is(":1", "HSET", "hash", "f", "v")
		h.is(`["four" "hash" "o*" "one" "three" "two" "\xffz"]`, "KEYS", "*")
		h.is(`["o*" "one"]`, "KEYS", "o*")
		h.is(`["o*"]`, "KEYS", `o\*`)
		h.is(`["two"]`, "KEYS", "t?o")
		h.is(`["three" "two"]`, "KEYS", "t[wh]*")
		h.is(`["four" "hash" "\xffz"]`, "KEYS", "[^ot]*")
		h.is(`["one"]`, "KEYS", "one")
		h.is(`["\xffz"]`, "KEYS", "\xff*")
		h.is(":7", "DBSIZE")
		h.fails("ERR syntax error", "FLUSHDB", "now")
		h.fails("ERR syntax error", "FLUSHALL", "SYNC", "ASYNC")
		h.fails("ERR wrong number of arguments for 'dbsize' command", "DBSIZE", "x")
		h.fails("ERR wrong number of arguments for 'keys' command", "KEYS")
		h.is("+OK", "FLUSHDB", "async")
		h.is(":0", "DBSIZE")
		h.is("+OK", "SET", "a", "b", "EX", "100")
		h.is("+OK", "FLUSHALL", "SYNC")
		h.is("+OK", "FLUSHALL")
		if d := dump(t, h.w); d != "" {
			t.Errorf("store not empty: %s", d)
		}
	})
}

func TestScan(t *testing.T) {
	stores(t, func(t *testing.T, h *harness) {
		var all []string
		for i := 0; i < 3; i++ {
			h.is(":1", "HSET", fmt.Sprint("h", i), "f", "v")
			all = append(all, fmt.Sprint("h", i))
		}
		for i := 0; i < 25; i++ {
			h.is("+OK", "SET", fmt.Sprintf("k%02d", i), "v")
			all = append(all, fmt.Sprintf("k%02d", i))
		}
		h.is("+OK", "SET", "k99", "v", "PX", "1")
		h.now += 2
		scanAll := func(count int, match []byte, typ string) (out []string, calls int) {
			var after []byte
			for {
				keys, next, err := Scan(h.w, after, count, match, typ, h.now)
				if err != nil {
					t.Fatal(err)
				}
				calls++
				if len(keys) > count {
					t.Fatalf("%d keys for count %d", len(keys), count)
				}
				for _, k := range keys {
					out = append(out, string(k))
				}
				if next == nil {
					return out, calls
				}
				after = next
			}
		}
		got, calls := scanAll(10, nil, "")
		if strings.Join(got, " ") != strings.Join(all, " ") || calls != 3 {
			t.Errorf("scan by 10: %d calls, %v", calls, got)
		}
		got, _ = scanAll(1, nil, "")
		if strings.Join(got, " ") != strings.Join(all, " ") {
			t.Errorf("scan by 1: %v", got)
		}
		got, calls = scanAll(5, []byte("k1*"), "")
		if strings.Join(got, " ") != "k10 k11 k12 k13 k14 k15 k16 k17 k18 k19" || calls != 2 {
			t.Errorf("scan k1*: %d calls, %v", calls, got)
		}
		got, _ = scanAll(4, []byte("*2"), "")
		if strings.Join(got, " ") != "h2 k02 k12 k22" {
			t.Errorf("scan *2: %v", got)
		}
		got, _ = scanAll(100, nil, "HASH")
		if strings.Join(got, " ") != "h0 h1 h2" {
			t.Errorf("scan hash: %v", got)
		}
		got, _ = scanAll(100, nil, "list")
		if len(got) != 0 {
			t.Errorf("scan list: %v", got)
		}
		if _, _, err := Scan(h.w, nil, 0, nil, "", h.now); err != ErrScanCount {
			t.Errorf("count 0: %v", err)
		}
		// The empty key sorts first, and is a place to go on after.
		h.is("+OK", "SET", "", "v")
		got, _ = scanAll(1, nil, "")
		if len(got) != len(all)+1 || got[0] != "" || strings.Join(got[1:], " ") != strings.Join(all, " ") {
			t.Errorf("scan by 1 with the empty key: %q", got)
		}
		h.is(":1", "DEL", "")
		h.is(`["0" ["k20" "k21" "k22" "k23" "k24"]]`, "SCAN", "0", "MATCH", "k2*", "TYPE", "string")
		h.is(`["0" ["h0" "h1" "h2"]]`, "SCAN", "0", "type", "hash", "count", "1")
		h.fails("ERR invalid cursor", "SCAN", "x")
		h.fails("ERR invalid cursor", "SCAN", " 1")
		h.fails("ERR invalid cursor", "SCAN", "18446744073709551616")
		h.fails("ERR syntax error", "SCAN", "0", "COUNT")
		h.fails("ERR syntax error", "SCAN", "0", "COUNT", "0")
		h.fails("ERR syntax error", "SCAN", "0", "FOO", "1")
		h.fails("ERR value is not an integer or out of range", "SCAN", "0", "COUNT", "x")
	})
}

func TestParseScanArgs(t *testing.T) {
	args := func(s ...string) [][]byte {
		out := [][]byte{[]byte("SCAN")}
		for _, x := range s {
			out = append(out, []byte(x))
		}
		return out
	}
	for _, c := range []struct {
		in     []string
		cursor uint64
	}{{[]string{""}, 0}, {[]string{"+5"}, 5}, {[]string{"-1"}, 1<<64 - 1}, {[]string{"007"}, 7}} {
		sa, r := ParseScanArgs(args(c.in...))
		if r != nil || sa.Cursor != c.cursor {
			t.Errorf("%q: %v %v", c.in, sa.Cursor, r)
		}
	}
	sa, r := ParseScanArgs(args("0", "MATCH", "*", "COUNT", "5", "TYPE", "Hash"))
	if r != nil || sa.Match != nil || sa.Count != 5 || sa.Type != "Hash" {
		t.Errorf("options: %+v %v", sa, r)
	}
}
