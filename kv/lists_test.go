package kv

import (
	"strconv"
	"strings"
	"testing"
)

// A list's elements are field keys at positions: long lists (past the
// range-deletion threshold) are pushed, popped, trimmed and rewritten
// from both ends, and deleting, overwriting, renaming, copying, emptying
// or expiring a list leaves nothing behind. (Replies are Redis's:
// testdata/diff/lists.txt.)
func TestListsLeaveNothingBehind(t *testing.T) {
	stores(t, func(t *testing.T, h *harness) {
		n := 3 * smallHash
		var want []string
		for i := range n {
			want = append(want, strconv.Itoa(i))
		}
		// Half pushed to the left (in reverse), half to the right.
		left := []string{"LPUSH", "l"}
		for i := n/2 - 1; i >= 0; i-- {
			left = append(left, want[i])
		}
		h.is(":"+strconv.Itoa(n/2), left...)
		h.is(":"+strconv.Itoa(n), append([]string{"RPUSH", "l"}, want[n/2:]...)...)
		h.is(quoted(want), "LRANGE", "l", "0", "-1")
		h.is(quoted(want[10:n-10]), "LRANGE", "l", "10", "-11")
		h.is(`"`+want[n/2]+`"`, "LINDEX", "l", strconv.Itoa(n/2))
		h.is("+list", "TYPE", "l")
		h.is(`["0" ["l"]]`, "SCAN", "0", "TYPE", "list")

		// Trimming past the threshold at both ends, then popping.
		h.is("+OK", "LTRIM", "l", strconv.Itoa(smallHash+1), strconv.Itoa(n-smallHash-3))
		want = want[smallHash+1 : n-smallHash-2]
		h.is(quoted(want), "LRANGE", "l", "0", "-1")
		h.is(quoted(want[:2]), "LPOP", "l", "2")
		h.is(`"`+want[len(want)-1]+`"`, "RPOP", "l")
		want = want[2 : len(want)-1]
		h.is(quoted(want), "LRANGE", "l", "0", "-1")

		// A rewrite from the middle: LINSERT, then LREM of every other.
		mid := strconv.Itoa(len(want) / 2)
		h.is(":"+strconv.Itoa(len(want)+1), "LINSERT", "l", "BEFORE", want[len(want)/2], "new")
		h.is(`"new"`, "LINDEX", "l", mid)
		h.is(":1", "LREM", "l", "0", "new")
		h.is(quoted(want), "LRANGE", "l", "0", "-1")
		h.is(":1", "LPUSH", "l2", "x") // a second list
		h.is(":1", "COPY", "l", "l3")
		h.is("+OK", "RENAME", "l3", "l4")
		h.is(quoted(want), "LRANGE", "l4", "0", "-1")
		h.is("+OK", "SET", "l4", "a string now") // over a list
		h.is(":1", "HSET", "h", "f", "v")
		h.is(`"`+want[0]+`"`, "LMOVE", "l", "h2", "LEFT", "RIGHT")
		h.is(":1", "DEL", "h")
		h.is("+OK", "LTRIM", "l", "1", "0") // empties it
		h.is(":0", "EXISTS", "l")
		h.is(`["x"]`, "RPOP", "l2", "5")
		h.is(":0", "EXISTS", "l2")
		h.is(":1", "LREM", "h2", "0", want[0])
		h.is(":2", "RPUSH", "e", "a", "b")
		at := strconv.FormatInt(h.now+1000, 10)
		h.is(":1", "PEXPIREAT", "e", at)
		if n, err := ExpireDue(h.w, h.now+2000, 10); err != nil || n != 1 {
			t.Fatalf("ExpireDue: %d, %v", n, err)
		}
		h.is(":1", "DEL", "l4")
		if d := dump(t, h.w); d != "" {
			t.Errorf("left in the store: %s", d)
		}
	})
}

// quoted is a list of strings as the harness renders an array of bulks.
func quoted(vs []string) string {
	q := make([]string, len(vs))
	for i, v := range vs {
		q[i] = strconv.Quote(v)
	}
	return "[" + strings.Join(q, " ") + "]"
}
