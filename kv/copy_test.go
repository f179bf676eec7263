package kv

import (
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
