package kv

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"strconv"

	"github.com/coppice-kv/coppice/messages"
)

// Transactions (MULTI ... EXEC, WATCH) run on one shard as one command:
// ExecName, which the node proposes to the shard's Raft log, so that its
// commands apply in one entry, in one Pebble batch, with nothing between
// them. WATCH reads DigestName first: a digest of each watched key's whole
// value (its record and every field), which ExecName compares before it
// runs anything. A key changed since, expired or deleted, or created,
// makes EXEC answer nil and run nothing, as Redis's does. (Unlike Redis,
// a write that leaves a key's bytes as they were is not seen.)

// ExecName is the internal command of a transaction: args
//
//	["\x00exec", W, key1, digest1, ... keyW, digestW, N1, arg..., N2, arg..., ...]
//
// W watched keys with their digests, then each command as its argument
// count and arguments. Its reply is an array of the commands' replies, or
// a nil array when a watched key changed. Like ExpireDueName it is not in
// the table: only Exec runs it.
const ExecName = "\x00exec"

// DigestName is the internal read of WATCH: args ["\x00digest", key...];
// its reply is an array of each key's digest (empty for a missing key).
// Only Read runs it.
const DigestName = "\x00digest"

// ExecCommand makes the command of a transaction: watched keys with the
// digests DigestName gave, then the queued commands.
func ExecCommand(nowMs int64, watched, digests [][]byte, cmds [][][]byte) *messages.Command {
	args := [][]byte{[]byte(ExecName), strconv.AppendInt(nil, int64(len(watched)), 10)}
	for i, k := range watched {
		args = append(args, k, digests[i])
	}
	for _, c := range cmds {
		args = append(args, strconv.AppendInt(nil, int64(len(c)), 10))
		args = append(args, c...)
	}
	return &messages.Command{Args: args, NowMs: nowMs}
}

var errBadExec = errReply("ERR kv: malformed transaction")

// parseExec splits ExecName's arguments; ok is false if they are not
// well formed.
func parseExec(args [][]byte) (watched, digests [][]byte, cmds [][][]byte, ok bool) {
	rest := args[1:]
	next := func() (int, bool) {
		if len(rest) == 0 {
			return 0, false
		}
		n, err := strconv.Atoi(string(rest[0]))
		rest = rest[1:]
		return n, err == nil && n >= 0 && n <= len(rest)
	}
	w, ok := next()
	if !ok || 2*w > len(rest) {
		return nil, nil, nil, false
	}
	for range w {
		watched, digests, rest = append(watched, rest[0]), append(digests, rest[1]), rest[2:]
	}
	for len(rest) > 0 {
		n, ok := next()
		if !ok || n == 0 {
			return nil, nil, nil, false
		}
		cmds, rest = append(cmds, rest[:n]), rest[n:]
	}
	return watched, digests, cmds, true
}

// execMulti runs a transaction on w at time now.
func execMulti(t *txn, args [][]byte) *messages.Reply {
	watched, digests, cmds, ok := parseExec(args)
	if !ok {
		return errBadExec
	}
	view := &txn{r: t.r, now: t.now} // a look, which deletes nothing
	for i, k := range watched {
		if !bytes.Equal(view.digest(k), digests[i]) {
			return nullArray
		}
	}
	replies := make([]*messages.Reply, len(cmds))
	for i, c := range cmds {
		if internal(c[0]) && string(c[0]) != EvalName && string(c[0]) != FcallName {
			replies[i] = errBadExec
			continue
		}
		replies[i] = execArgs(t.w, c, t.now, t.ev, t.trace)
	}
	return array(replies)
}

// internal reports whether name is one of the engine's internal commands
// (they start with a NUL byte; no command of the table does).
func internal(name []byte) bool { return len(name) > 0 && name[0] == 0 }

// readDigests is DigestName's reply.
func readDigests(t *txn, args [][]byte) *messages.Reply {
	items := make([]*messages.Reply, len(args)-1)
	for i, k := range args[1:] {
		items[i] = bulk(t.digest(k))
	}
	return array(items)
}

// digest is a SHA-256 prefix of key's whole value as of t (empty when it
// is missing): its record (type, expiry, payload) and each of its fields.
func (t *txn) digest(key []byte) []byte {
	e := t.lookup(key)
	if !e.exists {
		return []byte{}
	}
	h := sha256.New()
	v, _ := t.get(e.mk)
	h.Write(v)
	if e.rec.typ != typeString {
		var n [binary.MaxVarintLen64]byte
		p := fieldPrefix(key)
		must(t.r.Scan(p, successor(p), func(k, v []byte) bool {
			for _, b := range [][]byte{k, v} {
				h.Write(n[:binary.PutUvarint(n[:], uint64(len(b)))])
				h.Write(b)
			}
			return true
		}))
	}
	return h.Sum(nil)[:16]
}

// AddsData tells whether a write command may add data (Redis's denyoom
// flag): for a transaction, whether one of its commands may.
func AddsData(args [][]byte) bool {
	if len(args) == 0 {
		return false
	}
	if string(args[0]) == EvalName || string(args[0]) == FcallName || string(args[0]) == FunctionName {
		return true // a script may write anything
	}
	if string(args[0]) == ExecName {
		_, _, cmds, _ := parseExec(args)
		for _, c := range cmds {
			if AddsData(c) {
				return true
			}
		}
		return false
	}
	s, ok := Lookup(args[0])
	return ok && s.Has("denyoom")
}
