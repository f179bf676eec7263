package server

import (
	"fmt"
	"time"

	"github.com/coppice-kv/coppice/kv"
	"github.com/coppice-kv/coppice/messages"
)

// Transactions: MULTI queues key-value commands, EXEC proposes them to
// their shard as one command (kv.ExecName), which applies them in one Raft
// entry and one Pebble batch: no other command comes between them, and
// they commit together or not at all. Their keys, and the keys WATCH
// watches, must be on one shard. WATCH reads a digest of each key's value
// (kv.DigestName) at once; EXEC hands the digests to the shard, which runs
// nothing, and EXEC answers nil, when a key's value changed since.
//
// PING and ECHO are answered by the node in their places in EXEC's array,
// the node's other commands (atExecCommands) run there once the shard has
// run the others, and PUBLISH and SPUBLISH publish then too
// (subscribers that read the keys then see the transaction's writes),
// and WAIT answers its count then, without blocking (wait.go); a
// blocking pop runs as its non-blocking form (in MULTI it does not
// block, as in Redis). As in Redis: a command refused while queueing
// (unknown, wrong arity, keys on another shard) discards the transaction
// at EXEC (EXECABORT); a command that fails when it runs answers its error
// in EXEC's array and the others run; EXEC and DISCARD forget the watched
// keys.

// tx is a connection's transaction being queued.
type tx struct {
	cmds    [][][]byte // what the shard runs
	entries []txEntry  // each queued command's answer, in order
	bytes   int64
	shard   int // -1: no key yet
	aborted bool
	writes  bool // a queued command may write: EXEC waits out a WRITE pause
	fcalls  []fcallRef
}

// fcallRef is a queued FCALL's function and shard: whether it may write
// is read only when EXEC meets a WRITE pause.
type fcallRef struct {
	name  []byte
	shard int
}

// txMayWrite tells whether the transaction t may write (EXEC waits out a
// WRITE pause).
func (c *conn) txMayWrite(t *tx) bool {
	if t.writes {
		return true
	}
	for _, f := range t.fcalls {
		if c.functionMayWrite(f.name, f.shard) {
			return true
		}
	}
	return false
}

// txEntry is how a queued command is answered in EXEC's array: by the
// node (PING, ECHO; a blocking pop's bad timeout), or by the shard's next
// reply, reshaped if shape is set (a blocking pop, run as its
// non-blocking form: inside MULTI it does not block, as in Redis).
type txEntry struct {
	stat   *cmdStat // the command's counters, which EXEC counts it in
	local  *messages.Reply
	shape  func(*messages.Reply) *messages.Reply
	atExec func() *messages.Reply // PUBLISH, SPUBLISH, WAIT: run at EXEC
	// queued is the command as the client sent it, kept for a user whose
	// ACL rules are checked again at EXEC, and for the monitors, which
	// see it at EXEC (kept while one is on).
	queued [][]byte
}

// watched is a connection's watched keys, their shard and digests.
type watched struct {
	shard   int
	keys    [][]byte
	digests [][]byte
}

var (
	errNestedMulti  = errorf("ERR MULTI calls can not be nested")
	errExecNoMulti  = errorf("ERR EXEC without MULTI")
	errDiscardNo    = errorf("ERR DISCARD without MULTI")
	errWatchInMulti = errorf("ERR WATCH inside MULTI is not allowed")
	errExecAbort    = errorf("EXECABORT Transaction discarded because of previous errors.")
	replyQueued     = &messages.Reply{Value: &messages.Reply_Status{Status: "QUEUED"}}
)

// txCommand handles MULTI, EXEC, DISCARD, WATCH and UNWATCH, and queues
// any other command while a transaction is open; it reports whether it
// took the command.
func (c *conn) txCommand(name string, args [][]byte) bool {
	switch name {
	case "multi", "exec", "discard", "watch", "unwatch":
		if r := kv.CheckArity(args); r != nil {
			c.reply(r)
			c.abortTx()
			return true
		}
	}
	switch name {
	case "multi":
		if c.tx != nil {
			c.reply(errNestedMulti)
			return true
		}
		c.tx = &tx{shard: -1}
		c.flag.Store('x')
		if c.watch != nil {
			c.tx.shard = c.watch.shard
		}
		c.reply(replyOK)
	case "exec":
		c.exec(args)
	case "discard":
		if c.tx == nil {
			c.reply(errDiscardNo)
			return true
		}
		c.tx, c.watch = nil, nil
		c.flag.Store(0)
		c.reply(replyOK)
	case "watch":
		if c.tx != nil {
			c.reply(errWatchInMulti)
			return true
		}
		c.watchKeys(args)
	case "unwatch":
		if c.tx != nil {
			return c.queueKept(name, args)
		}
		c.watch = nil
		c.reply(replyOK)
	default:
		if c.tx == nil || name == "quit" || name == "reset" {
			return false
		}
		return c.queueKept(name, args)
	}
	return true
}

// queueKept queues a command, and keeps it as sent for EXEC's ACL check
// when the connection's user has rules to check, and for the monitors
// while one is on.
func (c *conn) queueKept(name string, args [][]byte) bool {
	n, stat := len(c.tx.entries), c.timing.stat // the QUEUED reply takes it
	done := c.queue(name, args)
	if len(c.tx.entries) > n {
		e := &c.tx.entries[len(c.tx.entries)-1]
		e.stat = stat
		if u := c.aclUser(); c.s.monitors.n.Load() > 0 || (u != nil && !u.Open()) {
			e.queued = cloneAll(args)
		}
	}
	return done
}

// recheckACL checks the queued commands again with the user's rules as
// they are at EXEC (they may have changed since): a command now refused
// is not run, and answers NOPERM in its place, as in Redis.
func (c *conn) recheckACL(t *tx) {
	u := c.aclUser()
	if u == nil || u.Open() {
		return
	}
	k := 0 // the next of t.cmds
	for i := range t.entries {
		e := &t.entries[i]
		runs := e.local == nil && e.atExec == nil
		if e.queued != nil {
			if r := c.execDenied(u, e.queued); r != nil {
				if runs {
					t.cmds = append(t.cmds[:k], t.cmds[k+1:]...)
				}
				*e = txEntry{local: r}
				continue
			}
		}
		if runs {
			k++
		}
	}
}

// abortTx marks the open transaction, if any, for EXECABORT.
func (c *conn) abortTx() {
	if c.tx != nil {
		c.tx.aborted = true
	}
}

// queue checks a command of an open transaction and queues it (QUEUED),
// or refuses it (its error) and marks the transaction aborted.
func (c *conn) queue(name string, args [][]byte) bool {
	refuse := func(r *messages.Reply) bool {
		c.reply(r)
		c.tx.aborted = true
		return true
	}
	if r := kv.CheckArity(args); r != nil {
		return refuse(r)
	}
	spec := c.spec
	var shape func(*messages.Reply) *messages.Reply
	switch name {
	case "ping", "echo":
		r := replyPong
		switch {
		case len(args) > 2:
			r = arityError(name) // Redis answers it in EXEC's array
		case len(args) == 2:
			r = bulk(clone(args[1]))
		}
		return c.queueAnswer(r)
	case "eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro":
		cmd, shard, read, r := c.scriptCommand(name, args)
		if r == errCrossShard {
			return refuse(r) // keys on several shards: refused at once, as any command's
		}
		if r != nil {
			return c.queueAnswer(r) // Redis answers it in EXEC's array
		}
		if name == "fcall" {
			c.tx.fcalls = append(c.tx.fcalls, fcallRef{clone(args[1]), shard})
		} else {
			c.tx.writes = c.tx.writes || !read
		}
		return c.enqueue(shard, cmd, nil) // exec gives a script without keys the transaction's shard
	case "publish", "spublish":
		args := c.cloneArgs(args)
		sharded := name == "spublish"
		c.tx.writes = true // may replicate
		c.tx.entries = append(c.tx.entries, txEntry{atExec: func() *messages.Reply {
			return c.publishNow(sharded, args[1], args[2]).Wait()
		}})
		c.reply(replyQueued)
		return true
	case "unwatch":
		return c.queueAnswer(replyOK) // EXEC forgets the watched keys anyway
	case "wait":
		// As in Redis: the count once the transaction's commands ran,
		// with no wait (its argument errors in EXEC's array).
		args := c.cloneArgs(args)
		c.tx.entries = append(c.tx.entries, txEntry{atExec: func() *messages.Reply { return c.waitNow(args) }})
		c.reply(replyQueued)
		return true
	case "blpop", "brpop", "blmpop", "blmove", "brpoplpush", "bzpopmin", "bzpopmax", "bzmpop":
		b, r := blockingForm(name, args)
		if r == nil {
			_, r = parseTimeout(b.timeout)
		}
		if r != nil {
			return c.queueAnswer(r) // Redis answers it in EXEC's array
		}
		args, shape = b.try, b.shape
		if shape == nil {
			shape = func(r *messages.Reply) *messages.Reply { return r }
		}
		if spec, _ = kv.Lookup(args[0]); spec == nil {
			return refuse(errorf("ERR " + name + ": no non-blocking form"))
		}
	}
	if (name == "memory" && !equalFold(args[1], "usage")) || (name == "debug" && !(len(args) == 3 && equalFold(args[1], "object"))) {
		spec = &kv.Spec{Node: true} // the node's part of MEMORY and DEBUG
	}
	if spec.Has("no_multi") {
		return refuse(errorf("ERR Command not allowed inside a transaction")) // Redis's words
	}
	if atExecCommands[name] {
		if name == "client" && clientConnState[c.lower(args[1])] { // CLIENT's arity: a subcommand
			return refuse(errorf(fmt.Sprintf("ERR 'client|%s' inside MULTI: coppice does not queue it (it changes how the node writes to the connection)", c.lower(args[1]))))
		}
		args := c.cloneArgs(args)
		c.tx.entries = append(c.tx.entries, txEntry{atExec: func() *messages.Reply { return c.atExecRun(name, spec, args) }})
		c.reply(replyQueued)
		return true
	}
	if name == "flushdb" || name == "flushall" {
		return refuse(errorf(fmt.Sprintf("ERR '%s' inside MULTI: it writes every shard, which one shard's transaction cannot", name)))
	}
	if spec.Node {
		return refuse(errorf(fmt.Sprintf("ERR '%s' inside MULTI: coppice does not queue this command (it subscribes, authenticates, or acts on the node's persistence, replication or cluster)", name)))
	}
	c.tx.writes = c.tx.writes || spec.MayWrite()
	shard := -1
	for _, k := range spec.Keys(args) {
		sh := c.shardOf(k)
		if shard == -1 {
			shard = sh
		}
		if sh != shard {
			return refuse(errCrossShard)
		}
	}
	if shape != nil {
		args = cloneAll(args) // made of the command's arguments
	} else {
		args = c.cloneArgs(args)
	}
	return c.enqueue(shard, args, shape)
}

// atExecCommands are the node's commands a transaction queues, run at
// EXEC in their places (atExecRun): the node's reads and the connection's
// settings, and the commands that read every shard or page through the
// node (DBSIZE, KEYS, RANDOMKEY, SCAN) or a key (HSCAN...).
var atExecCommands = map[string]bool{
	"time": true, "info": true, "config": true, "command": true, "slowlog": true, "latency": true,
	"lastsave": true, "lolwut": true, "role": true, "select": true, "client": true, "pubsub": true,
	"memory": true, "script": true, "readonly": true, "readwrite": true, "asking": true,
	"dbsize": true, "keys": true, "randomkey": true, "scan": true, "hscan": true, "sscan": true, "zscan": true,
}

// clientConnState are the CLIENT subcommands that change how the node
// writes to the connection (tracking, replies): not queued.
var clientConnState = map[string]bool{"tracking": true, "caching": true, "reply": true}

// atExecRun runs a queued node command (atExecCommands) at EXEC, inside
// the connection's drain, once the shard has answered the transaction's
// commands: a DBSIZE or KEYS sees the transaction's writes (and, unlike
// Redis, what other clients wrote to other shards since). Its reply is
// captured, not queued, and the command being issued keeps its state.
func (c *conn) atExecRun(name string, spec *kv.Spec, args [][]byte) *messages.Reply {
	var got []Pending
	saved, savedSpec, savedTiming := c.capture, c.spec, c.timing
	c.capture, c.spec, c.timing = &got, spec, timing{}
	c.dispatch(name, args)
	c.capture, c.spec, c.timing = saved, savedSpec, savedTiming
	if len(got) != 1 {
		return errorf(fmt.Sprintf("ERR '%s' inside MULTI gave %d replies", name, len(got)))
	}
	return got[0].Wait()
}

// queueAnswer queues the node's own answer r, given in its place in EXEC's
// array.
func (c *conn) queueAnswer(r *messages.Reply) bool {
	c.tx.entries = append(c.tx.entries, txEntry{local: r})
	c.reply(replyQueued)
	return true
}

// enqueue adds cmd (owned), on shard (-1: any), to the open transaction,
// or refuses it: on another shard than the transaction's commands, or
// past the node's write limit.
func (c *conn) enqueue(shard int, cmd [][]byte, shape func(*messages.Reply) *messages.Reply) bool {
	if shard != -1 {
		if c.tx.shard == -1 {
			c.tx.shard = shard
		}
		if shard != c.tx.shard {
			c.tx.aborted = true
			c.reply(errCrossShard)
			return true
		}
	}
	n := kv.ArgsBytes(cmd)
	if limit := c.s.cfg.MaxWriteBytes; limit > 0 && c.tx.bytes+n > limit {
		c.tx.aborted = true
		c.reply(errorf(fmt.Sprintf("ERR transaction of %d bytes is over this node's limit of %d bytes (--max-write-mib)", c.tx.bytes+n, limit)))
		return true
	}
	c.tx.bytes += n
	c.tx.cmds = append(c.tx.cmds, cmd)
	c.tx.entries = append(c.tx.entries, txEntry{shape: shape})
	c.reply(replyQueued)
	return true
}

// exec runs the open transaction on its shard.
func (c *conn) exec(args [][]byte) {
	if t := c.tx; t != nil && !t.aborted {
		for _, e := range t.entries {
			if e.queued != nil {
				c.feedMonitors(e.queued)
			}
		}
	}
	c.feedMonitors(args) // as the client sent it ("exec"), as Redis shows it
	t, w := c.tx, c.watch
	c.tx, c.watch = nil, nil
	c.flag.Store(0)
	if t != nil && !t.aborted {
		c.waitPause(func() bool { return c.txMayWrite(t) })
		c.recheckACL(t)
	}
	switch {
	case t == nil:
		c.reply(errExecNoMulti)
		return
	case t.aborted:
		c.reply(errExecAbort)
		return
	case len(t.cmds) == 0 && w == nil:
		// The node's answers alone (PING, PUBLISH...): no shard to ask,
		// and each entry counts in its command's statistics.
		c.push(&execReply{p: done{array()}, entries: t.entries})
		return
	}
	var keys, digests [][]byte
	shard := t.shard
	if w != nil {
		keys, digests, shard = w.keys, w.digests, w.shard
	}
	if shard < 0 {
		shard = 0 // no key at all (scripts without keys only)
	}
	for _, cmd := range t.cmds {
		kv.EvalOnShard(cmd, c.s.backend.Shards(), shard) // a script's, a function's
	}
	c.timing.start, c.timing.write = time.Now(), true
	cmd := kv.ExecCommand(nowMs(), keys, digests, t.cmds)
	for _, q := range t.cmds {
		if kv.IsScript(q) {
			cmd.Trace = c.s.scriptTrace() // its scripts' calls
			break
		}
	}
	if c.trk != nil {
		for _, q := range t.cmds {
			c.rememberRead(c.lower(q[0]), q)
		}
		cmd.Origin = c.origin()
	}
	if c.readShard[shard] {
		c.drain() // reads issued earlier must not see it
	}
	c.writeShard[shard] = true
	c.timing.args = cloneAll(args) // for the slow log
	c.push(&execReply{p: c.propose(shard, cmd), entries: t.entries})
}

// execReply is EXEC's answer: the shard's replies, with the node's own
// answers put in their places.
type execReply struct {
	p       Pending
	entries []txEntry
}

func (e *execReply) Wait() *messages.Reply {
	r := e.p.Wait()
	if _, ok := r.GetValue().(*messages.Reply_Array); !ok {
		return r // nil (a watched key changed), or an error for all
	}
	a := assemble(e.entries, r.GetArray().GetItems())
	a.Trace = r.GetTrace() // its scripts' calls
	return a
}

// count counts EXEC's commands as Redis counts the calls EXEC makes, by
// their replies in r, EXEC's answer: each ran (unless the ACL refused it
// at EXEC), failed if it answered an error, which counts in the error
// statistics too. Nothing ran when r is not an array (a watched key
// changed, EXECABORT).
func (e *execReply) count(st *Stats, r *messages.Reply) {
	items := r.GetArray().GetItems()
	if len(items) != len(e.entries) {
		return
	}
	for i, it := range items {
		msg := it.GetError()
		if msg != "" {
			st.errorReply(msg)
		}
		if cs := e.entries[i].stat; cs != nil && !rejected(it) {
			st.ran(cs)
			if msg != "" {
				cs.failed.Add(1)
			}
		}
	}
}

// assemble is EXEC's array: each entry's answer, the shard's replies in
// turn for the entries the shard ran.
func assemble(entries []txEntry, shard []*messages.Reply) *messages.Reply {
	out := make([]*messages.Reply, 0, len(entries))
	for _, e := range entries {
		switch {
		case e.local != nil:
			out = append(out, e.local)
		case e.atExec != nil:
			out = append(out, e.atExec())
		case len(shard) == 0:
			out = append(out, errorf("ERR the shard answered fewer replies than commands"))
		default:
			r := shard[0]
			shard = shard[1:]
			if e.shape != nil && !isNil(r) && r.GetError() == "" {
				r = e.shape(r)
			}
			out = append(out, r)
		}
	}
	return array(out...)
}

// cloneAll copies args into one allocation (args not the command as
// read: cloneArgs is for that).
func cloneAll(args [][]byte) [][]byte { return cloneExcept(args, func(int) bool { return false }) }

// watchKeys reads the digests of WATCH's keys (one shard, the watched
// keys' if any) and adds them to the watched keys.
func (c *conn) watchKeys(args [][]byte) {
	keys := args[1:]
	shard := -1
	if c.watch != nil {
		shard = c.watch.shard
	}
	for _, k := range keys {
		sh := c.shardOf(k)
		if shard == -1 {
			shard = sh
		}
		if sh != shard {
			c.reply(errCrossShard)
			return
		}
	}
	owned := c.cloneArgs(args)[1:] // cloneArgs knows the command's own arguments
	read := append([][]byte{[]byte(kv.DigestName)}, owned...)
	c.drain() // the digests are needed now, and this answer in its turn
	r := c.issueRead(shard, read).Wait()
	items := r.GetArray().GetItems()
	if r.GetError() != "" || len(items) != len(keys) {
		if r.GetError() == "" {
			r = errorf(fmt.Sprintf("ERR WATCH: the shard answered %d digests for %d keys", len(items), len(keys)))
		}
		c.reply(r)
		return
	}
	if c.watch == nil {
		c.watch = &watched{shard: shard}
	}
	for i, k := range owned {
		c.watch.keys = append(c.watch.keys, k)
		c.watch.digests = append(c.watch.digests, items[i].GetBulk())
	}
	c.reply(replyOK)
}
