package kv

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/coppice-kv/coppice/kv/luascript"
	"github.com/coppice-kv/coppice/messages"
)

// Scripts (EVAL and its kin) run in the engine, as the Raft log applies
// them, on every replica of the shard: the log holds the script's body,
// its keys and arguments and the node's time, and package luascript makes
// every run of them the same (see its doc). The node turns EVAL and
// EVALSHA into EvalName, with the script's body (EVALSHA's looked up in
// the node's cache) and the shard the keys are on.

// EvalName is the internal command of a script: args
//
//	["\x00eval", "<shards>:<shard>[:ro]", body, numkeys, key..., arg...]
//
// shards is the node's shard count and shard the one the command runs on:
// a key the script touches must be on it. On the write path (Exec) the
// script may write, unless its shebang says no-writes or the command says
// ro (EVAL_RO in a transaction); on the read path (Read: EVAL_RO,
// EVALSHA_RO, no-writes scripts) it may not.
const EvalName = "\x00eval"

// EvalCommand makes EvalName's arguments from EVAL's (or EVALSHA's, the
// body in place of the SHA): eval[1] is replaced by body.
func EvalCommand(shards, shard int, readOnly bool, body []byte, eval [][]byte) [][]byte {
	args := make([][]byte, 0, len(eval)+1)
	args = append(args, []byte(EvalName), scriptWhere(shards, shard, readOnly), body)
	return append(args, eval[2:]...)
}

// EvalOnShard makes EvalName's or FcallName's command cmd run on shard (a
// transaction's script without keys runs on the transaction's shard); it
// leaves any other command as it is.
func EvalOnShard(cmd [][]byte, shards, shard int) {
	if !IsScript(cmd) {
		return
	}
	_, _, readOnly, rules, _ := parseWhere(cmd)
	cmd[1] = scriptWhere(shards, shard, readOnly)
	if rules != "" {
		ScriptACL(cmd, rules)
	}
}

// IsScript tells whether cmd is a script's or a function's internal
// command (EvalName, FcallName).
func IsScript(cmd [][]byte) bool {
	return len(cmd) > 0 && (string(cmd[0]) == EvalName || string(cmd[0]) == FcallName)
}

// ScriptACL makes EvalName's or FcallName's command cmd check every
// command the script calls against rules (ACLUser.Permissions: its
// caller's), as Redis checks a script's calls against its user's.
func ScriptACL(cmd [][]byte, rules string) {
	cmd[1] = append(append(append([]byte(nil), cmd[1]...), 0), rules...)
}

// scriptWhere is EvalName's and FcallName's args[1], "shards:shard[:ro]"
// (parseWhere reads it).
func scriptWhere(shards, shard int, readOnly bool) []byte {
	where := strconv.Itoa(shards) + ":" + strconv.Itoa(shard)
	if readOnly {
		where += ":ro"
	}
	return []byte(where)
}

var (
	errNoScript   = errReply("NOSCRIPT No matching script. Please use EVAL.")
	errROWithFlag = errReply("ERR Can not execute a script with write flag using *_ro command.")
)

// PrepareEval turns EVAL, EVALSHA, EVAL_RO or EVALSHA_RO (name lower-case,
// args arity checked) into EvalName's command, on a node of shards shards,
// or returns Redis's error: the numkeys, NOSCRIPT (lookup gives EVALSHA's
// body by SHA, nil if unknown), a compile error, a script that may write
// under *_RO, keys on different shards. shard is the keys' shard, -1 for a
// script without keys (the command gives shard 0); read tells that the
// script may not write (it runs on the read path). The command's
// arguments are args' own slices.
func PrepareEval(name string, args [][]byte, lookup func(sha string) []byte, shards int) (cmd [][]byte, shard int, read bool, s *luascript.Script, r *messages.Reply) {
	keys, r := ScriptKeys(args)
	if r != nil {
		return nil, 0, false, nil, r
	}
	body := args[1]
	if name == "evalsha" || name == "evalsha_ro" {
		if body = lookup(strings.ToLower(string(args[1]))); body == nil {
			return nil, 0, false, nil, errNoScript
		}
	}
	s, r = luascript.Compile(body)
	if r != nil {
		return nil, 0, false, nil, r
	}
	ro := strings.HasSuffix(name, "_ro")
	if ro && s.Shebang && !s.NoWrites {
		return nil, 0, false, nil, errROWithFlag
	}
	if shard, r = keysShard(keys, shards); r != nil {
		return nil, 0, false, nil, r
	}
	return EvalCommand(shards, max(shard, 0), ro, body, args), shard, ro || s.NoWrites, s, nil
}

// keysShard is the shard of keys (-1 when there are none), or CROSSSLOT
// when they are on several.
func keysShard(keys [][]byte, shards int) (int, *messages.Reply) {
	shard := -1
	for _, k := range keys {
		sh := ShardOf(Slot(k), shards)
		if shard == -1 {
			shard = sh
		} else if sh != shard {
			return 0, ErrCrossShard
		}
	}
	return shard, nil
}

// ErrCrossShard refuses a command whose keys must change together but
// are on different shards. Redis Cluster's prefix, which clients know; its
// rule (one slot) is stricter than this one (one shard).
var ErrCrossShard = errReply("CROSSSLOT Keys in request don't hash to the same shard: give them one {hash tag}")

// ScriptKeys checks EVAL's numkeys (eval is EVAL's or EVALSHA's arguments)
// and returns its keys, or Redis's error.
func ScriptKeys(eval [][]byte) ([][]byte, *messages.Reply) {
	n, ok := parseInt(eval[2])
	switch {
	case !ok:
		return nil, errNotInteger
	case n > int64(len(eval)-3):
		return nil, errReply("ERR Number of keys can't be greater than number of args")
	case n < 0:
		return nil, errReply("ERR Number of keys can't be negative")
	}
	return eval[3 : 3+n], nil
}

var errBadEval = errReply("ERR kv: malformed script command")

// execEval runs EvalName's args: on the write path when t.w is not nil.
func execEval(t *txn, args [][]byte) *messages.Reply {
	shards, shard, readOnly, rules, ok := parseWhere(args)
	if !ok || len(args) < 4 {
		return errBadEval
	}
	s, e := luascript.Compile(args[2])
	if e != nil {
		return e
	}
	keys, e := ScriptKeys(args[1:]) // args[1:] is laid out as EVAL's
	if e != nil {
		return e
	}
	host, seed, e := newScriptHost(t, shards, shard, s.SHA, !s.NoWrites && !readOnly, rules)
	if e != nil {
		return e
	}
	return s.Run(keys, args[4+len(keys):], seed, host)
}

// scriptHost runs a script's redis.call: the command on the script's
// batch (its writes seen by its next reads), with the script's random
// source, if Redis allows it in a script and its keys are on the shard.
type scriptHost struct {
	t             *txn
	shards, shard int
	user          *ACLUser // the caller's rules, when they are checked
}

// Allowed answers redis.acl_check_cmd: whether args name a command, and
// whether the script's caller may run it so.
func (h *scriptHost) Allowed(args [][]byte) (known, allowed bool) {
	if _, ok := Lookup(args[0]); !ok {
		return false, false
	}
	if h.user == nil {
		return true, true
	}
	r, _ := h.user.Check(args)
	return true, r == ACLOK
}

func (h *scriptHost) Call(args [][]byte) *messages.Reply {
	s, _ := Lookup(args[0])
	stat := StatSpec(s, args) // the subcommand, for its flags and arity
	if stat == nil {
		r := errReply("ERR Unknown Redis command called from script")
		h.t.trace.refused(nil, r)
		return r
	}
	start := h.t.trace.callStart()
	r, how := h.call(s, stat, args)
	switch how {
	case callRan:
		h.t.trace.ran(stat, args, r, start)
	case callRefused:
		h.t.trace.refused(stat, r)
	}
	return r
}

// ErrorCounted is luascript.Counter's: the script's reply is an error one
// of its calls answered, which the call's statistics count.
func (h *scriptHost) ErrorCounted() { h.t.trace.errorCounted() }

// What became of a script's call (scriptHost.call).
const (
	callRan     = iota
	callRefused // before it ran
	callDenied  // by the caller's ACL rules (traced with what they refused)
)

// call runs a script's call of s (known; stat is kv.StatSpec's, the
// subcommand) with args, as Redis's scriptCall, whose checks it makes in
// its order, and tells what became of it (callRan...; the caller's ACL
// rules' refusals are traced here).
func (h *scriptHost) call(s, stat *Spec, args [][]byte) (r *messages.Reply, how int) {
	if !arityOK(s.Arity, len(args)) || !arityOK(stat.Arity, len(args)) {
		return errReply("ERR Wrong number of args calling Redis command from script"), callRefused
	}
	if stat.Has("noscript") {
		return errReply("ERR This Redis command is not allowed from script"), callRefused
	}
	if h.user != nil {
		if r, pos := h.user.Check(args); r != ACLOK {
			h.t.trace.denied(stat, r, pos, args)
			return errReply("ERR The user executing the script " + aclScriptDenied(r)), callDenied
		}
	}
	switch s.Name {
	case "ping":
		if len(args) > 2 {
			return errReply("ERR Wrong number of args calling Redis command from script"), callRefused
		}
		if len(args) == 2 {
			return bulk(args[1]), callRan
		}
		return status("PONG"), callRan
	case "echo":
		return bulk(args[1]), callRan
	case "time":
		// The command's time, which every replica shares.
		return array([]*messages.Reply{
			bulkString(strconv.FormatInt(h.t.now/1000, 10)),
			bulkString(strconv.FormatInt(h.t.now%1000*1000, 10)),
		}), callRan
	}
	if s.MayWrite() && h.t.w == nil {
		return errReply("ERR Write commands are not allowed from read-only scripts."), callRefused
	}
	if s.Name == "publish" || s.Name == "spublish" {
		// Every replica runs the script: the message goes back with the
		// reply, and the node the client sent the script to publishes it
		// then. The script cannot know how many clients it reaches: 0.
		if s.Name == "spublish" && !h.local(args[1]) {
			return errNonLocalKey, callRefused
		}
		h.t.trace.publish(args[1], args[2], s.Name == "spublish")
		return integer(0), callRan
	}
	if s.Node && s.Name != "command" { // the node's own: not the shard's to run
		return errReply("ERR This Redis command is not allowed from script"), callRefused
	}
	if h.shards > 1 {
		switch s.Name {
		case "keys", "scan", "dbsize", "flushdb", "flushall", "randomkey":
			return errReply(fmt.Sprintf("ERR '%s' from a script sees one shard of %d here: run it outside the script", s.Name, h.shards)), callRefused
		case "sort", "sort_ro":
			if r := CheckSortPatterns(args, h.shards); r != nil {
				return r, callRefused
			}
		}
	}
	for _, k := range s.Keys(args) {
		if !h.local(k) {
			return errNonLocalKey, callRefused
		}
	}
	if (s.Name == "xread" || s.Name == "xreadgroup") && blockOption(args) {
		return errReply("ERR " + s.Name + " command is not allowed with BLOCK option from scripts"), callRan // the command's own refusal, in Redis
	}
	if s.run == nil { // COMMAND
		return Command(args), callRan
	}
	return s.run(h.t, args), callRan
}

// errNonLocalKey is Redis Cluster's answer to a script's call of a key (or
// a shard channel) of another shard.
var errNonLocalKey = errReply("ERR Script attempted to access a non local key in a cluster node")

// local tells whether key (or a shard channel) is on the script's shard.
func (h *scriptHost) local(key []byte) bool { return ShardOf(Slot(key), h.shards) == h.shard }

// blockOption tells whether XREAD's or XREADGROUP's options, read in
// order up to STREAMS, have a BLOCK with its argument.
func blockOption(args [][]byte) bool {
	for i := 1; i < len(args)-1; i++ {
		switch {
		case isOpt(args[i], "streams"):
			return false
		case isOpt(args[i], "block"):
			return true
		case isOpt(args[i], "count"):
			i++
		case isOpt(args[i], "group"):
			i += 2
		}
	}
	return false
}
