package actors

// system: supervised by node (rest_for_one), permanent worker. It owns the
// system Raft group: the cluster's ID, shard count, members and journal of
// membership operations (cluster.State). A standalone node bootstraps it as
// its only voter; a joining node waits to be added. It proposes the
// manager's SystemCommands and answers status and membership requests like
// a shard's Raft actor, never blocking its mailbox on Raft.

import (
	"errors"
	"fmt"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coppice-kv/coppice/cluster"
	"github.com/coppice-kv/coppice/messages"
	"github.com/coppice-kv/coppice/storage"
	"github.com/coppice-kv/coppice/transport"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
)

// SystemPath is the system group actor's path.
const SystemPath = RootName + "/system"

// systemShard marks the system group in a ShardStatusReply.
const systemShard = ^uint32(0)

type systemActor struct {
	rt    *Runtime
	root  *actor.RootContext
	self  *actor.PID
	state *cluster.State
	logs  storage.LogStore
	trans *raft.NetworkTransport
	r     *raft.Raft
	// unwatch stops telling the manager when this node becomes the
	// group's leader (watchLeadership).
	unwatch func()
}

// coordinatorNow tells the manager that this node just became the system
// group's leader.
type coordinatorNow struct{}

func (a *systemActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.root, a.self = ctx.ActorSystem().Root, ctx.Self()
		if err := a.start(); err != nil {
			a.stop()
			failGroupStart(a.rt, err)
		}
	case *actor.Stopping:
		a.stop()
	case *messages.SystemCommand:
		a.propose(ctx.Sender(), m)
	case *messages.ShardStatus:
		r, logs, to := a.r, a.logs, ctx.Sender()
		go func() { a.root.Send(to, groupStatus(r, logs, systemShard, r.AppliedIndex())) }()
	case *messages.ChangeMembership:
		changeMembership(a.root, ctx.Sender(), a.r, m)
	case *messages.TransferLeadership:
		transferLeadership(a.root, ctx.Sender(), a.r, m)
	case handOverNow:
		startHandOver(a.root, ctx.Sender(), a.r, a.rt.logger(), "system")
	case bootstrapGroup:
		bootstrapLater(a.rt, a.r, a.trans, "system")
	case trustStores:
		answerTrust(a.root, ctx.Sender(), a.r)
	}
}

func (a *systemActor) start() error {
	rt := a.rt
	mux, err := rt.Mux()
	if err != nil {
		return err
	}
	if a.logs, err = rt.RaftLog(storage.SystemGroup, rt.Layout().LegacySystemRaftDir()); err != nil {
		return err
	}
	snaps, err := systemSnapshots(rt.Layout())
	if err != nil {
		return fmt.Errorf("node: system group snapshots: %w", err)
	}
	logger := raftLogger(rt.Log, "raft-system", &rt.raftRepeats)
	trans, watch := groupTransport(rt, "system", mux.Layer(transport.StreamSystem), 2, logger)
	a.trans = trans
	conf := raft.DefaultConfig()
	conf.LocalID = raft.ServerID(rt.Name)
	conf.Logger = logger
	conf.LostStoreGuard = true // as the shards' (raft.go)
	conf.SoleVoterStandsAtOnce = true
	conf.GroupSeed = uint64(rt.Shards) // apart from every shard's (raft.go)
	setRaftTimers(conf)
	conf.SnapshotThreshold = 1024
	a.state = cluster.NewState()
	a.state.OnACL = rt.aclApplied
	existing, err := raft.HasExistingState(a.logs, a.logs, snaps)
	if err != nil {
		return err
	}
	if a.r, err = raft.NewRaft(conf, a.state, a.logs, a.logs, snaps, rt.raftTransport(transport.StreamSystem, a.trans)); err != nil {
		return fmt.Errorf("node: system group: %w", err)
	}
	watch.r.Store(a.r)
	if !existing && rt.bootstrap() {
		if err := bootstrapAlone(a.r, conf.LocalID, a.trans); err != nil {
			return fmt.Errorf("node: system group: bootstrap: %w", err)
		}
	}
	rt.setSystem(a.r, a.state)
	a.watchLeadership()
	a.unwatch = alsoOnLogFailure(rt, a.r, "system", a.unwatch)
	return nil
}

// watchLeadership sends coordinatorNow to the manager whenever this node
// becomes the group's leader, and at once if it already is (elected
// before the observer was registered), so the coordinator picks up the
// journal's ops without waiting for the manager's tick.
func (a *systemActor) watchLeadership() {
	keep := func(o *raft.Observation) bool {
		l, ok := o.Data.(raft.LeaderObservation)
		return ok && string(l.LeaderID) == a.rt.Name
	}
	r, root, manager := a.r, a.root, actor.NewPID(a.self.Address, ManagerPath)
	a.unwatch = watchRaft(r, keep, 0, func() {
		if r.State() == raft.Leader {
			root.Send(manager, coordinatorNow{})
		}
	})
}

func (a *systemActor) propose(to *actor.PID, c *messages.SystemCommand) {
	if to == nil {
		return
	}
	data, err := proto.Marshal(c)
	if err != nil {
		a.root.Send(to, &messages.ManagerReply{Error: err.Error()})
		return
	}
	f := a.r.Apply(data, applyTimeout)
	r := a.r
	go func() {
		reply := &messages.ManagerReply{}
		if err := f.Error(); err != nil {
			reply.Error, _, _ = leaderError(r, err)
		} else {
			switch res := f.Response().(type) {
			case error:
				reply.Error = res.Error()
				var changed *cluster.ACLChangedError
				if errors.As(res, &changed) {
					reply.Op = changed.Version // the users' version now
				}
			case uint64:
				reply.Op = res
			}
		}
		a.root.Send(to, reply)
	}()
}

func (a *systemActor) stop() {
	handOver(a.r, a.rt.logger(), "system")
	if a.unwatch != nil {
		a.unwatch()
		a.unwatch = nil
	}
	a.rt.setSystem(nil, nil)
	if err := closeGroup(a.rt, transport.StreamSystem, a.r, a.trans, a.logs); err != nil {
		a.rt.logger().Error("system group shutdown", "err", err)
	}
	a.r, a.trans, a.logs = nil, nil, nil
}
