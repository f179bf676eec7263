package kv

import (
	"math"
	"strings"

	"github.com/coppice-kv/coppice/messages"
)

// maxString is Redis's default proto-max-bulk-len: the longest string
// APPEND and SETRANGE may make.
const maxString = 512 << 20

// GET key
func cmdGet(t *txn, a [][]byte) *messages.Reply {
	e := t.lookup(a[1])
	if !e.exists {
		return nullBulk
	}
	if e.rec.typ != typeString {
		return errWrongType
	}
	return bulk(e.rec.payload)
}

// Options of SET and GETEX (Redis's parseExtendedStringArgumentsOrReply).
type strOpts struct {
	nx, xx, get, keepTTL, persist bool
	expKind                       byte // 0, or one of expEX, expPX, expEXAT, expPXAT
	expArg                        []byte
}

const (
	expEX byte = iota + 1
	expPX
	expEXAT
	expPXAT
)

// parseStrOpts parses SET's options (forSet) or GETEX's, from args[i:].
func parseStrOpts(args [][]byte, i int, forSet bool) (strOpts, *messages.Reply) {
	var o strOpts
	for ; i < len(args); i++ {
		a := args[i]
		hasNext := i+1 < len(args)
		noExp := o.expKind == 0
		switch {
		case forSet && isOpt(a, "nx") && !o.xx:
			o.nx = true
		case forSet && isOpt(a, "xx") && !o.nx:
			o.xx = true
		case forSet && isOpt(a, "get"):
			o.get = true
		case forSet && isOpt(a, "keepttl") && noExp:
			o.keepTTL = true
		case !forSet && isOpt(a, "persist") && noExp:
			o.persist = true
		case isOpt(a, "ex") && hasNext && !o.keepTTL && !o.persist && (noExp || o.expKind == expEX):
			o.expKind, o.expArg = expEX, args[i+1]
			i++
		case isOpt(a, "px") && hasNext && !o.keepTTL && !o.persist && (noExp || o.expKind == expPX):
			o.expKind, o.expArg = expPX, args[i+1]
			i++
		case isOpt(a, "exat") && hasNext && !o.keepTTL && !o.persist && (noExp || o.expKind == expEXAT):
			o.expKind, o.expArg = expEXAT, args[i+1]
			i++
		case isOpt(a, "pxat") && hasNext && !o.keepTTL && !o.persist && (noExp || o.expKind == expPXAT):
			o.expKind, o.expArg = expPXAT, args[i+1]
			i++
		default:
			return o, errSyntax
		}
	}
	return o, nil
}

// expireAt turns an EX/PX/EXAT/PXAT argument into an absolute Unix time in
// ms (Redis's getExpireMillisecondsOrReply). cmd names the command in the
// error.
func (t *txn) expireAt(kind byte, arg []byte, cmd string) (int64, *messages.Reply) {
	ms, ok := parseInt(arg)
	if !ok {
		return 0, errNotInteger
	}
	seconds := kind == expEX || kind == expEXAT
	if ms <= 0 || (seconds && ms > math.MaxInt64/1000) {
		return 0, errExpireTime(cmd)
	}
	if seconds {
		ms *= 1000
	}
	if kind == expEX || kind == expPX {
		ms += t.now // overflow wraps negative, and is refused below
	}
	if ms <= 0 {
		return 0, errExpireTime(cmd)
	}
	return ms, nil
}

// setGeneric is Redis's setGenericCommand: SET and its variants.
// okReply and abortReply are the replies when the value is set and when
// NX/XX stops it (nil: +OK and a null).
func (t *txn) setGeneric(o strOpts, key, val []byte, cmd string, okReply, abortReply *messages.Reply) *messages.Reply {
	var when int64
	if o.expKind != 0 {
		var r *messages.Reply
		if when, r = t.expireAt(o.expKind, o.expArg, cmd); r != nil {
			return r
		}
	}
	e := t.lookup(key)
	var reply *messages.Reply
	if o.get {
		switch {
		case !e.exists:
			reply = nullBulk
		case e.rec.typ != typeString:
			return errWrongType
		default:
			reply = bulk(e.rec.payload)
		}
	}
	if (o.nx && e.exists) || (o.xx && !e.exists) {
		if reply != nil {
			return reply
		}
		if abortReply != nil {
			return abortReply
		}
		return nullBulk
	}
	// An expiry already past stores a key no command will see, as Redis
	// does (and fires its events): the next write to it, or the shard's
	// active expiry, deletes it and fires "expired".
	t.putString(&e, val, o.keepTTL, o.expKind != 0, when)
	t.notify(ClassString, "set", key)
	if o.expKind != 0 {
		t.notify(ClassGeneric, "expire", key)
	}
	if reply != nil {
		return reply
	}
	if okReply != nil {
		return okReply
	}
	return replyOK
}

// SET key value [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL]
func cmdSet(t *txn, a [][]byte) *messages.Reply {
	o, r := parseStrOpts(a, 3, true)
	if r != nil {
		return r
	}
	return t.setGeneric(o, a[1], a[2], "set", nil, nil)
}

// SETNX key value
func cmdSetNX(t *txn, a [][]byte) *messages.Reply {
	return t.setGeneric(strOpts{nx: true}, a[1], a[2], "setnx", one, zero)
}

// SETEX key seconds value
func cmdSetEX(t *txn, a [][]byte) *messages.Reply {
	return t.setGeneric(strOpts{expKind: expEX, expArg: a[2]}, a[1], a[3], "setex", nil, nil)
}

// PSETEX key milliseconds value
func cmdPSetEX(t *txn, a [][]byte) *messages.Reply {
	return t.setGeneric(strOpts{expKind: expPX, expArg: a[2]}, a[1], a[3], "psetex", nil, nil)
}

// GETSET key value
func cmdGetSet(t *txn, a [][]byte) *messages.Reply {
	e := t.lookup(a[1])
	reply := nullBulk
	if e.exists {
		if e.rec.typ != typeString {
			return errWrongType
		}
		reply = bulk(e.rec.payload)
	}
	t.putString(&e, a[2], false, false, 0)
	t.notify(ClassString, "set", a[1])
	return reply
}

// GETDEL key
func cmdGetDel(t *txn, a [][]byte) *messages.Reply {
	e := t.lookup(a[1])
	if !e.exists {
		return nullBulk
	}
	if e.rec.typ != typeString {
		return errWrongType
	}
	reply := bulk(e.rec.payload)
	t.deleteKey(&e)
	t.notify(ClassGeneric, "del", a[1])
	return reply
}

// GETEX key [EX s|PX ms|EXAT s|PXAT ms|PERSIST]
func cmdGetEx(t *txn, a [][]byte) *messages.Reply {
	o, r := parseStrOpts(a, 2, false)
	if r != nil {
		return r
	}
	e := t.lookup(a[1])
	if !e.exists {
		return nullBulk
	}
	if e.rec.typ != typeString {
		return errWrongType
	}
	var when int64
	if o.expKind != 0 {
		if when, r = t.expireAt(o.expKind, o.expArg, "getex"); r != nil {
			return r
		}
	}
	reply := bulk(e.rec.payload)
	switch {
	case (o.expKind == expEXAT || o.expKind == expPXAT) && when <= t.now:
		t.deleteKey(&e)
		t.notify(ClassGeneric, "del", a[1])
	case o.expKind != 0:
		t.putString(&e, e.rec.payload, false, true, when)
		t.notify(ClassGeneric, "expire", a[1])
	case o.persist && e.rec.hasExp:
		t.putString(&e, e.rec.payload, false, false, 0)
		t.notify(ClassGeneric, "persist", a[1])
	}
	return reply
}

// MGET key [key ...]
func cmdMGet(t *txn, a [][]byte) *messages.Reply {
	b := newReplies(len(a) - 1)
	for _, k := range a[1:] {
		e := t.lookup(k)
		if e.exists && e.rec.typ == typeString {
			b.bulkRef(e.rec.payload)
		} else {
			b.add(nullBulk)
		}
	}
	return b.array()
}

// MSET key value [key value ...]
func cmdMSet(t *txn, a [][]byte) *messages.Reply {
	if len(a)%2 == 0 {
		return errArity("mset")
	}
	for i := 1; i < len(a); i += 2 {
		e := t.lookup(a[i])
		t.putString(&e, a[i+1], false, false, 0)
		t.notify(ClassString, "set", a[i])
	}
	return replyOK
}

func cmdIncr(t *txn, a [][]byte) *messages.Reply { return t.incrBy(a[1], 1) }
func cmdDecr(t *txn, a [][]byte) *messages.Reply { return t.incrBy(a[1], -1) }

// INCRBY key increment
func cmdIncrBy(t *txn, a [][]byte) *messages.Reply {
	n, ok := parseInt(a[2])
	if !ok {
		return errNotInteger
	}
	return t.incrBy(a[1], n)
}

// DECRBY key decrement
func cmdDecrBy(t *txn, a [][]byte) *messages.Reply {
	n, ok := parseInt(a[2])
	if !ok {
		return errNotInteger
	}
	if n == math.MinInt64 {
		return errDecrOverflow
	}
	return t.incrBy(a[1], -n)
}

func (t *txn) incrBy(key []byte, incr int64) *messages.Reply {
	e := t.lookup(key)
	var v int64
	if e.exists {
		if e.rec.typ != typeString {
			return errWrongType
		}
		var ok bool
		if v, ok = parseInt(e.rec.payload); !ok {
			return errNotInteger
		}
	}
	if (incr < 0 && v < 0 && incr < math.MinInt64-v) || (incr > 0 && v > 0 && incr > math.MaxInt64-v) {
		return errOverflow
	}
	v += incr
	var buf [20]byte
	t.putString(&e, appendInt(buf[:0], v), true, false, 0)
	t.notify(ClassString, "incrby", key)
	return integer(v)
}

// INCRBYFLOAT key increment
func cmdIncrByFloat(t *txn, a [][]byte) *messages.Reply {
	e := t.lookup(a[1])
	v := ldFromInt(0)
	if e.exists {
		if e.rec.typ != typeString {
			return errWrongType
		}
		var ok bool
		if v, ok = parseLongDouble(e.rec.payload); !ok {
			return errNotFloat
		}
	}
	incr, ok := parseLongDouble(a[2])
	if !ok {
		return errNotFloat
	}
	sum, ok := addLD(v, incr)
	if !ok {
		return errNaNInf
	}
	s := formatLD(sum)
	t.putString(&e, s, true, false, 0)
	t.notify(ClassString, "incrbyfloat", a[1])
	return bulk(s)
}

// APPEND key value
func cmdAppend(t *txn, a [][]byte) *messages.Reply {
	e := t.lookup(a[1])
	if !e.exists {
		t.putString(&e, a[2], false, false, 0)
		t.notify(ClassString, "append", a[1])
		return integer(int64(len(a[2])))
	}
	if e.rec.typ != typeString {
		return errWrongType
	}
	n := len(e.rec.payload) + len(a[2])
	if n > maxString {
		return errStringTooLong
	}
	t.putStringParts(&e, true, false, 0, n, e.rec.payload, a[2])
	t.notify(ClassString, "append", a[1])
	return integer(int64(n))
}

// STRLEN key
func cmdStrlen(t *txn, a [][]byte) *messages.Reply {
	e := t.lookup(a[1])
	if !e.exists {
		return zero
	}
	if e.rec.typ != typeString {
		return errWrongType
	}
	return integer(int64(len(e.rec.payload)))
}

// GETRANGE key start end
func cmdGetRange(t *txn, a [][]byte) *messages.Reply {
	start, ok := parseInt(a[2])
	if !ok {
		return errNotInteger
	}
	end, ok := parseInt(a[3])
	if !ok {
		return errNotInteger
	}
	e := t.lookup(a[1])
	if !e.exists {
		return emptyBulk
	}
	if e.rec.typ != typeString {
		return errWrongType
	}
	s := e.rec.payload
	n := int64(len(s))
	if start < 0 && end < 0 && start > end {
		return emptyBulk
	}
	start, end = clampIndexes(start, end, n)
	if start > end || n == 0 {
		return emptyBulk
	}
	return bulk(s[start : end+1])
}

// clampIndexes makes start and end (negative from the end) indexes of n
// items as Redis's GETRANGE and BITCOUNT do: both at least 0, end at most
// n-1 (so end < start for an empty range).
func clampIndexes(start, end, n int64) (int64, int64) {
	if start < 0 {
		start += n
	}
	if end < 0 {
		end += n
	}
	return max(start, 0), min(max(end, 0), n-1)
}

// SETRANGE key offset value
func cmdSetRange(t *txn, a [][]byte) *messages.Reply {
	off, ok := parseInt(a[2])
	if !ok {
		return errNotInteger
	}
	if off < 0 {
		return errOffsetRange
	}
	val := a[3]
	e := t.lookup(a[1])
	if e.exists && e.rec.typ != typeString {
		return errWrongType
	}
	cur := e.rec.payload
	if len(val) == 0 {
		return integer(int64(len(cur)))
	}
	if off > maxString-int64(len(val)) {
		return errStringTooLong
	}
	n := max(int64(len(cur)), off+int64(len(val)))
	if off <= int64(len(cur)) {
		// val lands inside or right after cur: cur's head, val, cur's tail.
		var tail []byte
		if end := off + int64(len(val)); end < int64(len(cur)) {
			tail = cur[end:]
		}
		t.putStringParts(&e, true, false, 0, int(n), cur[:off], val, tail)
	} else {
		// Zeros between cur and val.
		t.putStringParts(&e, true, false, 0, int(n), cur, make([]byte, off-int64(len(cur))), val)
	}
	t.notify(ClassString, "setrange", a[1])
	return integer(n)
}

// LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN]: the longest
// common subsequence of two strings, by Redis's dynamic programming, with
// its ranges walked back from the end as Redis emits them.
func cmdLCS(t *txn, a [][]byte) *messages.Reply {
	ea, eb := t.lookup(a[1]), t.lookup(a[2])
	if (ea.exists && ea.rec.typ != typeString) || (eb.exists && eb.rec.typ != typeString) {
		return errReply("ERR The specified keys must contain string values")
	}
	x, y := ea.rec.payload, eb.rec.payload
	var getLen, getIdx, withMatchLen bool
	var minMatchLen int64
	for j := 3; j < len(a); j++ {
		switch opt := strings.ToLower(string(a[j])); {
		case opt == "idx":
			getIdx = true
		case opt == "len":
			getLen = true
		case opt == "withmatchlen":
			withMatchLen = true
		case opt == "minmatchlen" && j+1 < len(a):
			n, ok := parseInt(a[j+1])
			if !ok {
				return errNotInteger
			}
			minMatchLen = max(n, 0)
			j++
		default:
			return errSyntax
		}
	}
	if getLen && getIdx {
		return errReply("ERR If you want both the length and indexes, please just use IDX.")
	}
	if uint64(len(x)+1)*uint64(len(y)+1)*4 > maxString { // its table, as Redis bounds it

		return errReply("ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len")
	}
	w := len(y) + 1
	table := make([]uint32, (len(x)+1)*w)
	at := func(i, j int) uint32 { return table[j+i*w] }
	for i := 1; i <= len(x); i++ {
		for j := 1; j <= len(y); j++ {
			if x[i-1] == y[j-1] {
				table[j+i*w] = at(i-1, j-1) + 1
			} else {
				table[j+i*w] = max(at(i-1, j), at(i, j-1))
			}
		}
	}
	n := at(len(x), len(y))
	if getLen {
		return integer(int64(n))
	}
	result := make([]byte, n)
	matches := []*messages.Reply{}
	idx := n
	const unset = -1
	aStart, aEnd, bStart, bEnd := unset, 0, 0, 0
	for i, j := len(x), len(y); i > 0 && j > 0; {
		emit := false
		if x[i-1] == y[j-1] {
			result[idx-1] = x[i-1]
			switch {
			case aStart == unset:
				aStart, aEnd, bStart, bEnd = i-1, i-1, j-1, j-1
			case aStart == i && bStart == j: // contiguous: extend backward
				aStart--
				bStart--
			default:
				emit = true
			}
			if aStart == 0 || bStart == 0 {
				emit = true
			}
			idx--
			i--
			j--
		} else {
			if at(i-1, j) > at(i, j-1) {
				i--
			} else {
				j--
			}
			if aStart != unset {
				emit = true
			}
		}
		if emit {
			matchLen := int64(aEnd - aStart + 1)
			if getIdx && (minMatchLen == 0 || matchLen >= minMatchLen) {
				m := []*messages.Reply{
					array([]*messages.Reply{integer(int64(aStart)), integer(int64(aEnd))}),
					array([]*messages.Reply{integer(int64(bStart)), integer(int64(bEnd))}),
				}
				if withMatchLen {
					m = append(m, integer(matchLen))
				}
				matches = append(matches, array(m))
			}
			aStart = unset
		}
	}
	if getIdx {
		return mapReply([]*messages.Reply{bulkString("matches"), array(matches), bulkString("len"), integer(int64(n))})
	}
	return bulk(result)
}
