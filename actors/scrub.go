package actors

// The node's scrub of its shard stores (storage.Shard.Scrub) and of its
// Raft log store (storage.RaftLogs.Scrub), run by the store worker every
// Runtime.ScrubInterval.

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coppice-kv/coppice/storage"
)

// scrubCounters is what the node's scrubs did (/metrics), and the asks
// for one now.
type scrubCounters struct {
	passes, tables, bytes atomic.Uint64
	last                  atomic.Int64 // Unix seconds of the last pass's end
	running               atomic.Bool
	nowOnce               sync.Once
	now                   chan struct{} // ScrubNow: room for one ask (asks)
}

// asks is where ScrubNow asks for a pass.
func (c *scrubCounters) asks() chan struct{} {
	c.nowOnce.Do(func() { c.now = make(chan struct{}, 1) })
	return c.now
}

// scrub reads back every shard store of the node every
// Runtime.ScrubInterval (the first pass one interval after the start; 0:
// only when asked, ScrubNow), until unwatch is closed. Damage a scrub
// finds is the shard's store failure, which the store watch hands to the
// shard's Raft actor (rebuild); the pass goes on with the other shards. A
// shard that cannot be scrubbed now (closed, being rebuilt) waits for the
// next pass. The pass ends with the Raft log store: damage found there is
// its failure, which stops the node, and the next start rebuilds the
// store (openRaftLogs).
func (s *storeActor) scrub(unwatch chan struct{}) {
	rt := s.rt
	shards, logs, throttle := s.shards, s.logs, storage.NewThrottle(rt.ScrubRate)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-unwatch
		cancel()
	}()
	go func() {
		var tick <-chan time.Time
		if rt.ScrubInterval > 0 {
			t := time.NewTicker(rt.ScrubInterval)
			defer t.Stop()
			tick = t.C
		}
		for {
			select {
			case <-tick:
			case <-rt.scrubs.asks():
			case <-ctx.Done():
				return
			}
			if !scrubPass(ctx, rt, shards, logs, throttle) {
				return
			}
		}
	}()
}

// scrubPass scrubs every shard once, then the Raft log store; false when
// ctx ended it. The counters (/metrics) are the shards'.
func scrubPass(ctx context.Context, rt *Runtime, shards []*storage.Shard, logs *storage.RaftLogs, throttle *storage.Throttle) bool {
	rt.scrubs.running.Store(true)
	defer rt.scrubs.running.Store(false)
	start := time.Now()
	var tables, bytes uint64
	for i, sh := range shards {
		res, err := sh.Scrub(ctx, throttle)
		rt.scrubs.tables.Add(res.Tables)
		rt.scrubs.bytes.Add(res.Bytes)
		tables, bytes = tables+res.Tables, bytes+res.Bytes
		switch {
		case ctx.Err() != nil:
			return false
		case errors.Is(err, storage.ErrCorrupt):
			rt.logger().Error("scrub: shard store damaged", "shard", i, "err", err)
		case err != nil:
			rt.logger().Warn("scrub: shard not scrubbed", "shard", i, "err", err)
		}
	}
	logRes, err := logs.Scrub(ctx, throttle)
	switch {
	case ctx.Err() != nil, errors.Is(err, storage.ErrClosed):
		return false // the store worker is closing the stores
	case errors.Is(err, storage.ErrCorrupt):
		rt.logger().Error("scrub: Raft log store damaged", "err", err)
	case err != nil:
		rt.logger().Warn("scrub: Raft log store not scrubbed", "err", err)
	}
	rt.scrubs.passes.Add(1)
	rt.scrubs.last.Store(time.Now().Unix())
	rt.logger().Info("scrub: every shard store read back", "tables", tables, "bytes", bytes,
		"raftlog_tables", logRes.Tables, "raftlog_bytes", logRes.Bytes,
		"took", time.Since(start).Round(time.Millisecond))
	return true
}

// ScrubNow asks for a scrub of every store of the node now (POST
// /v1/scrub): started is false when one is asked for already (it runs
// once), running tells that a pass was under way (the asked one follows
// it). The pass ends as the timed ones do, in the log and /metrics.
func (rt *Runtime) ScrubNow() (started bool, running bool) {
	running = rt.scrubs.running.Load()
	select {
	case rt.scrubs.asks() <- struct{}{}:
		return true, running
	default:
		return false, running
	}
}
