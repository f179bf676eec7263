package actors

import (
	"context"
	"fmt"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coppice-kv/coppice/messages"
	"github.com/coppice-kv/coppice/server"
)

// clusterView is the cluster as this node sees it, for the client port's
// CLUSTER commands: the members the cluster state records (this node at
// the address its client port is bound to) and every shard's leader and
// members from this node's replica of the shard.
func (rt *Runtime) clusterView(sys *actor.ActorSystem) (*server.ClusterView, error) {
	ctx, cancel := context.WithTimeout(context.Background(), DefaultStatusTimeout)
	defer cancel()
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
