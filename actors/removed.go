package actors

// A removed node that is still running: an operator removed it (`node
// remove`; one down past --remove-delay is added back when it returns),
// and the cluster does not add it back unless an operator does. Its groups cannot tell it so
// reliably: a group's leader stops sending to a server it removed after a
// best-effort catch-up, so the node may never see the configuration
// without it, and keeps counting itself a member with no leader. The
// coordinator tells it instead (RemovedNotice), again every
// removedNoticeEvery while gossip sees it alive; the node then refuses what
// it cannot serve with errRemoved, reports every shard not ready, and
// hands its operators' requests to that coordinator.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/coppice-kv/coppice/messages"
	"github.com/coppice-kv/coppice/transport"
	"github.com/hashicorp/raft"
)

const (
	// removedNoticeEvery is how often the coordinator repeats its notice
	// to a removed node alive in gossip.
	removedNoticeEvery = 2 * time.Second
	// removedLapse is how long a node counts itself removed after the
	// last notice: lost notices or a change of coordinator do not end
	// it; the notices stopping does (the node was added back, or the
	// coordinator lost sight of it).
	removedLapse = 5 * removedNoticeEvery
)

// removedWarnAfter is how long the coordinator sees a removed node alive
// in gossip before it warns of it: a node that leaves (node leave) is
// removed, then leaves gossip, and is seen so for a moment.
const removedWarnAfter = 10 * time.Second

// seenRemoved is a removed node alive in gossip, as the coordinator sees
// it: since when, whether it warned of it, and when it last sent it its
// notice.
type seenRemoved struct {
	since, noticed time.Time
	told           bool
}

// removedAlive deals, on the coordinator, with the removed nodes gossip
// sees alive: it warns of each once, when it has seen it so for
// removedWarnAfter (they are not added back unless an operator adds
// them), and tells each that it was removed (RemovedNotice) at most every
// removedNoticeEvery, without waiting for its answer.
func (m *managerActor) removedAlive(names []string, now time.Time) {
	for _, name := range names {
		s := m.removedSeen[name]
		if s == nil {
			s = &seenRemoved{since: now}
			m.removedSeen[name] = s
		}
		if !s.told && now.Sub(s.since) >= removedWarnAfter {
			s.told = true
			m.rt.logger().Warn("a removed node is alive in gossip; it is not added back unless an operator adds it",
				"node", name, "add", "node add "+name+" (POST /v1/nodes)")
		}
		if g := m.members[name]; g != nil && g.ClusterAddr != "" && now.Sub(s.noticed) >= removedNoticeEvery {
			s.noticed = now
			go m.rt.sendRemovedNotice(transport.Peer{Name: name, Addr: g.ClusterAddr})
		}
	}
}

// errRemoved says why a removed node serves nothing of a group.
const errRemoved = "this node was removed from the cluster and is not a member of any group: the cluster's members serve its shards (`node add` on a member adds it back)"

// removal is a node's knowledge of its removal: the coordinator's last
// notice.
type removal struct {
	at time.Time
	// by is the coordinator that sent it.
	by transport.Peer
	// sysIndex is the index of the system group's configuration as this
	// node had it at the notice: a later one with the node in it means
	// it was added back.
	sysIndex uint64
}

// removedBy tells whether this node counts itself removed from the
// cluster (a notice within removedLapse, and not added back since), and
// which coordinator said so.
func (rt *Runtime) removedBy() (transport.Peer, bool) {
	r := rt.removal.Load()
	if r == nil || time.Since(r.at) > removedLapse {
		return transport.Peer{}, false
	}
	if idx, in := rt.inSystemGroup(); in && idx > r.sysIndex {
		return transport.Peer{}, false
	}
	return r.by, true
}

// inSystemGroup is the index of the system group's configuration as this
// node has it, and whether the node is in it.
func (rt *Runtime) inSystemGroup() (uint64, bool) {
	sys, _, err := rt.System()
	if err != nil {
		return 0, false
	}
	f := sys.GetConfiguration()
	if f.Error() != nil {
		return 0, false
	}
	self := raft.ServerID(rt.Name)
	for _, s := range f.Configuration().Servers {
		if s.ID == self {
			return f.Index(), true
		}
	}
	return f.Index(), false
}

// removedNotice takes the coordinator's notice: refused, and nothing
// changed, when it is for another node or another cluster.
func (rt *Runtime) removedNotice(n *messages.RemovedNotice) *messages.RemovedNoticeReply {
	switch id := rt.ClusterID(); {
	case n.Node != rt.Name:
		return &messages.RemovedNoticeReply{Error: fmt.Sprintf("removal notice for node %q: this is %q", n.Node, rt.Name)}
	case id == "" || n.ClusterId != id:
		return &messages.RemovedNoticeReply{Error: fmt.Sprintf("removal notice from cluster %q: this node is in cluster %q", n.ClusterId, id)}
	case n.Coordinator == "" || n.CoordinatorAddr == "":
		return &messages.RemovedNoticeReply{Error: "removal notice names no coordinator"}
	}
	if _, removed := rt.removedBy(); !removed && !rt.leaving.Load() {
		rt.logger().Warn("the cluster removed this node: it serves no shard until an operator adds it back",
			"coordinator", n.Coordinator, "add", "node add "+rt.Name+" (POST /v1/nodes), on a member")
	}
	idx, _ := rt.inSystemGroup()
	rt.removal.Store(&removal{at: time.Now(), by: transport.Peer{Name: n.Coordinator, Addr: n.CoordinatorAddr}, sysIndex: idx})
	return &messages.RemovedNoticeReply{}
}

// sendRemovedNotice tells the removed node at to that it was removed
// (probeTimeout); it logs at debug level a notice not taken.
func (rt *Runtime) sendRemovedNotice(to transport.Peer) {
	mux, err := rt.Mux()
	if err != nil {
		return // stopping
	}
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	n := &messages.RemovedNotice{ClusterId: rt.ClusterID(), Node: to.Name, Coordinator: rt.Name, CoordinatorAddr: mux.Addr().String()}
	res, err := rt.ask(ctx, to, ManagerPath, n)
	if r, ok := res.(*messages.RemovedNoticeReply); err == nil && ok && r.Error != "" {
		err = errors.New(r.Error)
	}
	if err != nil {
		rt.logger().Debug("removal notice not taken", "node", to.Name, "err", err)
	}
}
