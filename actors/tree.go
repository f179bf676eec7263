package actors

import (
	"github.com/asynkron/protoactor-go/actor"
	"time"

	"github.com/coppice-kv/coppice/messages"
	"github.com/coppice-kv/coppice/supervisor"
)

// RootName is the root supervisor's name, and so the first part of every
// actor path in the node ("node/user/...").
const RootName = "node"

// Config is what the tree needs to know of the node.
type Config struct {
	// Runtime is the node's configuration and shared handles; without it
	// the tree holds the user supervisor only (enough to test user actors).
	Runtime *Runtime
	// User are the actors whoever embeds the node adds under the user
	// supervisor.
	User []supervisor.ChildSpec
}

// Tree declares the node's supervision tree. Order matters: rest_for_one
// at the root restarts everything started after a failed child, so the
// children that others depend on come first.
func Tree(cfg Config) supervisor.Spec {
	var children []supervisor.ChildSpec
	if rt := cfg.Runtime; rt != nil {
		children = append(children,
			worker("store", "store", 30*time.Second, func() actor.Actor { return &storeActor{rt: rt} }),
			worker("transport", "transport", 5*time.Second, func() actor.Actor { return &transportActor{rt: rt} }),
			supervisor.Sup("shards", supervisor.Spec{
				Strategy:  messages.Strategy_ONE_FOR_ONE,
				Intensity: 3 * rt.Shards,
				Period:    30 * time.Second,
				Children:  shardSpecs(rt),
			}),
			worker("system", "system", 30*time.Second, func() actor.Actor { return &systemActor{rt: rt} }),
			supervisor.Sup("syncs", supervisor.Spec{
				Strategy: messages.Strategy_SIMPLE_ONE_FOR_ONE,
				// Failed syncs retry with backoff and the manager stops
				// them after --sync-retries: the supervisor itself must
				// not give up before that.
				Intensity: 100,
				Period:    time.Minute,
				Children:  []supervisor.ChildSpec{syncSpec(rt)},
			}),
			worker("manager", "manager", 10*time.Second, func() actor.Actor { return &managerActor{rt: rt} }),
			worker("client", "client", 10*time.Second, func() actor.Actor { return &clientActor{rt: rt} }),
		)
	}
	children = append(children, supervisor.Sup("user", supervisor.Spec{
		Strategy:  messages.Strategy_ONE_FOR_ONE,
		Intensity: 10,
		Period:    10 * time.Second,
		Children:  cfg.User,
	}))
	if rt := cfg.Runtime; rt != nil && rt.GossipAddr != "" {
		// Last: a watcher crash restarts the watcher alone. Without a
		// gossip address the node finds no peers (tests of one node).
		children = append(children, worker("watcher", "watcher", 10*time.Second, func() actor.Actor { return &watcherActor{rt: rt} }))
	}
	return supervisor.Spec{
		Strategy:  messages.Strategy_REST_FOR_ONE,
		Intensity: 3,
		Period:    30 * time.Second,
		Children:  children,
	}
}

// shardSpecs declares shard-<i> (rest_for_one) with raft-<i> for each shard.
func shardSpecs(rt *Runtime) []supervisor.ChildSpec {
	specs := make([]supervisor.ChildSpec, rt.Shards)
	for i := range specs {
		i := i
		raftChild := worker(raftName(i), "raft", 30*time.Second, func() actor.Actor { return &raftActor{rt: rt, shard: i} })
		raftChild.Backoff = &supervisor.Backoff{Min: 50 * time.Millisecond, Max: 5 * time.Second, Jitter: 0.2}
		// Every client command passes through it: its runs keep a grown stack.
		raftChild.Props = []actor.PropsOption{actor.WithDispatcher(supervisor.WarmDispatcher)}
		specs[i] = supervisor.Sup(shardName(i), supervisor.Spec{
			Strategy:  messages.Strategy_REST_FOR_ONE,
			Intensity: 5,
			Period:    30 * time.Second,
			Children:  []supervisor.ChildSpec{raftChild},
		})
	}
	return specs
}

// syncSpec is the template of the syncs supervisor's children: transient,
// restarted with backoff after a failed attempt.
func syncSpec(rt *Runtime) supervisor.ChildSpec {
	return supervisor.ChildSpec{
		ID: "sync", Kind: "sync", Start: newSyncActor(rt),
		Restart:  messages.RestartType_TRANSIENT,
		Shutdown: 5 * time.Second,
		Backoff:  &supervisor.Backoff{Min: 500 * time.Millisecond, Max: 10 * time.Second, Jitter: 0.2},
	}
}

// worker is a permanent worker child with a shutdown time.
func worker(id, kind string, shutdown time.Duration, start func() actor.Actor) supervisor.ChildSpec {
	c := supervisor.Worker(id, start)
	c.Kind = kind
	c.Shutdown = shutdown
	return c
}

// The shard actor's local requests are answered when it cannot take them.
var (
	_ supervisor.Refuser = (*localPropose)(nil)
	_ supervisor.Refuser = (*localReadBarrier)(nil)
)
