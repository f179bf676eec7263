package kv

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/coppice-kv/coppice/messages"
)

// Sets: a record with the member count, and each member a field key (as a
// hash's fields) with an empty value, so members are kept in byte order.
// SINTER, SUNION, SDIFF, their STORE forms and SMOVE take several keys:
// the node runs them only when every key is on one shard.

var errOutOfRange = errReply("ERR value is out of range, must be positive")

// setFor looks key up for a set command: the entry, or WRONGTYPE.
func (t *txn) setFor(key []byte) (entry, *messages.Reply) { return t.lookupAs(key, typeSet) }

// setLen writes e's record with n members (keeping its expiry), or
// deletes the key when n is 0.
func (t *txn) setLen(e *entry, n int64) { t.setCount(e, typeSet, n) }

// isMember reports whether m is in the live set e.
func (t *txn) isMember(e *entry, m []byte) bool {
	if !e.exists {
		return false
	}
	_, ok := t.get(fieldKey(fieldPrefix(e.key), m))
	return ok
}

// members returns the live set e's members, in byte order.
func (t *txn) members(e *entry) [][]byte {
	var out [][]byte
	t.eachField(e, func(m, _ []byte) { out = append(out, bytes.Clone(m)) })
	return out
}

// sadd adds members to e and returns how many were new.
func (t *txn) sadd(e *entry, members [][]byte) int64 {
	p := fieldPrefix(e.key)
	n := int64(0)
	if e.exists {
		n = e.rec.hashLen()
	}
	added := int64(0)
	for _, m := range members {
		fk := fieldKey(p, m)
		if (e.exists || added > 0) && t.has(fk) {
			continue
		}
		t.set(fk, nil)
		added++
	}
	if added > 0 {
		t.setLen(e, n+added)
	}
	return added
}

// deletedIfEmpty fires "del" if a command removed e's last element (its
// key is gone): after the command's own event, as Redis fires them.
func (t *txn) deletedIfEmpty(e *entry) {
	if !e.exists {
		t.notify(ClassGeneric, "del", e.key)
	}
}

func (t *txn) has(k []byte) bool {
	_, ok := t.get(k)
	return ok
}

// SADD key member [member ...]
func cmdSAdd(t *txn, a [][]byte) *messages.Reply {
	e, r := t.setFor(a[1])
	if r != nil {
		return r
	}
	n := t.sadd(&e, a[2:])
	if n > 0 {
		t.notify(ClassSet, "sadd", a[1])
	}
	return integer(n)
}

// srem removes members from e and returns how many were there.
func (t *txn) srem(e *entry, members [][]byte) int64 {
	if !e.exists {
		return 0
	}
	p := fieldPrefix(e.key)
	removed := int64(0)
	for _, m := range members {
		fk := fieldKey(p, m)
		if t.has(fk) {
			t.del(fk)
			removed++
		}
	}
	if removed > 0 {
		t.setLen(e, e.rec.hashLen()-removed)
	}
	return removed
}

// SREM key member [member ...]
func cmdSRem(t *txn, a [][]byte) *messages.Reply {
	e, r := t.setFor(a[1])
	if r != nil {
		return r
	}
	n := t.srem(&e, a[2:])
	if n > 0 {
		t.notify(ClassSet, "srem", a[1])
		t.deletedIfEmpty(&e)
	}
	return integer(n)
}

// SMEMBERS key
func cmdSMembers(t *txn, a [][]byte) *messages.Reply {
	e, r := t.setFor(a[1])
	if r != nil {
		return r
	}
	return t.fieldReplies(&e, true, false).setReply()
}

func (t *txn) setOf(members [][]byte) *messages.Reply { return t.bulkRefs(members).setReply() }

// SISMEMBER key member
func cmdSIsMember(t *txn, a [][]byte) *messages.Reply {
	e, r := t.setFor(a[1])
	if r != nil {
		return r
	}
	if t.isMember(&e, a[2]) {
		return one
	}
	return zero
}

// SMISMEMBER key member [member ...]
func cmdSMIsMember(t *txn, a [][]byte) *messages.Reply {
	e, r := t.setFor(a[1])
	if r != nil {
		return r
	}
	items := make([]*messages.Reply, len(a)-2)
	for i, m := range a[2:] {
		items[i] = zero
		if t.isMember(&e, m) {
			items[i] = one
		}
	}
	return array(items)
}

// SCARD key
func cmdSCard(t *txn, a [][]byte) *messages.Reply {
	e, r := t.setFor(a[1])
	if r != nil {
		return r
	}
	if !e.exists {
		return zero
	}
	return integer(e.rec.hashLen())
}

// SMOVE source destination member
func cmdSMove(t *txn, a [][]byte) *messages.Reply {
	// Both looked up first (an expired one goes), then Redis's order: a
	// missing source answers 0 whatever the destination holds.
	src, srcErr := t.setFor(a[1])
	dst, dstErr := t.setFor(a[2])
	switch {
	case srcErr == nil && !src.exists:
		return zero
	case srcErr != nil:
		return srcErr
	case dstErr != nil:
		return dstErr
	}
	if !t.isMember(&src, a[3]) {
		return zero
	}
	if bytes.Equal(a[1], a[2]) {
		return one
	}
	t.srem(&src, a[3:4])
	t.notify(ClassSet, "srem", a[1])
	t.deletedIfEmpty(&src)
	if t.sadd(&dst, a[3:4]) > 0 {
		t.notify(ClassSet, "sadd", a[2])
	}
	return one
}

// setOp is SINTER's, SUNION's or SDIFF's.
type setOp int

const (
	opInter setOp = iota
	opUnion
	opDiff
)

// combine runs op over the sets at keys (a missing key is an empty set),
// in byte order; WRONGTYPE if a key holds something else.
func (t *txn) combine(op setOp, keys [][]byte) ([][]byte, *messages.Reply) {
	sets := make([][][]byte, len(keys))
	for i, k := range keys {
		e, r := t.setFor(k)
		if r != nil {
			return nil, r
		}
		sets[i] = t.members(&e)
	}
	count := map[string]int{} // the sets each member is in
	for _, s := range sets {
		for _, m := range s {
			count[string(m)]++
		}
	}
	var out [][]byte
	switch op {
	case opInter:
		for _, m := range sets[0] {
			if count[string(m)] == len(sets) {
				out = append(out, m)
			}
		}
	case opDiff:
		for _, m := range sets[0] {
			if count[string(m)] == 1 {
				out = append(out, m)
			}
		}
	case opUnion:
		out = slices.Concat(sets...)
		slices.SortFunc(out, bytes.Compare)
		out = slices.CompactFunc(out, bytes.Equal)
	}
	return out, nil
}

func setCmd(op setOp) func(*txn, [][]byte) *messages.Reply {
	return func(t *txn, a [][]byte) *messages.Reply {
		out, r := t.combine(op, a[1:])
		if r != nil {
			return r
		}
		return t.setOf(out)
	}
}

// storeEvents are the events of the STORE forms.
var storeEvents = [...]string{opInter: "sinterstore", opUnion: "sunionstore", opDiff: "sdiffstore"}

// SINTERSTORE, SUNIONSTORE, SDIFFSTORE destination key [key ...]: the
// result replaces destination, whatever it held; an empty one deletes it.
func setStoreCmd(op setOp) func(*txn, [][]byte) *messages.Reply {
	return func(t *txn, a [][]byte) *messages.Reply {
		out, r := t.combine(op, a[2:])
		if r != nil {
			return r
		}
		dst := t.lookup(a[1])
		existed := dst.exists
		if existed {
			t.deleteKey(&dst)
		}
		if len(out) == 0 {
			if existed {
				t.notify(ClassGeneric, "del", a[1])
			}
			return zero
		}
		// The result (distinct members) replaces the old value, with no
		// expiry; it is a new key only if there was none: Redis's setKey
		// fires "new" only then.
		p := fieldPrefix(a[1])
		for _, m := range out {
			t.set(fieldKey(p, m), nil)
		}
		if !existed {
			t.added(&dst)
		}
		t.set(dst.mk, countRecord(typeSet, int64(len(out)), false, 0))
		t.notify(ClassSet, storeEvents[op], a[1])
		return integer(int64(len(out)))
	}
}

// countArg parses SPOP's and SRANDMEMBER's optional count (a[2]; 1 when
// not given), negative only if negative: with their errors.
func countArg(a [][]byte, negative bool) (count int64, given bool, r *messages.Reply) {
	switch {
	case len(a) > 3:
		return 0, false, errSyntax
	case len(a) < 3:
		return 1, false, nil
	}
	n, ok := parseInt(a[2])
	switch {
	case !ok && negative:
		return 0, true, errNotInteger
	case ok && negative && n == math.MinInt64: // SRANDMEMBER's range is ±LONG_MAX
		return 0, true, errRangeLong
	case !ok || (n < 0 && !negative):
		return 0, true, errOutOfRange
	}
	return n, true, nil
}

// pickFrom parses SPOP's or SRANDMEMBER's arguments and reads the set:
// the set, or the reply to give at once: an error, or for a missing set
// nil, or none (none's shape) with a count.
func (t *txn) pickFrom(a [][]byte, negative bool, none *messages.Reply) (e entry, count int64, withCount bool, r *messages.Reply) {
	if count, withCount, r = countArg(a, negative); r != nil {
		return e, 0, false, r
	}
	if e, r = t.setFor(a[1]); r != nil {
		return e, 0, false, r
	}
	if !e.exists {
		if withCount {
			return e, 0, true, none
		}
		return e, 0, false, nullBulk
	}
	return e, count, withCount, nil
}

// SPOP key [count]: removes and returns members chosen at random, the
// same ones on every replica: the choice is seeded by the command's time
// and key, which every replica applies alike, and is the first count of
// a shuffle of the members in order (math/rand/v2's Shuffle, whose draws
// are part of the log's meaning: a change would split replicas).
func cmdSPop(t *txn, a [][]byte) *messages.Reply {
	e, count, withCount, r := t.pickFrom(a, false, setReply([]*messages.Reply{}))
	if r != nil {
		return r
	}
	var chosen [][]byte
	if n := int(e.rec.hashLen()); count < int64(n) {
		// The members a shuffle of all of them would put first, taking
		// the same draws: the shuffle moves their places, and a walk
		// reads the set up to the last one chosen.
		h := fnv.New64a()
		h.Write(a[1])
		rng := rand.New(rand.NewPCG(uint64(t.now), h.Sum64()))
		place := make([]int, n)
		for i := range place {
			place[i] = i
		}
		rng.Shuffle(n, func(i, j int) { place[i], place[j] = place[j], place[i] })
		for _, m := range t.fieldPool(&e, false).elements(place[:count]) {
			chosen = append(chosen, m.name)
		}
	} else {
		chosen = t.members(&e)
	}
	if len(chosen) > 0 {
		// Redis fires "spop" before it removes the members.
		t.notify(ClassSet, "spop", a[1])
	}
	t.srem(&e, chosen)
	t.deletedIfEmpty(&e)
	if !withCount {
		return bulk(chosen[0])
	}
	return t.setOf(chosen)
}

// SRANDMEMBER key [count]: members chosen at random, without removing
// them (a read: each node chooses its own); a negative count may repeat
// members.
func cmdSRandMember(t *txn, a [][]byte) *messages.Reply {
	e, count, withCount, r := t.pickFrom(a, true, array([]*messages.Reply{}))
	if r != nil {
		return r
	}
	pool := t.fieldPool(&e, false)
	if !withCount {
		return bulk(pool.elements([]int{t.intN(pool.n)})[0].name)
	}
	if count < -maxRandomRepeats {
		return errTooManyRepeats
	}
	picks := t.randomPicks(pool.n, count)
	items := make([]*messages.Reply, len(picks))
	for i, m := range pool.elements(picks) {
		items[i] = bulk(m.name)
	}
	return array(items)
}

var errLimitNegative = errReply("ERR LIMIT can't be negative")

// maxRandomRepeats bounds the elements SRANDMEMBER and HRANDFIELD give
// for a negative count (with repeats): Redis builds a reply of any size,
// and one command could make the node allocate gigabytes.
const maxRandomRepeats = 1_000_000

var errTooManyRepeats = errReply(fmt.Sprintf("ERR count with repeats is over %d: coppice caps the elements of one reply", maxRandomRepeats))

// SINTERCARD numkeys key [key ...] [LIMIT limit]: the size of the
// intersection, counting up to limit (0: no limit).
func cmdSInterCard(t *txn, a [][]byte) *messages.Reply {
	n, ok := parseInt(a[1])
	if !ok || n < 1 {
		return errNumkeys
	}
	if n > int64(len(a)-2) {
		return errReply("ERR Number of keys can't be greater than number of args")
	}
	keys, rest := a[2:2+n], a[2+n:]
	limit := int64(0)
	for j := 0; j < len(rest); j++ {
		if isOpt(rest[j], "limit") && j+1 < len(rest) {
			j++
			if limit, ok = parseInt(rest[j]); !ok || limit < 0 {
				return errLimitNegative
			}
			continue
		}
		return errSyntax
	}
	out, r := t.combine(opInter, keys)
	if r != nil {
		return r
	}
	if limit > 0 {
		return integer(min(int64(len(out)), limit))
	}
	return integer(int64(len(out)))
}
