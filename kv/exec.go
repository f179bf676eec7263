package kv

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strconv"

	"github.com/coppice-kv/coppice/messages"
)

// ExpireDueName is the name of the internal command that runs ExpireDue
// through a shard's Raft log: args ["\x00expire-due", limit]. It is not in
// the command table, so Lookup and CheckArity refuse it and a client cannot
// send it through the node; only Exec runs it. Its reply is the number of
// keys deleted.
const ExpireDueName = "\x00expire-due"

// ExpireDueCommand returns the command that deletes up to limit keys whose
// expiry is before nowMs (see ExpireDue).
func ExpireDueCommand(nowMs int64, limit int) *messages.Command {
	return &messages.Command{
		Args:  [][]byte{[]byte(ExpireDueName), strconv.AppendInt(nil, int64(limit), 10)},
		NowMs: nowMs,
	}
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
	args := cmd.GetArgs()
	if len(args) > 0 && internal(args[0]) {
		switch string(args[0]) {
		case ExpireDueName:
			return execExpireDue(w, args, cmd.GetNowMs())
		case ExecName:
			return execMulti(w, args, cmd.GetNowMs())
		}
		if run := scriptCommands[string(args[0])]; run != nil {
			return run(&txn{r: w, w: w, now: cmd.GetNowMs()}, args)
		}
	}
	s, r := resolve(args)
	if r != nil {
		return r
	}
	t := &txn{r: w, w: w, now: cmd.GetNowMs()}
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
func Read(r Reader, args [][]byte, nowMs int64) (reply *messages.Reply) {
	var run func(t *txn, args [][]byte) *messages.Reply
	if len(args) > 0 {
		switch name := string(args[0]); name {
		case DigestName:
			run = readDigests
		case StreamLastIDsName:
			run = readStreamLastIDs
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
	t := &txn{r: r, now: nowMs}
	return run(t, args)
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

func execExpireDue(w Writer, args [][]byte, now int64) *messages.Reply {
	if len(args) != 2 {
		return errArity(ExpireDueName)
	}
	limit, ok := parseInt(args[1])
	if !ok || limit < 0 {
		return errNotInteger
	}
	n, err := ExpireDue(w, now, int(limit))
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
}

// intN, perm and shuffle are the command's random choices: a script's
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

func (t *txn) shuffle(n int, swap func(i, j int)) {
	if t.rng != nil {
		t.rng.Shuffle(n, swap)
		return
	}
	rand.Shuffle(n, swap)
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
		}
		return entry{key: key, mk: e.mk}
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
	var keys [][]byte
	must(t.r.Scan(p, end, func(k, _ []byte) bool {
		keys = append(keys, bytes.Clone(k))
		return true
	}))
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
	t.setExpiry(e, hasExp, when)
	rec := make([]byte, headerLen(hasExp)+n)
	h := len(appendHeader(rec[:0], typeString, hasExp, when))
	off := h
	for _, p := range parts {
		off += copy(rec[off:], p)
	}
	t.set(e.mk, rec)
}

// ExpireDue deletes up to limit keys whose expiry is before nowMs (the keys
// lazy expiry already treats as absent), oldest expiry first, and returns
// how many it deleted. The node runs it through Raft with ExpireDueCommand,
// so every replica deletes the same keys.
func ExpireDue(w Writer, nowMs int64, limit int) (deleted int, err error) {
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
	must(w.Scan([]byte{prefixExpiry}, expiryBound(nowMs), func(k, _ []byte) bool {
		when, key, ok := decodeExpiryKey(k)
		if ok {
			ik := bytes.Clone(k)
			dues = append(dues, due{ik: ik, when: when, key: ik[len(ik)-len(key):]})
		}
		return len(dues) < limit
	}))
	t := &txn{r: w, w: w, now: nowMs}
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
		deleted++
	}
	return deleted, nil
}

func errCorruptKey(key []byte) error {
	return fmt.Errorf("corrupt record for key %q", key)
}
