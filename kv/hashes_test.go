package kv

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func TestHashes(t *testing.T) {
	stores(t, func(t *testing.T, h *harness) {
		h.is(":2", "HSET", "h", "b", "2", "a", "1")
		h.is(":1", "HSET", "h", "a", "one", "c", "3")
		h.is(":1", "HSET", "n", "x", "1", "x", "2") // a field named twice counts once
		h.is(`"2"`, "HGET", "n", "x")
		h.is(":1", "HLEN", "n")
		h.is(`"one"`, "HGET", "h", "a")
		h.is("nil", "HGET", "h", "zz")
		h.is("nil", "HGET", "nope", "a")
		h.is(`["one" nil "3"]`, "HMGET", "h", "a", "zz", "c")
		h.is(`[nil nil]`, "HMGET", "nope", "a", "b")
		h.is(`{"a" "one" "b" "2" "c" "3"}`, "HGETALL", "h")
		h.is(`{}`, "HGETALL", "nope")
		h.is(`["a" "b" "c"]`, "HKEYS", "h")
		h.is(`["one" "2" "3"]`, "HVALS", "h")
		h.is(`[]`, "HKEYS", "nope")
		h.is(":3", "HLEN", "h")
		h.is(":0", "HLEN", "nope")
		h.is(":1", "HEXISTS", "h", "a")
		h.is(":0", "HEXISTS", "h", "zz")
		h.is(":0", "HEXISTS", "nope", "a")
		h.is(":3", "HSTRLEN", "h", "a")
		h.is(":0", "HSTRLEN", "h", "zz")
		h.is(":0", "HSETNX", "h", "a", "x")
		h.is(":1", "HSETNX", "h", "d", "4")
		h.is(":1", "HSETNX", "new", "d", "4")
		h.is("+OK", "HMSET", "h", "e", "5", "a", "1")
		h.is(":5", "HLEN", "h")
		h.is(":2", "HDEL", "h", "a", "a", "zz", "b")
		h.is(":3", "HLEN", "h")
		h.is(":0", "HDEL", "nope", "a")
		h.is(":3", "HDEL", "h", "c", "d", "e")
		h.is(":0", "EXISTS", "h") // the last field deleted deletes the key
		h.is(":1", "HSET", "h", "f", "v")
		h.is(":1", "EXPIRE", "h", "100")
		h.is(":1", "HSET", "h", "g", "v") // keeps the TTL
		h.is(":100", "TTL", "h")
		h.is(":2", "HDEL", "h", "f", "g")
		if d := dump(t, h.w); strings.Contains(" "+d, ` "\x03`) {
			t.Errorf("expiry entry left: %s", d)
		}

		h.fails("ERR wrong number of arguments for 'hset' command", "HSET", "h", "f", "v", "g")
		h.fails("ERR wrong number of arguments for 'hset' command", "HSET", "h", "f")
		h.fails("ERR wrong number of arguments for 'hmset' command", "HMSET", "h", "f", "v", "g")
		h.fails("ERR wrong number of arguments for 'hget' command", "HGET", "h")
		h.fails("ERR wrong number of arguments for 'hdel' command", "HDEL", "h")
		h.fails("ERR wrong number of arguments for 'hsetnx' command", "HSETNX", "h", "f")
		h.is("+OK", "SET", "s", "v")
		for _, c := range [][]string{
			{"HSET", "s", "f", "v"}, {"HMSET", "s", "f", "v"}, {"HSETNX", "s", "f", "v"}, {"HGET", "s", "f"},
			{"HMGET", "s", "f"}, {"HDEL", "s", "f"}, {"HGETALL", "s"}, {"HKEYS", "s"}, {"HVALS", "s"},
			{"HLEN", "s"}, {"HEXISTS", "s", "f"}, {"HSTRLEN", "s", "f"}, {"HINCRBY", "s", "f", "1"},
			{"HINCRBYFLOAT", "s", "f", "1"},
		} {
			h.fails(wrongType, c...)
		}
	})
}

func TestHashIncr(t *testing.T) {
	stores(t, func(t *testing.T, h *harness) {
		h.is(":5", "HINCRBY", "h", "n", "5")
		h.is(":-5", "HINCRBY", "h", "n", "-10")
		h.is(":1", "HLEN", "h")
		h.is(":9223372036854775807", "HINCRBY", "h", "max", "9223372036854775807")
		h.fails("ERR increment or decrement would overflow", "HINCRBY", "h", "max", "1")
		h.is(":1", "HSET", "h", "s", "abc")
		h.fails("ERR hash value is not an integer", "HINCRBY", "h", "s", "1")
		h.fails("ERR value is not an integer or out of range", "HINCRBY", "h", "n", "1.5")
		h.is(`"0.3"`, "HINCRBYFLOAT", "h", "f", "0.3")
		h.is(`"0.6"`, "HINCRBYFLOAT", "h", "f", "0.3")
		h.is(`"-4.5"`, "HINCRBYFLOAT", "h", "n", "0.5")
		h.fails("ERR hash value is not a float", "HINCRBYFLOAT", "h", "s", "1")
		h.fails("ERR value is not a valid float", "HINCRBYFLOAT", "h", "f", "x")
		h.fails("ERR value is NaN or Infinity", "HINCRBYFLOAT", "h", "f", "inf")
		h.fails("ERR value is NaN or Infinity", "HINCRBYFLOAT", "s", "f", "inf") // before the type check
		h.is(":1", "HSET", "h", "big", "1e4932")
		h.fails("ERR increment would produce NaN or Infinity", "HINCRBYFLOAT", "h", "big", "1e4932")
	})
}

func TestBigHashDelete(t *testing.T) {
	stores(t, func(t *testing.T, h *harness) {
		for _, n := range []int{smallHash, smallHash + 1, 100} {
			args := []string{"HSET", "h"}
			for i := 0; i < n; i++ {
				args = append(args, fmt.Sprint("f", i), "v")
			}
			h.is(fmt.Sprint(":", n), args...)
			h.is("+OK", "SET", "other", "v")
			h.is(":1", "DEL", "h")
			h.is(":1", "HSET", "h", "f0", "x")
			h.is(`{"f0" "x"}`, "HGETALL", "h")
			h.is(":1", "DEL", "h")
			if d := dump(t, h.w); d != fmt.Sprintf("%q=%q ", "\x01other", "\x01v") {
				t.Errorf("%d fields: left %s", n, d)
			}
		}
	})
}

// distinct gives k distinct numbers below n, in random order, by either
// of its ways, and over many draws every number.
func TestDistinctPicks(t *testing.T) {
	tx := &txn{rng: rand.New(rand.NewPCG(1, 2))}
	for _, c := range []struct{ n, k int }{{40, 10}, {1000, 3}, {10, 8}, {5, 4}, {2, 1}} {
		seen := make([]int, c.n)
		for range 300 {
			got := tx.distinct(c.n, c.k)
			if len(got) != c.k {
				t.Fatalf("distinct(%d, %d) gave %d numbers", c.n, c.k, len(got))
			}
			once := map[int]bool{}
			for _, i := range got {
				if i < 0 || i >= c.n || once[i] {
					t.Fatalf("distinct(%d, %d) = %v", c.n, c.k, got)
				}
				once[i] = true
				seen[i]++
			}
		}
		if c.n <= 40 && slices.Contains(seen, 0) {
			t.Errorf("distinct(%d, %d) never gave some numbers in 300 draws: %v", c.n, c.k, seen)
		}
	}
}

// SRANDMEMBER and HRANDFIELD walk a big set or hash only up to their last
// pick: each pick is an element (with its own value), a count gives
// distinct ones, and the picks spread over the whole key.
func TestRandomPicksOfABigSetOrHash(t *testing.T) {
	stores(t, func(t *testing.T, h *harness) {
		sadd, hset := []string{"SADD", "s"}, []string{"HSET", "h"}
		order := map[string]int{}
		for i := range 1000 {
			f := fmt.Sprintf("f%04d", i)
			order[f] = i
			sadd = append(sadd, f)
			hset = append(hset, f, "v"+f)
		}
		h.do(sadd...)
		h.do(hset...)
		for _, cmd := range [][]string{{"SRANDMEMBER", "s"}, {"HRANDFIELD", "h"}} {
			const draws = 2000
			var quarters [4]int
			for range draws {
				f := string(h.do(cmd...).GetBulk())
				i, ok := order[f]
				if !ok {
					t.Fatalf("%v gave %q, not an element", cmd, f)
				}
				quarters[i*4/len(order)]++
			}
			for q, n := range quarters {
				if n < draws/4*7/10 || n > draws/4*13/10 {
					t.Errorf("%v: %d of %d picks in the %d. quarter (%v)", cmd, n, draws, q+1, quarters)
				}
			}
		}
		for range 50 {
			seen := map[string]bool{}
			for _, it := range h.do("SRANDMEMBER", "s", "5").GetArray().GetItems() {
				f := string(it.GetBulk())
				if _, ok := order[f]; !ok || seen[f] {
					t.Fatalf("SRANDMEMBER s 5: %q (an element: %v, seen: %v)", f, ok, seen[f])
				}
				seen[f] = true
			}
			items := h.do("HRANDFIELD", "h", "4", "WITHVALUES").GetPairs().GetItems()
			if len(items) != 8 || len(seen) != 5 {
				t.Fatalf("HRANDFIELD h 4 WITHVALUES gave %d items, SRANDMEMBER s 5 %d members", len(items), len(seen))
			}
			for i := 0; i < len(items); i += 2 {
				f, v := string(items[i].GetBulk()), string(items[i+1].GetBulk())
				if _, ok := order[f]; !ok || v != "v"+f {
					t.Fatalf("HRANDFIELD h 4 WITHVALUES: %q %q", f, v)
				}
			}
		}
		for _, cmd := range [][]string{{"SRANDMEMBER", "s", "-9"}, {"HRANDFIELD", "h", "-9"}} {
			items := h.do(cmd...).GetArray().GetItems()
			if len(items) != 9 {
				t.Fatalf("%v gave %d elements", cmd, len(items))
			}
			for _, it := range items {
				if _, ok := order[string(it.GetBulk())]; !ok {
					t.Fatalf("%v gave %q", cmd, it.GetBulk())
				}
			}
		}
	})
}

// bogusIndex is a store whose field index (FieldIndexer) names fields
// none of which is there: as an index read just before a write that
// replaced them, in the instant before the write reaches it.
type bogusIndex struct{ *memStore }

func (b bogusIndex) FieldIndex(record []byte, _ func() [][]byte) [][]byte {
	n, p := 0, fieldPrefix(record[1:]) // a record key is the key after its prefix byte
	if err := b.Scan(p, successor(p), func(_, _ []byte) bool { n++; return true }); err != nil {
		return nil // no index: the caller walks, and meets the error
	}
	out := make([][]byte, n)
	for i := range out {
		out[i] = fmt.Appendf(nil, "gone%d", i)
	}
	return out
}

// An HRANDFIELD WITHVALUES whose index names a field that is not there
// walks instead: every pick is a field of the hash with its value.
func TestHRandFieldWalksWhenItsIndexIsBehind(t *testing.T) {
	s := newMemStore()
	args := []string{"HSET", "h"}
	for i := range indexFrom {
		args = append(args, fmt.Sprintf("f%04d", i), fmt.Sprintf("v%04d", i))
	}
	Exec(s, command(args))
	r := bogusIndex{s}
	for range 50 {
		items := Read(r, [][]byte{[]byte("HRANDFIELD"), []byte("h"), []byte("2"), []byte("WITHVALUES")}, 1).GetPairs().GetItems()
		if len(items) != 4 {
			t.Fatalf("HRANDFIELD h 2 WITHVALUES: %d items", len(items))
		}
		for i := 0; i < 4; i += 2 {
			f, v := string(items[i].GetBulk()), string(items[i+1].GetBulk())
			if len(f) != 5 || f[0] != 'f' || v != "v"+f[1:] {
				t.Fatalf("HRANDFIELD h gave %q = %q", f, v)
			}
		}
	}
}
