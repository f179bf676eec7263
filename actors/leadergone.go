package actors

import (
	"errors"
	"log/slog"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coppice-kv/coppice/transport"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"golang.org/x/sync/singleflight"
)

const (
	// goneProbeTimeout bounds each dial that checks a leader's port,
	// goneProbeTries counts them and goneProbeAgain spaces them.
	goneProbeTimeout = time.Second
	goneProbeTries   = 5
	goneProbeAgain   = 50 * time.Millisecond
)

// leaderWatch tells a group's Raft when its leader's process is gone, so
// that its followers elect another at once rather than after their
// heartbeat timeout (1-2 s: a shard led by a node killed with -9, crashed
// or out of memory took no writes for that long). A leader keeps its
// AppendEntries connection to each follower open while it leads; when the
// follower's end of it closes (the Raft fork's OnAppenderClosed), the
// watch dials the leader's cluster port, and only if that is refused (no
// process listens there: the node's process ended, its host is up) tells
// Raft (LeaderGone). A leader that stepped down or handed its leadership
// over, a connection closed for any other reason, a host gone with its
// node or cut off (the dial times out), all leave the heartbeat timeout to
// decide, as before.
type leaderWatch struct {
	r      atomic.Pointer[raft.Raft]
	layer  *transport.Layer
	log    *slog.Logger
	group  string
	probes *goneProbes
}

// groupTransport makes a Raft group's transport on layer, and the watch
// for its leader, whose Raft the caller sets once made.
func groupTransport(rt *Runtime, group string, layer *transport.Layer, maxPool int, logger hclog.Logger) (*raft.NetworkTransport, *leaderWatch) {
	w := &leaderWatch{layer: layer, log: rt.logger(), group: group, probes: &rt.goneProbes}
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: layer, MaxPool: maxPool, Timeout: 10 * time.Second, Logger: logger,
		ServerAddressProvider: &rt.addrs, OnAppenderClosed: w.closed,
	})
	return trans, w
}

// closed checks, when the connection AppendEntries came on from id ends,
// whether id, still this follower's leader, is gone.
func (w *leaderWatch) closed(id raft.ServerID, addr raft.ServerAddress) {
	r := w.r.Load()
	if r == nil || r.State() != raft.Follower {
		return
	}
	if _, leader := r.LeaderWithID(); leader != id {
		return
	}
	if w.probes.gone(w.layer, id, addr) {
		w.log.Info("the leader's process is gone (its cluster port refuses connections): electing another at once", "group", w.group, "leader", id, "addr", addr)
		r.LeaderGone(id)
	}
}

// goneProbes shares a probe of a leader's cluster port among the node's
// groups: a node usually leads several of them (shards and the system
// group), and when its process ends each of their followers here sees
// its connection close within a few milliseconds. One probe answers them
// all, rather than one per group.
type goneProbes struct{ g singleflight.Group }

// gone tells whether id's process is gone: its cluster port at addr
// refuses connections. A probe of addr already on its way answers for
// this call too.
func (p *goneProbes) gone(layer *transport.Layer, id raft.ServerID, addr raft.ServerAddress) bool {
	v, _, _ := p.g.Do(string(addr), func() (any, error) { return refuses(layer, id, addr), nil })
	return v.(bool)
}

// refuses dials id's cluster port at addr until it refuses (true) or
// answers (false), goneProbeTries times at most. A process being killed
// closes its connections before its listener: a dial in between
// connects, and the hello then fails. So a failure other than a refusal
// is tried again, a few times, until the port refuses or answers.
func refuses(layer *transport.Layer, id raft.ServerID, addr raft.ServerAddress) bool {
	for try := 0; try < goneProbeTries; try++ {
		if try > 0 {
			time.Sleep(goneProbeAgain)
		}
		c, err := layer.DialPeer(id, addr, goneProbeTimeout)
		if err == nil {
			c.Close()
			return false
		}
		if errors.Is(err, syscall.ECONNREFUSED) {
			return true
		}
	}
	return false
}
