package kv

import (
	"fmt"
	"regexp"
	"strconv"
	"testing"

	"github.com/coppice-kv/coppice/messages"
)

// MEMORY USAGE is the bytes of the key's records: exactly, for a string
// (its record, and its expiry index entry once it has an expiry); for a
// collection, exactly with SAMPLES 0 and extrapolated from the first
// elements otherwise. (Its errors are Redis's: testdata/diff/memory.txt.)
func TestMemoryUsage(t *testing.T) {
	stores(t, func(t *testing.T, h *harness) {
		usage := func(args ...string) int64 {
			t.Helper()
			r := h.do(append([]string{"MEMORY", "USAGE"}, args...)...)
			if _, ok := r.GetValue().(*messages.Reply_Integer); !ok {
				t.Fatalf("MEMORY USAGE %v: %s", args, render(r))
			}
			return r.GetInteger()
		}
		h.is("+OK", "SET", "key", "value")
		// The record: 0x01 "key" -> type byte, "value".
		if got, want := usage("key"), int64(1+3+1+5); got != want {
			t.Errorf("a string: %d, want %d", got, want)
		}
		h.is(":1", "PEXPIRE", "key", "100000")
		// An 8-byte expiry in the header, and the index entry (9 + key).
		if got, want := usage("key"), int64(1+3+1+8+5+9+3); got != want {
			t.Errorf("a string with an expiry: %d, want %d", got, want)
		}

		// A hash of equal fields: the sample's average is every field's.
		for i := range 100 {
			h.is(":1", "HSET", "h", fmt.Sprintf("f%03d", i), "v")
		}
		all, sampled, one := usage("h", "SAMPLES", "0"), usage("h"), usage("h", "SAMPLES", "1")
		// Each field: 0x02, len, "h", "fNNN" -> "v"; the record: 0x01 "h" -> type, count (1 byte).
		if want := int64(1+1+1+1) + 100*(1+1+1+4+1); all != want || sampled != want || one != want {
			t.Errorf("a hash: SAMPLES 0 %d, default %d, SAMPLES 1 %d; want %d", all, sampled, one, want)
		}
		// Unequal fields: SAMPLES 0 is exact, a sample of the small first
		// ones underestimates, and more of the data means more bytes.
		h.is(":1", "HSET", "h", "zzz", string(make([]byte, 1000)))
		if exact := usage("h", "SAMPLES", "0"); exact != all+1+1+1+3+1000 || usage("h") >= exact {
			t.Errorf("a hash with a big last field: SAMPLES 0 %d (want %d), default %d", exact, all+1+1+1+3+1000, usage("h"))
		}
		// A sorted set: each member has two records (the member and its
		// score index entry), all counted.
		h.is(":3", "ZADD", "z", "1", "a", "2", "b", "3", "c")
		if z0, z := usage("z", "SAMPLES", "0"), usage("z"); z0 != z || z0 <= 3*2*4 {
			t.Errorf("a sorted set: SAMPLES 0 %d, default %d", z0, z)
		}
		h.is(":3", "RPUSH", "l", "a", "b", "c")
		h.is(":2", "SADD", "s", "a", "b")
		h.is(`"1-1"`, "XADD", "x", "1-1", "f", "v")
		for _, k := range []string{"l", "s", "x"} {
			if n := usage(k); n <= 0 {
				t.Errorf("%s: %d", k, n)
			}
		}
		h.is("nil", "MEMORY", "USAGE", "nokey")
	})
}

// DEBUG OBJECT's line has Redis's fields, in its order; the encoding,
// refcount and serialized length are the value's.
func TestDebugObject(t *testing.T) {
	stores(t, func(t *testing.T, h *harness) {
		line := regexp.MustCompile(`^\+Value at:0x0 refcount:(\d+) encoding:(\S+) serializedlength:(\d+) lru:(\d+) lru_seconds_idle:0$`)
		for _, c := range []struct {
			setup      []string
			key        string
			refcount   int64
			encoding   string
			serialized int
		}{
			{[]string{"SET", "s", "v"}, "s", 1, "embstr", 2}, // Redis: serializedlength:2
			{[]string{"SET", "i", "123"}, "i", 2147483647, "int", 2},
			{[]string{"RPUSH", "l", "a", "b"}, "l", 1, "quicklist", -1},
			{[]string{"HSET", "h", "f", "v"}, "h", 1, "listpack", -1},
		} {
			h.do(c.setup...)
			got := render(h.do("DEBUG", "OBJECT", c.key))
			m := line.FindStringSubmatch(got)
			if m == nil {
				t.Errorf("DEBUG OBJECT %s: %s", c.key, got)
				continue
			}
			rc, _ := strconv.ParseInt(m[1], 10, 64)
			n, _ := strconv.Atoi(m[3])
			lru, _ := strconv.ParseInt(m[4], 10, 64)
			if rc != c.refcount || m[2] != c.encoding || (c.serialized >= 0 && n != c.serialized) || n <= 0 || lru != (h.now/1000)&(1<<24-1) {
				t.Errorf("DEBUG OBJECT %s: %s", c.key, got)
			}
		}
		h.fails("ERR no such key", "DEBUG", "OBJECT", "nokey")
		h.fails("ERR unknown subcommand or wrong number of arguments for 'Object'. Try DEBUG HELP.", "DEBUG", "Object", "s", "x")
	})
}
