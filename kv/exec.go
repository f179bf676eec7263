package kv

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"

	"github.com/coppice-kv/coppice/messages"
)

// ExpireDueName is the name of the internal command that runs ExpireDue
// through a shard's Raft log: args ["\x00expire-due", limit] or
// ["\x00expire-due", limit, from]. It is not in the command table, so
// Lookup and CheckArity refuse it and a client cannot send it through the
// node; only Exec runs it. Its reply is the number of keys deleted.
const ExpireDueName = "\x00expire-due"

// ExpireDueCommand returns the command that deletes up to limit keys whose
// expiry is in [fromMs, nowMs) (see ExpireDue; math.MinInt64: every due
// key).
func ExpireDueCommand(fromMs, nowMs int64, limit int) *messages.Command {
	args := [][]byte{[]byte(ExpireDueName), strconv.AppendInt(nil, int64(limit), 10)}
	if fromMs != math.MinInt64 {
		args = append(args, strconv.AppendInt(nil, fromMs, 10))
	}
	return &messages.Command{Args: args, NowMs: nowMs}
}

// Exec runs one command on w (a shard's batch) at time cmd.NowMs and
// returns its reply. It runs any command of the table the engine serves,
// reads too (with the batch's view), and the internal ExpireDueName and
// ExecName.
//
// A command writes only after checking its input: a command that replies
// with an error has written nothing. A Writer error panics with a
// *StorageError (see its doc): the batch may then hold part of the command.
func Exec(w Writer, cmd *messages.Command) *messages.Reply {
	return exec(w, cmd, nil)
}

func exec(w Writer, cmd *messages.Command, ev *EventLog) *messages.Reply {
	trace := newTrace(cmd.GetTrace())
	return trace.attach(execArgs(w, cmd.GetArgs(), cmd.GetNowMs(), ev, trace))
}

// execArgs runs args on w at time now, its events to ev and what its
// trace asks for to trace (each may be nil).
func execArgs(w Writer, args [][]byte, now int64, ev *EventLog, trace *cmdTrace) *messages.Reply {
	t := &txn{r: w, w: w, now: now, ev: ev, trace: trace}
	if len(args) > 0 && internal(args[0]) {
		switch string(args[0]) {
		case ExpireDueName:
			return execExpireDue(t, args)
		case ExecName:
			return execMulti(t, args)
		}
		if run := scriptCommands[string(args[0])]; run != nil {
			return run(t, args)
		}
	}
	s, r := resolve(args)
	if r != nil {
		return r
	}
	return s.run(t, args)
}

// scriptCommands are the internal commands of scripts and functions: on
// the write path (Exec) and the read path (Read, where t.w is nil: a
// script that may not write, FUNCTION LIST's read).
var scriptCommands = map[string]func(t *txn, args [][]byte) *messages.Reply{
	EvalName:     execEval,
	FcallName:    execFcall,
	FunctionName: execFunction,
}

// Read runs a read-only command on r at time nowMs: the node's reads go to
// a shard's live store, without the Raft log. A write command gets an
// error reply. The internal DigestName, StreamLastIDsName and the
// scriptCommands run here. Storage errors become "ERR kv: storage: ..."
// replies.
func Read(r Reader, args [][]byte, nowMs int64) *messages.Reply {
	return read(r, args, nowMs, nil, false)
}

func read(r Reader, args [][]byte, nowMs int64, trace *cmdTrace, encodeBulks bool) (reply *messages.Reply) {
	var run func(t *txn, args [][]byte) *messages.Reply
	if len(args) > 0 {
		switch name := string(args[0]); name {
		case DigestName:
			run = readDigests
		case StreamLastIDsName:
			run = readStreamLastIDs
		case KeyspaceInfoName:
			run = readKeyspaceInfo
		case SlotKeysName:
			run = readSlotKeys
		case DatasetDigestName:
			run = readDatasetDigest
		default:
			run = scriptCommands[name]
		}
	}
	if run == nil {
		s, e := resolve(args)
		if e != nil {
			return e
		}
		if s.Write {
			return errReadWrite
		}
		run = s.run
	}
	defer func() {
		if p := recover(); p != nil {
			se, ok := p.(*StorageError)
			if !ok {
				panic(p)
			}
			reply = errReply("ERR " + se.Error())
		}
	}()
	t := &txn{r: r, now: nowMs, trace: trace, encodeBulks: encodeBulks}
	return trace.attach(run(t, args))
}

// resolve finds args' command and checks its arity.
func resolve(args [][]byte) (*Spec, *messages.Reply) {
	if r := CheckArity(args); r != nil {
		return nil, r
	}
	s, _ := Lookup(args[0])
	if s.run == nil {
		if s.Name == "command" {
			return commandSpec, nil
		}
		return nil, errReply(fmt.Sprintf("ERR kv: '%s' is served by the node, not the engine", s.Name))
	}
	if len(s.Subcommands) > 0 {
		if r := CheckSubcommand(args); r != nil {
			return nil, r
		}
	}
	return s, nil
}

var commandSpec = &Spec{Name: "command", Arity: -1, run: func(_ *txn, args [][]byte) *messages.Reply { return Command(args) }}

func execExpireDue(t *txn, args [][]byte) *messages.Reply {
	if len(args) != 2 && len(args) != 3 {
		return errArity(ExpireDueName)
	}
	limit, ok := parseInt(args[1])
	from := int64(math.MinInt64)
	if len(args) == 3 {
		var okFrom bool
		from, okFrom = parseInt(args[2])
		ok = ok && okFrom
	}
	if !ok || limit < 0 {
		return errNotInteger
	}
	n, err := t.expireDue(from, int(limit))
	must(err)
	return integer(int64(n))
}

// txn is one command's view: a reader, a writer (nil on the read path), and
// the time the command runs at. Storage errors panic (must); Exec lets the
// panic go, Read recovers it.
type txn struct {
	r   Reader
	w   Writer
	now int64
	rng *rand.Rand // a script's: its random reads are the same on every replica
	ev  *EventLog  // where the keyspace events go (nil: nowhere)
	// trace collects what the command's trace asked for (nil: nothing):
	// its scripts' calls, its reads' missing keys.
	trace *cmdTrace
	// encodeBulks writes a big reply's bulk strings out (Command.bulks):
	// a client's read, whose reply goes to the client as it is.
	encodeBulks bool
}

// intN and perm are the command's random choices: a script's
// source in a script, the process's otherwise.
func (t *txn) intN(n int) int {
	if t.rng != nil {
		return t.rng.IntN(n)
	}
	return rand.IntN(n)
}

func (t *txn) perm(n int) []int {
	if t.rng != nil {
		return t.rng.Perm(n)
	}
	return rand.Perm(n)
}

// distinct is k distinct numbers in [0, n), k < n, in random order: a
// permutation's first k, or, when k is much smaller than n, k draws that
// skip repeats (no slice of n).
func (t *txn) distinct(n, k int) []int {
	if k*4 > n {
		return t.perm(n)[:k]
	}
	seen := make(map[int]bool, k)
	out := make([]int, 0, k)
	for len(out) < k {
		if i := t.intN(n); !seen[i] {
			seen[i] = true
			out = append(out, i)
		}
	}
	return out
}

func (t *txn) get(k []byte) ([]byte, bool) {
	v, ok, err := t.r.Get(k)
	must(err)
	return v, ok
}

func (t *txn) set(k, v []byte) { must(t.w.Set(k, v)) }
func (t *txn) del(k []byte)    { must(t.w.Delete(k)) }

// entry is a key as a command finds it.
type entry struct {
	key    []byte // the user's key
	mk     []byte // its meta key
	rec    record
	exists bool // live (present and not expired)
}

// lookup reads key's record. A key past its expiry is absent; on the write
// path it is also deleted (lazy expiry), as Redis's lookupKeyWrite does.
func (t *txn) lookup(key []byte) entry {
	e := entry{key: key, mk: metaKey(key)}
	v, ok := t.get(e.mk)
	if !ok {
		if t.w == nil {
			keyspace.misses.Add(1)
			t.trace.missed(key)
		}
		return e
	}
	rec, valid := decodeRecord(v)
	if !valid {
		must(errCorruptKey(key))
	}
	e.rec = rec
	if rec.expired(t.now) {
		if t.w != nil {
			t.deleteKey(&e)
			t.notify(ClassExpired, "expired", key)
			keyspace.expired.Add(1)
		} else {
			keyspace.misses.Add(1)
			t.trace.missed(key)
		}
		return entry{key: key, mk: e.mk}
	}
	if t.w == nil {
		keyspace.hits.Add(1)
	}
	e.exists = true
	return e
}

// deleteKey deletes a key: its record, its expiry index entry, its fields.
func (t *txn) deleteKey(e *entry) {
	t.del(e.mk)
	if e.rec.hasExp {
		t.del(expiryKey(e.rec.expire, e.key))
	}
	if e.rec.typ != typeString {
		t.deleteFields(e.key, e.rec.hashLen())
	}
	e.exists = false
	e.rec = record{}
}

// smallHash is the field count up to which a hash's fields are deleted one
// by one; bigger hashes get one range deletion.
const smallHash = 16

func (t *txn) deleteFields(key []byte, n int64) {
	p := fieldPrefix(key)
	end := successor(p)
	if n > smallHash {
		must(t.w.DeleteRange(p, end))
		return
	}
	t.deleteRange(p, end, smallHash)
}

// deleteRange deletes the keys in [lower, upper): one by one when there
// are at most few, with one range deletion otherwise.
func (t *txn) deleteRange(lower, upper []byte, few int) {
	var keys [][]byte
	must(t.r.Scan(lower, upper, func(k, _ []byte) bool {
		keys = append(keys, bytes.Clone(k))
		return len(keys) <= few
	}))
	if len(keys) > few {
		must(t.w.DeleteRange(lower, upper))
		return
	}
	for _, k := range keys {
		t.del(k)
	}
}

// setExpiry moves e's expiry index entry from its current expiry to the
// given one (hasExp false: none). It does not write the record.
func (t *txn) setExpiry(e *entry, hasExp bool, when int64) {
	if e.exists && e.rec.hasExp {
		if hasExp && when == e.rec.expire {
			return
		}
		t.del(expiryKey(e.rec.expire, e.key))
	}
	if hasExp {
		t.set(expiryKey(when, e.key), nil)
	}
}

// putString writes key as a string with value v. keepTTL keeps a live
// key's expiry; otherwise the key gets expiry when (hasExp) or none.
func (t *txn) putString(e *entry, v []byte, keepTTL, hasExp bool, when int64) {
	t.putStringParts(e, keepTTL, hasExp, when, len(v), v)
}

// putStringParts is putString with the value given in parts (copied once
// into the record), zero-padded to n bytes.
func (t *txn) putStringParts(e *entry, keepTTL, hasExp bool, when int64, n int, parts ...[]byte) {
	if keepTTL {
		hasExp, when = e.exists && e.rec.hasExp, e.rec.expire
	}
	if e.exists && e.rec.typ != typeString {
		t.deleteFields(e.key, e.rec.hashLen())
	}
	t.added(e)
	t.setExpiry(e, hasExp, when)
	rec := make([]byte, headerLen(hasExp)+n)
	h := len(appendHeader(rec[:0], typeString, hasExp, when))
	off := h
	for _, p := range parts {
		off += copy(rec[off:], p)
	}
	t.set(e.mk, rec)
}

// added fires "new" if e is about to be written and does not exist: Redis
// fires it as a key is added (dbAdd), before the command's own event.
func (t *txn) added(e *entry) {
	if !e.exists {
		t.notify(ClassNew, "new", e.key)
	}
}

// ExpireDue deletes up to limit keys whose expiry is before nowMs (the keys
// lazy expiry already treats as absent), oldest expiry first, and returns
// how many it deleted. The node runs it through Raft with ExpireDueCommand,
// so every replica deletes the same keys.
func ExpireDue(w Writer, nowMs int64, limit int) (deleted int, err error) {
	return (&txn{r: w, w: w, now: nowMs}).expireDue(math.MinInt64, limit)
}

// expireDue is ExpireDue at t's time for the keys whose expiry is at or
// after fromMs only: the start of the expiry index holds the tombstones of
// the keys deleted before, which a scan from fromMs need not step over.
// Each key deleted fires "expired".
func (t *txn) expireDue(fromMs int64, limit int) (deleted int, err error) {
	if limit < 1 {
		return 0, nil
	}
	defer func() {
		if p := recover(); p != nil {
			se, ok := p.(*StorageError)
			if !ok {
				panic(p)
			}
			err = se.Err
		}
	}()
	type due struct {
		ik   []byte
		when int64
		key  []byte
	}
	var dues []due
	must(t.w.Scan(expiryBound(fromMs), expiryBound(t.now), func(k, _ []byte) bool {
		when, key, ok := decodeExpiryKey(k)
		if ok {
			ik := bytes.Clone(k)
			dues = append(dues, due{ik: ik, when: when, key: ik[len(ik)-len(key):]})
		}
		return len(dues) < limit
	}))
	for _, d := range dues {
		e := entry{key: d.key, mk: metaKey(d.key)}
		v, ok := t.get(e.mk)
		rec, valid := decodeRecord(v)
		if !ok || !valid || !rec.hasExp || rec.expire != d.when {
			t.del(d.ik) // a stale index entry
			continue
		}
		e.rec, e.exists = rec, true
		t.deleteKey(&e)
		t.notify(ClassExpired, "expired", d.key)
		keyspace.expired.Add(1)
		deleted++
	}
	return deleted, nil
}

// KeyspaceInfoName is the internal read INFO keyspace makes of each
// shard: [DBSIZE's count, the keys with an expiry still to come, the sum
// of their times to live in milliseconds]. Not in the table: clients
// cannot send it.
const KeyspaceInfoName = "\x00keyspace-info"

// readKeyspaceInfo counts the keys, and those whose expiry is at or
// after t's time, with the sum of their times to live: from the
// storage's counts (liveCounts), or by passes over the keys and the
// expiry index.
func readKeyspaceInfo(t *txn, a [][]byte) *messages.Reply {
	if c, ok := t.liveCounts(); ok {
		sum := int64(0)
		if ttl := c.WhenSum - float64(c.Expiring)*float64(t.now); c.Expiring > 0 && ttl > 0 {
			sum = int64(min(ttl, math.MaxInt64/2))
		}
		return array([]*messages.Reply{integer(c.Keys), integer(c.Expiring), integer(sum)})
	}
	keys := cmdDBSize(t, a).GetInteger()
	var n, sum int64
	must(t.r.Scan(expiryBound(t.now), []byte{prefixExpiry + 1}, func(k, _ []byte) bool {
		if when, _, ok := decodeExpiryKey(k); ok {
			n++
			sum += min(when-t.now, math.MaxInt64-sum)
		}
		return true
	}))
	return array([]*messages.Reply{integer(keys), integer(n), integer(sum)})
}

// NextExpiry returns the earliest expiry at or after fromMs of a key r
// holds (ok false: none): ExpireDueCommand(fromMs, nowMs, ...) deletes
// something if and only if it is below nowMs. A shard's leader asks it
// before proposing that command, so an idle shard's log stays still, and
// looks no more until then unless the shard applies another entry.
func NextExpiry(r Reader, fromMs int64) (whenMs int64, ok bool, err error) {
	err = r.Scan(expiryBound(fromMs), []byte{prefixExpiry + 1}, func(k, _ []byte) bool {
		whenMs, _, ok = decodeExpiryKey(k)
		return false
	})
	return whenMs, ok, err
}

func errCorruptKey(key []byte) error {
	return fmt.Errorf("corrupt record for key %q", key)
}
