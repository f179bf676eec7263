package kv

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// A sorted set against a model: random members with few distinct scores
// (so ties order by member), past the range-deletion threshold; every
// rank, the whole order, score ranges with open and closed bounds, and
// removals agree with a sort; then every way of removing the key leaves
// nothing behind. (Replies are Redis's: testdata/diff/zsets.txt.)
func TestZSetAgainstAModel(t *testing.T) {
	stores(t, func(t *testing.T, h *harness) {
		rng := rand.New(rand.NewPCG(1, 2))
		model := map[string]int{}
		args := []string{"ZADD", "z"}
		for range 3 * smallHash {
			m := fmt.Sprintf("m%d", rng.IntN(1000))
			s := rng.IntN(7) - 3
			model[m] = s // a later pair for the same member wins
			args = append(args, strconv.Itoa(s), m)
		}
		h.do(args...)
		sorted := func() []zmember {
			var out []zmember
			for m, s := range model {
				out = append(out, zmember{m, s})
			}
			slices.SortFunc(out, func(a, b zmember) int {
				return cmp.Or(cmp.Compare(a.score, b.score), strings.Compare(a.name, b.name))
			})
			return out
		}
		all := sorted()
		var names, withScores []string
		for _, m := range all {
			names = append(names, strconv.Quote(m.name))
			withScores = append(withScores, strconv.Quote(m.name), ","+strconv.Itoa(m.score))
		}
		h.is(":"+strconv.Itoa(len(all)), "ZCARD", "z")
		h.is("["+strings.Join(names, " ")+"]", "ZRANGE", "z", "0", "-1")
		h.is("p["+strings.Join(withScores, " ")+"]", "ZRANGE", "z", "0", "-1", "WITHSCORES")
		for i, m := range all {
			h.is(":"+strconv.Itoa(i), "ZRANK", "z", m.name)
			h.is(":"+strconv.Itoa(len(all)-1-i), "ZREVRANK", "z", m.name)
		}
		for lo := -4; lo <= 4; lo++ {
			for hi := lo - 1; hi <= 4; hi++ {
				var in, open []string
				for _, m := range all {
					if m.score >= lo && m.score <= hi {
						in = append(in, strconv.Quote(m.name))
					}
					if m.score > lo && m.score < hi {
						open = append(open, strconv.Quote(m.name))
					}
				}
				h.is("["+strings.Join(in, " ")+"]", "ZRANGEBYSCORE", "z", strconv.Itoa(lo), strconv.Itoa(hi))
				h.is("["+strings.Join(open, " ")+"]", "ZRANGEBYSCORE", "z", "("+strconv.Itoa(lo), "("+strconv.Itoa(hi))
				h.is(":"+strconv.Itoa(len(in)), "ZCOUNT", "z", strconv.Itoa(lo), strconv.Itoa(hi))
			}
		}
		// Removals keep the index in step with the members.
		h.is(":"+strconv.Itoa(countIn(all, 0, 0)), "ZREMRANGEBYSCORE", "z", "0", "0")
		for m, s := range model {
			if s == 0 {
				delete(model, m)
			}
		}
		h.is(":2", "ZREMRANGEBYRANK", "z", "0", "1")
		all = sorted()[2:]
		model = map[string]int{}
		for _, m := range all {
			model[m.name] = m.score
		}
		h.is("["+strconv.Quote(all[0].name)+"]", "ZRANGE", "z", "0", "0")
		h.is(":"+strconv.Itoa(len(all)), "ZCARD", "z")
		h.is("+zset", "TYPE", "z")
		h.is(`["0" ["z"]]`, "SCAN", "0", "TYPE", "zset")
		h.is(":1", "COPY", "z", "z2")
		h.is("+OK", "RENAME", "z2", "z3")
		h.is(":"+strconv.Itoa(len(all)), "ZCARD", "z3")
		h.is("+OK", "SET", "z3", "a string now")
		h.is(":1", "ZADD", "e", "1", "a")
		at := strconv.FormatInt(h.now+1000, 10)
		h.is(":1", "PEXPIREAT", "e", at)
		if n, err := ExpireDue(h.w, h.now+2000, 10); err != nil || n != 1 {
			t.Fatalf("ExpireDue: %d, %v", n, err)
		}
		h.is(":2", "DEL", "z", "z3")
		if d := dump(t, h.w); d != "" {
			t.Errorf("left in the store: %s", d)
		}
	})
}

type zmember struct {
	name  string
	score int
}

// countIn counts the members with scores in [lo, hi].
func countIn(all []zmember, lo, hi int) int {
	n := 0
	for _, m := range all {
		if m.score >= lo && m.score <= hi {
			n++
		}
	}
	return n
}

// ZScan pages through a sorted set's members in member order, each with
// its score as text, the index entries left out; a set is WRONGTYPE to it.
func TestZScanPages(t *testing.T) {
	stores(t, func(t *testing.T, h *harness) {
		args := []string{"ZADD", "z", "-inf", ""}
		for i := range smallScanHash + 2 {
			args = append(args, strconv.Itoa(i)+".5", fmt.Sprintf("m%03d", i))
		}
		h.is(":"+strconv.Itoa(smallScanHash+3), args...)
		var got []string
		var after []byte
		for calls := 0; ; calls++ {
			if calls > 1000 {
				t.Fatal("ZScan does not end")
			}
			pairs, next, wrong, err := ZScan(h.w, []byte("z"), after, 1, nil, h.now)
			if err != nil || wrong != nil || len(pairs) != 2 {
				t.Fatalf("call %d after %q: %q, %v, %v", calls, after, pairs, wrong, err)
			}
			got = append(got, string(pairs[0])+"="+string(pairs[1]))
			if next == nil {
				break
			}
			after = next
		}
		if len(got) != smallScanHash+3 || got[0] != "=-inf" || got[1] != "m000=0.5" || got[len(got)-1] != fmt.Sprintf("m%03d=%d.5", smallScanHash+1, smallScanHash+1) {
			t.Fatalf("%d members: %q ... %q", len(got), got[:3], got[len(got)-1])
		}
		h.is(":1", "SADD", "s", "m")
		if _, _, wrong, _ := ZScan(h.w, []byte("s"), nil, 5, nil, h.now); wrong != errWrongType {
			t.Fatalf("a set: %v", wrong)
		}
	})
}

// Lex ranges over members of several scores, which Redis leaves
// unspecified, walk the set as a list, as Redis's skiplist does without
// its upper lanes: forward from the first member at or above min while
// at or below max; backward from the last member of the run at or below
// max that starts the set, while at or above min.
func TestZSetLexRangesOverSeveralScoresWalkAsAList(t *testing.T) {
	stores(t, func(t *testing.T, h *harness) {
		h.is(":4", "ZADD", "m", "1", "b", "2", "c", "3", "a", "4", "bb")
		h.is(`["b"]`, "ZRANGEBYLEX", "m", "[b", "[b")
		h.is(`["b" "c" "a" "bb"]`, "ZRANGEBYLEX", "m", "[a", "+")
		h.is(`["c" "a" "bb"]`, "ZRANGEBYLEX", "m", "(b", "+")
		h.is(`["b"]`, "ZREVRANGEBYLEX", "m", "[b", "-")
		h.is(`["bb" "a" "c" "b"]`, "ZREVRANGEBYLEX", "m", "+", "[a")
		h.is(`["bb"]`, "ZREVRANGEBYLEX", "m", "+", "[b")
		h.is(":1", "ZLEXCOUNT", "m", "[b", "[b")
	})
}
