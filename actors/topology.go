package actors

import (
	"context"
	"fmt"
	"slices"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coppice-kv/coppice/messages"
	"github.com/coppice-kv/coppice/server"
	"github.com/coppice-kv/coppice/transport"
)

// clusterView is the cluster as this node sees it, for the client port's
// CLUSTER commands: the members the cluster state records (this node at
// the address its client port is bound to) and every shard's leader and
// members from this node's replica of the shard. A node the cluster
// removed shows the view of the coordinator that told it so (removedView),
// with itself in no shard: its own replicas know no leader, and a Redis
// Cluster client that asked it would find no slot.
func (rt *Runtime) clusterView(sys *actor.ActorSystem) (*server.ClusterView, error) {
	ctx, cancel := context.WithTimeout(context.Background(), DefaultStatusTimeout)
	defer cancel()
	if by, removed := rt.removedBy(); removed {
		// Bounded apart, so that the node's own view has time left.
		askCtx, cancel := context.WithTimeout(ctx, DefaultStatusTimeout/2)
		v, err := rt.removedView(askCtx, by)
		cancel()
		if err == nil {
			return v, nil
		}
		rt.logger().Debug("a removed node's cluster map: the coordinator did not answer; the node's own stands", "coordinator", by.Name, "err", err)
	}
	return rt.ownClusterView(ctx, sys)
}

// removedView is the coordinator by's cluster view, with this node in
// it.
func (rt *Runtime) removedView(ctx context.Context, by transport.Peer) (*server.ClusterView, error) {
	res, err := rt.ask(ctx, by, ManagerPath, &messages.ClusterViewRequest{})
	if err != nil {
		return nil, err
	}
	r, ok := res.(*messages.ClusterViewReply)
	switch {
	case !ok:
		return nil, fmt.Errorf("coordinator %s answered %T", by.Name, res)
	case r.Error != "":
		return nil, fmt.Errorf("coordinator %s: %s", by.Name, r.Error)
	case len(r.Shards) != rt.Shards:
		return nil, fmt.Errorf("coordinator %s: %d shards, this node has %d", by.Name, len(r.Shards), rt.Shards)
	}
	v := viewFromProto(r)
	v.Self = rt.Name
	v.Nodes = slices.DeleteFunc(v.Nodes, func(n server.ClusterNode) bool { return n.Name == rt.Name })
	self := server.ClusterNode{Name: rt.Name, ClientAddr: rt.BoundClientAddr()}
	if mux, err := rt.Mux(); err == nil {
		self.ClusterAddr = mux.Addr().String()
	}
	v.Nodes = append([]server.ClusterNode{self}, v.Nodes...)
	return v, nil
}

// clusterViewReply answers a peer's ClusterViewRequest with this node's
// own view.
func (rt *Runtime) clusterViewReply(sys *actor.ActorSystem) *messages.ClusterViewReply {
	ctx, cancel := context.WithTimeout(context.Background(), DefaultStatusTimeout)
	defer cancel()
	v, err := rt.ownClusterView(ctx, sys)
	if err != nil {
		return &messages.ClusterViewReply{Error: err.Error()}
	}
	return viewToProto(v)
}

func viewToProto(v *server.ClusterView) *messages.ClusterViewReply {
	r := &messages.ClusterViewReply{}
	for _, n := range v.Nodes {
		r.Nodes = append(r.Nodes, &messages.ClusterViewNode{Name: n.Name, ClientAddr: n.ClientAddr, ClusterAddr: n.ClusterAddr, Failed: n.Failed})
	}
	for _, sh := range v.Shards {
		r.Shards = append(r.Shards, &messages.ClusterViewShard{Leader: sh.Leader, Members: sh.Members, Term: sh.Term})
	}
	return r
}

func viewFromProto(r *messages.ClusterViewReply) *server.ClusterView {
	v := &server.ClusterView{}
	for _, n := range r.Nodes {
		v.Nodes = append(v.Nodes, server.ClusterNode{Name: n.Name, ClientAddr: n.ClientAddr, ClusterAddr: n.ClusterAddr, Failed: n.Failed})
	}
	for _, sh := range r.Shards {
		v.Shards = append(v.Shards, server.ClusterShard{Leader: sh.Leader, Members: sh.Members, Term: sh.Term})
	}
	return v
}

// ownClusterView is clusterView from this node's own replicas.
func (rt *Runtime) ownClusterView(ctx context.Context, sys *actor.ActorSystem) (*server.ClusterView, error) {
	shards, err := ShardStatuses(ctx, sys, rt.Shards)
	if err != nil {
		return nil, err
	}
	v := &server.ClusterView{Self: rt.Name}
	self := server.ClusterNode{Name: rt.Name, ClientAddr: rt.BoundClientAddr()}
	if mux, err := rt.Mux(); err == nil {
		self.ClusterAddr = mux.Addr().String() // the advertised address
	}
	v.Nodes = append(v.Nodes, self)
	if _, st, err := rt.System(); err == nil {
		alive, err := gossipAlive(ctx, sys)
		if err != nil {
			return nil, err
		}
		for _, m := range st.Get().GetMembers() {
			if m.Name != rt.Name {
				v.Nodes = append(v.Nodes, server.ClusterNode{Name: m.Name, ClientAddr: m.ClientAddr, ClusterAddr: m.ClusterAddr,
					Failed: alive != nil && !alive[m.Name]})
			}
		}
	}
	for i, s := range shards {
		if s.Err != nil {
			return nil, s.Err
		}
		r := s.Reply
		if r.Error != "" {
			return nil, fmt.Errorf("shard %d: %s", i, r.Error)
		}
		cs := server.ClusterShard{Leader: r.LeaderId, Term: r.Term}
		for _, want := range []messages.Suffrage{messages.Suffrage_VOTER, messages.Suffrage_NONVOTER} {
			for _, srv := range r.Configuration {
				if srv.Suffrage == want && srv.Id != r.LeaderId {
					cs.Members = append(cs.Members, srv.Id)
				}
			}
		}
		v.Shards = append(v.Shards, cs)
	}
	return v, nil
}

// gossipAlive is the set of nodes this node's gossip reports alive, from
// its manager; nil when the node runs no manager (no gossip to ask).
func gossipAlive(ctx context.Context, sys *actor.ActorSystem) (map[string]bool, error) {
	if _, ok := sys.ProcessRegistry.GetLocal(ManagerPath); !ok {
		return nil, nil
	}
	r, err := askManager[*messages.GossipMembersReply](ctx, sys, &messages.GossipMembers{})
	if err != nil {
		return nil, fmt.Errorf("gossip members: %w", err)
	}
	alive := map[string]bool{}
	for _, m := range r.Members {
		alive[m.Name] = m.Status == messages.MemberStatus_ALIVE
	}
	return alive, nil
}
