package kv

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"strconv"

	"github.com/coppice-kv/coppice/messages"
)

// Sorted sets: a record with the member count, and under the key's field
// prefix two entries per member:
//
//	0x00 member                -> its score (8 bytes, the float64's bits)
//	0x01 sortable(score) member -> ""   (the score index)
//
// sortable makes a float64's bits sort as the numbers do (the sign bit
// flipped for positives, every bit for negatives; -0 as 0), so the index
// orders members by score, then by their bytes, as Redis does. ZSCORE is
// one Get; ranges by score seek into the index; ranks, ranges by rank,
// counts and LIMIT offsets walk the rank levels (zrank.go: O(log N), as
// Redis's skiplist). DEL, RENAME, COPY and expiry treat the entries as a
// hash's fields.

const (
	zMember byte = 0x00
	zIndex  byte = 0x01
)

var (
	errMinMaxFloat   = errReply("ERR min or max is not a float")
	errScoreNaN      = errReply("ERR resulting score is not a number (NaN)")
	errXXNX          = errReply("ERR XX and NX options at the same time are not compatible")
	errGTLTNX        = errReply("ERR GT, LT, and/or NX options at the same time are not compatible")
	errIncrPair      = errReply("ERR INCR option supports a single increment-element pair")
	errLimitRank     = errReply("ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX")
	errPositiveCount = errReply("ERR value is out of range, must be positive")
)

func sortable(score float64) uint64 {
	if score == 0 {
		score = 0 // -0 sorts as 0 (putMember keeps none)
	}
	b := math.Float64bits(score)
	if b>>63 == 1 {
		return ^b
	}
	return b | 1<<63
}

// unsortable is the score whose sortable bits b starts with.
func unsortable(b []byte) float64 {
	bits := binary.BigEndian.Uint64(b)
	if bits>>63 == 1 {
		bits &^= 1 << 63
	} else {
		bits = ^bits
	}
	return math.Float64frombits(bits)
}

// zset is a sorted set key as a command sees it.
type zset struct {
	e      entry
	n      int64
	prefix []byte
	ranked bool // its rank levels are kept (zrank.go)
	top    int  // its highest level with entries
	levels bool // it may have level entries (ranked, or was this command)
}

func (t *txn) zsetFor(key []byte) (*zset, *messages.Reply) {
	e, r := t.lookupAs(key, typeZSet)
	if r != nil {
		return nil, r
	}
	return newZSet(e), nil
}

func (z *zset) memberKey(m []byte) []byte {
	return append(append(slices.Clip(z.prefix), zMember), m...)
}

func (z *zset) indexKey(score float64, m []byte) []byte {
	k := binary.BigEndian.AppendUint64(append(slices.Clip(z.prefix), zIndex), sortable(score))
	return append(k, m...)
}

// indexFrom is the first index key of scores at or above score.
func (z *zset) indexFrom(score float64) []byte {
	return binary.BigEndian.AppendUint64(append(slices.Clip(z.prefix), zIndex), sortable(score))
}

func (z *zset) indexEnd() []byte { return append(slices.Clip(z.prefix), zIndex+1) }

// indexAfter is the first index key of scores above score.
func (z *zset) indexAfter(score float64) []byte {
	s := sortable(score)
	if s == math.MaxUint64 {
		return z.indexEnd()
	}
	return binary.BigEndian.AppendUint64(append(slices.Clip(z.prefix), zIndex), s+1)
}

// score is m's score, if m is a member.
func (t *txn) score(z *zset, m []byte) (float64, bool) {
	if !z.e.exists {
		return 0, false
	}
	v, ok := t.get(z.memberKey(m))
	if !ok || len(v) != 8 {
		return 0, false
	}
	return math.Float64frombits(binary.BigEndian.Uint64(v)), true
}

func (t *txn) putMember(z *zset, m []byte, score float64) {
	if score == 0 {
		score = 0 // -0 is kept as 0, as Redis keeps it
	}
	t.set(z.memberKey(m), binary.BigEndian.AppendUint64(nil, math.Float64bits(score)))
	t.set(z.indexKey(score, m), nil)
}

func (t *txn) dropMember(z *zset, m []byte, score float64) {
	t.del(z.memberKey(m))
	t.del(z.indexKey(score, m))
}

// scored is a member with its score.
type scored struct {
	member []byte
	score  float64
}

// each calls fn with the members from the lowest score in order (from
// the first whose score is at least from, when given), until fn says
// stop.
func (t *txn) each(z *zset, from *float64, fn func(s scored) bool) {
	lower := z.indexFrom(math.Inf(-1))
	if from != nil {
		lower = z.indexFrom(*from)
	}
	t.scanIndex(z, lower, z.indexEnd(), false, fn)
}

// eachDown calls fn with the members from the highest score down (from
// the last whose score is at most upto, when given), until fn says stop.
func (t *txn) eachDown(z *zset, upto *float64, fn func(s scored) bool) {
	upper := z.indexEnd()
	if upto != nil {
		upper = z.indexAfter(*upto)
	}
	t.scanIndex(z, z.indexFrom(math.Inf(-1)), upper, true, fn)
}

// scanIndex calls fn with the members whose index keys are in [lower,
// upper), in order or, when down, in reverse, until fn says stop.
func (t *txn) scanIndex(z *zset, lower, upper []byte, down bool, fn func(s scored) bool) {
	if !z.e.exists {
		return
	}
	scan := t.r.Scan
	if down {
		scan = t.r.ReverseScan
	}
	var copies arena
	must(scan(lower, upper, func(k, _ []byte) bool {
		s := z.suffix(k)
		return fn(scored{member: copies.copy(s[8:], 0), score: unsortable(s)})
	}))
}

// fromIndex is the member and score of k, a member's index key; the
// member is k's own bytes.
func (z *zset) fromIndex(k []byte) scored {
	s := z.suffix(k)
	return scored{member: s[8:], score: unsortable(s)}
}

// parseScore parses a score as Redis's string2d: strtod over the whole
// argument, no leading space, no NaN, no overflow or underflow to zero.
func parseScore(b []byte) (float64, bool) {
	if len(b) == 0 || isCSpace(b[0]) {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsNaN(f) {
		return 0, false
	}
	return f, true
}

func isCSpace(c byte) bool { return c == ' ' || (c >= '\t' && c <= '\r') }

// parseBound parses a range bound as Redis's zslParseRange: "(" for an
// open bound, then strtod's reading of the rest (leading spaces skipped,
// overflow to infinity, an empty string 0), no NaN.
func parseBound(b []byte) (v float64, open, ok bool) {
	if len(b) > 0 && b[0] == '(' {
		open, b = true, b[1:]
	}
	s := string(bytes.TrimLeft(b, " \t\n\v\f\r"))
	if s == "" {
		return 0, open, true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) || math.IsNaN(f) {
		return 0, false, false
	}
	return f, open, true
}

// scoreRange is a parsed min-max range.
type scoreRange struct {
	min, max         float64
	minOpen, maxOpen bool
}

func parseRange(minArg, maxArg []byte) (scoreRange, *messages.Reply) {
	var r scoreRange
	var ok1, ok2 bool
	r.min, r.minOpen, ok1 = parseBound(minArg)
	r.max, r.maxOpen, ok2 = parseBound(maxArg)
	if !ok1 || !ok2 {
		return r, errMinMaxFloat
	}
	return r, nil
}

func (r scoreRange) aboveMin(s float64) bool { return s > r.min || !r.minOpen && s == r.min }
func (r scoreRange) belowMax(s float64) bool { return s < r.max || !r.maxOpen && s == r.max }

// empty reports whether no score is in r.
func (r scoreRange) empty() bool {
	return r.min > r.max || (r.min == r.max && (r.minOpen || r.maxOpen))
}

// bounds are the index keys around r's members: the first at or after
// them, the first after them.
func (z *zset) bounds(r scoreRange) (lower, upper []byte) {
	lower, upper = z.indexFrom(r.min), z.indexAfter(r.max)
	if r.minOpen {
		lower = z.indexAfter(r.min)
	}
	if r.maxOpen {
		upper = z.indexFrom(r.max)
	}
	return lower, upper
}

// inRange lists the members in r, lowest score first.
func (t *txn) inRange(z *zset, r scoreRange) []scored {
	var out []scored
	if r.empty() {
		return out
	}
	from := r.min
	t.each(z, &from, func(s scored) bool {
		if !r.aboveMin(s.score) {
			return true
		}
		if !r.belowMax(s.score) {
			return false
		}
		out = append(out, s)
		return true
	})
	return out
}

// ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member ...]
func cmdZAdd(t *txn, a [][]byte) *messages.Reply { return t.zadd(a, false) }

// ZINCRBY key increment member
func cmdZIncrBy(t *txn, a [][]byte) *messages.Reply { return t.zadd(a, true) }

func (t *txn) zadd(a [][]byte, incrby bool) *messages.Reply {
	var nx, xx, gt, lt, ch, incr bool
	i := 2
	for ; !incrby && i < len(a); i++ {
		switch {
		case isOpt(a[i], "nx"):
			nx = true
		case isOpt(a[i], "xx"):
			xx = true
		case isOpt(a[i], "ch"):
			ch = true
		case isOpt(a[i], "incr"):
			incr = true
		case isOpt(a[i], "gt"):
			gt = true
		case isOpt(a[i], "lt"):
			lt = true
		default:
			goto pairs
		}
	}
pairs:
	incr = incr || incrby
	rest := a[i:]
	switch {
	case len(rest)%2 != 0 || len(rest) == 0:
		return errSyntax
	case nx && xx:
		return errXXNX
	case gt && nx || lt && nx || gt && lt:
		return errGTLTNX
	case incr && len(rest) > 2:
		return errIncrPair
	}
	scores := make([]float64, len(rest)/2)
	for j := range scores {
		f, ok := parseScore(rest[2*j])
		if !ok {
			return errNotFloat
		}
		scores[j] = f
	}
	z, r := t.zsetFor(a[1])
	if r != nil {
		return r
	}
	var added, updated, processed int64
	var last float64
	existed := z.e.exists
	z.bulk(len(scores))
	if z.e.exists || !xx {
		for j, score := range scores {
			m := rest[2*j+1]
			cur, exists := t.score(z, m)
			switch {
			case exists && nx:
				continue
			case exists:
				if incr {
					score += cur
					if math.IsNaN(score) {
						return errScoreNaN
					}
				}
				if lt && score >= cur || gt && score <= cur {
					continue
				}
				if score != cur {
					t.moveMember(z, m, cur, score)
					updated++
				}
			case xx:
				continue
			default:
				t.addMember(z, m, score)
				added++
				z.e.exists = true // a member given twice is found the second time
			}
			processed++
			last = score
		}
		if added+updated > 0 {
			z.e.exists = existed // a new key fires "new"
			t.saveZSet(z)
		}
		if added+updated > 0 {
			event := "zadd"
			if incr {
				event = "zincr"
			}
			t.notify(ClassZset, event, a[1])
		}
	}
	switch {
	case incr && processed > 0:
		return double(last)
	case incr:
		return nullBulk
	case ch:
		return integer(added + updated)
	}
	return integer(added)
}

func double(f float64) *messages.Reply {
	return &messages.Reply{Value: &messages.Reply_Double{Double: f}}
}

// ZREM key member [member ...]
func cmdZRem(t *txn, a [][]byte) *messages.Reply {
	z, r := t.zsetFor(a[1])
	if r != nil || !z.e.exists {
		return or(r, zero)
	}
	removed := int64(0)
	z.bulk(len(a) - 2)
	for _, m := range a[2:] {
		if s, ok := t.score(z, m); ok {
			t.removeMember(z, m, s)
			removed++
		}
	}
	if removed > 0 {
		t.saveZSet(z)
		t.notify(ClassZset, "zrem", a[1])
		t.deletedIfEmpty(&z.e)
	}
	return integer(removed)
}

// ZCARD key
func cmdZCard(t *txn, a [][]byte) *messages.Reply {
	z, r := t.zsetFor(a[1])
	if r != nil {
		return r
	}
	return integer(z.n)
}

// ZSCORE key member
func cmdZScore(t *txn, a [][]byte) *messages.Reply {
	z, r := t.zsetFor(a[1])
	if r != nil {
		return r
	}
	if s, ok := t.score(z, a[2]); ok {
		return double(s)
	}
	return nullBulk
}

// ZMSCORE key member [member ...]
func cmdZMScore(t *txn, a [][]byte) *messages.Reply {
	z, r := t.zsetFor(a[1])
	if r != nil {
		return r
	}
	items := make([]*messages.Reply, len(a)-2)
	for i, m := range a[2:] {
		items[i] = nullBulk
		if s, ok := t.score(z, m); ok {
			items[i] = double(s)
		}
	}
	return array(items)
}

// ZRANK, ZREVRANK key member
func rankCmd(rev bool) func(*txn, [][]byte) *messages.Reply {
	return func(t *txn, a [][]byte) *messages.Reply {
		z, r := t.zsetFor(a[1])
		if r != nil {
			return r
		}
		s, ok := t.score(z, a[2])
		if !ok {
			return nullBulk
		}
		rank := t.below(z, z.indexKey(s, a[2]))
		if rev {
			rank = z.n - 1 - rank
		}
		return integer(rank)
	}
}

// ZCOUNT key min max
func cmdZCount(t *txn, a [][]byte) *messages.Reply {
	rg, r := parseRange(a[2], a[3])
	if r != nil {
		return r
	}
	z, r := t.zsetFor(a[1])
	if r != nil {
		return r
	}
	if rg.empty() {
		return zero
	}
	lower, upper := z.bounds(rg)
	return integer(t.below(z, upper) - t.below(z, lower)) // lower <= upper: the range is not empty
}

// zrangeBy is what a range command's start and stop are.
type zrangeBy int

const (
	byRank zrangeBy = iota
	byScore
	byLex
)

// zrangeForm is how a range command reads its arguments: ZRANGE takes
// BYSCORE, BYLEX and REV as options; the others have them fixed.
type zrangeForm struct {
	any bool
	by  zrangeBy
	rev bool
}

var (
	zrangeAny        = zrangeForm{any: true}
	zrangeByScore    = zrangeForm{by: byScore}
	zrangeRevByScore = zrangeForm{by: byScore, rev: true}
	zrangeRev        = zrangeForm{rev: true}
	zrangeByLex      = zrangeForm{by: byLex}
	zrangeRevByLex   = zrangeForm{by: byLex, rev: true}
)

var errWithScoresLex = errReply("ERR syntax error, WITHSCORES not supported in combination with BYLEX")

// ZRANGE key start stop [BYSCORE|BYLEX] [REV] [LIMIT offset count]
// [WITHSCORES], and ZRANGEBYSCORE, ZREVRANGEBYSCORE, ZREVRANGE,
// ZRANGEBYLEX, ZREVRANGEBYLEX.
func zrangeCmd(form zrangeForm) func(*txn, [][]byte) *messages.Reply {
	return func(t *txn, a [][]byte) *messages.Reply {
		out, withScores, r := t.zrange(a[1:], form, false)
		if r != nil {
			return r
		}
		return t.scoredReply(out, withScores)
	}
}

// ZRANGESTORE dst src min max [BYSCORE|BYLEX] [REV] [LIMIT offset count]:
// the range replaces dst (an empty one, or a missing src, deletes it).
func cmdZRangeStore(t *txn, a [][]byte) *messages.Reply {
	out, _, r := t.zrange(a[2:], zrangeAny, true)
	if r != nil {
		return r
	}
	return t.storeZSet(a[1], out, "zrangestore")
}

// zrange selects a range: a is key start stop [options...]; store
// refuses WITHSCORES (ZRANGESTORE).
func (t *txn) zrange(a [][]byte, form zrangeForm, store bool) (out []scored, withScores bool, _ *messages.Reply) {
	by, rev := form.by, form.rev
	limited := false
	var offset, limit int64 = 0, -1
	for j := 3; j < len(a); j++ {
		switch {
		case !store && isOpt(a[j], "withscores"):
			withScores = true
		case isOpt(a[j], "limit") && len(a)-j-1 >= 2:
			var ok1, ok2 bool
			offset, ok1 = parseInt(a[j+1])
			limit, ok2 = parseInt(a[j+2])
			if !ok1 || !ok2 {
				return nil, false, errNotInteger
			}
			limited = true
			j += 2
		case form.any && !rev && isOpt(a[j], "rev"):
			rev = true
		case form.any && by == byRank && isOpt(a[j], "byscore"):
			by = byScore
		case form.any && by == byRank && isOpt(a[j], "bylex"):
			by = byLex
		default:
			return nil, false, errSyntax
		}
	}
	switch {
	case limited && limit != -1 && by == byRank:
		return nil, false, errLimitRank
	case withScores && by == byLex:
		return nil, false, errWithScoresLex
	}
	lo, hi := a[1], a[2]
	if rev && by != byRank {
		lo, hi = hi, lo
	}
	if by == byRank {
		start, ok1 := parseInt(lo)
		stop, ok2 := parseInt(hi)
		if !ok1 || !ok2 {
			return nil, false, errNotInteger
		}
		z, r := t.zsetFor(a[0])
		if r != nil {
			return nil, false, r
		}
		from, to := (&list{n: z.n}).span(start, stop)
		if rev {
			from, to = z.n-to, z.n-from
		}
		out = t.byRank(z, from, to)
		if rev {
			slices.Reverse(out)
		}
		return out, withScores, nil
	}
	// The range is walked from its first member in the order asked for,
	// and the walk stops once LIMIT has its count: the top ten by score
	// (ZREVRANGEBYSCORE +inf -inf LIMIT 0 10) read ten members.
	// in says whether a member is in the range, and whether the walk
	// goes on past it.
	var walk func(z *zset, fn func(s scored) bool)
	in := func(scored) (ok, more bool) { return true, true }
	// bounds are the index keys [lower, upper) of the range's members,
	// when a walk may start anywhere in it (ok).
	var bounds func(z *zset) (lower, upper []byte, ok bool)
	if by == byScore {
		rg, r := parseRange(lo, hi)
		if r != nil {
			return nil, false, r
		}
		bounds = func(z *zset) ([]byte, []byte, bool) {
			lower, upper := z.bounds(rg)
			return lower, upper, !rg.empty()
		}
		if rev {
			walk = func(z *zset, fn func(s scored) bool) { t.eachDown(z, &rg.max, fn) }
			in = func(s scored) (bool, bool) {
				return rg.belowMax(s.score) && rg.aboveMin(s.score), rg.aboveMin(s.score)
			}
		} else {
			walk = func(z *zset, fn func(s scored) bool) { t.each(z, &rg.min, fn) }
			in = func(s scored) (bool, bool) {
				return rg.aboveMin(s.score) && rg.belowMax(s.score), rg.belowMax(s.score)
			}
		}
	} else {
		rg, r := parseLexRange(lo, hi)
		if r != nil {
			return nil, false, r
		}
		bounds = func(z *zset) ([]byte, []byte, bool) { return t.lexBounds(z, rg) }
		walk = func(z *zset, fn func(s scored) bool) { t.eachInLex(z, rg, fn) }
		if rev {
			walk = func(z *zset, fn func(s scored) bool) {
				if lower, upper, ok := t.lexBounds(z, rg); ok {
					t.scanIndex(z, lower, upper, true, fn)
					return
				}
				// Members of several scores are in no lex order: as
				// Redis's skiplist walked as a list finds them, the
				// members from the first while at or below max, then
				// back from the last of those while at or above min.
				var upto []scored
				t.each(z, nil, func(s scored) bool {
					if !rg.belowMax(s.member) {
						return false
					}
					upto = append(upto, s)
					return true
				})
				for i := len(upto) - 1; i >= 0 && rg.aboveMin(upto[i].member); i-- {
					if !fn(upto[i]) {
						return
					}
				}
			}
		}
	}
	z, r := t.zsetFor(a[0])
	if r != nil {
		return nil, false, r
	}
	if offset < 0 || limit == 0 {
		return nil, withScores, nil
	}
	skipped := int64(0)
	var lower, upper []byte
	jump := false
	if offset > 0 && z.ranked {
		lower, upper, jump = bounds(z)
	}
	if jump {
		// The walk starts offset members into the range, found by rank.
		var at []byte
		if rev {
			at = t.atRank(z, t.below(z, upper)-1-offset)
		} else {
			at = t.atRank(z, t.below(z, lower)+offset)
		}
		if at == nil {
			return nil, withScores, nil
		}
		skipped = offset
		walk = func(z *zset, fn func(s scored) bool) {
			if rev {
				t.scanIndex(z, lower, append(at, 0), true, fn)
			} else {
				t.scanIndex(z, at, upper, false, fn)
			}
		}
	}
	walk(z, func(s scored) bool {
		ok, more := in(s)
		switch {
		case !ok:
			return more
		case skipped < offset:
			skipped++
			return true
		}
		out = append(out, s)
		return limit < 0 || int64(len(out)) < limit
	})
	return out, withScores, nil
}

// storeZSet makes key a sorted set of out, whatever it held (an empty out
// deletes it), and answers its size. It fires event on key ("new" before
// it if key did not exist: Redis's setKey overwrites a key that does), or
// "del" if an empty out deleted key.
func (t *txn) storeZSet(key []byte, out []scored, event string) *messages.Reply {
	d := t.lookup(key)
	existed := d.exists
	if existed {
		t.deleteKey(&d)
	}
	if len(out) == 0 {
		if existed {
			t.notify(ClassGeneric, "del", key)
		}
		return zero
	}
	// An overwrite fires no "new": the record is written as if for a
	// key that exists, with no expiry (deleteKey cleared it).
	d.exists = existed
	z := newZSet(d)
	t.fillZSet(z, out)
	t.saveZSet(z)
	t.notify(ClassZset, event, key)
	return integer(z.n)
}

// byRank lists the members at ranks [from, to), lowest score first. A
// range near the top is read down from the highest score (ZREVRANGE 0 9
// reads ten members); any other from rank from (atRank), so a page in the
// middle of a big set reads its page.
func (t *txn) byRank(z *zset, from, to int64) []scored {
	if from >= to {
		return nil
	}
	out := make([]scored, 0, min(to-from, 1024))
	add := func(s scored) bool {
		out = append(out, s)
		return int64(len(out)) < to-from
	}
	if skip := z.n - to; skip < from && (skip < 64 || !z.ranked) {
		i := int64(0)
		t.eachDown(z, nil, func(s scored) bool {
			i++
			return i <= skip || add(s)
		})
		slices.Reverse(out)
		return out
	}
	if start := t.atRank(z, from); start != nil {
		t.scanIndex(z, start, z.indexEnd(), false, add)
	}
	return out
}

// lexBound is a bound of a lex range: "-", "+", "[value" or "(value".
type lexBound struct {
	inf  int // -1: "-", 1: "+", 0: a value
	v    []byte
	open bool
}

var errLexRange = errReply("ERR min or max not valid string range item")

func parseLexBound(b []byte) (lexBound, bool) {
	switch {
	case len(b) == 1 && b[0] == '-':
		return lexBound{inf: -1}, true
	case len(b) == 1 && b[0] == '+':
		return lexBound{inf: 1}, true
	case len(b) > 0 && (b[0] == '[' || b[0] == '('):
		return lexBound{v: b[1:], open: b[0] == '('}, true
	}
	return lexBound{}, false
}

type lexRange struct{ min, max lexBound }

func parseLexRange(minArg, maxArg []byte) (lexRange, *messages.Reply) {
	lo, ok1 := parseLexBound(minArg)
	hi, ok2 := parseLexBound(maxArg)
	if !ok1 || !ok2 {
		return lexRange{}, errLexRange
	}
	return lexRange{lo, hi}, nil
}

func (r lexRange) aboveMin(m []byte) bool {
	if r.min.inf != 0 {
		return r.min.inf < 0
	}
	c := bytes.Compare(m, r.min.v)
	return c > 0 || !r.min.open && c == 0
}

func (r lexRange) belowMax(m []byte) bool {
	if r.max.inf != 0 {
		return r.max.inf > 0
	}
	c := bytes.Compare(m, r.max.v)
	return c < 0 || !r.max.open && c == 0
}

// inLexRange lists, in order, the members from the first at or above the
// range's min while they are at or below its max: for a set whose members
// share one score (the only kind lex ranges are meant for, as in Redis),
// the members in the range.
func (t *txn) inLexRange(z *zset, r lexRange) []scored {
	var out []scored
	t.eachInLex(z, r, func(s scored) bool {
		out = append(out, s)
		return true
	})
	return out
}

// eachInLex calls fn with the members inLexRange lists, in order, until
// fn says stop.
func (t *txn) eachInLex(z *zset, r lexRange, fn func(s scored) bool) {
	if lower, upper, ok := t.lexBounds(z, r); ok {
		t.scanIndex(z, lower, upper, false, fn)
		return
	}
	started := false
	t.each(z, nil, func(s scored) bool {
		if !started && !r.aboveMin(s.member) {
			return true
		}
		started = true
		return r.belowMax(s.member) && fn(s)
	})
}

// lexBounds are the index keys [lower, upper) of r's members when all of
// z's members share one score, so that the index is in member order: a
// walk of a lex range starts at its first member, and ranks count it.
// ok is false for a set of several scores (or none), whose lex ranges
// Redis leaves unspecified and eachInLex walks from the start; lower is
// upper when r holds nothing.
func (t *txn) lexBounds(z *zset, r lexRange) (lower, upper []byte, ok bool) {
	if !z.e.exists {
		return nil, nil, false
	}
	var first, last scored
	t.each(z, nil, func(s scored) bool { first = s; return false })
	t.eachDown(z, nil, func(s scored) bool { last = s; return false })
	if first.score != last.score {
		return nil, nil, false
	}
	score := first.score
	bound := func(b lexBound, after bool) []byte {
		switch {
		case b.inf < 0:
			return z.indexFrom(score)
		case b.inf > 0:
			return z.indexAfter(score)
		case after:
			return append(z.indexKey(score, b.v), 0) // the first key after b.v's
		}
		return z.indexKey(score, b.v)
	}
	lower, upper = bound(r.min, r.min.open), bound(r.max, !r.max.open)
	if bytes.Compare(lower, upper) > 0 {
		upper = lower
	}
	return lower, upper, true
}

// ZLEXCOUNT key min max
func cmdZLexCount(t *txn, a [][]byte) *messages.Reply {
	rg, r := parseLexRange(a[2], a[3])
	if r != nil {
		return r
	}
	z, r := t.zsetFor(a[1])
	if r != nil {
		return r
	}
	if lower, upper, ok := t.lexBounds(z, rg); ok {
		return integer(t.below(z, upper) - t.below(z, lower))
	}
	return integer(int64(len(t.inLexRange(z, rg))))
}

// ZREMRANGEBYLEX key min max
func cmdZRemRangeByLex(t *txn, a [][]byte) *messages.Reply {
	rg, r := parseLexRange(a[2], a[3])
	if r != nil {
		return r
	}
	z, r := t.zsetFor(a[1])
	if r != nil || !z.e.exists {
		return or(r, zero)
	}
	return t.zremove(z, t.inLexRange(z, rg), "zremrangebylex")
}

// scoredReply is members, with their scores when withScores (pairs:
// flat in RESP2, nested in RESP3).
func (t *txn) scoredReply(out []scored, withScores bool) *messages.Reply {
	if !withScores {
		b := t.newReplies(len(out))
		for _, s := range out {
			b.bulkRef(s.member)
		}
		return b.array()
	}
	b := newReplies(2 * len(out))
	scores := make([]messages.Reply_Double, len(out))
	for i, s := range out {
		b.bulkRef(s.member)
		scores[i].Double = s.score
		b.next().Value = &scores[i]
	}
	return &messages.Reply{Value: &messages.Reply_Pairs{Pairs: &messages.Replies{Items: b.items}}}
}

// ZREMRANGEBYSCORE key min max
func cmdZRemRangeByScore(t *txn, a [][]byte) *messages.Reply {
	rg, r := parseRange(a[2], a[3])
	if r != nil {
		return r
	}
	z, r := t.zsetFor(a[1])
	if r != nil || !z.e.exists {
		return or(r, zero)
	}
	return t.zremove(z, t.inRange(z, rg), "zremrangebyscore")
}

// ZREMRANGEBYRANK key start stop
func cmdZRemRangeByRank(t *txn, a [][]byte) *messages.Reply {
	start, ok1 := parseInt(a[2])
	stop, ok2 := parseInt(a[3])
	if !ok1 || !ok2 {
		return errNotInteger
	}
	z, r := t.zsetFor(a[1])
	if r != nil || !z.e.exists {
		return or(r, zero)
	}
	from, to := (&list{n: z.n}).span(start, stop)
	return t.zremove(z, t.byRank(z, from, to), "zremrangebyrank")
}

// zpop removes and returns up to n members of the live z, from the
// lowest score, or the highest.
func (t *txn) zpop(z *zset, highest bool, n int64) []scored {
	var out []scored
	walk := t.each
	if highest {
		walk = t.eachDown
	}
	walk(z, nil, func(s scored) bool {
		out = append(out, s)
		return int64(len(out)) < n
	})
	event := "zpopmin"
	if highest {
		event = "zpopmax"
	}
	t.zremove(z, out, event)
	return out
}

// zremove removes out's members from z and, if it removed any, fires
// event on z's key, then "del" if z is left empty.
func (t *txn) zremove(z *zset, out []scored, event string) *messages.Reply {
	z.bulk(len(out))
	for _, s := range out {
		t.removeMember(z, s.member, s.score)
	}
	if len(out) > 0 {
		t.saveZSet(z)
		t.notify(ClassZset, event, z.e.key)
		t.deletedIfEmpty(&z.e)
	}
	return integer(int64(len(out)))
}

// ZPOPMIN, ZPOPMAX key [count]: a member and its score, flat; with a
// count, up to count of them (pairs: nested in RESP3).
func zpopCmd(highest bool) func(*txn, [][]byte) *messages.Reply {
	return func(t *txn, a [][]byte) *messages.Reply {
		if len(a) > 3 {
			return errSyntax
		}
		count := int64(-1)
		if len(a) == 3 {
			var ok bool
			if count, ok = parseInt(a[2]); !ok || count < 0 {
				return errPositiveCount
			}
		}
		z, r := t.zsetFor(a[1])
		switch {
		case r != nil:
			return r
		case !z.e.exists || count == 0:
			return array([]*messages.Reply{})
		}
		out := t.zpop(z, highest, max(count, 1))
		if count == -1 {
			return array([]*messages.Reply{bulk(out[0].member), double(out[0].score)})
		}
		return t.scoredReply(out, true)
	}
}

// ZMPOP numkeys key [key ...] MIN|MAX [COUNT count]: pops up to count
// members (1) from the first of the keys that holds a sorted set:
// [key, [[member, score], ...]] (nested in RESP2 too), or a nil array.
func cmdZMPop(t *txn, a [][]byte) *messages.Reply {
	keys, lowest, count, r := parseMPop(a, "min", "max")
	if r != nil {
		return r
	}
	for _, k := range keys {
		z, r := t.zsetFor(k)
		if r != nil {
			return r
		}
		if !z.e.exists {
			continue
		}
		out := t.zpop(z, !lowest, count)
		items := make([]*messages.Reply, len(out))
		for i, s := range out {
			items[i] = array([]*messages.Reply{bulk(s.member), double(s.score)})
		}
		return array([]*messages.Reply{bulk(k), array(items)})
	}
	return nullArray
}

// ZRANDMEMBER key [count [WITHSCORES]]: as HRANDFIELD, members and their
// scores.
func cmdZRandMember(t *txn, a [][]byte) *messages.Reply {
	return t.randomElements(a, "withscores", func() (*randomPool, *messages.Reply) {
		z, r := t.zsetFor(a[1])
		if r != nil || !z.e.exists {
			return nil, r
		}
		p := &randomPool{n: int(z.n), each: func(fn func(randomElement) bool) {
			t.each(z, nil, func(s scored) bool { return fn(randomElement{name: s.member, value: double(s.score)}) })
		}}
		if z.ranked {
			// A member by rank: a walk of about 16 entries a level.
			p.cost = 16 * (z.top + 1)
			p.at = func(i int) (randomElement, bool) {
				s := z.fromIndex(t.atRank(z, int64(i)))
				return randomElement{name: s.member, value: double(s.score)}, true
			}
		}
		return p, nil
	})
}

// zsetOp is ZUNION's, ZINTER's or ZDIFF's.
type zsetOp int

const (
	zUnion zsetOp = iota
	zInter
	zDiff
)

// zsource is an input of ZUNION, ZINTER, ZDIFF: a sorted set, or a set
// (its members scored 1), with its weight.
type zsource struct {
	members []scored
	index   map[string]float64
	weight  float64
}

// zalgebra runs ZUNION, ZINTER, ZDIFF and their STORE forms, and
// ZINTERCARD: a is the whole command, numkeys at a[at]; store is the
// destination (nil: none); card counts (ZINTERCARD).
func (t *txn) zalgebra(a [][]byte, at int, op zsetOp, store []byte, card bool) *messages.Reply {
	n, ok := parseInt(a[at])
	switch {
	case !ok:
		return errNotInteger
	case n < 1:
		return errReply("ERR at least 1 input key is needed for '" + string(bytes.ToLower(a[0])) + "' command")
	case n > int64(len(a)-at-1):
		return errSyntax
	}
	srcs := make([]zsource, n)
	for i, k := range a[at+1 : at+1+int(n)] {
		srcs[i] = zsource{weight: 1, index: map[string]float64{}}
		e := t.lookup(k)
		switch {
		case !e.exists:
		case e.rec.typ == typeZSet:
			z := newZSet(e)
			t.each(z, nil, func(s scored) bool {
				srcs[i].members = append(srcs[i].members, s)
				return true
			})
		case e.rec.typ == typeSet:
			t.eachField(&e, func(m, _ []byte) {
				srcs[i].members = append(srcs[i].members, scored{member: bytes.Clone(m), score: 1})
			})
		default:
			return errWrongType
		}
		for _, s := range srcs[i].members {
			srcs[i].index[string(s.member)] = s.score
		}
	}
	aggregate, withScores, limit := "sum", false, int64(0)
	for j := at + 1 + int(n); j < len(a); j++ {
		left := len(a) - j
		switch {
		case op != zDiff && !card && left > int(n) && isOpt(a[j], "weights"):
			for i := range srcs {
				j++
				w, ok := parseScore(a[j])
				if !ok {
					return errReply("ERR weight value is not a float")
				}
				srcs[i].weight = w
			}
		case op != zDiff && !card && left >= 2 && isOpt(a[j], "aggregate"):
			j++
			switch {
			case isOpt(a[j], "sum"), isOpt(a[j], "min"), isOpt(a[j], "max"):
				aggregate = string(bytes.ToLower(a[j]))
			default:
				return errSyntax
			}
		case store == nil && !card && isOpt(a[j], "withscores"):
			withScores = true
		case card && left >= 2 && isOpt(a[j], "limit"):
			j++
			if limit, ok = parseInt(a[j]); !ok || limit < 0 {
				return errReply("ERR LIMIT can't be negative")
			}
		default:
			return errSyntax
		}
	}
	weighted := func(src *zsource, s float64) float64 {
		if v := s * src.weight; !math.IsNaN(v) {
			return v
		}
		return 0
	}
	combine := func(x, y float64) float64 {
		switch aggregate {
		case "min":
			return min(x, y)
		case "max":
			return max(x, y)
		}
		if v := x + y; !math.IsNaN(v) {
			return v
		}
		return 0
	}
	var out []scored
	switch op {
	case zUnion:
		at := map[string]int{}
		for i := range srcs {
			for _, s := range srcs[i].members {
				v := weighted(&srcs[i], s.score)
				if k, ok := at[string(s.member)]; ok {
					out[k].score = combine(out[k].score, v)
					continue
				}
				at[string(s.member)] = len(out)
				out = append(out, scored{s.member, v})
			}
		}
	case zInter:
		// From the smallest input, as Redis does (the order its scores
		// are combined in).
		order := make([]*zsource, len(srcs))
		for i := range srcs {
			order[i] = &srcs[i]
		}
		slices.SortStableFunc(order, func(x, y *zsource) int { return len(x.members) - len(y.members) })
	next:
		for _, s := range order[0].members {
			v := weighted(order[0], s.score)
			for _, o := range order[1:] {
				os, ok := o.index[string(s.member)]
				if !ok {
					continue next
				}
				v = combine(v, weighted(o, os))
			}
			out = append(out, scored{s.member, v})
			if card && limit > 0 && int64(len(out)) >= limit {
				break
			}
		}
	case zDiff:
	diff:
		for _, s := range srcs[0].members {
			for _, o := range srcs[1:] {
				if _, ok := o.index[string(s.member)]; ok {
					continue diff
				}
			}
			out = append(out, s)
		}
	}
	if card {
		return integer(int64(len(out)))
	}
	for i := range out {
		if out[i].score == 0 {
			out[i].score = 0 // no -0, as in a stored set
		}
	}
	slices.SortFunc(out, func(x, y scored) int {
		if c := cmp.Compare(x.score, y.score); c != 0 {
			return c
		}
		return bytes.Compare(x.member, y.member)
	})
	if store != nil {
		return t.storeZSet(store, out, [...]string{zUnion: "zunionstore", zInter: "zinterstore", zDiff: "zdiffstore"}[op])
	}
	return t.scoredReply(out, withScores)
}

// ZUNION, ZINTER, ZDIFF numkeys key [key ...] [WEIGHTS w ...]
// [AGGREGATE SUM|MIN|MAX] [WITHSCORES] (no options for ZDIFF's but
// WITHSCORES).
func zalgebraCmd(op zsetOp) func(*txn, [][]byte) *messages.Reply {
	return func(t *txn, a [][]byte) *messages.Reply { return t.zalgebra(a, 1, op, nil, false) }
}

// ZUNIONSTORE, ZINTERSTORE, ZDIFFSTORE destination numkeys key [key ...]
// [WEIGHTS w ...] [AGGREGATE SUM|MIN|MAX].
func zalgebraStoreCmd(op zsetOp) func(*txn, [][]byte) *messages.Reply {
	return func(t *txn, a [][]byte) *messages.Reply { return t.zalgebra(a, 2, op, a[1], false) }
}

// ZINTERCARD numkeys key [key ...] [LIMIT limit]
func cmdZInterCard(t *txn, a [][]byte) *messages.Reply { return t.zalgebra(a, 1, zInter, nil, true) }
