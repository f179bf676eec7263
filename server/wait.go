package server

// WAIT numreplicas timeout, as Redis 7.0's, for coppice's replication.
//
// A write is acknowledged to its client only once a majority of its
// shard's voters store it: WAIT cannot make it more durable than that, it
// tells how far it went. A "replica" of a write is another member of its
// shard's Raft group (voter or non-voter) whose log durably stores the
// entry that carried it: its match index, as the shard's leader tracks it,
// is at or past the entry's log index. The connection keeps the log index
// of its last write on each shard (LogIndexes); WAIT answers the least,
// over the shards it wrote to, of the members other than the leader that
// store it. A connection that wrote nothing yet counts, as Redis counts
// every connected replica, the least over every shard of the members other
// than the leader that the leader reaches (they answered it in the last
// 2 s).
//
// WAIT answers at once when that count is at least numreplicas (or in
// MULTI, where it does not block); otherwise it blocks until it is, or
// timeout milliseconds pass (0: for ever), and answers the count then. A
// blocked WAIT ends with CLIENT UNBLOCK (TIMEOUT answers the count, ERROR
// the UNBLOCKED error), the connection's close or the server's stop. Each
// shard's leader answers once enough members store the index, as its Raft
// tells it (no polling); the node asks it again every waitRound, and a
// shard whose ask fails (a leader stepping down) every waitRetry, so a
// leader that changed is found. A write whose outcome is unknown
// (AMBIGUOUS) has no index: WAIT does not wait for it. A write that was
// acknowledged is on a majority of its shard's voters: coppice's backend
// never counts it on fewer than half of them (a group of 3: 1), also while
// its shard's leadership changes and no leader answers.

import (
	"context"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coppice-kv/coppice/kv"
	"github.com/coppice-kv/coppice/messages"
)

// ReplicaBackend is a Backend that can answer WAIT: its writes tell the
// log index of the Raft entry that carried them, and a shard's leader
// tells how many other members of its group store an index. With a
// Backend that is not one, a shard has no replica: WAIT answers 0 (after
// its timeout when it asks for more).
type ReplicaBackend interface {
	Backend
	// ProposeIndexed is Propose that, once the write is committed, notes
	// the log index of the entry that carried it in to (before Wait
	// returns).
	ProposeIndexed(shard int, cmd *messages.Command, to *LogIndexes) Pending
	// ReplicaAcks asks shard's leader how many members of its group other
	// than itself store its log up to index, or with index 0 how many it
	// reaches; the leader answers once want of them do or wait has
	// passed. Bounded by ctx.
	ReplicaAcks(ctx context.Context, shard int, index uint64, want int, wait time.Duration) (int, error)
}

// LogIndexes is, for a connection, the log index of the entry that
// carried its last write on each shard (0: none yet). Safe for concurrent
// use.
type LogIndexes struct {
	mu     sync.Mutex
	shards int
	last   []uint64 // made at the first write
}

// Note records a write of shard committed at index.
func (l *LogIndexes) Note(shard int, index uint64) {
	l.mu.Lock()
	if l.last == nil {
		l.last = make([]uint64, l.shards)
	}
	if shard >= 0 && shard < len(l.last) && index > l.last[shard] {
		l.last[shard] = index
	}
	l.mu.Unlock()
}

// shardIndex is a shard and a log index of it.
type shardIndex struct {
	shard int
	index uint64
}

// targets are what WAIT waits for: each shard written to, at its last
// write's index; with no write, every shard at index 0 (the members the
// leader reaches).
func (l *LogIndexes) targets() []shardIndex {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []shardIndex
	for sh, ix := range l.last {
		if ix > 0 {
			out = append(out, shardIndex{sh, ix})
		}
	}
	if len(out) == 0 {
		for sh := 0; sh < l.shards; sh++ {
			out = append(out, shardIndex{sh, 0})
		}
	}
	return out
}

const (
	// waitRound bounds one ask of a shard's leader: a longer WAIT asks
	// again, so it finds a leader that changed.
	waitRound = time.Second
	// waitRetry is the pause after a round that ended early short of
	// the count (a shard without a leader, a leader that changed).
	waitRetry = 50 * time.Millisecond
	// waitGrace is how long past its timeout a WAIT waits for its last
	// round's answer (a leader that does not answer) before it answers
	// the count it had.
	waitGrace = 500 * time.Millisecond
	// waitNowTimeout bounds a count that does not wait (a WAIT already
	// satisfied, in MULTI, or unblocked).
	waitNowTimeout = 5 * time.Second
)

var errTimeoutNotInt = errorf("ERR timeout is not an integer or out of range")

// parseWait parses WAIT's arguments as Redis does: numreplicas, then the
// timeout in milliseconds (0: none).
func parseWait(args [][]byte) (want int64, timeout time.Duration, r *messages.Reply) {
	if len(args) != 3 {
		return 0, 0, arityError("wait")
	}
	want, ok := kv.ParseInt(args[1])
	if !ok {
		return 0, 0, errorf("ERR value is not an integer or out of range")
	}
	ms, ok := kv.ParseInt(args[2])
	switch {
	case !ok:
		return 0, 0, errTimeoutNotInt
	case ms < 0:
		return 0, 0, errTimeoutNeg
	case ms > math.MaxInt64/int64(time.Millisecond):
		return want, 0, nil // past time.Duration's range, centuries: none
	}
	return want, time.Duration(ms) * time.Millisecond, nil
}

// wait: WAIT numreplicas timeout. It answers how many replicas store
// every write the connection made (a replica of a write: another member
// of its shard's Raft group whose match index, as the leader tracks it,
// reaches the write's log index; the least over the shards written; with
// no write, the members the leaders reach: see the top of this file),
// blocking until numreplicas do or the timeout passes. The connection's
// earlier replies are written first (its writes are then answered, their
// indexes known), and nothing after it runs meanwhile.
func (c *conn) wait(args [][]byte) {
	want, timeout, r := parseWait(args)
	if r != nil {
		c.reply(r)
		return
	}
	c.drain()
	n, end := c.awaitReplicas(want, timeout)
	switch {
	case end == nil:
		c.reply(integer(n))
	case *end == blockUnblocked:
		c.reply(errorf("UNBLOCKED client unblocked via CLIENT UNBLOCK"))
	default:
		c.quit = true // the client or the server is going: no answer
	}
}

// waitNow is WAIT in EXEC's array: the count at once, with no wait.
func (c *conn) waitNow(args [][]byte) *messages.Reply {
	if _, _, r := parseWait(args); r != nil {
		return r
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitNowTimeout)
	defer cancel()
	return integer(countReplicas(ctx, c.s.replicas, c.writes.targets(), 0, 0))
}

// awaitReplicas counts the replicas of the connection's writes, waiting
// up to timeout (0: for ever) for want of them; end is set when the wait
// ended otherwise than with a count (CLIENT UNBLOCK ERROR, the client's or
// the server's going).
func (c *conn) awaitReplicas(want int64, timeout time.Duration) (n int64, end *blockEnd) {
	rb, targets := c.s.replicas, c.writes.targets()
	now := func() int64 {
		ctx, cancel := context.WithTimeout(context.Background(), waitNowTimeout)
		defer cancel()
		return countReplicas(ctx, rb, targets, 0, 0)
	}
	if n = now(); n >= want {
		return n, nil
	}
	select {
	case <-c.unblocked: // an UNBLOCK that came after the last wait ended
	default:
	}
	c.flag.Store('b')
	defer c.flag.Store(0)
	gone, stopProbe := c.probe()
	defer stopProbe()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // ends the rounds (they touch nothing of the connection)
	var deadline time.Time
	var backstop <-chan time.Time
	if timeout > 0 {
		c.timed.Store(true)
		defer c.timed.Store(false)
		deadline = time.Now().Add(timeout)
		t := time.NewTimer(timeout + waitGrace)
		defer t.Stop()
		backstop = t.C
	}
	var last atomic.Int64
	last.Store(n)
	counted := make(chan int64, 1)
	go func() { counted <- replicaRounds(ctx, rb, targets, want, deadline, &last) }()
	select {
	case n := <-counted:
		return n, nil
	case <-backstop:
		return last.Load(), nil
	case how := <-c.unblocked:
		if how == blockTimedOut {
			cancel()
			return now(), nil // as Redis: the count as it is
		}
		return 0, &how
	case <-gone:
	case <-c.s.done:
	}
	e := blockGone
	return 0, &e
}

// replicaRounds counts the replicas of targets in rounds of at most
// waitRound until want of them store them all, deadline passes (zero:
// never) or ctx ends; last is the latest count.
func replicaRounds(ctx context.Context, rb ReplicaBackend, targets []shardIndex, want int64, deadline time.Time, last *atomic.Int64) int64 {
	if rb == nil {
		// No replica ever: the count stays 0 until the end.
		var end <-chan time.Time
		if !deadline.IsZero() {
			t := time.NewTimer(time.Until(deadline))
			defer t.Stop()
			end = t.C
		}
		select {
		case <-end:
		case <-ctx.Done():
		}
		return 0
	}
	for {
		wait := waitRound
		if !deadline.IsZero() {
			wait = max(min(wait, time.Until(deadline)), 0)
		}
		start := time.Now()
		n := countReplicas(ctx, rb, targets, want, wait)
		last.Store(n)
		if n >= want || ctx.Err() != nil || (!deadline.IsZero() && !time.Now().Before(deadline)) {
			return n
		}
		if time.Since(start) < wait {
			// Ended early short of the count: a shard without a leader,
			// or one that changed. Not again at once.
			pause := waitRetry
			if !deadline.IsZero() {
				pause = max(min(pause, time.Until(deadline)), 0)
			}
			t := time.NewTimer(pause)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return n
			}
		}
	}
}

// countReplicas asks, in parallel, each target shard's leader how many
// other members store its index, each waiting up to wait for want of
// them, and answers the least: a write is held by a replica only as far
// as the shard that holds it least. A shard whose ask fails (no leader
// known, a leader that stepped down meanwhile) is asked again within the
// wait, every waitRetry, and counts 0 if it never answers; so does every
// shard of a backend that is not a ReplicaBackend.
func countReplicas(ctx context.Context, rb ReplicaBackend, targets []shardIndex, want int64, wait time.Duration) int64 {
	if rb == nil || len(targets) == 0 {
		return 0
	}
	ask := int(min(max(want, 0), math.MaxUint32))
	counts := make([]int64, len(targets))
	end := time.Now().Add(wait)
	one := func(i int) {
		for {
			n, err := rb.ReplicaAcks(ctx, targets[i].shard, targets[i].index, ask, max(time.Until(end), 0))
			if err == nil {
				counts[i] = int64(n)
				return
			}
			if time.Until(end) <= waitRetry {
				return
			}
			t := time.NewTimer(waitRetry)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return
			}
		}
	}
	if len(targets) == 1 {
		one(0)
	} else {
		var wg sync.WaitGroup
		for i := range targets {
			wg.Add(1)
			go func() {
				defer wg.Done()
				one(i)
			}()
		}
		wg.Wait()
	}
	return slices.Min(counts)
}
