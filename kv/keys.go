package kv

import (
	"bytes"
	"math"

	"github.com/coppice-kv/coppice/messages"
)

// DEL key [key ...], UNLINK key [key ...]
func cmdDel(t *txn, a [][]byte) *messages.Reply {
	n := int64(0)
	for _, k := range a[1:] {
		e := t.lookup(k)
		if e.exists {
			t.deleteKey(&e)
			t.notify(ClassGeneric, "del", k)
			n++
		}
	}
	return integer(n)
}

// EXISTS key [key ...]: a key named twice counts twice.
func cmdExists(t *txn, a [][]byte) *messages.Reply {
	n := int64(0)
	for _, k := range a[1:] {
		if t.lookup(k).exists {
			n++
		}
	}
	return integer(n)
}

// TYPE key
func cmdType(t *txn, a [][]byte) *messages.Reply {
	e := t.lookup(a[1])
	switch {
	case !e.exists:
		return statusNone
	case e.rec.typ == typeHash:
		return statusHash
	case e.rec.typ == typeSet:
		return statusSet
	case e.rec.typ == typeList:
		return statusList
	case e.rec.typ == typeZSet:
		return statusZSet
	case e.rec.typ == typeStream:
		return statusStream
	default:
		return statusString
	}
}

func typeName(typ byte) string {
	if typ == typeHash {
		return "hash"
	}
	if typ == typeSet {
		return "set"
	}
	if typ == typeList {
		return "list"
	}
	if typ == typeZSet {
		return "zset"
	}
	if typ == typeStream {
		return "stream"
	}
	return "string"
}

// Options of EXPIRE and its variants.
const (
	expireNX = 1 << iota
	expireXX
	expireGT
	expireLT
)

func cmdExpire(t *txn, a [][]byte) *messages.Reply    { return t.expire(a, t.now, 1000) }
func cmdPExpire(t *txn, a [][]byte) *messages.Reply   { return t.expire(a, t.now, 1) }
func cmdExpireAt(t *txn, a [][]byte) *messages.Reply  { return t.expire(a, 0, 1000) }
func cmdPExpireAt(t *txn, a [][]byte) *messages.Reply { return t.expire(a, 0, 1) }

// expire is Redis's expireGenericCommand: [P]EXPIRE[AT] key time
// [NX|XX|GT|LT]. The time is unit ms (1 or 1000) after basetime.
func (t *txn) expire(a [][]byte, basetime, unit int64) *messages.Reply {
	flags := 0
	for _, opt := range a[3:] {
		switch {
		case isOpt(opt, "nx"):
			flags |= expireNX
		case isOpt(opt, "xx"):
			flags |= expireXX
		case isOpt(opt, "gt"):
			flags |= expireGT
		case isOpt(opt, "lt"):
			flags |= expireLT
		default:
			return errReply("ERR Unsupported option " + string(cString(opt, len(opt))))
		}
	}
	if flags&expireNX != 0 && flags&(expireXX|expireGT|expireLT) != 0 {
		return errNXXXGTLT
	}
	if flags&expireGT != 0 && flags&expireLT != 0 {
		return errGTLT
	}
	when, ok := parseInt(a[2])
	if !ok {
		return errNotInteger
	}
	name := string(bytes.ToLower(a[0]))
	if unit == 1000 {
		if when > math.MaxInt64/1000 || when < math.MinInt64/1000 {
			return errExpireTime(name)
		}
		when *= 1000
	}
	if when > math.MaxInt64-basetime {
		return errExpireTime(name)
	}
	when += basetime
	e := t.lookup(a[1])
	if !e.exists {
		return zero
	}
	if flags != 0 {
		cur := int64(-1)
		if e.rec.hasExp {
			cur = e.rec.expire
		}
		switch {
		case flags&expireNX != 0 && cur != -1,
			flags&expireXX != 0 && cur == -1,
			flags&expireGT != 0 && (when <= cur || cur == -1),
			flags&expireLT != 0 && cur != -1 && when >= cur:
			return zero
		}
	}
	if when <= t.now {
		t.deleteKey(&e)
		t.notify(ClassGeneric, "del", a[1])
		return one
	}
	t.setExpiry(&e, true, when)
	t.rewriteRecord(&e, true, when)
	t.notify(ClassGeneric, "expire", a[1])
	return one
}

// rewriteRecord writes e's record with a new expiry (and the same payload).
func (t *txn) rewriteRecord(e *entry, hasExp bool, when int64) {
	b := make([]byte, 0, headerLen(hasExp)+len(e.rec.payload))
	b = appendHeader(b, e.rec.typ, hasExp, when)
	t.set(e.mk, append(b, e.rec.payload...))
	e.rec.hasExp, e.rec.expire = hasExp, when
}

func cmdTTL(t *txn, a [][]byte) *messages.Reply  { return t.ttl(a[1], false) }
func cmdPTTL(t *txn, a [][]byte) *messages.Reply { return t.ttl(a[1], true) }

// ttl: -2 for a missing key, -1 for a key without expiry.
func (t *txn) ttl(key []byte, ms bool) *messages.Reply {
	e := t.lookup(key)
	if !e.exists {
		return minusTwo
	}
	if !e.rec.hasExp {
		return minusOne
	}
	d := max(e.rec.expire-t.now, 0)
	if ms {
		return integer(d)
	}
	return integer((d + 500) / 1000)
}

func cmdExpireTime(t *txn, a [][]byte) *messages.Reply  { return t.expireTime(a[1], false) }
func cmdPExpireTime(t *txn, a [][]byte) *messages.Reply { return t.expireTime(a[1], true) }

func (t *txn) expireTime(key []byte, ms bool) *messages.Reply {
	e := t.lookup(key)
	if !e.exists {
		return minusTwo
	}
	if !e.rec.hasExp {
		return minusOne
	}
	when := max(e.rec.expire, 0)
	if ms {
		return integer(when)
	}
	return integer((when + 500) / 1000) // rounded, as Redis does
}

// PERSIST key
func cmdPersist(t *txn, a [][]byte) *messages.Reply {
	e := t.lookup(a[1])
	if !e.exists || !e.rec.hasExp {
		return zero
	}
	t.setExpiry(&e, false, 0)
	t.rewriteRecord(&e, false, 0)
	t.notify(ClassGeneric, "persist", a[1])
	return one
}

// KEYS pattern
func cmdKeys(t *txn, a [][]byte) *messages.Reply {
	var items []*messages.Reply
	all := len(a[1]) == 1 && a[1][0] == '*'
	t.eachKey(nil, literalPrefix(a[1]), func(key []byte, rec *record) bool {
		if all || MatchGlob(a[1], key) {
			items = append(items, bulk(bytes.Clone(key)))
		}
		return true
	})
	if items == nil {
		items = []*messages.Reply{}
	}
	return array(items)
}

// literalPrefix is the bytes every key matching glob p starts with.
func literalPrefix(p []byte) []byte {
	for i, c := range p {
		switch c {
		case '*', '?', '[', '\\':
			return p[:i]
		}
	}
	// No special byte: the pattern is a plain key.
	return p
}

// eachKey calls fn with each live key after `after` (nil: from the first)
// that starts with prefix, in key order, until fn returns false. The key
// and record are only valid during the call.
func (t *txn) eachKey(after, prefix []byte, fn func(key []byte, rec *record) bool) {
	lower := metaKey(prefix)
	if after != nil {
		if a := append(metaKey(after), 0); bytes.Compare(a, lower) > 0 {
			lower = a
		}
	}
	upper := successor(metaKey(prefix))
	if bytes.Compare(lower, upper) >= 0 {
		return
	}
	must(t.r.Scan(lower, upper, func(k, v []byte) bool {
		rec, ok := decodeRecord(v)
		if !ok {
			must(errCorruptKey(k[1:]))
		}
		if rec.expired(t.now) {
			return true
		}
		return fn(k[1:], &rec)
	}))
}

// RANDOMKEY: a live key of the shard, the first after a random point of
// the key space (wrapping round to the first), or nil when there is none.
// (Keys after a wide gap come up more often; Redis's choice is not even
// either: a random bucket, then a random key of its chain.)
func cmdRandomKey(t *txn, _ [][]byte) *messages.Reply {
	var from [8]byte
	for i := range from {
		from[i] = byte(t.intN(256))
	}
	var found []byte
	first := func(key []byte, _ *record) bool { found = bytes.Clone(key); return false }
	t.eachKey(from[:], nil, first)
	if found == nil {
		t.eachKey(nil, nil, first)
	}
	if found == nil {
		return nullBulk
	}
	return bulk(found)
}

// DBSIZE: the number of live keys: the shard's count of its keys less
// those past their expiry (a pass over the expiry index up to now) when
// its storage keeps counts, a pass over its keys otherwise.
func cmdDBSize(t *txn, _ [][]byte) *messages.Reply {
	if c, ok := t.liveCounts(); ok {
		return integer(c.Keys)
	}
	n := int64(0)
	t.eachKey(nil, nil, func([]byte, *record) bool { n++; return true })
	return integer(n)
}

// liveCounts are the storage's KeyCounts less the keys past their expiry
// at t's time, whose records and index entries stay until the expiry
// deletes them (ok false: the storage keeps no counts).
func (t *txn) liveCounts() (KeyCounts, bool) {
	kc, ok := t.r.(KeyCounter)
	if !ok {
		return KeyCounts{}, false
	}
	c, ok := kc.KeyCounts()
	if !ok {
		return KeyCounts{}, false
	}
	must(t.r.Scan([]byte{prefixExpiry}, expiryBound(t.now), func(k, _ []byte) bool {
		if when, _, ok := decodeExpiryKey(k); ok {
			c.Keys--
			c.Expiring--
			c.WhenSum -= float64(when)
		}
		return true
	}))
	c.Keys, c.Expiring = max(c.Keys, 0), max(c.Expiring, 0)
	return c, true
}

// FLUSHDB [ASYNC|SYNC], FLUSHALL [ASYNC|SYNC]: both empty the shard; the
// node sends them to every shard.
func cmdFlush(t *txn, a [][]byte) *messages.Reply {
	if len(a) > 2 || (len(a) == 2 && !isOpt(a[1], "sync") && !isOpt(a[1], "async")) {
		return errSyntax
	}
	must(t.w.DeleteRange([]byte{prefixMeta}, []byte{prefixFunction})) // the keys, not the functions
	return replyOK
}
