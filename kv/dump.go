package kv

import (
	"bytes"
	"math"
	"strings"

	"github.com/coppice-kv/coppice/messages"
)

// DUMP key: the key's value in Redis 7.0's RDB format (rdb.go,
// rdbstream.go), which RESTORE takes here or in Redis; nil for a missing
// key.
func cmdDump(t *txn, a [][]byte) *messages.Reply {
	e := t.lookup(a[1])
	if !e.exists {
		return nullBulk
	}
	return bulk(encodeDump(t.dumpValueOf(&e)))
}

// dumpValueOf reads e's value (a live key) for encodeDump.
func (t *txn) dumpValueOf(e *entry) dumpValue {
	v := dumpValue{typ: e.rec.typ}
	switch e.rec.typ {
	case typeString:
		v.str = e.rec.payload
	case typeHash:
		t.eachField(e, func(f, val []byte) { v.elems = append(v.elems, bytes.Clone(f), bytes.Clone(val)) })
	case typeSet:
		v.elems = t.members(e)
	case typeList:
		l, _ := t.listFor(e.key)
		v.elems = t.elems(l, 0, l.n)
	case typeZSet:
		z, _ := t.zsetFor(e.key)
		t.each(z, nil, func(s scored) bool {
			v.elems, v.scores = append(v.elems, s.member), append(v.scores, s.score)
			return true
		})
	case typeStream:
		s, _ := t.streamFor(e.key)
		v.stream = t.dumpStreamOf(s)
	}
	return v
}

// RESTORE key ttl serialized-value [REPLACE] [ABSTTL] [IDLETIME s]
// [FREQ f]: Redis 7.0's checks in its order; IDLETIME and FREQ are checked
// and kept nowhere (no access times or frequencies are kept here).
func cmdRestore(t *txn, a [][]byte) *messages.Reply {
	var replace, absTTL, idle, freq bool
	for j := 4; j < len(a); j++ {
		more := j+1 < len(a)
		switch opt := strings.ToLower(string(a[j])); {
		case opt == "replace":
			replace = true
		case opt == "absttl":
			absTTL = true
		case opt == "idletime" && more && !freq:
			n, ok := parseInt(a[j+1])
			if !ok {
				return errNotInteger
			}
			if n < 0 {
				return errReply("ERR Invalid IDLETIME value, must be >= 0")
			}
			idle = true
			j++
		case opt == "freq" && more && !idle:
			n, ok := parseInt(a[j+1])
			if !ok {
				return errNotInteger
			}
			if n < 0 || n > 255 {
				return errReply("ERR Invalid FREQ value, must be >= 0 and <= 255")
			}
			freq = true
			j++
		default:
			return errSyntax
		}
	}
	e := t.lookup(a[1])
	if !replace && e.exists {
		return errReply("BUSYKEY Target key name already exists.")
	}
	ttl, ok := parseInt(a[2])
	if !ok {
		return errNotInteger
	}
	if ttl < 0 {
		return errReply("ERR Invalid TTL value, must be >= 0")
	}
	body, ok := checkDump(a[3])
	if !ok {
		return errReply("ERR DUMP payload version or checksum are wrong")
	}
	v, err := decodeDump(body)
	if err == nil && !v.valid() {
		err = errBadDump
	}
	if err != nil {
		return errReply("ERR Bad data format")
	}
	existed := e.exists
	if existed {
		t.deleteKey(&e)
	}
	when := ttl
	if ttl != 0 && !absTTL {
		if ttl > math.MaxInt64-t.now {
			return errReply("ERR Invalid TTL value, must be >= 0") // past every time: Redis overflows
		}
		when += t.now
	}
	if ttl != 0 && when <= t.now { // already expired: nothing is stored
		if existed {
			t.notify(ClassGeneric, "del", a[1])
		}
		return replyOK
	}
	t.restore(&e, v)
	if ttl != 0 {
		t.setExpiry(&e, true, when)
		t.rewriteRecord(&e, true, when)
	}
	t.notify(ClassGeneric, "restore", a[1])
	return replyOK
}

// valid reports whether v is a value Redis would load: a hash's fields
// and a set's or sorted set's members once each.
func (v dumpValue) valid() bool {
	seen := map[string]bool{}
	step := 1
	if v.typ == typeHash {
		step = 2
	}
	if v.typ == typeString || v.typ == typeList || v.typ == typeStream {
		return true // a stream's reader checked it
	}
	for i := 0; i < len(v.elems); i += step {
		if seen[string(v.elems[i])] {
			return false
		}
		seen[string(v.elems[i])] = true
	}
	return true
}

// restore writes v as e's value (e is absent), with no expiry.
func (t *txn) restore(e *entry, v dumpValue) {
	switch v.typ {
	case typeString:
		t.putString(e, v.str, false, false, 0)
		e.exists = true
		e.rec = record{typ: typeString, payload: v.str}
	case typeHash:
		t.hset(e, v.elems)
	case typeSet:
		t.sadd(e, v.elems)
	case typeList:
		l := &list{e: *e, prefix: fieldPrefix(e.key)}
		t.push(l, false, v.elems)
		t.save(l)
		*e = l.e
	case typeStream:
		s, _ := t.streamFor(e.key)
		t.restoreStream(s, v.stream)
		*e = s.e
	case typeZSet:
		z := newZSet(*e)
		members := make([]scored, len(v.elems))
		for i, m := range v.elems {
			members[i] = scored{member: m, score: v.scores[i]}
		}
		t.fillZSet(z, members)
		t.saveZSet(z)
		*e = z.e
	}
}
