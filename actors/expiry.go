package actors

import (
	"math"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coppice-kv/coppice/kv"
	"github.com/coppice-kv/coppice/messages"
	"github.com/coppice-kv/coppice/storage"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
)

// Active expiry. A key past its expiry is invisible at once (every command
// checks its expiry), but only deleted when a write looks it up: a key
// written with a TTL and never touched again would stay on disk for good.
// So each shard's leader deletes expired keys itself, as Redis's active
// expiry cycle does: every expiryEvery it looks at the start of the
// shard's expiry index and, when a key is due, proposes kv.ExpireDueCommand
// (up to expiryBatch keys, at the leader's clock) through the shard's Raft
// log, so every replica deletes the same keys and fires the same "expired"
// events. A full batch is followed at once by the next, until none is due.
// One such entry at a time per shard; an idle shard's log stays still.
// A look that finds nothing due tells when the next key is (kv.NextExpiry):
// the leader looks again then, or once the shard applies another entry or
// its leadership moves, and at least every expiryFullEvery; so a node with
// a thousand shards does not scan each of them ten times a second.
//
// The index's deleted entries stay in the store as tombstones until
// compactions drop them, and a scan from the index's start would step over
// every one of them (at 10k expiries a second, a minute's worth is 600k
// per look). So the leader looks from a floor: once an entry at time N has
// deleted every key due, no index entry below N is left, and a later
// command adds none below its own time, stamped by its proposer shortly
// before the shard applies it. The floor is N less expiryMargin, for the
// commands stamped before N and applied after, and for clocks that differ
// between nodes; once every expiryFullEvery a look starts from the index's
// start, for a key a command stamped longer ago than that added below it.
const (
	expiryEvery     = 100 * time.Millisecond
	expiryBatch     = 200
	expiryMargin    = 2 * time.Second
	expiryFullEvery = time.Minute
)

// expiryTick asks the shard's Raft actor to look for expired keys.
type expiryTick struct{}

// expiryChecked reports what a look from `from` found, in term, in the
// store as of applied index `applied` or later: due, or else nothing is
// until quiet.
type expiryChecked struct {
	due           bool
	from          int64
	quiet         time.Time
	term, applied uint64
}

// holds tells whether the quiet of look q still holds: nothing due yet,
// nothing applied since the look, the same term (nil: no quiet).
func (q *expiryChecked) holds(r *raft.Raft, fsm *storage.Shard) bool {
	if q == nil || q.term != r.CurrentTerm() || !time.Now().Before(q.quiet) {
		return false
	}
	applied, _ := fsm.Applied()
	return applied == q.applied
}

// expiryDone is the outcome of a proposed kv.ExpireDueCommand.
type expiryDone struct {
	from, now int64
	reply     *messages.ProposeReply
}

// startExpiry ticks the actor every rt.ExpiryEvery (expiryEvery when 0)
// while its group's Raft leads, unless its last look's quiet holds or a
// CLIENT PAUSE holds the node's clients, until stop is called. One ticker
// serves every shard of the node (expiryTicker).
func (a *raftActor) startExpiry() (stop func()) {
	root, self, r, fsm, quiet := a.system.Root, a.self, a.r, a.fsm, &a.expiryQuiet
	return a.rt.expiry.add(a.rt.ExpiryEvery, a.rt.clientsPaused, func() {
		if r.State() == raft.Leader && !quiet.Load().holds(r, fsm) {
			root.Send(self, expiryTick{})
		}
	})
}

// clientsPaused tells whether a CLIENT PAUSE holds this node's clients:
// then no key expires, as in Redis.
func (rt *Runtime) clientsPaused() bool {
	port := rt.port.Load()
	return port != nil && port.Paused()
}

// expiryTicker is the node's one expiry ticker: each tick it calls every
// shard's check, which costs a few atomic loads when the shard follows or
// its quiet holds. A goroutine and ticker per shard woke a node with a
// thousand shards ten thousand times a second to find nothing to do. The
// ticker runs only while some shard has a check.
type expiryTicker struct {
	mu     sync.Mutex
	checks map[*func()]struct{}
	stop   chan struct{} // closed to stop the running ticker; nil: none runs
	dirty  bool          // checks changed since the ticker copied them
}

// add calls check every `every` (expiryEvery when 0), but at the ticks
// when held (if not nil) says the node holds its expiry, until the
// returned function is called. Every check of a node has the same period
// and hold: the first one's.
func (t *expiryTicker) add(every time.Duration, held func() bool, check func()) (remove func()) {
	if every <= 0 {
		every = expiryEvery
	}
	key := &check
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.checks == nil {
		t.checks = map[*func()]struct{}{}
	}
	t.checks[key] = struct{}{}
	t.dirty = true
	if t.stop == nil {
		t.stop = make(chan struct{})
		go t.run(every, held, t.stop)
	}
	return func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		if _, ok := t.checks[key]; !ok {
			return
		}
		delete(t.checks, key)
		t.dirty = true
		if len(t.checks) == 0 {
			close(t.stop)
			t.stop = nil
		}
	}
}

func (t *expiryTicker) run(every time.Duration, held func() bool, stop chan struct{}) {
	tk := time.NewTicker(every)
	defer tk.Stop()
	var list []func()
	for {
		select {
		case <-tk.C:
		case <-stop:
			return
		}
		t.mu.Lock()
		if t.stop != stop {
			t.mu.Unlock() // stopped, and maybe another ticker started
			return
		}
		if t.dirty {
			list = list[:0]
			for c := range t.checks {
				list = append(list, *c)
			}
			t.dirty = false
		}
		t.mu.Unlock()
		if held != nil && held() {
			continue
		}
		for _, check := range list {
			check()
		}
	}
}

// expiryReceive handles the messages of active expiry; it reports whether
// m was one.
func (a *raftActor) expiryReceive(ctx actor.Context, m any) bool {
	switch m := m.(type) {
	case expiryTick:
		if a.expiring || a.r == nil || a.r.State() != raft.Leader || a.rt.activeExpiryOff.Load() {
			return true
		}
		term := a.r.CurrentTerm()
		a.expiring = true
		from := a.expiryFrom
		if time.Since(a.expiryFull) >= expiryFullEvery {
			from, a.expiryFull = math.MinInt64, time.Now()
		}
		fsm, root, self := a.fsm, a.system.Root, a.self
		go func() { // a read of the store, off the mailbox
			// Read before the store: the look sees at least what
			// this index covers, and anything applied after it
			// ends the quiet.
			applied, _ := fsm.Applied()
			var when int64
			var found bool
			err := fsm.View(func(r kv.Reader) (err error) {
				when, found, err = kv.NextExpiry(r, from)
				return err
			})
			now := time.Now()
			m := expiryChecked{from: from, term: term, applied: applied}
			switch {
			case err != nil:
				// Counts as nothing due, and the next tick looks again
				// (a store that fails stops the node on its own).
			case found && when < now.UnixMilli():
				m.due = true
			default:
				m.quiet = now.Add(expiryFullEvery)
				if next := time.UnixMilli(when); found && next.Before(m.quiet) {
					m.quiet = next
				}
			}
			root.Send(self, m)
		}()
	case expiryChecked:
		if !m.due || a.r == nil || a.r.State() != raft.Leader {
			a.expiring = false
			a.expiryQuiet.Store(&m) // an entry applied since the look, or a new term, ends it
			return true
		}
		now := time.Now().UnixMilli()
		reply := make(chan proto.Message, 1)
		a.propose(ctx, kv.ExpireDueCommand(m.from, now, expiryBatch), replyTo{ch: reply})
		root, self := a.system.Root, a.self
		go func() {
			// Every proposal is answered (applied, refused, or at the
			// shard's stop); bounded all the same, so that expiry never
			// waits for good. No answer counts as a failure.
			var pr *messages.ProposeReply
			t := time.NewTimer(2 * applyTimeout)
			defer t.Stop()
			select {
			case r := <-reply:
				pr, _ = r.(*messages.ProposeReply)
			case <-t.C:
			}
			root.Send(self, expiryDone{from: m.from, now: now, reply: pr})
		}()
	case expiryDone:
		a.expiring = false
		n := m.reply.GetReply().GetInteger()
		switch {
		case m.reply == nil || m.reply.GetError() != "" || m.reply.GetReply().GetError() != "":
		case n >= expiryBatch:
			ctx.Send(a.self, expiryTick{}) // more may be due
		default: // every key due at m.now is gone
			a.expiryFrom = max(a.expiryFrom, m.now-expiryMargin.Milliseconds())
		}
	default:
		return false
	}
	return true
}
