package kv

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// zmodel is a sorted set as the tests expect it.
type zmodel map[string]float64

type zpair struct {
	m string
	s float64
}

func (zm zmodel) sorted() []zpair {
	out := make([]zpair, 0, len(zm))
	for m, s := range zm {
		out = append(out, zpair{m, s})
	}
	slices.SortFunc(out, func(a, b zpair) int { return cmp.Or(cmp.Compare(a.s, b.s), strings.Compare(a.m, b.m)) })
	return out
}

func fmtScore(s float64) string { return strconv.FormatFloat(s, 'g', -1, 64) }

// names renders the members as the harness renders an array of bulks.
func names(ps []zpair) string {
	ms := make([]string, len(ps))
	for i, p := range ps {
		ms[i] = p.m
	}
	return quoted(ms)
}

// checkLevels fails unless key's rank levels and record are what a
// sorted set of the model's members has: the mark from rankFrom members,
// none below rankUntil; with the mark, each level's entries, and the
// spans of its head and entries, computed here from the order and
// memberLevel; without it, no level keys. It returns the top the record
// says.
func checkLevels(t *testing.T, r Reader, key string, zm zmodel) int {
	t.Helper()
	all := zm.sorted()
	z := &zset{prefix: fieldPrefix([]byte(key))}
	v, ok, err := r.Get(metaKey([]byte(key)))
	if err != nil || ok != (len(all) > 0) {
		t.Fatalf("%s: record: %v %v", key, ok, err)
	}
	rec, _ := decodeRecord(v)
	n, ranked, gotTop := zsetCounts(rec.payload)
	if n != int64(len(all)) || len(all) >= rankFrom && !ranked || len(all) < rankUntil && ranked {
		t.Fatalf("%s: record says %d members, ranked %v; the model has %d", key, n, ranked, len(all))
	}
	want := map[string]string{}
	top := 0
	for l := 1; ranked && l <= maxLevel; l++ {
		var at []int
		for i, p := range all {
			if memberLevel([]byte(p.m)) >= l {
				at = append(at, i)
			}
		}
		if len(at) == 0 {
			break
		}
		top = l
		want[string(z.spanKey(l, nil))] = string(binary.AppendUvarint(nil, uint64(at[0])))
		for j, i := range at {
			next := len(all)
			if j+1 < len(at) {
				next = at[j+1]
			}
			suffix := z.suffix(z.indexKey(all[i].s, []byte(all[i].m)))
			want[string(z.levelKey(l, suffix))] = ""
			want[string(z.spanKey(l, suffix))] = string(binary.AppendUvarint(nil, uint64(next-i)))
		}
	}
	got := map[string]string{}
	lo := append(slices.Clip(z.prefix), zLevel)
	if err := r.Scan(lo, append(slices.Clip(z.prefix), zSpan+1), func(k, v []byte) bool {
		got[string(k)] = string(v)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	for k, w := range want {
		if g, ok := got[k]; !ok || g != w {
			t.Fatalf("%s: %q: %q (present %v), want %q", key, k[len(lo)-1:], g, ok, w)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Fatalf("%s: %q left behind", key, k[len(lo)-1:])
		}
	}
	if gotTop != top {
		t.Fatalf("%s: record says top %d, want %d", key, gotTop, top)
	}
	return top
}

// checkRanks asks key for ranks, ranges by rank, counts and ranges by
// score with LIMIT offsets, and compares the replies with the model.
func checkRanks(t *testing.T, h *harness, rng *rand.Rand, key string, zm zmodel) {
	t.Helper()
	all := zm.sorted()
	n := len(all)
	h.is(":"+strconv.Itoa(n), "ZCARD", key)
	for range 12 {
		if n == 0 {
			break
		}
		i := rng.IntN(n)
		h.is(":"+strconv.Itoa(i), "ZRANK", key, all[i].m)
		h.is(":"+strconv.Itoa(n-1-i), "ZREVRANK", key, all[i].m)
	}
	h.is("nil", "ZRANK", key, "not a member")
	for range 8 {
		start, stop := rng.IntN(n+6)-n-3, rng.IntN(n+6)-n-3
		from, to := (&list{n: int64(n)}).span(int64(start), int64(stop))
		want := all[from:max(from, to)]
		h.is(names(want), "ZRANGE", key, strconv.Itoa(start), strconv.Itoa(stop))
		rev := slices.Clone(all)
		slices.Reverse(rev)
		h.is(names(rev[from:max(from, to)]), "ZREVRANGE", key, strconv.Itoa(start), strconv.Itoa(stop))
	}
	bound := func() (string, float64, bool) {
		open := rng.IntN(3) == 0
		var v float64
		switch rng.IntN(10) {
		case 0:
			v = math.Inf(-1)
		case 1:
			v = math.Inf(1)
		default:
			v = float64(rng.IntN(15)-7) / 2
		}
		s := fmtScore(v)
		if open {
			s = "(" + s
		}
		return s, v, open
	}
	for range 10 {
		minArg, lo, loOpen := bound()
		maxArg, hi, hiOpen := bound()
		var in []zpair
		for _, p := range all {
			if (p.s > lo || !loOpen && p.s == lo) && (p.s < hi || !hiOpen && p.s == hi) {
				in = append(in, p)
			}
		}
		h.is(":"+strconv.Itoa(len(in)), "ZCOUNT", key, minArg, maxArg)
		offset, count := rng.IntN(len(in)+3), rng.IntN(6)-1
		page := func(ps []zpair) []zpair {
			ps = ps[min(offset, len(ps)):]
			if count >= 0 {
				ps = ps[:min(count, len(ps))]
			}
			return ps
		}
		h.is(names(page(in)), "ZRANGEBYSCORE", key, minArg, maxArg, "LIMIT", strconv.Itoa(offset), strconv.Itoa(count))
		rev := slices.Clone(in)
		slices.Reverse(rev)
		h.is(names(page(rev)), "ZREVRANGEBYSCORE", key, maxArg, minArg, "LIMIT", strconv.Itoa(offset), strconv.Itoa(count))
	}
}

// Rank levels against a model: random adds, score changes and removals
// of one member or of many at once (a build instead of steps), on a set
// of a few hundred members; after each, the levels are exactly those of
// the members (so the steps and a build agree), and ranks, counts and
// pages agree with a sort. With one bit a level (levelBits 1) the levels
// go to maxLevel.
func TestZSetRankLevelsAgainstAModel(t *testing.T) {
	for _, lb := range []int{4, 1} {
		t.Run(fmt.Sprintf("levelBits=%d", lb), func(t *testing.T) {
			old := levelBits
			levelBits = lb
			t.Cleanup(func() { levelBits = old })
			stores(t, func(t *testing.T, h *harness) {
				rng := rand.New(rand.NewPCG(3, uint64(lb)))
				zm := zmodel{}
				score := func() float64 {
					switch rng.IntN(20) {
					case 0:
						return math.Inf(-1)
					case 1:
						return math.Inf(1)
					case 2, 3:
						return rng.Float64()*10 - 5
					}
					return float64(rng.IntN(11) - 5)
				}
				member := func() string { return fmt.Sprintf("m%d", rng.IntN(1500)) }
				some := func(k int) []string {
					all := zm.sorted()
					var ms []string
					for range k {
						if len(all) > 0 && rng.IntN(4) > 0 {
							ms = append(ms, all[rng.IntN(len(all))].m)
						} else {
							ms = append(ms, member())
						}
					}
					return ms
				}
				zadd := func(k int) {
					args := []string{"ZADD", "z"}
					for _, m := range some(k) {
						s := score()
						args = append(args, fmtScore(s), m)
						zm[m] = s
					}
					h.do(args...)
				}
				zrem := func(k int) {
					args := []string{"ZREM", "z"}
					for _, m := range some(k) {
						args = append(args, m)
						delete(zm, m)
					}
					h.do(args...)
				}
				biggest, highest := 0, 0
				for round := range 300 {
					switch op := rng.IntN(12); {
					case len(zm) < 250 && op < 3:
						zadd(65 + rng.IntN(60)) // more than a build's threshold
					case op < 4 || len(zm) < 250:
						zadd(1 + rng.IntN(4))
					case op == 4:
						zadd(65 + rng.IntN(60))
					case op == 5:
						zrem(1 + rng.IntN(3))
					case op == 6:
						zrem(65 + rng.IntN(40))
					case op == 7:
						m := some(1)[0]
						by := float64(rng.IntN(5) - 2)
						zm[m] += by
						h.is(","+fmtScore(zm[m]), "ZINCRBY", "z", fmtScore(by), m)
					case op == 8:
						all := zm.sorted()
						i := rng.IntN(len(all))
						j := min(len(all)-1, i+rng.IntN(3))
						for _, p := range all[i : j+1] {
							delete(zm, p.m)
						}
						h.is(":"+strconv.Itoa(j+1-i), "ZREMRANGEBYRANK", "z", strconv.Itoa(i), strconv.Itoa(j))
					case op == 9:
						lo := rng.IntN(11) - 5
						var gone int
						for m, s := range zm {
							if s >= float64(lo) && s <= float64(lo)+0.5 {
								delete(zm, m)
								gone++
							}
						}
						h.is(":"+strconv.Itoa(gone), "ZREMRANGEBYSCORE", "z", strconv.Itoa(lo), fmtScore(float64(lo)+0.5))
					default:
						all := zm.sorted()
						cmd, k := "ZPOPMIN", 1+rng.IntN(3)
						if op == 11 {
							cmd = "ZPOPMAX"
							slices.Reverse(all)
						}
						for _, p := range all[:min(k, len(all))] {
							delete(zm, p.m)
						}
						h.do(cmd, "z", strconv.Itoa(k))
					}
					biggest = max(biggest, len(zm))
					highest = max(highest, checkLevels(t, h.w, "z", zm))
					if round%8 == 0 {
						checkRanks(t, h, rng, "z", zm)
					}
				}
				checkRanks(t, h, rng, "z", zm)
				if wantTop := map[int]int{4: 2, 1: maxLevel}[lb]; biggest < 250 || highest < wantTop {
					t.Fatalf("the set grew to %d members and level %d; the test wants 250 and level %d", biggest, highest, wantTop)
				}
				// A set made whole by a store command, renamed, copied.
				h.do("ZRANGESTORE", "dst", "z", "0", "-1")
				checkLevels(t, h.w, "dst", zm)
				h.is("+OK", "RENAME", "dst", "moved")
				h.is(":1", "COPY", "moved", "copied")
				checkLevels(t, h.w, "moved", zm)
				checkLevels(t, h.w, "copied", zm)
				checkRanks(t, h, rng, "copied", zm)
				dumped := h.do("DUMP", "z").GetBulk()
				h.is("+OK", "RESTORE", "restored", "0", string(dumped))
				checkLevels(t, h.w, "restored", zm)
				h.is(":4", "DEL", "z", "moved", "copied", "restored")
				if d := dump(t, h.w); d != "" {
					t.Errorf("left in the store: %s", d)
				}
			})
		})
	}
}

// A sorted set without the rank mark (written before the levels, or
// carrying levels a build without them left stale) is read by counting
// through its index, whatever level entries it has, and its next write
// builds its levels.
func TestZSetWithoutTheMarkIsCountedThenBuilt(t *testing.T) {
	stores(t, func(t *testing.T, h *harness) {
		rng := rand.New(rand.NewPCG(5, 6))
		zm := zmodel{}
		args := []string{"ZADD", "z"}
		for i := range 400 {
			m, s := fmt.Sprintf("m%d", i), float64(rng.IntN(40))
			zm[m] = s
			args = append(args, fmtScore(s), m)
		}
		h.do(args...)
		checkLevels(t, h.w, "z", zm)
		// Unmark the record and spoil every span: a build that did not
		// keep the levels moved members under them.
		z := &zset{prefix: fieldPrefix([]byte("z"))}
		lo, hi := append(slices.Clip(z.prefix), zSpan), append(slices.Clip(z.prefix), zSpan+1)
		var keys [][]byte
		if err := h.w.Scan(lo, hi, func(k, _ []byte) bool {
			keys = append(keys, bytes.Clone(k))
			return true
		}); err != nil {
			t.Fatal(err)
		}
		if len(keys) == 0 {
			t.Fatal("no spans to spoil")
		}
		for _, k := range keys {
			if err := h.w.Set(k, binary.AppendUvarint(nil, 7)); err != nil {
				t.Fatal(err)
			}
		}
		if err := h.w.Set(metaKey([]byte("z")), countRecord(typeZSet, int64(len(zm)), false, 0)); err != nil {
			t.Fatal(err)
		}
		checkRanks(t, h, rng, "z", zm)
		zm["new"] = 3
		h.is(":1", "ZADD", "z", "3", "new")
		checkLevels(t, h.w, "z", zm)
		checkRanks(t, h, rng, "z", zm)
	})
}

// Bad input to the commands that now walk the levels gets Redis's errors
// and changes nothing.
func TestZSetRankCommandsRefuseBadInput(t *testing.T) {
	stores(t, func(t *testing.T, h *harness) {
		h.is(":3", "ZADD", "z", "1", "a", "2", "b", "3", "c")
		h.fails("ERR min or max is not a float", "ZCOUNT", "z", "x", "1")
		h.fails("ERR value is not an integer or out of range", "ZRANGE", "z", "0", "x")
		h.fails("ERR value is not an integer or out of range", "ZRANGEBYSCORE", "z", "-inf", "+inf", "LIMIT", "x", "1")
		h.fails("ERR value is not an integer or out of range", "ZREMRANGEBYRANK", "z", "a", "1")
		h.is("[]", "ZRANGEBYSCORE", "z", "-inf", "+inf", "LIMIT", "-1", "5")
		h.is("[]", "ZRANGEBYSCORE", "z", "-inf", "+inf", "LIMIT", "3", "5")
		h.is(`["a"]`, "ZREVRANGEBYSCORE", "z", "+inf", "-inf", "LIMIT", "2", "5")
		h.is(":0", "ZCOUNT", "z", "(2", "(2")
		h.is(":0", "ZCOUNT", "z", "3", "1")
		h.is(":0", "ZCOUNT", "nokey", "-inf", "+inf")
	})
}

// A set keeps its levels from rankFrom members and drops them below
// rankUntil: adding members one at a time past rankFrom builds them, and
// removing them one at a time keeps them in step until the set is small.
func TestZSetKeepsLevelsOnlyWhenBig(t *testing.T) {
	old := levelBits
	levelBits = 1 // many levels from few members
	t.Cleanup(func() { levelBits = old })
	stores(t, func(t *testing.T, h *harness) {
		rng := rand.New(rand.NewPCG(7, 8))
		zm := zmodel{}
		args := []string{"ZADD", "z"}
		for i := range rankFrom - 28 {
			m := fmt.Sprintf("m%d", i)
			zm[m] = float64(rng.IntN(9))
			args = append(args, fmtScore(zm[m]), m)
		}
		h.do(args...)
		checkLevels(t, h.w, "z", zm)
		highest := 0
		for i := range 40 {
			m := fmt.Sprintf("n%d", i)
			zm[m] = float64(rng.IntN(9))
			h.is(":1", "ZADD", "z", fmtScore(zm[m]), m)
			highest = max(highest, checkLevels(t, h.w, "z", zm))
		}
		checkRanks(t, h, rng, "z", zm)
		for len(zm) > rankUntil-4 {
			m := zm.sorted()[rng.IntN(len(zm))].m
			delete(zm, m)
			h.is(":1", "ZREM", "z", m)
			checkLevels(t, h.w, "z", zm)
			v, _, _ := h.w.Get(metaKey([]byte("z")))
			rec, _ := decodeRecord(v)
			if _, ranked, _ := zsetCounts(rec.payload); ranked != (len(zm) >= rankUntil) {
				t.Fatalf("%d members, on the way down: ranked %v", len(zm), ranked)
			}
		}
		checkRanks(t, h, rng, "z", zm)
		if highest < 4 {
			t.Fatalf("the set reached level %d only", highest)
		}
		if d := dump(t, h.w); strings.Contains(d, string(append(fieldPrefix([]byte("z")), zSpan))) {
			t.Errorf("a small set kept spans: %s", d)
		}
	})
}

// ZRANDMEMBER of a set that keeps its levels picks members by rank: each
// pick is a member with its own score, a count gives distinct members,
// and the picks spread over the whole set.
func TestZRandMemberPicksByRank(t *testing.T) {
	stores(t, func(t *testing.T, h *harness) {
		zm := zmodel{}
		args := []string{"ZADD", "z"}
		for i := range 1000 {
			m := fmt.Sprintf("m%04d", i)
			zm[m] = float64(i % 97)
			args = append(args, fmtScore(zm[m]), m)
		}
		h.do(args...)
		if top := checkLevels(t, h.w, "z", zm); top == 0 {
			t.Fatal("a set of 1000 without levels")
		}
		rank := map[string]int{}
		for i, p := range zm.sorted() {
			rank[p.m] = i
		}
		const draws = 2000
		var quarters [4]int
		for range draws {
			m := string(h.do("ZRANDMEMBER", "z").GetBulk())
			i, ok := rank[m]
			if !ok {
				t.Fatalf("ZRANDMEMBER gave %q, not a member", m)
			}
			quarters[i*4/len(zm)]++
		}
		for q, n := range quarters {
			if n < draws/4*7/10 || n > draws/4*13/10 {
				t.Errorf("%d of %d picks in the %d. quarter by rank (%v)", n, draws, q+1, quarters)
			}
		}
		for range 50 {
			items := h.do("ZRANDMEMBER", "z", "5", "WITHSCORES").GetPairs().GetItems()
			if len(items) != 10 {
				t.Fatalf("ZRANDMEMBER z 5 WITHSCORES gave %d items", len(items))
			}
			seen := map[string]bool{}
			for i := 0; i < len(items); i += 2 {
				m := string(items[i].GetBulk())
				s, ok := zm[m]
				if !ok || seen[m] || items[i+1].GetDouble() != s {
					t.Fatalf("ZRANDMEMBER z 5 WITHSCORES: %q %v (a member: %v, seen: %v, score %v)", m, items[i+1], ok, seen[m], s)
				}
				seen[m] = true
			}
		}
		h.is("[]", "ZRANDMEMBER", "z", "0")
		if n := len(h.do("ZRANDMEMBER", "z", "-30").GetArray().GetItems()); n != 30 {
			t.Errorf("ZRANDMEMBER z -30 gave %d members", n)
		}
	})
}
