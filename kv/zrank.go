package kv

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"slices"
)

// Rank levels: a sorted set's ranks in O(log N).
//
// Beside its members and score index (zsets.go), a sorted set keeps, under
// its field prefix, a skip list's upper lanes over the index:
//
//	0x02 L sortable(score) member -> ""             (an entry of level L)
//	0x03 L sortable(score) member -> uvarint(span)  (its span)
//	0x03 L                        -> uvarint(span)  (the head's span)
//
// A member's level is the number of trailing zero nibbles of a hash of
// its bytes (memberLevel, at most maxLevel): one member in 16 has an entry
// at level 1, one in 256 at levels 1 and 2, and every replica picks the
// same. An entry's span is the number of members from it (itself
// included) up to the next entry of its level; the head's, those before
// the level's first entry. A level with no entries has no head, and top is
// the highest level with entries. A walk from the top head down counts
// the members before any index key passing about 16 entries a level
// (walkTo), and finds the member at a rank the same way (atRank): ZRANK,
// ZREVRANK, a range by rank, ZCOUNT, a LIMIT offset, ZRANDMEMBER's picks
// and, for a set of one score, ZLEXCOUNT cost O(log N) where they counted
// through the index.
//
// The spans are apart from the entries because each write rewrites a
// span on every level, the top ones on nearly every write: Pebble keeps
// each version until its memtable is flushed, and an iterator stepping
// over a key steps over all of its versions, where a Get seeks to the
// newest. So walks scan the entries, which are only ever added and
// deleted, and Get the spans.
//
// Keeping the levels costs a write a walk (a few scans): a small set,
// which a count through its index reads as fast, keeps none. A set keeps
// them from rankFrom members, and drops them below rankUntil. The
// record's payload says, after the member count, that the levels are kept
// (rankedMark) and what top is. A set without the mark (a small one, or
// one written by a build before the levels) is read by counting through
// its index, and its first write at rankFrom members or more builds its
// levels (buildLevels), as does a write that adds or removes so many
// members that a build costs less than keeping the levels step by step.
// The levels are a function of the members alone, so a build and a
// sequence of steps leave the same keys.

const (
	zLevel     byte = 0x02
	zSpan      byte = 0x03
	maxLevel        = 8
	rankedMark byte = 1

	rankFrom  = 128 // members from which a set keeps its levels
	rankUntil = 64  // members below which it drops them
)

// levelBits is how many trailing zero bits of a member's hash make a
// level: 4, a fan-out of 16. Tests set 1 to build many levels from few
// members.
var levelBits = 4

// memberLevel is m's level: FNV-1a of m, mixed by splitmix64's finalizer.
func memberLevel(m []byte) int {
	h := uint64(14695981039346656037)
	for _, c := range m {
		h ^= uint64(c)
		h *= 1099511628211
	}
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return min(bits.TrailingZeros64(h)/levelBits, maxLevel)
}

// zsetCounts reads a sorted set record's payload: its member count and
// whether its levels are kept, with their top.
func zsetCounts(p []byte) (n int64, ranked bool, top int) {
	u, k := binary.Uvarint(p)
	if k > 0 && len(p) == k+2 && p[k] == rankedMark && p[k+1] <= maxLevel {
		return int64(u), true, int(p[k+1])
	}
	return int64(u), false, 0
}

// newZSet is the sorted set of e, a live sorted set key or an absent one.
func newZSet(e entry) *zset {
	z := &zset{e: e, prefix: fieldPrefix(e.key)}
	if e.exists {
		z.n, z.ranked, z.top = zsetCounts(e.rec.payload)
		z.levels = z.ranked
	}
	return z
}

// saveZSet builds z's levels if it should keep them and does not, or
// drops them if it should not, then writes its record with its count, mark
// and top, if any changed, or deletes the key when it is empty.
func (t *txn) saveZSet(z *zset) {
	switch keep := z.n >= rankFrom || z.ranked && z.n >= rankUntil; {
	case keep && !z.ranked:
		t.buildLevels(z)
	case !keep:
		if z.levels {
			t.dropLevels(z)
		}
		z.ranked, z.top = false, 0
	}
	if z.n == 0 {
		t.setCount(&z.e, typeZSet, 0)
		return
	}
	if z.e.exists {
		if n, ranked, top := zsetCounts(z.e.rec.payload); n == z.n && ranked == z.ranked && top == z.top {
			return
		}
	}
	if !z.ranked {
		t.setCount(&z.e, typeZSet, z.n)
		return
	}
	t.setCountWith(&z.e, typeZSet, z.n, rankedMark, byte(z.top))
}

// bulk readies z for k members added or removed in one command: when
// keeping its levels step by step would cost more than building them
// once (k walks of about top+1 scans of 16 entries against one pass over
// the members), it drops the mark, and saveZSet builds them.
func (z *zset) bulk(k int) {
	if z.ranked && k > 64 && int64(k)*16*int64(z.top+1) > z.n {
		z.ranked = false
	}
}

// addMember makes m a member of z (it is not one) with score.
func (t *txn) addMember(z *zset, m []byte, score float64) {
	t.putMember(z, m, score)
	if z.ranked {
		t.levelsAdd(z, z.suffix(z.indexKey(score, m)), memberLevel(m))
	}
	z.n++
}

// removeMember removes m, a member of z with score.
func (t *txn) removeMember(z *zset, m []byte, score float64) {
	if z.ranked {
		t.levelsRemove(z, z.suffix(z.indexKey(score, m)))
	}
	t.dropMember(z, m, score)
	z.n--
}

// levelKey is the key of level l's entry of suffix, an index key's
// suffix; with no suffix, the level's first key.
func (z *zset) levelKey(l int, suffix []byte) []byte {
	return append(append(slices.Clip(z.prefix), zLevel, byte(l)), suffix...)
}

// spanKey is the key of the span of level l's entry of suffix, or of its
// head (no suffix).
func (z *zset) spanKey(l int, suffix []byte) []byte {
	return append(append(slices.Clip(z.prefix), zSpan, byte(l)), suffix...)
}

// suffix is an index key's suffix (its score's bits and member): what
// the levels' keys carry.
func (z *zset) suffix(indexKey []byte) []byte { return indexKey[len(z.prefix)+1:] }

// indexStart is the first key of z's score index.
func (z *zset) indexStart() []byte { return append(slices.Clip(z.prefix), zIndex) }

func (t *txn) putSpan(z *zset, l int, suffix []byte, span int64) {
	t.set(z.spanKey(l, suffix), binary.AppendUvarint(nil, uint64(span)))
}

// span reads the span of level l's entry of suffix, or of its head.
func (t *txn) span(z *zset, l int, suffix []byte) int64 {
	v, ok := t.get(z.spanKey(l, suffix))
	u, k := binary.Uvarint(v)
	if !ok || k <= 0 {
		must(errCorruptKey(z.e.key))
	}
	return int64(u)
}

// eachEntry calls fn with the suffixes of level l's entries after from
// (nil: from the level's first), in order, until fn says stop. from must
// be an entry of level l.
func (t *txn) eachEntry(z *zset, l int, from []byte, fn func(s []byte) bool) {
	start := z.levelKey(l, from)
	skip := len(start) - len(from)
	must(t.r.Scan(start, z.levelKey(l+1, nil), func(k, _ []byte) bool {
		if from != nil && bytes.Equal(k, start) {
			return true // from itself
		}
		return fn(k[skip:])
	}))
}

// zstep is where a walk left a level: the level's last entry before the
// walk's target (nil: the head), its span and the members before it;
// whether the next entry is the target itself, and whether another
// entry follows it.
type zstep struct {
	pred   []byte
	span   int64
	rank   int64
	atX    bool
	xAfter bool
}

// zpath is a walk to a target: each level's step, and the members before
// the target.
type zpath struct {
	lv    [maxLevel + 1]zstep
	below int64
}

// walkTo walks z's levels (z.ranked) to x, an index key's suffix (a
// member's, or a bound's): each level from the top is read from where the
// level above stopped, up to its last entry before x. With count, it
// sums the spans it passes, for each step's rank, and reads the index
// from the last entry to x, for the members before x; without, it reads
// only each step's own span.
func (t *txn) walkTo(z *zset, x []byte, count bool) *zpath {
	p := &zpath{}
	var pred []byte // nil: the head
	rank := int64(0)
	for l := z.top; l >= 1; l-- {
		st := &p.lv[l]
		st.pred, st.rank = pred, rank
		if count {
			st.span = t.span(z, l, pred)
		}
		t.eachEntry(z, l, pred, func(s []byte) bool {
			switch c := bytes.Compare(s, x); {
			case st.atX:
				st.xAfter = true
				return false
			case c < 0:
				st.pred = bytes.Clone(s)
				if count {
					rank += st.span
					st.span, st.rank = t.span(z, l, st.pred), rank
				}
			case c == 0:
				st.atX = true
			default:
				return false
			}
			return true
		})
		if !count {
			st.span = t.span(z, l, st.pred)
		}
		pred = st.pred
	}
	if count {
		must(t.r.Scan(append(z.indexStart(), pred...), append(z.indexStart(), x...), func(_, _ []byte) bool {
			rank++
			return true
		}))
	}
	p.below = rank
	return p
}

// moveMember gives m, a member of z with score from, score to.
func (t *txn) moveMember(z *zset, m []byte, from, to float64) {
	if !z.ranked || z.top == 0 || memberLevel(m) > 0 {
		t.removeMember(z, m, from)
		t.addMember(z, m, to)
		return
	}
	// m has no entries: on each level, the span over its old place loses
	// it and the span over its new place gains it, and where both are one
	// span nothing changes.
	a := t.walkTo(z, z.suffix(z.indexKey(from, m)), false)
	b := t.walkTo(z, z.suffix(z.indexKey(to, m)), false)
	for l := 1; l <= z.top; l++ {
		if sa, sb := &a.lv[l], &b.lv[l]; !bytes.Equal(sa.pred, sb.pred) {
			t.putSpan(z, l, sa.pred, sa.span-1)
			t.putSpan(z, l, sb.pred, sb.span+1)
		}
	}
	t.dropMember(z, m, from)
	t.putMember(z, m, to)
}

// levelsAdd gives x, the index suffix of a member of level h just added
// (z.n does not count it yet), its entries, and counts it in the spans
// over it.
func (t *txn) levelsAdd(z *zset, x []byte, h int) {
	if z.top == 0 && h == 0 {
		return // no levels, and x starts none
	}
	// The members before x split the spans x starts; a member of level 0
	// only adds to the spans over it.
	p := t.walkTo(z, x, h > 0)
	for l := 1; l <= max(z.top, h); l++ {
		st := &p.lv[l]
		switch {
		case l > z.top: // the level's first entry
			t.set(z.levelKey(l, x), nil)
			t.putSpan(z, l, nil, p.below)
			t.putSpan(z, l, x, z.n+1-p.below)
		case l <= h: // x splits its predecessor's span
			before := p.below - st.rank
			t.set(z.levelKey(l, x), nil)
			t.putSpan(z, l, st.pred, before)
			t.putSpan(z, l, x, st.span-before+1)
		default:
			t.putSpan(z, l, st.pred, st.span+1)
		}
	}
	z.top = max(z.top, h)
}

// levelsRemove removes the entries of x, the index suffix of a member
// about to go, and takes it out of the spans over it.
func (t *txn) levelsRemove(z *zset, x []byte) {
	if z.top == 0 {
		return
	}
	p := t.walkTo(z, x, false)
	top := z.top
	for l := 1; l <= z.top; l++ {
		st := &p.lv[l]
		if !st.atX {
			t.putSpan(z, l, st.pred, st.span-1)
			continue
		}
		xSpan := t.span(z, l, x)
		t.del(z.levelKey(l, x))
		t.del(z.spanKey(l, x))
		if st.pred == nil && !st.xAfter { // the level's only entry: the level goes
			t.del(z.spanKey(l, nil))
			top = min(top, l-1)
			continue
		}
		t.putSpan(z, l, st.pred, st.span+xSpan-1)
	}
	z.top = top
}

// below counts z's members whose index keys are before key (a member's
// index key, indexFrom's, indexAfter's or indexEnd).
func (t *txn) below(z *zset, key []byte) int64 {
	switch {
	case !z.e.exists:
		return 0
	case key[len(z.prefix)] != zIndex: // indexEnd
		return z.n
	case z.ranked:
		return t.walkTo(z, z.suffix(key), true).below
	}
	n := int64(0)
	must(t.r.Scan(z.indexStart(), key, func(_, _ []byte) bool {
		n++
		return true
	}))
	return n
}

// atRank is the index key of z's member at rank k (from 0, lowest score
// first), or nil when there is none.
func (t *txn) atRank(z *zset, k int64) []byte {
	if !z.e.exists || k < 0 || k >= z.n {
		return nil
	}
	var pred []byte
	for l := z.top; z.ranked && l >= 1; l-- {
		span := t.span(z, l, pred)
		t.eachEntry(z, l, pred, func(s []byte) bool {
			if k < span {
				return false
			}
			k -= span
			pred = bytes.Clone(s)
			span = t.span(z, l, pred)
			return true
		})
	}
	var at []byte
	must(t.r.Scan(append(z.indexStart(), pred...), z.indexEnd(), func(key, _ []byte) bool {
		if k == 0 {
			at = bytes.Clone(key)
			return false
		}
		k--
		return true
	}))
	return at
}

// buildLevels writes z's levels from its index, in place of any it has.
func (t *txn) buildLevels(z *zset) {
	t.dropLevels(z)
	type span struct {
		l      int
		suffix []byte
		n      int64
	}
	var spans []span // written after the scan, which must not see them
	var cur [maxLevel + 1][]byte
	var count [maxLevel + 1]int64
	top := 0
	must(t.r.Scan(z.indexStart(), z.indexEnd(), func(k, _ []byte) bool {
		s := z.suffix(k)
		if h := memberLevel(s[8:]); h > 0 {
			s = bytes.Clone(s)
			for l := 1; l <= h; l++ {
				spans = append(spans, span{l, cur[l], count[l]})
				cur[l], count[l] = s, 0
			}
			top = max(top, h)
		}
		for l := range count {
			count[l]++
		}
		return true
	}))
	for l := 1; l <= top; l++ {
		spans = append(spans, span{l, cur[l], count[l]})
	}
	for _, s := range spans {
		if s.suffix != nil {
			t.set(z.levelKey(s.l, s.suffix), nil)
		}
		t.putSpan(z, s.l, s.suffix, s.n)
	}
	z.ranked, z.top, z.levels = true, top, true
}

// dropLevels deletes z's level entries and spans: one by one when there
// are few, with one range deletion otherwise.
func (t *txn) dropLevels(z *zset) {
	t.deleteRange(append(slices.Clip(z.prefix), zLevel), append(slices.Clip(z.prefix), zSpan+1), 2*smallHash)
	z.levels = false
}

// fillZSet gives z, a sorted set with no members, the members of out
// (each once); saveZSet builds their levels in one pass.
func (t *txn) fillZSet(z *zset, out []scored) {
	for _, s := range out {
		t.putMember(z, s.member, s.score)
	}
	z.n, z.ranked, z.levels = int64(len(out)), false, false
}
