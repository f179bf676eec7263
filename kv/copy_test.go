package kv

import (
	"fmt"
	"strconv"
	"testing"
)

// RENAME, RENAMENX and COPY move a key's record, fields and expiry index
// entry whole: once the keys they made are deleted, nothing is left in the
// store, and ExpireDue finds a moved expiry under the new name. (Their
// replies are Redis's: testdata/diff/rename.txt.)
func TestRenameAndCopyLeaveNothingBehind(t *testing.T) {
	stores(t, func(t *testing.T, h *harness) {
		at := strconv.FormatInt(h.now+100_000, 10)
		h.is("+OK", "SET", "a", "1", "PXAT", at)
		h.is(":2", "HSET", "h", "f1", "v1", "f2", "v2")
		h.is(":1", "PEXPIREAT", "h", at)
		h.is(":1", "HSET", "big", "f", "v")
		for i := range 2 * smallHash {
			h.is(":1", "HSET", "big", "g"+strconv.Itoa(i), "v")
		}
		h.is("+OK", "RENAME", "a", "b")
		h.is("+OK", "RENAME", "h", "h2")
		h.is(":1", "COPY", "h2", "h3")
		h.is(":0", "RENAMENX", "h3", "b")
		h.is(":1", "COPY", "h3", "b", "REPLACE") // a hash over a string
		h.is("+OK", "RENAME", "big", "h3")       // a big hash over a small one
		h.is(":1", "COPY", "h3", "big2")
		h.is(":1", "MSETNX", "m1", "x", "m2", "y")
		h.fails("ERR DB index is out of range", "COPY", "b", "c", "DB", "1")
		h.fails("ERR value is not an integer or out of range", "COPY", "b", "c", "DB", "x")
		h.is(":"+strconv.Itoa(2*smallHash+1), "HLEN", "h3")
		h.is(":"+strconv.Itoa(2*smallHash+1), "HLEN", "big2")
		h.is(":"+at, "PEXPIRETIME", "b")
		h.is(":-1", "PEXPIRETIME", "h3")
		h.is(":5", "DEL", "b", "h2", "h3", "big2", "m1")
		h.is(":1", "DEL", "m2")
		if d := dump(t, h.w); d != "" {
			t.Errorf("left in the store: %s", d)
		}

		// A moved expiry is due under the new name.
		h.is("+OK", "SET", "e", "1", "PXAT", at)
		h.is("+OK", "RENAME", "e", "e2")
		if n, err := ExpireDue(h.w, h.now+200_000, 10); err != nil || n != 1 {
			t.Fatalf("ExpireDue after the rename: %d, %v", n, err)
		}
		if d := dump(t, h.w); d != "" {
			t.Errorf("left in the store after ExpireDue: %s", d)
		}
	})
}

// HScan pages through a hash bigger than Redis's small ones in field
// order, COUNT fields examined a call, each field once: the empty field
// too, which sorts first and is a place to go on after like any other. A
// small hash comes whole whatever the count; MATCH filters what was
// examined.
func TestHScanPages(t *testing.T) {
	stores(t, func(t *testing.T, h *harness) {
		args := []string{"HSET", "h", "", "empty"}
		for i := range smallScanHash + 2 {
			args = append(args, fmt.Sprintf("f%03d", i), strconv.Itoa(i))
		}
		h.is(":"+strconv.Itoa(smallScanHash+3), args...)
		var got []string
		var after []byte
		for calls := 0; ; calls++ {
			if calls > 1000 {
				t.Fatal("HScan does not end")
			}
			pairs, next, wrong, err := HScan(h.w, []byte("h"), after, 1, nil, h.now)
			if err != nil || wrong != nil || len(pairs) != 2 {
				t.Fatalf("call %d after %q: %q, %v, %v", calls, after, pairs, wrong, err)
			}
			got = append(got, string(pairs[0]))
			if next == nil {
				break
			}
			after = next
		}
		if len(got) != smallScanHash+3 || got[0] != "" || got[1] != "f000" || got[len(got)-1] != fmt.Sprintf("f%03d", smallScanHash+1) {
			t.Fatalf("%d fields: %q ... %q", len(got), got[:3], got[len(got)-1])
		}
		for i := 1; i < len(got); i++ {
			if got[i] <= got[i-1] {
				t.Fatalf("field %q after %q", got[i], got[i-1])
			}
		}
		// MATCH over a page of 10 examined: the matches among them.
		pairs, next, _, _ := HScan(h.w, []byte("h"), []byte("f004"), 10, []byte("f00*"), h.now)
		if len(pairs) != 10 || string(pairs[0]) != "f005" || string(pairs[8]) != "f009" || string(next) != "f014" {
			t.Fatalf("MATCH f00* after f004: %q, next %q", pairs, next)
		}
		// A small hash comes whole; a missing one is empty; a string is
		// WRONGTYPE.
		h.is(":2", "HSET", "small", "a", "1", "b", "2")
		if pairs, next, _, _ := HScan(h.w, []byte("small"), nil, 1, nil, h.now); len(pairs) != 4 || next != nil {
			t.Fatalf("small hash: %q, next %q", pairs, next)
		}
		if pairs, next, wrong, err := HScan(h.w, []byte("nope"), nil, 5, nil, h.now); pairs != nil || next != nil || wrong != nil || err != nil {
			t.Fatalf("missing hash: %q %q %v %v", pairs, next, wrong, err)
		}
		h.is("+OK", "SET", "s", "x")
		if _, _, wrong, _ := HScan(h.w, []byte("s"), nil, 5, nil, h.now); wrong != errWrongType {
			t.Fatalf("a string: %v", wrong)
		}
		if _, _, _, err := HScan(h.w, []byte("h"), nil, 0, nil, h.now); err != ErrScanCount {
			t.Fatalf("count 0: %v", err)
		}
	})
}
