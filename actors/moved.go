package actors

// A node restarted at other addresses (other ports, another host: a
// container given a new IP) comes back with its data and its name, and
// gossip announces its new addresses. Every Raft group it belongs to still
// has its old cluster address, so no leader reaches it: the coordinator
// re-addresses it in each group, then in the cluster state.

import (
	"context"
	"fmt"

	"github.com/coppice-kv/coppice/cluster"
	"github.com/coppice-kv/coppice/messages"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
)

// readdress brings the cluster's record of g, a node gossip sees alive, to
// the addresses it gossips (cluster.Moved): first every group's
// configuration, the system group's and each shard's, then the cluster
// state; each step is skipped when already done, so a pass cut short is
// finished by the next one, on this coordinator or the next. For a node
// still joining, the syncs to it start again at the new address, with a
// new set of attempts (out.stale lists the running ones to stop). It
// reports whether it changed the state.
func (in *managerInputs) readdress(ctx context.Context, r *raft.Raft, st *messages.ClusterState, g *messages.Member, out *reconciled) (bool, error) {
	if g.Status != messages.MemberStatus_ALIVE {
		return false, nil
	}
	moved, op := cluster.Moved(st, memberOf(g))
	if moved == nil {
		return false, nil
	}
	old := cluster.Member(st, g.Name)
	if op != nil {
		old = op.Node
	}
	if old.ClusterAddr != moved.ClusterAddr {
		if err := in.reachable(ctx, g); err != nil {
			return false, err
		}
		if err := readdressSystem(r, g.Name, moved.ClusterAddr); err != nil {
			return false, fmt.Errorf("system group: %w", err)
		}
		for shard := 0; shard < in.rt.Shards; shard++ {
			if err := in.readdressShard(ctx, shard, moved); err != nil {
				return false, err
			}
		}
	}
	cmd := &messages.SystemCommand{Cmd: &messages.SystemCommand_PutMember{PutMember: moved}}
	if op != nil {
		next := proto.Clone(op).(*messages.MembershipOp)
		next.Node = moved
		cmd = &messages.SystemCommand{Cmd: &messages.SystemCommand_PutOp{PutOp: next}}
		for k := range in.running {
			if k.op == op.Id {
				out.stale = append(out.stale, k)
			}
		}
	}
	if _, err := in.propose(ctx, cmd); err != nil {
		return false, err
	}
	if op != nil {
		// Syncs that gave up at the old address get a new set of
		// attempts at the new one.
		in.root.Send(in.self, retrySyncs{op: op.Id})
	}
	log := in.rt.logger().Info
	msg := "node moved: its new addresses are recorded"
	if old.ClusterAddr == moved.ClusterAddr {
		// Only the addresses clients and operators use differ (the
		// first node's record, made from its listen addresses before
		// gossip announced the ones it advertises, say).
		log, msg = in.rt.logger().Debug, "node's recorded addresses brought up to date with gossip"
	}
	log(msg, "node", g.Name, "cluster_addr", moved.ClusterAddr, "was", old.ClusterAddr,
		"client_addr", moved.ClientAddr, "http_addr", moved.HttpAddr, "gossip_addr", moved.GossipAddr, "joining", op != nil)
	return true, nil
}

// readdressSystem gives node addr in the system group's configuration,
// keeping its suffrage; the change is conditional on the configuration
// read.
func readdressSystem(r *raft.Raft, node, addr string) error {
	f := r.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	for _, s := range f.Configuration().Servers {
		if string(s.ID) != node || string(s.Address) == addr {
			continue
		}
		if s.Suffrage == raft.Voter {
			return r.AddVoter(s.ID, raft.ServerAddress(addr), f.Index(), membershipTimeout).Error()
		}
		return r.AddNonvoter(s.ID, raft.ServerAddress(addr), f.Index(), membershipTimeout).Error()
	}
	return nil
}

// readdressShard gives node its cluster address in shard's configuration,
// through the shard's leader, keeping its suffrage: hashicorp/raft's
// AddVoter and AddNonvoter change the address of a server already there.
func (in *managerInputs) readdressShard(ctx context.Context, shard int, node *messages.ClusterMember) error {
	s, leader, err := in.shardLeader(ctx, shard, node)
	if err != nil {
		return err
	}
	for _, srv := range leader.Configuration {
		if srv.Id != node.Name || srv.Address == node.ClusterAddr {
			continue
		}
		op := messages.ChangeMembership_ADD_NONVOTER
		if srv.Suffrage == messages.Suffrage_VOTER {
			op = messages.ChangeMembership_ADD_VOTER
		}
		return s.changeOnce(ctx, leader, op)
	}
	return nil
}
