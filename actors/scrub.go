package actors

// The node's scrub of its shard stores (storage.Shard.Scrub), run by the
// store worker every Runtime.ScrubInterval.

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/coppice-kv/coppice/storage"
)

// scrubCounters is what the node's scrubs did (/metrics).
type scrubCounters struct {
	passes, tables, bytes atomic.Uint64
	last                  atomic.Int64 // Unix seconds of the last pass's end
}

// scrub reads back every shard store of the node every
// Runtime.ScrubInterval (the first pass one interval after the start),
// until unwatch is closed. Damage a scrub finds is the shard's store
// failure, which the store watch hands to the shard's Raft actor
// (rebuild); the pass goes on with the other shards. A shard that cannot
// be scrubbed now (closed, being rebuilt) waits for the next pass.
func (s *storeActor) scrub(unwatch chan struct{}) {
	rt := s.rt
	if rt.ScrubInterval <= 0 {
		return
	}
	shards, throttle := s.shards, storage.NewThrottle(rt.ScrubRate)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-unwatch
		cancel()
	}()
	go func() {
		t := time.NewTimer(rt.ScrubInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
			case <-ctx.Done():
				return
			}
			start := time.Now()
			var tables, bytes uint64
			for i, sh := range shards {
				res, err := sh.Scrub(ctx, throttle)
				rt.scrubs.tables.Add(res.Tables)
				rt.scrubs.bytes.Add(res.Bytes)
				tables, bytes = tables+res.Tables, bytes+res.Bytes
				switch {
				case ctx.Err() != nil:
					return
				case errors.Is(err, storage.ErrCorrupt):
					rt.logger().Error("scrub: shard store damaged", "shard", i, "err", err)
				case err != nil:
					rt.logger().Warn("scrub: shard not scrubbed", "shard", i, "err", err)
				}
			}
			rt.scrubs.passes.Add(1)
			rt.scrubs.last.Store(time.Now().Unix())
			rt.logger().Info("scrub: every shard store read back", "tables", tables, "bytes", bytes,
				"took", time.Since(start).Round(time.Millisecond))
			t.Reset(rt.ScrubInterval)
		}
	}()
}
