package kv

import (
	"bytes"
	"encoding/binary"
	"slices"

	"github.com/coppice-kv/coppice/messages"
)

// Lists: a record with the element count and the position of the first
// element (the head), and each element a field key under the list's field
// prefix, suffixed by its position (8 bytes, big-endian, sign bit flipped:
// positions sort as numbers). The element at index i is at position
// head+i. LPUSH takes the positions before the head, RPUSH the ones after
// the last element, LPOP and RPOP free them, LINDEX, LSET and LRANGE go
// straight to theirs: each costs what it moves, not the list's length.
// LINSERT and LREM rewrite the elements after the first one they change
// (O(N), as in Redis). DEL, RENAME, COPY and expiry treat the elements as
// they do a hash's fields.

// listRecord encodes a list's record: its count, then its head.
func listRecord(n, head int64, hasExp bool, expire int64) []byte {
	b := make([]byte, 0, headerLen(hasExp)+2*binary.MaxVarintLen64)
	b = appendHeader(b, typeList, hasExp, expire)
	b = binary.AppendUvarint(b, uint64(n))
	return binary.AppendVarint(b, head)
}

// list is a list key as a command sees it: its entry, count and head.
type list struct {
	e       entry
	n, head int64
	prefix  []byte // its elements' key prefix
}

// listFor looks key up for a list command: the list (empty when missing),
// or WRONGTYPE.
func (t *txn) listFor(key []byte) (*list, *messages.Reply) {
	e, r := t.lookupAs(key, typeList)
	if r != nil {
		return nil, r
	}
	l := &list{e: e, prefix: fieldPrefix(key)}
	if e.exists {
		l.n = e.rec.hashLen()
		_, k := binary.Uvarint(e.rec.payload)
		l.head, _ = binary.Varint(e.rec.payload[k:])
	}
	return l, nil
}

// at is the key of the element at index i.
func (l *list) at(i int64) []byte {
	return binary.BigEndian.AppendUint64(slices.Clip(l.prefix), uint64(l.head+i)^(1<<63))
}

// save writes l's record (keeping its expiry), or deletes the key when l
// is empty (its elements are gone already).
func (t *txn) save(l *list) {
	if l.n == 0 {
		t.setCount(&l.e, typeList, 0)
		return
	}
	hasExp, when := l.e.exists && l.e.rec.hasExp, l.e.rec.expire
	t.added(&l.e)
	v := listRecord(l.n, l.head, hasExp, when)
	t.set(l.e.mk, v)
	l.e.rec, _ = decodeRecord(v)
	l.e.exists = true
}

// elems reads the elements at indexes [from, to), in order.
func (t *txn) elems(l *list, from, to int64) [][]byte {
	out := make([][]byte, 0, max(0, min(to-from, 1024)))
	t.eachElem(l, from, to, func(v []byte) { out = append(out, bytes.Clone(v)) })
	return out
}

// eachElem calls fn with the elements at indexes [from, to), in order;
// fn's v is valid only during the call.
func (t *txn) eachElem(l *list, from, to int64, fn func(v []byte)) {
	if from >= to {
		return
	}
	must(t.r.Scan(l.at(from), l.at(to), func(_, v []byte) bool {
		fn(v)
		return true
	}))
}

// dropElems deletes the elements at indexes [from, to).
func (t *txn) dropElems(l *list, from, to int64) {
	if to-from > smallHash {
		must(t.w.DeleteRange(l.at(from), l.at(to)))
		return
	}
	for i := from; i < to; i++ {
		t.del(l.at(i))
	}
}

// push adds elems at the left, each in turn (so LPUSH a b c leaves c
// first), or at the right, and saves l.
func (t *txn) push(l *list, left bool, elems [][]byte) {
	for _, v := range elems {
		if left {
			l.head--
			t.set(l.at(0), v)
		} else {
			t.set(l.at(l.n), v)
		}
		l.n++
	}
	t.save(l)
}

// pop removes up to count elements from the left or the right, and returns
// them in the order they were popped.
func (t *txn) pop(l *list, left bool, count int64) [][]byte {
	count = min(count, l.n)
	from := int64(0)
	if !left {
		from = l.n - count
	}
	out := t.elems(l, from, from+count)
	t.dropElems(l, from, from+count)
	if left {
		l.head += count
	} else {
		slices.Reverse(out)
	}
	l.n -= count
	t.save(l)
	return out
}

// rewrite replaces the elements from index from on with elems, and saves
// l.
func (t *txn) rewrite(l *list, from int64, elems [][]byte) {
	t.dropElems(l, from, l.n)
	for i, v := range elems {
		t.set(l.at(from+int64(i)), v)
	}
	l.n = from + int64(len(elems))
	t.save(l)
}

// LPUSH, RPUSH key element [element ...]; LPUSHX, RPUSHX only to a list
// that exists.
func pushCmd(left, onlyExisting bool) func(*txn, [][]byte) *messages.Reply {
	return func(t *txn, a [][]byte) *messages.Reply {
		l, r := t.listFor(a[1])
		if r != nil {
			return r
		}
		if onlyExisting && !l.e.exists {
			return zero
		}
		t.push(l, left, a[2:])
		t.notify(ClassList, listPushEvent(left), a[1])
		return integer(l.n)
	}
}

// LPOP, RPOP key [count]: an element, or with a count an array (empty for
// a count of 0); a missing key is nil (a nil array with a count).
func popCmd(left bool) func(*txn, [][]byte) *messages.Reply {
	return func(t *txn, a [][]byte) *messages.Reply {
		if len(a) > 3 {
			return errArity(string(bytes.ToLower(a[0])))
		}
		count, withCount, r := countArg(a, false)
		if r != nil {
			return r
		}
		l, r := t.listFor(a[1])
		switch {
		case r != nil:
			return r
		case !l.e.exists && withCount:
			return nullArray
		case !l.e.exists:
			return nullBulk
		case withCount && count == 0:
			return array([]*messages.Reply{})
		}
		out := t.pop(l, left, count)
		t.listPopped(l, left)
		if !withCount {
			return bulk(out[0])
		}
		return t.bulks(out)
	}
}

// listPushEvent and listPopEvent are the events of a push and a pop.
func listPushEvent(left bool) string {
	if left {
		return "lpush"
	}
	return "rpush"
}

func listPopEvent(left bool) string {
	if left {
		return "lpop"
	}
	return "rpop"
}

// listPopped fires the events of a pop off l: "lpop" or "rpop", then "del"
// if it emptied l (Redis's listElementsRemoved).
func (t *txn) listPopped(l *list, left bool) {
	t.notify(ClassList, listPopEvent(left), l.e.key)
	t.deletedIfEmpty(&l.e)
}

func (t *txn) bulks(vs [][]byte) *messages.Reply { return t.bulkRefs(vs).array() }

// LLEN key
func cmdLLen(t *txn, a [][]byte) *messages.Reply {
	l, r := t.listFor(a[1])
	if r != nil {
		return r
	}
	return integer(l.n)
}

// index parses an index argument and makes it an index of l (a negative
// one counts from the end); ok is false when it is outside l.
func (l *list) index(i int64) (int64, bool) {
	if i < 0 {
		i += l.n
	}
	return i, i >= 0 && i < l.n
}

// LINDEX key index
func cmdLIndex(t *txn, a [][]byte) *messages.Reply {
	i, ok := parseInt(a[2])
	if !ok {
		return errNotInteger
	}
	l, r := t.listFor(a[1])
	if r != nil {
		return r
	}
	i, ok = l.index(i)
	if !ok {
		return nullBulk
	}
	v, _ := t.get(l.at(i))
	return bulk(bytes.Clone(v))
}

var (
	errIndexRange    = errReply("ERR index out of range")
	errRankZero      = errReply("ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list")
	errCountNegative = errReply("ERR COUNT can't be negative")
	errMaxlenNeg     = errReply("ERR MAXLEN can't be negative")
)

// LSET key index element: the key is looked at before the index.
func cmdLSet(t *txn, a [][]byte) *messages.Reply {
	l, r := t.listFor(a[1])
	switch {
	case r != nil:
		return r
	case !l.e.exists:
		return errNoSuchKey
	}
	i, ok := parseInt(a[2])
	if !ok {
		return errNotInteger
	}
	if i, ok = l.index(i); !ok {
		return errIndexRange
	}
	t.set(l.at(i), a[3])
	t.notify(ClassList, "lset", a[1])
	return replyOK
}

// span makes start and stop (LRANGE's, LTRIM's) a range of l's indexes,
// [from, to); empty when from >= to.
func (l *list) span(start, stop int64) (from, to int64) {
	if start < 0 {
		start += l.n
	}
	if stop < 0 {
		stop += l.n
	}
	start = max(start, 0)
	if start > stop || start >= l.n {
		return 0, 0
	}
	return start, min(stop, l.n-1) + 1
}

// rangeArgs parses LRANGE's and LTRIM's start and stop.
func rangeArgs(a [][]byte) (start, stop int64, r *messages.Reply) {
	start, ok1 := parseInt(a[2])
	stop, ok2 := parseInt(a[3])
	if !ok1 || !ok2 {
		return 0, 0, errNotInteger
	}
	return start, stop, nil
}

// LRANGE key start stop
func cmdLRange(t *txn, a [][]byte) *messages.Reply {
	start, stop, r := rangeArgs(a)
	if r != nil {
		return r
	}
	l, r := t.listFor(a[1])
	if r != nil {
		return r
	}
	from, to := l.span(start, stop)
	b := t.newReplies(int(min(max(to-from, 0), 1024)))
	t.eachElem(l, from, to, b.bulk)
	return b.array()
}

// LTRIM key start stop
func cmdLTrim(t *txn, a [][]byte) *messages.Reply {
	start, stop, r := rangeArgs(a)
	if r != nil {
		return r
	}
	l, r := t.listFor(a[1])
	if r != nil || !l.e.exists {
		return or(r, replyOK)
	}
	from, to := l.span(start, stop)
	t.dropElems(l, to, l.n)
	t.dropElems(l, 0, from)
	l.head += from
	l.n = to - from
	t.save(l)
	t.notify(ClassList, "ltrim", a[1])
	t.deletedIfEmpty(&l.e)
	return replyOK
}

// or is r if it is set, else def.
func or(r, def *messages.Reply) *messages.Reply {
	if r != nil {
		return r
	}
	return def
}

// LREM key count element: removes the first count elements equal to
// element (the last -count for a negative count, all for 0).
func cmdLRem(t *txn, a [][]byte) *messages.Reply {
	count, ok := parseInt(a[2])
	if !ok {
		return errNotInteger
	}
	l, r := t.listFor(a[1])
	if r != nil || !l.e.exists {
		return or(r, zero)
	}
	all := t.elems(l, 0, l.n)
	limit := uint64(count)
	if count < 0 {
		limit = -limit // |count|, math.MinInt64 included
	}
	drop := make([]bool, len(all))
	removed, first := uint64(0), len(all)
	for k := range all {
		i := k
		if count < 0 {
			i = len(all) - 1 - k
		}
		if (limit == 0 || removed < limit) && bytes.Equal(all[i], a[3]) {
			drop[i] = true
			removed++
			first = min(first, i)
		}
	}
	if removed == 0 {
		return zero
	}
	var kept [][]byte
	for i := first; i < len(all); i++ {
		if !drop[i] {
			kept = append(kept, all[i])
		}
	}
	t.rewrite(l, int64(first), kept)
	t.notify(ClassList, "lrem", a[1])
	t.deletedIfEmpty(&l.e)
	return integer(int64(removed))
}

// LINSERT key BEFORE|AFTER pivot element: the new length, -1 without the
// pivot, 0 without the key.
func cmdLInsert(t *txn, a [][]byte) *messages.Reply {
	var after bool
	switch {
	case isOpt(a[2], "after"):
		after = true
	case isOpt(a[2], "before"):
	default:
		return errSyntax
	}
	l, r := t.listFor(a[1])
	if r != nil || !l.e.exists {
		return or(r, zero)
	}
	all := t.elems(l, 0, l.n)
	at := slices.IndexFunc(all, func(v []byte) bool { return bytes.Equal(v, a[3]) })
	if at < 0 {
		return minusOne
	}
	if after {
		at++
	}
	t.rewrite(l, int64(at), append([][]byte{a[4]}, all[at:]...))
	t.notify(ClassList, "linsert", a[1])
	return integer(l.n)
}

// LPOS key element [RANK rank] [COUNT num-matches] [MAXLEN len]
func cmdLPos(t *txn, a [][]byte) *messages.Reply {
	rank, count, maxlen := int64(1), int64(-1), int64(0)
	for j := 3; j < len(a); j++ {
		more := j+1 < len(a)
		switch {
		case isOpt(a[j], "rank") && more:
			j++
			v, ok := parseInt(a[j])
			switch {
			case !ok:
				return errNotInteger
			case v == 0:
				return errRankZero
			}
			rank = v
		case isOpt(a[j], "count") && more:
			j++
			v, ok := parseInt(a[j])
			if !ok || v < 0 {
				return errCountNegative
			}
			count = v
		case isOpt(a[j], "maxlen") && more:
			j++
			v, ok := parseInt(a[j])
			if !ok || v < 0 {
				return errMaxlenNeg
			}
			maxlen = v
		default:
			return errSyntax
		}
	}
	fromTail := rank < 0
	if fromTail {
		rank = -rank
	}
	l, r := t.listFor(a[1])
	switch {
	case r != nil:
		return r
	case !l.e.exists && count != -1:
		return array([]*messages.Reply{})
	case !l.e.exists:
		return nullBulk
	}
	var found []*messages.Reply
	matches := int64(0)
	all := t.elems(l, 0, l.n)
	for k := range all {
		if maxlen != 0 && int64(k) >= maxlen {
			break
		}
		i := k
		if fromTail {
			i = len(all) - 1 - k
		}
		if !bytes.Equal(all[i], a[2]) {
			continue
		}
		if matches++; matches < rank {
			continue
		}
		found = append(found, integer(int64(i)))
		if count == -1 || (count != 0 && matches-rank+1 >= count) {
			break
		}
	}
	switch {
	case count != -1:
		if found == nil {
			found = []*messages.Reply{}
		}
		return array(found)
	case len(found) == 0:
		return nullBulk
	}
	return found[0]
}

// whereArg parses LMOVE's LEFT or RIGHT.
func whereArg(b []byte) (left bool, r *messages.Reply) {
	switch {
	case isOpt(b, "left"):
		return true, nil
	case isOpt(b, "right"):
		return false, nil
	}
	return false, errSyntax
}

// LMOVE source destination LEFT|RIGHT LEFT|RIGHT
func cmdLMove(t *txn, a [][]byte) *messages.Reply {
	from, r := whereArg(a[3])
	if r != nil {
		return r
	}
	to, r := whereArg(a[4])
	if r != nil {
		return r
	}
	return t.lmove(a[1], a[2], from, to)
}

// RPOPLPUSH source destination
func cmdRPopLPush(t *txn, a [][]byte) *messages.Reply { return t.lmove(a[1], a[2], false, true) }

// lmove pops an element off src and pushes it onto dst: nil if src is
// missing (whatever dst is), WRONGTYPE if either is not a list, nothing
// changed then. Its events are Redis's: the push onto dst ("new" first if
// dst is new), then the pop off src ("del" after if that emptied it).
func (t *txn) lmove(srcKey, dstKey []byte, fromLeft, toLeft bool) *messages.Reply {
	src, r := t.listFor(srcKey)
	if r != nil || !src.e.exists {
		return or(r, nullBulk)
	}
	if bytes.Equal(srcKey, dstKey) {
		var v []byte
		if src.n == 1 {
			// A rotation of one element: nothing moves (and the key,
			// with its expiry, stays).
			v = t.elems(src, 0, 1)[0]
		} else {
			v = t.pop(src, fromLeft, 1)[0]
			t.push(src, toLeft, [][]byte{v})
		}
		t.notify(ClassList, listPushEvent(toLeft), dstKey)
		t.notify(ClassList, listPopEvent(fromLeft), srcKey)
		return bulk(v)
	}
	dst, r := t.listFor(dstKey)
	if r != nil {
		return r
	}
	i := int64(0)
	if !fromLeft {
		i = src.n - 1
	}
	v := t.elems(src, i, i+1)[0]
	t.push(dst, toLeft, [][]byte{v})
	t.notify(ClassList, listPushEvent(toLeft), dstKey)
	t.pop(src, fromLeft, 1)
	t.listPopped(src, fromLeft)
	return bulk(v)
}

var (
	errNumkeys = errReply("ERR numkeys should be greater than 0")
	errCountGT = errReply("ERR count should be greater than 0")
)

// parseMPop parses LMPOP's and ZMPOP's numkeys key [key ...] WHERE
// [COUNT count] (a is the whole command): the keys, whether WHERE is the
// first of the two it may be (LEFT of LEFT|RIGHT, MIN of MIN|MAX), and
// the count (1 when not given).
func parseMPop(a [][]byte, first, second string) (keys [][]byte, isFirst bool, count int64, r *messages.Reply) {
	n, ok := parseInt(a[1])
	if !ok || n < 1 {
		return nil, false, 0, errNumkeys
	}
	if n > int64(len(a)-3) {
		return nil, false, 0, errSyntax
	}
	keys, rest := a[2:2+n], a[2+n:]
	switch {
	case isOpt(rest[0], first):
		isFirst = true
	case isOpt(rest[0], second):
	default:
		return nil, false, 0, errSyntax
	}
	count = -1
	for j := 1; j < len(rest); j++ {
		if count == -1 && isOpt(rest[j], "count") && j+1 < len(rest) {
			j++
			if count, ok = parseInt(rest[j]); !ok || count < 1 {
				return nil, false, 0, errCountGT
			}
			continue
		}
		return nil, false, 0, errSyntax
	}
	return keys, isFirst, max(count, 1), nil
}

// LMPOP numkeys key [key ...] LEFT|RIGHT [COUNT count]: pops up to count
// elements (1) from the first of the keys that holds a list: [key,
// [elements]], or a nil array when none does.
func cmdLMPop(t *txn, a [][]byte) *messages.Reply {
	keys, left, count, r := parseMPop(a, "left", "right")
	if r != nil {
		return r
	}
	for _, k := range keys {
		l, r := t.listFor(k)
		if r != nil {
			return r
		}
		if !l.e.exists {
			continue
		}
		out := t.pop(l, left, count)
		t.listPopped(l, left)
		return array([]*messages.Reply{bulk(k), t.bulks(out)})
	}
	return nullArray
}
