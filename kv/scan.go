package kv

import (
	"bytes"
	"encoding/binary"
	"math"
	"strconv"

	"github.com/coppice-kv/coppice/messages"
)

// ScanArgs are SCAN's arguments, parsed and checked.
type ScanArgs struct {
	Cursor uint64
	Count  int    // 10 unless given
	Match  []byte // nil: every key ("*" is also nil)
	Type   string // "": every type
}

// ParseScanArgs parses SCAN cursor [MATCH pattern] [COUNT count] [TYPE
// type] (args is the whole command, name first) with Redis's errors: "ERR
// invalid cursor" (the cursor is C's strtoul: "+5", "" and "-1" are
// cursors), "ERR value is not an integer or out of range" for COUNT, and
// "ERR syntax error" for a COUNT below 1, an unknown option or an option
// without its value. As in Redis 7.0, an unknown TYPE is not an error; it
// matches nothing.
func ParseScanArgs(args [][]byte) (ScanArgs, *messages.Reply) {
	sa := ScanArgs{Count: 10}
	if len(args) < 2 {
		return sa, errArity("scan")
	}
	c, ok := parseCursor(args[1])
	if !ok {
		return sa, errInvalidCursor
	}
	sa.Cursor = c
	for i := 2; i < len(args); i += 2 {
		if i+1 >= len(args) {
			return sa, errSyntax
		}
		opt, val := args[i], args[i+1]
		switch {
		case isOpt(opt, "count"):
			n, ok := parseInt(val)
			if !ok {
				return sa, errNotInteger
			}
			if n < 1 {
				return sa, errSyntax
			}
			sa.Count = int(min(n, 1<<31-1))
		case isOpt(opt, "match"):
			if len(val) == 1 && val[0] == '*' {
				sa.Match = nil
			} else {
				sa.Match = val
			}
		case isOpt(opt, "type"):
			sa.Type = string(val)
		default:
			return sa, errSyntax
		}
	}
	return sa, nil
}

// parseCursor parses s as C's strtoul(s, &end, 10) with nothing left after
// it and no leading space: optional sign (a '-' negates modulo 2^64), digits
// (none is 0), no overflow.
func parseCursor(s []byte) (uint64, bool) {
	s = cString(s, len(s))
	if len(s) == 0 {
		return 0, true
	}
	switch s[0] {
	case ' ', '\t', '\n', '\v', '\f', '\r':
		return 0, false
	}
	neg := false
	d := s
	if d[0] == '+' || d[0] == '-' {
		neg = d[0] == '-'
		d = d[1:]
	}
	if len(d) == 0 {
		return 0, false // strtoul converts nothing; the sign is left over
	}
	v, err := strconv.ParseUint(string(d), 10, 64)
	if err != nil {
		return 0, false
	}
	if neg {
		v = -v
	}
	return v, true
}

// Scan lists a shard's live keys after the key `after` (nil: from the
// first), in key order, for the node's SCAN: it examines at most count keys
// (Redis's COUNT is work, not results) and returns the ones that match
// (match: a glob as in KEYS, nil for all; typ: "string", "hash", another
// Redis type name that matches nothing here, or "" for all, in any case).
// next is the last key examined, to pass as `after` to go on, or nil when
// the shard has no more keys. The node composes its cursor from a shard
// number and next.
func Scan(r Reader, after []byte, count int, match []byte, typ string, nowMs int64) (keys [][]byte, next []byte, err error) {
	if count < 1 {
		return nil, nil, ErrScanCount
	}
	defer func() {
		if p := recover(); p != nil {
			se, ok := p.(*StorageError)
			if !ok {
				panic(p)
			}
			keys, next, err = nil, nil, se.Err
		}
	}()
	t := &txn{r: r, now: nowMs}
	examined := 0
	last := []byte{} // not nil: the empty key is a key to go on after
	more := false
	if len(match) == 1 && match[0] == '*' {
		match = nil
	}
	var prefix []byte
	if match != nil {
		prefix = literalPrefix(match)
	}
	t.eachKey(after, prefix, func(key []byte, rec *record) bool {
		if examined == count {
			more = true
			return false
		}
		examined++
		last = append(last[:0], key...)
		if typ != "" && !isOpt([]byte(typ), typeName(rec.typ)) {
			return true
		}
		if match != nil && !MatchGlob(match, key) {
			return true
		}
		keys = append(keys, bytes.Clone(key))
		return true
	})
	if more {
		next = last
	}
	return keys, next, nil
}

// SCAN through Read: one shard's whole scan in one reply, cursor "0"
// (whatever the cursor given). The node runs its own SCAN across shards
// with Scan and ParseScanArgs.
func cmdScan(t *txn, a [][]byte) *messages.Reply {
	sa, r := ParseScanArgs(a)
	if r != nil {
		return r
	}
	var items []*messages.Reply
	t.eachKey(nil, literalPrefix(sa.Match), func(key []byte, rec *record) bool {
		if sa.Type != "" && !isOpt([]byte(sa.Type), typeName(rec.typ)) {
			return true
		}
		if sa.Match != nil && !MatchGlob(sa.Match, key) {
			return true
		}
		items = append(items, bulk(bytes.Clone(key)))
		return true
	})
	if items == nil {
		items = []*messages.Reply{}
	}
	return array([]*messages.Reply{bulkString("0"), array(items)})
}

// HScan lists hash key's fields after the field `after` (nil: from the
// first), in field order, with their values, for the node's HSCAN: it
// examines at most count fields and returns the ones that match (a glob,
// nil for all) as field, value pairs. next is the last field examined, to
// pass as `after` to go on, or nil when there are no more. A hash of up
// to smallScanHash fields is returned whole from the start, whatever the
// count, as Redis does for its small (listpack) hashes. A key that is no
// hash is WRONGTYPE's error reply; a missing one, no pairs.
func HScan(r Reader, key, after []byte, count int, match []byte, nowMs int64) (pairs [][]byte, next []byte, reply *messages.Reply, err error) {
	return scanElements(r, typeHash, key, after, count, match, nowMs)
}

// SScan is HScan for set key's members (SSCAN): the members, no values.
func SScan(r Reader, key, after []byte, count int, match []byte, nowMs int64) (members [][]byte, next []byte, reply *messages.Reply, err error) {
	return scanElements(r, typeSet, key, after, count, match, nowMs)
}

// ZScan is HScan for sorted set key's members (ZSCAN), in member order,
// each with its score as Redis writes it (%.17g, inf, -inf).
func ZScan(r Reader, key, after []byte, count int, match []byte, nowMs int64) (pairs [][]byte, next []byte, reply *messages.Reply, err error) {
	return scanElements(r, typeZSet, key, after, count, match, nowMs)
}

// scanElements is HScan's, SScan's and ZScan's: over key of type typ, a
// hash's fields with their values, a set's members, or a sorted set's
// members with their scores.
func scanElements(r Reader, typ byte, key, after []byte, count int, match []byte, nowMs int64) (out [][]byte, next []byte, reply *messages.Reply, err error) {
	if count < 1 {
		return nil, nil, nil, ErrScanCount
	}
	defer func() {
		if p := recover(); p != nil {
			se, ok := p.(*StorageError)
			if !ok {
				panic(p)
			}
			out, next, reply, err = nil, nil, nil, se.Err
		}
	}()
	t := &txn{r: r, now: nowMs}
	e, wrong := t.lookupAs(key, typ)
	if wrong != nil {
		return nil, nil, wrong, nil
	}
	if !e.exists {
		return nil, nil, nil, nil
	}
	if len(match) == 1 && match[0] == '*' {
		match = nil
	}
	if after == nil && e.rec.hashLen() <= smallScanHash {
		count = smallScanHash + 1
	}
	p := fieldPrefix(key)
	if typ == typeZSet {
		p = append(p, zMember) // the members, not the score index
	}
	from := p
	if after != nil {
		from = append(fieldKey(p, after), 0) // the first field past after
	}
	examined := 0
	last := []byte{} // not nil: the empty field is a field to go on after
	more := false
	must(t.r.Scan(from, successor(p), func(k, v []byte) bool {
		if examined == count {
			more = true
			return false
		}
		examined++
		f := k[len(p):]
		last = append(last[:0], f...)
		if match == nil || MatchGlob(match, f) {
			out = append(out, bytes.Clone(f))
			switch typ {
			case typeHash:
				out = append(out, bytes.Clone(v))
			case typeZSet:
				out = append(out, formatScore(v))
			}
		}
		return true
	}))
	if more {
		next = last
	}
	return out, next, nil, nil
}

// smallScanHash is the field count up to which Redis 7.0 keeps a hash in
// a listpack, which HSCAN returns whole (hash-max-listpack-entries).
const smallScanHash = 128

// HSCAN key cursor [MATCH pattern] [COUNT count] through Read: the whole
// hash in one reply, cursor "0" (whatever the cursor given), as Redis
// answers for a small hash. The node pages with HScan and its own cursors.
func cmdHScan(t *txn, a [][]byte) *messages.Reply { return t.scanWhole(a, typeHash) }

// SSCAN key cursor [MATCH pattern] [COUNT count] through Read: as HSCAN's,
// the set's members.
func cmdSScan(t *txn, a [][]byte) *messages.Reply { return t.scanWhole(a, typeSet) }

// scanWhole is HSCAN's, SSCAN's and ZSCAN's one-shot scan through Read.
func (t *txn) scanWhole(a [][]byte, typ byte) *messages.Reply {
	sa, r := ParseHScanArgs(a)
	if r != nil {
		return r
	}
	out, _, wrong, err := scanElements(t.r, typ, a[1], nil, math.MaxInt32, sa.Match, t.now)
	must(err)
	if wrong != nil {
		return wrong
	}
	items := make([]*messages.Reply, len(out))
	for i, b := range out {
		items[i] = bulk(b)
	}
	return array([]*messages.Reply{bulkString("0"), array(items)})
}

// ZSCAN key cursor [MATCH pattern] [COUNT count] through Read: as HSCAN's,
// the members with their scores.
func cmdZScan(t *txn, a [][]byte) *messages.Reply { return t.scanWhole(a, typeZSet) }

// formatScore is a score's 8 bytes written as Redis writes a double in
// text: %.17g, inf, -inf.
func formatScore(v []byte) []byte {
	if len(v) != 8 {
		return nil
	}
	f := math.Float64frombits(binary.BigEndian.Uint64(v))
	switch {
	case math.IsInf(f, 1):
		return []byte("inf")
	case math.IsInf(f, -1):
		return []byte("-inf")
	}
	return strconv.AppendFloat(nil, f, 'g', 17, 64)
}

// ParseHScanArgs parses HSCAN (or SSCAN) key cursor [MATCH pattern]
// [COUNT count] (args is the whole command, name first) with Redis's
// errors, as ParseScanArgs does SCAN's; TYPE is no option of theirs.
func ParseHScanArgs(args [][]byte) (ScanArgs, *messages.Reply) {
	if len(args) < 3 {
		return ScanArgs{Count: 10}, errArity(string(bytes.ToLower(args[0])))
	}
	for i := 3; i < len(args); i += 2 {
		if isOpt(args[i], "type") {
			return ScanArgs{Count: 10}, errSyntax
		}
	}
	return ParseScanArgs(args[1:])
}
