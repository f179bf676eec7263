package kv

import (
	"bytes"
	"math"

	"github.com/coppice-kv/coppice/messages"
)

// hashFor looks key up for a hash command: the entry, or WRONGTYPE.
func (t *txn) hashFor(key []byte) (entry, *messages.Reply) { return t.lookupAs(key, typeHash) }

// lookupAs looks key up for a command on keys of type typ: the entry, or
// WRONGTYPE when the key holds another type.
func (t *txn) lookupAs(key []byte, typ byte) (entry, *messages.Reply) {
	e := t.lookup(key)
	if e.exists && e.rec.typ != typ {
		return e, errWrongType
	}
	return e, nil
}

// setHashLen writes e's record with n fields (keeping its expiry), or
// deletes the key when n is 0.
func (t *txn) setHashLen(e *entry, n int64) { t.setCount(e, typeHash, n) }

// setCount writes the record of e, a key of type typ whose elements are
// field keys, with n of them (keeping its expiry), or deletes the key when
// n is 0 (its elements are gone already).
func (t *txn) setCount(e *entry, typ byte, n int64) { t.setCountWith(e, typ, n) }

// setCountWith is setCount with tail after the count in the record's
// payload (a sorted set's rank mark).
func (t *txn) setCountWith(e *entry, typ byte, n int64, tail ...byte) {
	if n == 0 {
		if e.exists {
			t.del(e.mk)
			if e.rec.hasExp {
				t.del(expiryKey(e.rec.expire, e.key))
			}
			e.exists = false
		}
		return
	}
	hasExp, when := e.exists && e.rec.hasExp, e.rec.expire
	t.added(e)
	rec := append(countRecord(typ, n, hasExp, when), tail...)
	t.set(e.mk, rec)
	e.rec = record{typ: typ, hasExp: hasExp, expire: when, payload: rec[headerLen(hasExp):]}
	e.exists = true
}

// hset sets field/value pairs and returns how many fields are new.
func (t *txn) hset(e *entry, pairs [][]byte) int64 {
	p := fieldPrefix(e.key)
	n := int64(0)
	if e.exists {
		n = e.rec.hashLen()
	}
	added := int64(0)
	for i := 0; i+1 < len(pairs); i += 2 {
		fk := fieldKey(p, pairs[i])
		if !e.exists {
			// A new hash has no fields yet, except the ones this
			// command wrote (a field named twice).
			if added > 0 {
				if _, ok := t.get(fk); ok {
					t.set(fk, pairs[i+1])
					continue
				}
			}
		} else if _, ok := t.get(fk); ok {
			t.set(fk, pairs[i+1])
			continue
		}
		t.set(fk, pairs[i+1])
		added++
	}
	if added > 0 {
		t.setHashLen(e, n+added)
	}
	return added
}

// HSET key field value [field value ...]
func cmdHSet(t *txn, a [][]byte) *messages.Reply {
	if len(a)%2 == 1 {
		return errArity("hset")
	}
	e, r := t.hashFor(a[1])
	if r != nil {
		return r
	}
	n := t.hset(&e, a[2:])
	t.notify(ClassHash, "hset", a[1])
	return integer(n)
}

// HMSET key field value [field value ...]
func cmdHMSet(t *txn, a [][]byte) *messages.Reply {
	if len(a)%2 == 1 {
		return errArity("hmset")
	}
	e, r := t.hashFor(a[1])
	if r != nil {
		return r
	}
	t.hset(&e, a[2:])
	t.notify(ClassHash, "hset", a[1])
	return replyOK
}

// HSETNX key field value
func cmdHSetNX(t *txn, a [][]byte) *messages.Reply {
	e, r := t.hashFor(a[1])
	if r != nil {
		return r
	}
	if e.exists {
		if _, ok := t.get(fieldKey(fieldPrefix(a[1]), a[2])); ok {
			return zero
		}
	}
	t.hset(&e, a[2:4])
	t.notify(ClassHash, "hset", a[1])
	return one
}

// hget returns field's value in a live hash.
func (t *txn) hget(e *entry, field []byte) ([]byte, bool) {
	if !e.exists {
		return nil, false
	}
	return t.get(fieldKey(fieldPrefix(e.key), field))
}

// HGET key field
func cmdHGet(t *txn, a [][]byte) *messages.Reply {
	e, r := t.hashFor(a[1])
	if r != nil {
		return r
	}
	v, ok := t.hget(&e, a[2])
	if !ok {
		return nullBulk
	}
	return bulk(v)
}

// HMGET key field [field ...]
func cmdHMGet(t *txn, a [][]byte) *messages.Reply {
	e, r := t.hashFor(a[1])
	if r != nil {
		return r
	}
	items := make([]*messages.Reply, len(a)-2)
	for i, f := range a[2:] {
		if v, ok := t.hget(&e, f); ok {
			items[i] = bulk(v)
		} else {
			items[i] = nullBulk
		}
	}
	return array(items)
}

// HDEL key field [field ...]
func cmdHDel(t *txn, a [][]byte) *messages.Reply {
	e, r := t.hashFor(a[1])
	if r != nil {
		return r
	}
	if !e.exists {
		return zero
	}
	p := fieldPrefix(a[1])
	deleted := int64(0)
	for _, f := range a[2:] {
		fk := fieldKey(p, f)
		if _, ok := t.get(fk); ok {
			t.del(fk)
			deleted++
		}
	}
	if deleted > 0 {
		t.setHashLen(&e, e.rec.hashLen()-deleted)
		t.notify(ClassHash, "hdel", a[1])
		if !e.exists {
			t.notify(ClassGeneric, "del", a[1])
		}
	}
	return integer(deleted)
}

// eachField calls fn with each field of a live hash, in field order.
func (t *txn) eachField(e *entry, fn func(f, v []byte)) {
	t.walkFields(e, func(f, v []byte) bool {
		fn(f, v)
		return true
	})
}

// walkFields is eachField until fn says stop.
func (t *txn) walkFields(e *entry, fn func(f, v []byte) bool) {
	if !e.exists {
		return
	}
	p := fieldPrefix(e.key)
	must(t.r.Scan(p, successor(p), func(k, v []byte) bool {
		return fn(k[len(p):], v)
	}))
}

// fieldReplies is a reply's elements from e's fields (a hash's or a
// set's), their values, or each field followed by its value.
func (t *txn) fieldReplies(e *entry, fields, values bool) *replies {
	n := e.rec.hashLen()
	if fields && values {
		n *= 2
	}
	b := t.newReplies(int(min(n, 4096)))
	t.eachField(e, func(f, v []byte) {
		if fields {
			b.bulk(f)
		}
		if values {
			b.bulk(v)
		}
	})
	return b
}

// HGETALL key: a map of fields to values.
func cmdHGetAll(t *txn, a [][]byte) *messages.Reply {
	e, r := t.hashFor(a[1])
	if r != nil {
		return r
	}
	return t.fieldReplies(&e, true, true).mapReply()
}

// HKEYS key
func cmdHKeys(t *txn, a [][]byte) *messages.Reply {
	e, r := t.hashFor(a[1])
	if r != nil {
		return r
	}
	return t.fieldReplies(&e, true, false).array()
}

// HVALS key
func cmdHVals(t *txn, a [][]byte) *messages.Reply {
	e, r := t.hashFor(a[1])
	if r != nil {
		return r
	}
	return t.fieldReplies(&e, false, true).array()
}

// HLEN key
func cmdHLen(t *txn, a [][]byte) *messages.Reply {
	e, r := t.hashFor(a[1])
	if r != nil {
		return r
	}
	if !e.exists {
		return zero
	}
	return integer(e.rec.hashLen())
}

// HEXISTS key field
func cmdHExists(t *txn, a [][]byte) *messages.Reply {
	e, r := t.hashFor(a[1])
	if r != nil {
		return r
	}
	if _, ok := t.hget(&e, a[2]); ok {
		return one
	}
	return zero
}

// HSTRLEN key field
func cmdHStrlen(t *txn, a [][]byte) *messages.Reply {
	e, r := t.hashFor(a[1])
	if r != nil {
		return r
	}
	v, _ := t.hget(&e, a[2])
	return integer(int64(len(v)))
}

// HINCRBY key field increment
func cmdHIncrBy(t *txn, a [][]byte) *messages.Reply {
	incr, ok := parseInt(a[3])
	if !ok {
		return errNotInteger
	}
	e, r := t.hashFor(a[1])
	if r != nil {
		return r
	}
	var v int64
	if cur, ok := t.hget(&e, a[2]); ok {
		if v, ok = parseInt(cur); !ok {
			return errHashNotInt
		}
	}
	if (incr < 0 && v < 0 && incr < math.MinInt64-v) || (incr > 0 && v > 0 && incr > math.MaxInt64-v) {
		return errOverflow
	}
	v += incr
	t.hset(&e, [][]byte{a[2], appendInt(nil, v)})
	t.notify(ClassHash, "hincrby", a[1])
	return integer(v)
}

// HINCRBYFLOAT key field increment
func cmdHIncrByFloat(t *txn, a [][]byte) *messages.Reply {
	incr, ok := parseLongDouble(a[3])
	if !ok {
		return errNotFloat
	}
	if incr.f == nil {
		return errArgNaNInf
	}
	e, r := t.hashFor(a[1])
	if r != nil {
		return r
	}
	v := ldFromInt(0)
	if cur, ok := t.hget(&e, a[2]); ok {
		if v, ok = parseLongDouble(cur); !ok {
			return errHashNotFloat
		}
	}
	sum, ok := addLD(v, incr)
	if !ok {
		return errNaNInf
	}
	s := formatLD(sum)
	t.hset(&e, [][]byte{a[2], s})
	t.notify(ClassHash, "hincrbyfloat", a[1])
	return bulk(s)
}

var errRangeLong = errReply("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807")

// HRANDFIELD key [count [WITHVALUES]]: a field chosen at random; with a
// count, up to count distinct ones (all of them when count is at least the
// hash's size), or -count with repeats; WITHVALUES pairs each with its
// value (a flat array in RESP2, pairs in RESP3). A read: each node
// chooses its own.
func cmdHRandField(t *txn, a [][]byte) *messages.Reply {
	return t.randomElements(a, "withvalues", func() (*randomPool, *messages.Reply) {
		e, r := t.hashFor(a[1])
		if r != nil || !e.exists {
			return nil, r
		}
		return t.fieldPool(&e, true), nil
	})
}

// fieldPool is the pool of e's fields (a hash's or a set's), with their
// values if values. Its walk lends the store's bytes (raw: the value);
// keep copies the elements picked. On a read of a set or hash of
// indexFrom fields or more, a reader that keeps an index of its fields
// (FieldIndexer) gives a field by its place: one read for a value, none
// for a member.
func (t *txn) fieldPool(e *entry, values bool) *randomPool {
	p := &randomPool{
		n: int(e.rec.hashLen()),
		each: func(fn func(randomElement) bool) {
			t.walkFields(e, func(f, v []byte) bool { return fn(randomElement{name: f, raw: v}) })
		},
		keep: func(el randomElement) randomElement {
			kept := randomElement{name: bytes.Clone(el.name)}
			if values {
				kept.value = bulk(bytes.Clone(el.raw))
			}
			return kept
		},
	}
	ix, ok := t.r.(FieldIndexer)
	if !ok || t.w != nil || p.n < indexFrom {
		return p
	}
	fields := ix.FieldIndex(e.mk, func() [][]byte {
		out := make([][]byte, 0, p.n)
		var a arena
		t.walkFields(e, func(f, _ []byte) bool {
			out = append(out, a.copy(f, 0))
			return true
		})
		return out
	})
	if len(fields) != p.n {
		return p // none, or not this record's count: walk
	}
	prefix := fieldPrefix(e.key)
	p.cost = 1
	p.at = func(i int) (randomElement, bool) {
		el := randomElement{name: fields[i]}
		if values {
			v, ok := t.get(fieldKey(prefix, fields[i]))
			if !ok {
				return el, false // written since the index was read: walk
			}
			el.value = bulk(v)
		}
		return el, true
	}
	return p
}

// indexFrom is the fields from which SRANDMEMBER and HRANDFIELD use a
// reader's index (FieldIndexer): a walk of fewer is as quick.
const indexFrom = 512

// FieldIndexer is a Reader that keeps an index of big sets' and hashes'
// fields, its own (storage's, in memory, not replicated): a read picks a
// field by its place instead of walking the set to it.
type FieldIndexer interface {
	// FieldIndex returns the fields of the set or hash whose record key
	// is record, in order, or nil: the caller walks. build reads them
	// when the reader decides to keep them. The result is shared and
	// immutable.
	FieldIndex(record []byte, build func() [][]byte) [][]byte
}

// randomElement is an element HRANDFIELD or ZRANDMEMBER may give: a
// field and its value, or a member and its score.
type randomElement struct {
	name  []byte
	value *messages.Reply
	raw   []byte // a value a pool's walk lends, for keep
}

// randomPool is what HRANDFIELD, ZRANDMEMBER or SRANDMEMBER picks from:
// n elements, walked in order by each (until it is told to stop), or,
// when at is set, the one at an index, for about cost reads apiece, where
// a walk of all costs n. When keep is set, each's elements hold the
// store's bytes only during the call, and keep copies those picked.
type randomPool struct {
	n    int
	each func(fn func(randomElement) bool)
	keep func(randomElement) randomElement
	at   func(i int) (randomElement, bool) // false: walk instead
	cost int
}

// kept is e, as elements keeps it.
func (p *randomPool) kept(e randomElement) randomElement {
	if p.keep == nil {
		return e
	}
	return p.keep(e)
}

// elements are the pool's elements at picks: one by one when that
// reads less than a walk; otherwise from one walk up to the last pick,
// which keeps only the picks unless they are many.
func (p *randomPool) elements(picks []int) []randomElement {
	out := make([]randomElement, len(picks))
	if p.at != nil && len(picks)*p.cost < p.n {
		ok := true
		for j, i := range picks {
			if out[j], ok = p.at(i); !ok {
				break
			}
		}
		if ok {
			return out
		}
	}
	if len(picks) > p.n/4 {
		all := make([]randomElement, 0, p.n)
		p.each(func(e randomElement) bool {
			all = append(all, p.kept(e))
			return true
		})
		for j, i := range picks {
			if i < len(all) {
				out[j] = all[i]
			}
		}
		return out
	}
	at := make(map[int][]int, len(picks)) // an index's places in out
	last := 0
	for j, i := range picks {
		at[i] = append(at[i], j)
		last = max(last, i)
	}
	i := 0
	p.each(func(e randomElement) bool {
		if js := at[i]; len(js) > 0 {
			e = p.kept(e)
			for _, j := range js {
				out[j] = e
			}
		}
		i++
		return i <= last
	})
	return out
}

// randomPicks are the indexes of a random choice from n elements (n > 0)
// for a count: count distinct ones, or all of them in order when count
// is n or more (as Redis gives the whole key), or -count with repeats
// when it is negative.
func (t *txn) randomPicks(n int, count int64) []int {
	var picks []int
	switch {
	case count < 0:
		for range -count {
			picks = append(picks, t.intN(n))
		}
	case count >= int64(n):
		picks = make([]int, n)
		for i := range picks {
			picks[i] = i
		}
	default:
		picks = t.distinct(n, int(count))
	}
	return picks
}

// randomElements is HRANDFIELD's and ZRANDMEMBER's: key [count [with]];
// load reads the key: its pool (nil: no key), or an error (WRONGTYPE).
func (t *txn) randomElements(a [][]byte, with string, load func() (*randomPool, *messages.Reply)) *messages.Reply {
	var count int64
	withValues := false
	if len(a) >= 3 {
		var ok bool
		if count, ok = parseInt(a[2]); !ok {
			return errNotInteger
		}
		switch {
		case count == math.MinInt64:
			return errRangeLong
		case len(a) > 4 || (len(a) == 4 && !isOpt(a[3], with)):
			return errSyntax
		case len(a) == 4 && (count < -math.MaxInt64/2 || count > math.MaxInt64/2):
			return errReply("ERR value is out of range")
		case count < -maxRandomRepeats:
			return errTooManyRepeats
		}
		withValues = len(a) == 4
	}
	pool, r := load()
	switch {
	case r != nil:
		return r
	case pool == nil && len(a) < 3:
		return nullBulk
	case pool == nil || count == 0 && len(a) >= 3:
		return array([]*messages.Reply{})
	}
	if len(a) < 3 {
		return bulk(pool.elements([]int{t.intN(pool.n)})[0].name)
	}
	picks := t.randomPicks(pool.n, count)
	items := make([]*messages.Reply, 0, 2*len(picks))
	for _, e := range pool.elements(picks) {
		items = append(items, bulk(e.name))
		if withValues {
			items = append(items, e.value)
		}
	}
	if withValues {
		return &messages.Reply{Value: &messages.Reply_Pairs{Pairs: &messages.Replies{Items: items}}}
	}
	return array(items)
}
