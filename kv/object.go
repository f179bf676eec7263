package kv

import (
	"bytes"
	"math"

	"github.com/coppice-kv/coppice/messages"
)

// OBJECT ENCODING, FREQ, IDLETIME, REFCOUNT, HELP: what Redis 7.0 would
// report for the value, from its contents and Redis's default thresholds
// (a string of an integer "int", of 44 bytes at most "embstr", "raw"
// beyond; a hash of 512 entries, a sorted set of 128, of 64 bytes at most
// "listpack"; a set of 512 integers at most "intset"; a list "quicklist").
// Redis never converts back: a hash grown past the thresholds and shrunk
// again is "hashtable" there, "listpack" here; a string Redis grew with
// APPEND is "raw" there. No access time or frequency is kept: IDLETIME is
// 0, FREQ gives Redis's answer under its default eviction policy.
func cmdObject(t *txn, a [][]byte) *messages.Reply {
	sub := string(bytes.ToLower(a[1])) // resolve checked it
	if sub == "help" {
		return HelpReply("OBJECT",
			"ENCODING <key>",
			"    Return the kind of internal representation used in order to store the value",
			"    associated with a <key>.",
			"FREQ <key>",
			"    Return the access frequency index of the <key>. The returned integer is",
			"    proportional to the logarithm of the recent access frequency of the key.",
			"IDLETIME <key>",
			"    Return the idle time of the <key>, that is the approximated number of",
			"    seconds elapsed since the last access to the key.",
			"REFCOUNT <key>",
			"    Return the number of references of the value associated with the specified",
			"    <key>.",
		)
	}
	e := t.lookup(a[2])
	if !e.exists {
		return nullBulk
	}
	switch sub {
	case "freq":
		return errReply("ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.")
	case "idletime":
		return zero
	case "refcount":
		return integer(refcount(&e))
	}
	return bulkString(t.encoding(&e))
}

// refcount is OBJECT REFCOUNT's answer for e: Redis shares the integers
// below 10000, whose count is its OBJ_SHARED_REFCOUNT; any other value
// has one reference.
func refcount(e *entry) int64 {
	if n, ok := parseInt(e.rec.payload); e.rec.typ == typeString && ok && n >= 0 && n < 10000 && len(e.rec.payload) <= 20 {
		return math.MaxInt32
	}
	return 1
}

// encoding is the name of the encoding Redis would give e's value.
func (t *txn) encoding(e *entry) string {
	small := func(limit int64, each func(fn func(field []byte) bool)) bool {
		if e.rec.hashLen() > limit {
			return false
		}
		ok := true
		each(func(field []byte) bool { ok = len(field) <= 64; return ok })
		return ok
	}
	fields := func(fn func(field []byte) bool) { // and the values
		p := fieldPrefix(e.key)
		must(t.r.Scan(p, successor(p), func(k, v []byte) bool { return fn(k[len(p):]) && fn(v) }))
	}
	switch e.rec.typ {
	case typeString:
		if _, ok := parseInt(e.rec.payload); ok && len(e.rec.payload) <= 20 {
			return "int"
		}
		if len(e.rec.payload) <= 44 {
			return "embstr"
		}
		return "raw"
	case typeHash:
		if small(512, fields) {
			return "listpack"
		}
		return "hashtable"
	case typeSet:
		if e.rec.hashLen() <= 512 {
			ints := true
			p := fieldPrefix(e.key)
			must(t.r.Scan(p, successor(p), func(k, _ []byte) bool {
				_, ints = parseInt(k[len(p):])
				return ints
			}))
			if ints {
				return "intset"
			}
		}
		return "hashtable"
	case typeZSet:
		z := newZSet(*e)
		if small(128, func(fn func([]byte) bool) { t.each(z, nil, func(s scored) bool { return fn(s.member) }) }) {
			return "listpack"
		}
		return "skiplist"
	case typeList:
		return "quicklist"
	}
	return "stream"
}
