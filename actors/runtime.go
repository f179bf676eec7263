package actors

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/coppice-kv/coppice/storage"
	"github.com/coppice-kv/coppice/transport"
)

// Runtime is what the node's actors share: the node's configuration, and
// the handles the store and transport workers open for the others. The
// supervision tree orders them: store and transport start before shards and
// client (rest_for_one), so the handles exist when those start, and a
// restart of store or transport restarts everything that uses them.
type Runtime struct {
	Name    string
	DataDir string
	Shards  int
	// ClusterAddr is where the node listens for Raft (and later sync)
	// streams; Advertise, if set, is what peers dial.
	ClusterAddr string
	Advertise   string
	// ClientAddr is the RESP port; RequirePass makes clients AUTH.
	ClientAddr  string
	RequirePass string
	Version     string
	Log         *slog.Logger
	// Exec runs a write command on a shard (kv.Exec).
	Exec storage.Executor

	mu     sync.RWMutex
	shards []*storage.Shard
	snaps  []*storage.SnapshotStore
	mux    *transport.Mux
	// sole[i] is set while this node leads shard i as its only voter: no
	// other node can lead it, so reads need no barrier.
	sole        []atomic.Bool
	boundClient string
}

// Layout is the data dir's layout.
func (rt *Runtime) Layout() storage.Layout { return storage.Layout{Dir: rt.DataDir} }

// Shard returns shard i's state machine, opened by the store worker.
func (rt *Runtime) Shard(i int) (*storage.Shard, *storage.SnapshotStore, error) {
	rt.mu.RLock()
	defer rt.mu.RUnlock()
	if i < 0 || i >= len(rt.shards) || rt.shards[i] == nil {
		return nil, nil, fmt.Errorf("node: shard %d is not open", i)
	}
	return rt.shards[i], rt.snaps[i], nil
}

func (rt *Runtime) setClientAddr(addr string) {
	rt.mu.Lock()
	rt.boundClient = addr
	rt.mu.Unlock()
}

// BoundClientAddr is the address the client port listens on (useful with
// port 0), empty while it is not open.
func (rt *Runtime) BoundClientAddr() string {
	rt.mu.RLock()
	defer rt.mu.RUnlock()
	return rt.boundClient
}

// Mux returns the cluster listener, opened by the transport worker.
func (rt *Runtime) Mux() (*transport.Mux, error) {
	rt.mu.RLock()
	defer rt.mu.RUnlock()
	if rt.mux == nil {
		return nil, fmt.Errorf("node: the cluster listener is not open")
	}
	return rt.mux, nil
}

func (rt *Runtime) setShards(shards []*storage.Shard, snaps []*storage.SnapshotStore) {
	rt.mu.Lock()
	rt.shards, rt.snaps = shards, snaps
	rt.mu.Unlock()
}

func (rt *Runtime) setMux(m *transport.Mux) {
	rt.mu.Lock()
	rt.mux = m
	rt.mu.Unlock()
}

func (rt *Runtime) setSole(shard int, v bool) {
	rt.mu.Lock()
	if rt.sole == nil {
		rt.sole = make([]atomic.Bool, rt.Shards)
	}
	rt.mu.Unlock()
	rt.sole[shard].Store(v)
}

// soleLeader reports whether this node leads shard as its only voter.
func (rt *Runtime) soleLeader(shard int) bool {
	rt.mu.RLock()
	defer rt.mu.RUnlock()
	return rt.sole != nil && rt.sole[shard].Load()
}

func (rt *Runtime) logger() *slog.Logger {
	if rt.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return rt.Log
}
