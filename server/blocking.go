package server

import (
	"bytes"
	"errors"
	"io"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coppice-kv/coppice/kv"
	"github.com/coppice-kv/coppice/messages"
)

// Blocking pops: BLPOP, BRPOP, BLMPOP, BLMOVE, BRPOPLPUSH, BZPOPMIN,
// BZPOPMAX, BZMPOP run their non-blocking form (LMPOP, LMOVE, RPOPLPUSH,
// ZMPOP) through the shard's
// Raft log until it pops something, the timeout passes (0: never), the
// client goes away or the server stops. Between tries the connection
// waits for this node's replica of the shard to apply a write of one of
// the keys (Watcher), so an idle blocked client costs nothing; without a
// watch (the shard is not on this node), or after a TRYAGAIN (the shard
// is electing a leader: nothing was popped), it tries again every
// blockPoll.
// The keys must be on one shard. As in Redis, the connection runs nothing
// else while blocked: the commands it sent after wait their turn.

// Watcher is a Backend that can wake a blocked command: Watch's channel
// closes once this node applies a write of one of keys on shard (once;
// stop drops the watch). A nil channel never fires.
type Watcher interface {
	Watch(shard int, keys [][]byte) (wake <-chan struct{}, stop func())
}

// blockPoll is how often a blocked command tries again with no watch.
const blockPoll = time.Second

var (
	errTimeoutFloat = errorf("ERR timeout is not a float or out of range")
	errTimeoutNeg   = errorf("ERR timeout is negative")
	errTimeoutRange = errorf("ERR timeout is out of range")
)

// parseTimeout parses a blocking command's timeout, in seconds (a float)
// as Redis does: truncated to milliseconds, 0 for none.
func parseTimeout(b []byte) (time.Duration, *messages.Reply) {
	f, err := strconv.ParseFloat(string(b), 64)
	if (err != nil && !errors.Is(err, strconv.ErrRange)) || math.IsNaN(f) {
		return 0, errTimeoutFloat
	}
	ms := f * 1000
	switch {
	case ms < 0 || math.IsInf(ms, 0):
		// Redis casts an infinite timeout to a negative integer.
		return 0, errTimeoutNeg
	case ms >= float64(math.MaxInt64/int64(time.Millisecond)):
		return 0, errTimeoutRange
	}
	return time.Duration(int64(ms)) * time.Millisecond, nil
}

// blockingCall is a blocking command taken apart: its timeout, the
// non-blocking command to try, and how to shape what that answers.
type blockingCall struct {
	timeout []byte
	try     [][]byte
	keys    [][]byte
	shape   func(*messages.Reply) *messages.Reply // nil: as it is
	none    *messages.Reply                       // the answer on timeout
	// group: XREADGROUP's, which ends with an error when its stream or
	// its group goes while it waits (Redis's UNBLOCKED or NOGROUP).
	group bool
	// move: BLMOVE's or BRPOPLPUSH's, which ends with WRONGTYPE when its
	// destination is of another type as its source gets an element.
	move bool
	// queue is the kind of the queues it waits in, in line with the
	// node's other clients blocked on its keys (blockQueues); "" for
	// none (XREAD). served are the keys it takes from, and narrow makes
	// the try of those lead keeps, nil when it keeps none.
	queue  string
	served [][]byte
	narrow func(lead map[string]bool) [][]byte
}

// mpopNarrow narrows an LMPOP or ZMPOP try (count, n keys, the rest).
func mpopNarrow(try [][]byte, n int) func(map[string]bool) [][]byte {
	return func(lead map[string]bool) [][]byte {
		out := [][]byte{try[0], nil}
		for _, k := range try[2 : 2+n] {
			if lead[string(k)] {
				out = append(out, k)
			}
		}
		if len(out) == 2 {
			return nil
		}
		out[1] = strconv.AppendInt(nil, int64(len(out)-2), 10)
		return append(out, try[2+n:]...)
	}
}

// groupNarrow narrows an XREADGROUP try, whose n streams and their IDs
// end it.
func groupNarrow(try [][]byte, n int) func(map[string]bool) [][]byte {
	keys, ids := try[len(try)-2*n:len(try)-n], try[len(try)-n:]
	return func(lead map[string]bool) [][]byte {
		var ks, is [][]byte
		for i, k := range keys {
			if lead[string(k)] {
				ks, is = append(ks, k), append(is, ids[i])
			}
		}
		if len(ks) == 0 {
			return nil
		}
		return slices.Concat(try[:len(try)-2*n], ks, is)
	}
}

// blockingForm makes name's call of args (their arity checked).
func blockingForm(name string, args [][]byte) (blockingCall, *messages.Reply) {
	spec, _ := kv.Lookup(args[0])
	b := blockingCall{keys: spec.Keys(args), none: nullArray()}
	n := len(args)
	b.queue, b.served = "l", b.keys
	if strings.HasPrefix(name, "bz") {
		b.queue = "z"
	}
	switch name {
	case "blpop", "brpop":
		where := "LEFT"
		if name == "brpop" {
			where = "RIGHT"
		}
		b.timeout = args[n-1]
		b.try = append([][]byte{[]byte("LMPOP"), strconv.AppendInt(nil, int64(n-2), 10)}, args[1:n-1]...)
		b.try = append(b.try, []byte(where))
		b.shape = func(r *messages.Reply) *messages.Reply {
			// LMPOP's [key, [element]] is BLPOP's [key, element].
			if items := r.GetArray().GetItems(); len(items) == 2 && len(items[1].GetArray().GetItems()) == 1 {
				return array(items[0], items[1].GetArray().GetItems()[0])
			}
			return r
		}
	case "blmpop", "bzmpop":
		b.timeout = args[1]
		b.try = append([][]byte{[]byte(name[1:])}, args[2:]...) // LMPOP, ZMPOP
	case "bzpopmin", "bzpopmax":
		where := "MIN"
		if name == "bzpopmax" {
			where = "MAX"
		}
		b.timeout = args[n-1]
		b.try = append([][]byte{[]byte("ZMPOP"), strconv.AppendInt(nil, int64(n-2), 10)}, args[1:n-1]...)
		b.try = append(b.try, []byte(where))
		b.shape = func(r *messages.Reply) *messages.Reply {
			// ZMPOP's [key, [[member, score]]] is BZPOPMIN's [key,
			// member, score].
			items := r.GetArray().GetItems()
			if len(items) == 2 && len(items[1].GetArray().GetItems()) == 1 {
				if pair := items[1].GetArray().GetItems()[0].GetArray().GetItems(); len(pair) == 2 {
					return array(items[0], pair[0], pair[1])
				}
			}
			return r
		}
	case "blmove", "brpoplpush":
		if name == "blmove" {
			// Redis checks the directions before the timeout.
			for _, w := range args[3:5] {
				if !bytes.EqualFold(w, []byte("left")) && !bytes.EqualFold(w, []byte("right")) {
					return b, errorf("ERR syntax error")
				}
			}
			b.try = append([][]byte{[]byte("LMOVE")}, args[1:5]...)
		} else {
			b.try = [][]byte{[]byte("RPOPLPUSH"), args[1], args[2]}
		}
		b.timeout = args[n-1]
		b.none = nullBulk()
		b.move = true
		// Served from its source alone, which it leads or not.
		src, try := b.keys[0], b.try
		b.served = [][]byte{src}
		b.narrow = func(lead map[string]bool) [][]byte {
			if lead[string(src)] {
				return try
			}
			return nil
		}
		return b, nil
	}
	b.narrow = mpopNarrow(b.try, len(b.keys))
	return b, nil
}

// xread: XREAD, which blocks with BLOCK (the engine reads once): "$"
// becomes each stream's last ID as it begins to wait.
func (c *conn) xread(args [][]byte) {
	// Malformed (its arity too) or not blocking: data answers.
	if x, r := kv.ParseXRead(args); r != nil || !x.Blocks {
		c.data("xread", args) // one read; the engine answers an error
		return
	}
	args = c.cloneArgs(args) // owned: the tries are made of them
	x, _ := kv.ParseXRead(args)
	shard, ok := c.oneShard(x.Keys)
	if !ok {
		c.reply(errCrossShard)
		return
	}
	ids := slices.Clone(x.IDs)
	if slices.ContainsFunc(ids, func(id []byte) bool { return string(id) == "$" }) {
		last := c.issueRead(shard, append([][]byte{[]byte(kv.StreamLastIDsName)}, x.Keys...)).Wait()
		if last.GetError() != "" {
			c.reply(last)
			return
		}
		for i, id := range last.GetArray().GetItems() {
			if string(ids[i]) == "$" {
				ids[i] = id.GetBulk()
			}
		}
	}
	try := [][]byte{[]byte("XREAD")}
	if x.Count >= 0 {
		try = append(try, []byte("COUNT"), strconv.AppendInt(nil, x.Count, 10))
	}
	try = append(append(append(try, []byte("STREAMS")), x.Keys...), ids...)
	c.block(shard, blockingCall{try: try, keys: x.Keys, none: nullArray()}, time.Duration(x.Block)*time.Millisecond, true)
}

// xreadgroup: XREADGROUP, which blocks with BLOCK when every ID is ">"
// (new entries; with an ID it answers the consumer's history at once).
// Each try is a write through the shard's Raft log (it moves the group and
// its pending entries), and so is an empty one (the consumer is seen).
func (c *conn) xreadgroup(args [][]byte) {
	// Malformed (its arity too) or not blocking: data answers.
	if x, onlyNew, r := kv.ParseXReadGroup(args); r != nil || !x.Blocks || !onlyNew {
		c.data("xreadgroup", args)
		return
	}
	args = c.cloneArgs(args)
	x, _, _ := kv.ParseXReadGroup(args)
	shard, ok := c.oneShard(x.Keys)
	if !ok {
		c.reply(errCrossShard)
		return
	}
	if limit := c.s.cfg.MaxWriteBytes; limit > 0 && kv.ArgsBytes(args) > limit {
		c.data("xreadgroup", args) // refused there
		return
	}
	b := blockingCall{try: args, keys: x.Keys, none: nullArray(), group: true,
		queue: "g" + string(args[2]), served: x.Keys, narrow: groupNarrow(args, len(x.Keys))}
	c.block(shard, b, time.Duration(x.Block)*time.Millisecond, false)
}

// groupLost is a blocked XREADGROUP's end when a try, after it blocked,
// answered r, an error: Redis's NOGROUP when its streams are all there
// (a group went), else its UNBLOCKED (a stream was deleted, flushed or
// made another type).
func (c *conn) groupLost(shard int, keys [][]byte, r *messages.Reply) *messages.Reply {
	if strings.HasPrefix(r.GetError(), "NOGROUP") {
		streams := true
		for _, k := range keys {
			streams = streams && c.keyType(shard, k) == "stream"
		}
		if streams {
			return errorf("NOGROUP the consumer group this client was blocked on no longer exists")
		}
	}
	return errorf("UNBLOCKED the stream key no longer exists")
}

// keyType is TYPE of key, read on shard.
func (c *conn) keyType(shard int, key []byte) string {
	defer c.drain()
	return c.issueRead(shard, [][]byte{[]byte("TYPE"), key}).Wait().GetStatus()
}

// blocking runs a blocking command to its end; the connection's earlier
// replies are written first, and nothing after it runs meanwhile.
func (c *conn) blocking(name string, args [][]byte) {
	if r := kv.CheckArity(args); r != nil {
		c.reply(r)
		return
	}
	// Owned now (the reader reuses its buffers), as the command is
	// issued: the tries are made of its arguments.
	args = c.cloneArgs(args)
	b, r := blockingForm(name, args)
	if r != nil {
		c.reply(r)
		return
	}
	timeout, r := parseTimeout(b.timeout)
	if r != nil {
		c.reply(r)
		return
	}
	shard, ok := c.oneShard(b.keys)
	if !ok {
		c.reply(errCrossShard)
		return
	}
	c.block(shard, b, timeout, false)
}

// oneShard is the shard of keys, all on one; false when they are not.
func (c *conn) oneShard(keys [][]byte) (int, bool) {
	shard := 0
	for i, k := range keys {
		if sh := c.shardOf(k); i == 0 {
			shard = sh
		} else if sh != shard {
			return 0, false
		}
	}
	return shard, true
}

// block tries b until it answers something but nil, the timeout passes
// (0: none), the client goes or the server stops; a try is a write (a
// pop), or with read a read (XREAD).
func (c *conn) block(shard int, b blockingCall, timeout time.Duration, read bool) {
	try, keys := b.try, b.keys
	c.drain()
	select {
	case <-c.unblocked: // an UNBLOCK that came after the last wait ended
	default:
	}
	var inLine *blockWaiter
	if b.queue != "" {
		// In line from the start (before it counts as blocked): behind
		// those blocked before it, ahead of those that come while it
		// makes its first try.
		inLine = c.s.blocked.join(shard, b.queue, b.served)
		defer c.s.blocked.leave(inLine)
	}
	defer c.flag.Store(0)
	var deadline <-chan time.Time
	if timeout > 0 {
		c.timed.Store(true)
		defer c.timed.Store(false)
		t := time.NewTimer(timeout)
		defer t.Stop()
		deadline = t.C
	}
	gone, stopProbe := c.probe()
	defer stopProbe()
	watcher, _ := c.s.backend.(Watcher)
	waiting := false // a try found nothing: the command blocks
	for {
		var wake <-chan struct{}
		stop := func() {}
		if watcher != nil {
			// Before the try: a write right after it wakes this wait.
			wake, stop = watcher.Watch(shard, keys)
		}
		if waiting && inLine != nil {
			// Blocked: it takes only from the keys it is first in line
			// for, and waits its turn for the rest.
			try = b.narrow(c.s.blocked.first(inLine))
		}
		r := nilTry
		switch {
		case try == nil:
		case read:
			r = c.issueRead(shard, try).Wait()
		default:
			r = c.issueWrite(shard, try).Wait()
		}
		c.drain() // nothing is pending; resets the shard marks
		switch {
		case strings.HasPrefix(r.GetError(), "TRYAGAIN"):
			// The shard has no leader now (an election): the pop was not
			// applied. Wait on, and try again in a while.
			c.flag.Store('b')
			stop()
			wake, stop = nil, func() {}
		case waiting && b.group && (strings.HasPrefix(r.GetError(), "WRONGTYPE") || strings.HasPrefix(r.GetError(), "NOGROUP")):
			stop()
			c.reply(c.groupLost(shard, keys, r))
			return
		case waiting && strings.HasPrefix(r.GetError(), "WRONGTYPE") && !(b.move && c.keyType(shard, b.served[0]) == "list"):
			// A key it waits on became another type since it blocked: as
			// in Redis, that serves nothing, and it waits on (before it
			// blocks, WRONGTYPE is the answer, as in Redis). But a move
			// whose source has an element for it and whose destination
			// is of another type ends with WRONGTYPE, as in Redis.
		case !isNil(r):
			stop()
			if b.shape != nil {
				r = b.shape(r)
			}
			c.reply(r)
			return
		default:
			// Blocked from here, as Redis counts it (CLIENT LIST's b,
			// UNBLOCK): a key of another type before this is WRONGTYPE.
			waiting = true
			c.flag.Store('b')
		}
		var turn <-chan struct{}
		if inLine != nil {
			turn = inLine.turn
		}
		if end := c.waitBlocked(wake, turn, deadline, gone); end != nil {
			stop()
			switch *end {
			case blockTimedOut:
				c.reply(b.none)
			case blockUnblocked:
				c.reply(errorf("UNBLOCKED client unblocked via CLIENT UNBLOCK"))
			default:
				c.quit = true // the client or the server is going: no answer
			}
			return
		}
		stop()
	}
}

type blockEnd int

const (
	blockTimedOut blockEnd = iota
	blockGone
	blockUnblocked // CLIENT UNBLOCK ... ERROR
)

// nilTry stands for the answer of a try not made (its command is not
// first in line for any of its keys): nothing.
var nilTry = nullArray()

// waitBlocked waits for a reason to try again (nil: wake, its turn, or
// blockPoll without a watch) or to end.
func (c *conn) waitBlocked(wake, turn <-chan struct{}, deadline <-chan time.Time, gone <-chan struct{}) *blockEnd {
	var poll <-chan time.Time
	if wake == nil {
		t := time.NewTimer(blockPoll)
		defer t.Stop()
		poll = t.C
	}
	end := func(e blockEnd) *blockEnd { return &e }
	select {
	case <-wake:
	case <-turn:
	case <-poll:
	case how := <-c.unblocked:
		return end(how)
	case <-deadline:
		return end(blockTimedOut)
	case <-gone:
		return end(blockGone)
	case <-c.s.done:
		return end(blockGone)
	}
	return nil
}

func isNil(r *messages.Reply) bool {
	switch r.GetValue().(type) {
	case *messages.Reply_NullArray, *messages.Reply_NullBulk:
		return true
	}
	return false
}

// heldReader reads r, after the bytes a probe read while a command
// blocked: the client's next command, which the connection then reads as
// if the probe had not. It counts what it reads in count (INFO's
// total_net_input_bytes): one add per call.
type heldReader struct {
	r     io.Reader
	held  []byte
	count *atomic.Uint64
}

func (h *heldReader) Read(p []byte) (int, error) {
	if len(h.held) > 0 {
		n := copy(p, h.held)
		h.held = h.held[n:]
		h.count.Add(uint64(n))
		return n, nil
	}
	n, err := h.r.Read(p)
	if n > 0 {
		h.count.Add(uint64(n))
	}
	return n, err
}

// countingWriter writes to w and counts the bytes written in count
// (INFO's total_net_output_bytes): one add per call, which the
// connection's buffered writer makes once per flush or full buffer.
type countingWriter struct {
	w     io.Writer
	count *atomic.Uint64
}

func (c countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	if n > 0 {
		c.count.Add(uint64(n))
	}
	return n, err
}

// probe watches the connection while a command blocks: gone closes when
// the client closes it (or it fails). Only with nothing buffered: the
// probe reads the connection itself, one byte, which it keeps for the
// reader; after a byte (the client sent its next command) it stops
// looking. stop ends the probe (and waits for it).
func (c *conn) probe() (gone <-chan struct{}, stop func()) {
	if c.rd.Buffered() > 0 || len(c.in.held) > 0 {
		return nil, func() {}
	}
	ch := make(chan struct{})
	ended := make(chan struct{})
	var b [1]byte
	var n int
	var err error
	go func() {
		defer close(ended)
		n, err = c.nc.Read(b[:])
		var ne net.Error
		if n == 0 && err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
			close(ch)
		}
	}()
	return ch, func() {
		c.nc.SetReadDeadline(time.Now())
		<-ended
		c.nc.SetReadDeadline(time.Time{})
		if n == 1 {
			c.in.held = append(c.in.held, b[0])
		}
	}
}
