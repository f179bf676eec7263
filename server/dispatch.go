package server

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/coppice-kv/coppice/kv"
	"github.com/coppice-kv/coppice/messages"
)

// data runs a key-value command: on its key's shard, or split by shard.
func (c *conn) data(name string, args [][]byte) {
	spec := c.spec
	if spec != nil {
		start := c.timing.begin // when the port read it (serve)
		if start.IsZero() {
			start = time.Now()
		}
		c.timing.start, c.timing.write = start, spec.Write
	}
	if r := kv.CheckArity(args); r != nil {
		c.reply(r)
		return
	}
	if limit := c.s.cfg.MaxWriteBytes; spec.Write && limit > 0 {
		if n := kv.ArgsBytes(args); n > limit {
			c.reply(errorf(fmt.Sprintf("ERR write of %d bytes is over this node's limit of %d bytes (--max-write-mib)", n, limit)))
			return
		}
	}
	if (name == "sort" || name == "sort_ro") && c.s.backend.Shards() > 1 {
		if r := kv.CheckSortPatterns(args, c.s.backend.Shards()); r != nil {
			c.reply(r)
			return
		}
	}
	switch name {
	case "eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro":
		c.runScript(name, args)
	case "mget":
		c.mget(args)
	case "mset":
		if len(args)%2 == 0 {
			c.reply(arityError(name))
			return
		}
		c.mset(args)
	case "del", "unlink", "exists", "touch":
		c.sumKeys(args, spec.Write)
	case "dbsize":
		c.everyShard(args, false, sumIntegers)
	case "randomkey":
		c.randomKey(args)
	case "keys":
		c.everyShard(args, false, concatArrays)
	case "flushdb", "flushall":
		c.everyShard(args, true, firstErrorOr(replyOK))
	case "scan":
		c.drain()
		c.reply(c.s.scan(c.own(args)))
	case "hscan", "sscan", "zscan":
		c.drain()
		c.reply(c.elementScan(c.own(args), name))
	default:
		keys := spec.Keys(args)
		shard := 0
		if len(keys) > 0 {
			shard = c.shardOf(keys[0])
		}
		for _, k := range keys[min(1, len(keys)):] {
			if c.shardOf(k) != shard {
				// RENAME, COPY, MSETNX: one entry on one shard, or none.
				c.reply(errCrossShard)
				return
			}
		}
		if spec.Write {
			c.write(shard, args)
		} else {
			c.read(shard, args)
		}
	}
}

var errCrossShard = kv.ErrCrossShard

func (c *conn) shardOf(key []byte) int { return kv.ShardOf(kv.Slot(key), c.s.backend.Shards()) }

// own copies the command being issued (cloneArgs) and keeps the copy for
// the slow log.
func (c *conn) own(args [][]byte) [][]byte {
	owned := c.cloneArgs(args)
	c.timing.args = owned
	return owned
}

// cloneArgs copies the command just read into one allocation, as the
// reader reuses its buffers; a big argument the reader gave up for good
// (resp.Reader.Owned) is kept as it is rather than copied.
func (c *conn) cloneArgs(args [][]byte) [][]byte { return cloneExcept(args, c.rd.Owned) }

// cloneExcept copies args into one allocation, but those keep says to
// keep as they are.
func cloneExcept(args [][]byte, keep func(i int) bool) [][]byte {
	n := 0
	for i, a := range args {
		if !keep(i) {
			n += len(a)
		}
	}
	buf := make([]byte, 0, n)
	out := make([][]byte, len(args))
	for i, a := range args {
		if keep(i) {
			out[i] = a
			continue
		}
		start := len(buf)
		buf = append(buf, a...)
		out[i] = buf[start:len(buf):len(buf)]
	}
	return out
}

func (c *conn) issueWrite(shard int, args [][]byte) Pending {
	return c.issueWriteCmd(shard, &messages.Command{Args: args, NowMs: nowMs()})
}

// issueWriteCmd is issueWrite of a command made already.
func (c *conn) issueWriteCmd(shard int, cmd *messages.Command) Pending {
	if c.trk != nil {
		cmd.Origin = c.origin()
	}
	if c.spec != nil && (c.spec.Name == "flushall" || c.spec.Name == "flushdb") {
		cmd.Origin = c.originAlways() // every shard's part, one invalidation
	}
	if p := c.probeWrite(shard, cmd); p != nil {
		return p
	}
	if c.readShard[shard] || c.probing[shard] {
		// Reads issued earlier must not see this write, and probes
		// issued earlier that may write yet must come first.
		c.drain()
	}
	c.writeShard[shard] = true
	return c.propose(shard, cmd)
}

// probeWrite offers a write that may change nothing to the backend's Prober,
// when the connection has no write in flight on shard but probes that
// may write yet (the probe then answers only once it is confirmed, after
// them); nil: cmd is to be proposed.
//
// A settled probe changed nothing: the reads issued before it cannot
// tell, and it needs no mark. One that may write yet (a shard's leader
// with other voters, confirming it) does so only when waited for, after
// everything issued before it: the reads after it on shard must wait for
// it (writeShard), and so must the writes but other such probes
// (probing), which wait in line behind it and make a pipeline of them
// one barrier's wait, not one each.
func (c *conn) probeWrite(shard int, cmd *messages.Command) Pending {
	pr := c.s.prober
	if pr == nil || c.writeShard[shard] && !c.probing[shard] || !kv.Probed(cmd.Args) {
		return nil
	}
	var to *LogIndexes
	if c.s.replicas != nil {
		to = &c.writes
	}
	p, settled := pr.Probe(shard, cmd, to, c.probing[shard])
	if p != nil && !settled {
		c.writeShard[shard], c.probing[shard] = true, true
	}
	return p
}

// propose commits a write of the connection on shard; a backend that can
// answer WAIT notes its log index in the connection's writes.
func (c *conn) propose(shard int, cmd *messages.Command) Pending {
	if c.s.replicas != nil {
		return c.s.replicas.ProposeIndexed(shard, cmd, &c.writes)
	}
	return c.s.backend.Propose(shard, cmd)
}

func (c *conn) issueRead(shard int, args [][]byte) Pending {
	return c.issueReadCmd(shard, &messages.Command{Args: args, NowMs: nowMs()})
}

// issueReadCmd is issueRead of a command made already.
func (c *conn) issueReadCmd(shard int, cmd *messages.Command) Pending {
	if c.writeShard[shard] {
		// A read must see the writes issued before it: wait for them.
		c.drain()
	}
	c.readShard[shard] = true
	return c.s.backend.Read(shard, cmd)
}

func (c *conn) write(shard int, args [][]byte) {
	p := c.issueWrite(shard, c.own(args))
	c.push(p)
}

// read issues a client's read on one shard, whose reply is written as it
// comes: its bulk strings may come written out (Command.bulks).
func (c *conn) read(shard int, args [][]byte) {
	cmd := c.clientRead(c.own(args))
	cmd.Bulks = true
	c.push(c.issueReadCmd(shard, cmd))
}

// issueClientRead is issueRead of a client's read (owned).
func (c *conn) issueClientRead(shard int, args [][]byte) Pending {
	return c.issueReadCmd(shard, c.clientRead(args))
}

// clientRead is the command of a client's read (owned), which reports the
// keys it finds missing while keymiss events are wanted.
func (c *conn) clientRead(args [][]byte) *messages.Command {
	return &messages.Command{Args: args, NowMs: nowMs(), Trace: c.s.missTrace()}
}

// multi combines the replies of a command's parts.
type multi struct {
	parts   []Pending
	combine func([]*messages.Reply) *messages.Reply
}

func (m *multi) Wait() *messages.Reply {
	rs := make([]*messages.Reply, len(m.parts))
	var missed [][]byte // the parts' traces: reads' missing keys
	for i, p := range m.parts {
		rs[i] = p.Wait()
		missed = append(missed, rs[i].GetTrace().GetMissed()...)
	}
	r := m.combine(rs)
	if len(missed) > 0 {
		r = &messages.Reply{Value: r.GetValue(), Trace: &messages.Trace{Missed: missed}}
	}
	return r
}

// groups splits keys by shard, keeping each key's position.
func (c *conn) groups(keys [][]byte) (order []int, byShard map[int][]int) {
	byShard = map[int][]int{}
	for i, k := range keys {
		sh := c.shardOf(k)
		if _, ok := byShard[sh]; !ok {
			order = append(order, sh)
		}
		byShard[sh] = append(byShard[sh], i)
	}
	return order, byShard
}

func (c *conn) mget(args [][]byte) {
	args = c.own(args)
	keys := args[1:]
	order, byShard := c.groups(keys)
	if len(order) == 1 {
		c.push(c.issueClientRead(order[0], args))
		return
	}
	m := &multi{}
	for _, sh := range order {
		sub := [][]byte{args[0]}
		for _, i := range byShard[sh] {
			sub = append(sub, keys[i])
		}
		m.parts = append(m.parts, c.issueClientRead(sh, sub))
	}
	m.combine = func(rs []*messages.Reply) *messages.Reply {
		out := make([]*messages.Reply, len(keys))
		for j, sh := range order {
			if e := rs[j].GetError(); e != "" {
				return rs[j]
			}
			items := rs[j].GetArray().GetItems()
			for n, i := range byShard[sh] {
				if n < len(items) {
					out[i] = items[n]
				} else {
					out[i] = nullBulk()
				}
			}
		}
		return array(out...)
	}
	c.push(m)
}

func (c *conn) mset(args [][]byte) {
	args = c.own(args)
	pairs := args[1:]
	keys := make([][]byte, 0, len(pairs)/2)
	for i := 0; i < len(pairs); i += 2 {
		keys = append(keys, pairs[i])
	}
	order, byShard := c.groups(keys)
	m := &multi{combine: firstErrorOr(replyOK)}
	for _, sh := range order {
		sub := [][]byte{args[0]}
		for _, i := range byShard[sh] {
			sub = append(sub, pairs[2*i], pairs[2*i+1])
		}
		m.parts = append(m.parts, c.issueWrite(sh, sub))
	}
	c.push(m)
}

// sumKeys runs DEL, UNLINK or EXISTS on each shard's keys and adds up.
func (c *conn) sumKeys(args [][]byte, write bool) {
	args = c.own(args)
	keys := args[1:]
	order, byShard := c.groups(keys)
	m := &multi{combine: sumIntegers}
	for _, sh := range order {
		sub := [][]byte{args[0]}
		for _, i := range byShard[sh] {
			sub = append(sub, keys[i])
		}
		if write {
			m.parts = append(m.parts, c.issueWrite(sh, sub))
		} else {
			m.parts = append(m.parts, c.issueClientRead(sh, sub))
		}
	}
	c.push(m)
}

// everyShard runs the command on every shard and combines the replies.
func (c *conn) everyShard(args [][]byte, write bool, combine func([]*messages.Reply) *messages.Reply) {
	c.everyShardOwned(c.own(args), write, combine)
}

// everyShardOwned is everyShard of a command the caller made (owned).
func (c *conn) everyShardOwned(args [][]byte, write bool, combine func([]*messages.Reply) *messages.Reply) {
	m := &multi{combine: combine}
	for sh := 0; sh < c.s.backend.Shards(); sh++ {
		if write {
			m.parts = append(m.parts, c.issueWrite(sh, args))
		} else {
			m.parts = append(m.parts, c.issueRead(sh, args))
		}
	}
	c.push(m)
}

func sumIntegers(rs []*messages.Reply) *messages.Reply {
	var n int64
	for _, r := range rs {
		if r.GetError() != "" {
			return r
		}
		n += r.GetInteger()
	}
	return integer(n)
}

func concatArrays(rs []*messages.Reply) *messages.Reply {
	var items []*messages.Reply
	for _, r := range rs {
		if r.GetError() != "" {
			return r
		}
		items = append(items, r.GetArray().GetItems()...)
	}
	return array(items...)
}

func firstErrorOr(ok *messages.Reply) func([]*messages.Reply) *messages.Reply {
	return func(rs []*messages.Reply) *messages.Reply {
		for _, r := range rs {
			if r.GetError() != "" {
				return r
			}
		}
		return ok
	}
}

// randomKey is RANDOMKEY on a node of several shards: a random key of a
// random shard, the next shard (in a random order) when one is empty, nil
// when all are.
func (c *conn) randomKey(args [][]byte) {
	c.drain() // the answer is needed now, and in its turn
	owned := c.own(args)
	for _, sh := range rand.Perm(c.s.backend.Shards()) {
		r := c.issueRead(sh, owned).Wait()
		if _, empty := r.GetValue().(*messages.Reply_NullBulk); !empty {
			c.reply(r)
			return
		}
	}
	c.reply(nullBulk())
}
