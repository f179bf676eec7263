package actors

// watcher: supervised by node (rest_for_one), permanent worker, the last
// child so that its crash restarts nothing else. It owns serf (package
// gossip): every serf member event becomes a messages.MemberEvent to the
// manager, and every watcherResync it sends the whole member list as well,
// so a restarted watcher or manager loses no membership (serf's snapshot
// file lets a restarted node rejoin the members it knew). It joins the
// --join seeds, retrying until one answers; a refusal (another cluster,
// another shard count, a name in use) crashes it with the reason, so the
// node's supervisor gives up with that error rather than run half-joined.
// A name held at another address where nothing answers is this node's own
// earlier run (it restarted at new addresses): it joins again until gossip
// sees that run fail (earlierRun). A node on a new data dir started with
// --bootstrap-expect founds the cluster when gossip shows it the nodes to
// found it with, and it is the first of them by name (foundCluster); it
// joins instead as soon as one of them belongs to a cluster.

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coppice-kv/coppice/cluster"
	"github.com/coppice-kv/coppice/gossip"
	"github.com/coppice-kv/coppice/messages"
	"github.com/coppice-kv/coppice/storage"
	"github.com/coppice-kv/coppice/transport"
)

// WatcherPath is the watcher's path.
const WatcherPath = RootName + "/watcher"

const (
	watcherResync = 2 * time.Second
	joinRetry     = time.Second
	joinWarnEvery = 30 * time.Second
	// twinWait bounds how long a join waits for gossip to see this
	// node's earlier run, at other addresses, fail: a LAN's failure
	// detection takes 5-30 s.
	twinWait = 90 * time.Second
	// foundingCheck is how often a node of --bootstrap-expect looks at its
	// gossip members while it belongs to no cluster, and foundingSettle
	// how long the first of them by name must have seen the founding
	// nodes before it founds: the time for gossip to show all of them a
	// cluster ID that one of the others may already have.
	foundingCheck  = 250 * time.Millisecond
	foundingSettle = time.Second
)

type watcherActor struct {
	rt     *Runtime
	g      *gossip.Gossip
	events chan *messages.MemberEvent
	stop   chan struct{}
	done   chan struct{}
	// leaving is set once this node leaves: serf stopping is expected then.
	leaving atomic.Bool
	// diskErr is the last error reading the data dir's free space, logged
	// when it changes, not every second.
	diskErr string
}

type joinFailed struct{ err error }

// announceTags asks the watcher to gossip the node's tags again (the
// cluster ID is known now).
type announceTags struct{}

// checkDisk asks the watcher to compare the data dir's free space with
// the node's floor (Runtime.MinFreeDisk), every diskCheckEvery.
type checkDisk struct{}

const diskCheckEvery = time.Second

type resync struct{}

// foundCluster makes this node found the cluster (--bootstrap-expect).
type foundCluster struct{}

func (w *watcherActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		if err := w.start(ctx); err != nil {
			panic(err)
		}
	case *actor.Stopping:
		w.shutdown()
	case resync:
		ctx.Send(actor.NewPID(ctx.Self().Address, ManagerPath), &messages.MemberEvent{Kind: messages.MemberEventKind_MEMBER_UPDATE, Members: w.g.Members()})
	case checkDisk:
		w.checkDisk()
	case announceTags:
		// The manager learned the cluster ID: announce it.
		if err := w.g.SetTags(w.tags()); err != nil {
			w.rt.logger().Warn("gossip tags", "err", err)
		}
	case *messages.LeaveCluster:
		// Serf's leave waits for the message to spread: off the mailbox.
		w.leaving.Store(true)
		g, to, root := w.g, ctx.Sender(), ctx.ActorSystem().Root
		go func() {
			reply := &messages.ManagerReply{}
			if err := g.Leave(); err != nil {
				reply.Error = err.Error()
			}
			if to != nil {
				root.Send(to, reply)
			}
		}()
	case foundCluster:
		w.found(ctx)
	case joinFailed:
		panic(m.err)
	}
}

// found makes this node the founder of a new cluster: node.json records
// the new ID and that this node founded it, then every Raft group with no
// state makes this node its only voter (a group that restarts meanwhile
// does so as it starts: Runtime.bootstrap), and gossip announces the ID.
// The manager, on the system group's leader (this node), initializes the
// cluster state and adds the other nodes as they join.
func (w *watcherActor) found(ctx actor.Context) {
	rt := w.rt
	if rt.ClusterID() != "" {
		return // a member's cluster ID came first: this node joins it
	}
	id := storage.NewClusterID()
	if err := rt.recordFounding(id); err != nil {
		panic(fmt.Errorf("node: found the cluster: %w", err))
	}
	for _, p := range groupPaths(rt.Shards) {
		ctx.Send(actor.NewPID(ctx.Self().Address, p), bootstrapGroup{})
	}
	if err := w.g.SetTags(w.tags()); err != nil {
		rt.logger().Warn("gossip tags", "err", err)
	}
	rt.logger().Info("founded the cluster: the nodes of --bootstrap-expect see each other and this one is the first by name",
		"cluster_id", id, "expect", rt.BootstrapExpect)
}

func (w *watcherActor) tags() gossip.Tags {
	rt := w.rt
	t := gossip.Tags{ClientAddr: rt.BoundClientAddr(), HTTPAddr: rt.HTTPAddr, Role: roleName(rt.Role),
		ClusterID: rt.ClusterID(), Shards: rt.Shards, DiskLow: rt.diskLowHere(), DataDirID: rt.DataDirID()}
	if t.ClusterID == "" {
		t.BootstrapExpect = rt.BootstrapExpect
	}
	if mux, err := rt.Mux(); err == nil {
		t.ClusterAddr = mux.Addr().String()
	}
	return t
}

// checkDisk records whether the data dir's file system has less free
// space than the node's floor, and gossips it when that changes: while any
// member's is low, the cluster refuses writes that may add data. A low
// disk is back once it has a tenth more than the floor, so that free
// space hovering at the floor does not flap.
func (w *watcherActor) checkDisk() {
	rt := w.rt
	if rt.MinFreeDisk == 0 {
		return
	}
	free, _, err := storage.DiskSpace(rt.DataDir)
	if err != nil {
		if err.Error() != w.diskErr {
			rt.logger().Warn("cannot read the data dir's free space: the disk floor keeps its last state", "dir", rt.DataDir, "err", err)
			w.diskErr = err.Error()
		}
		return
	}
	w.diskErr = ""
	was := rt.diskLowHere()
	low := diskLow(was, free, rt.MinFreeDisk)
	if low == was {
		return
	}
	rt.setDiskLow(rt.Name, low)
	if low {
		rt.logger().Warn("disk space low: the cluster refuses writes that may add data until it is back above the floor",
			"dir", rt.DataDir, "free_mib", free>>20, "floor_mib", rt.MinFreeDisk>>20)
	} else {
		rt.logger().Info("disk space back above the floor: writes are taken again", "dir", rt.DataDir, "free_mib", free>>20)
	}
	if w.g != nil {
		if err := w.g.SetTags(w.tags()); err != nil {
			rt.logger().Warn("gossip tags", "err", err)
		}
	}
}

// diskLow tells whether a disk with free bytes is low for floor, given
// whether it was: below the floor, or, once low, below a tenth above it.
func diskLow(was bool, free, floor uint64) bool {
	return free < floor || (was && free < floor+floor/10)
}

func roleName(r messages.Role) string {
	switch r {
	case messages.Role_ROLE_REPLICA:
		return "replica"
	case messages.Role_ROLE_READONLY:
		return "readonly"
	}
	return "voter"
}

func (w *watcherActor) start(ctx actor.Context) error {
	rt := w.rt
	w.events = make(chan *messages.MemberEvent, 256)
	w.checkDisk() // the first tags tell
	self, root := ctx.Self(), ctx.ActorSystem().Root
	manager := actor.NewPID(self.Address, ManagerPath)
	g, err := gossip.Start(gossip.Config{
		Name: rt.Name, BindAddr: rt.GossipAddr, Tags: w.tags(), EncryptKey: rt.GossipKey,
		KeyringFile: rt.KeyringFile, SnapshotPath: filepath.Join(rt.DataDir, "serf.snapshot"),
		Log: rt.logger(), Fast: rt.GossipFast,
		OnRefused: func(member string, err error) { root.Send(manager, memberRefused{member, err}) },
	}, w.events)
	if err != nil {
		return err
	}
	w.g = g
	w.stop, w.done = make(chan struct{}), make(chan struct{})
	stop, done, events := w.stop, w.done, w.events
	go func() {
		defer close(done)
		go ticker(root, self, stop, watcherResync, func() any { return resync{} })
		go ticker(root, self, stop, diskCheckEvery, func() any { return checkDisk{} })
		root.Send(self, resync{})
		joined := len(rt.Join) == 0
		var twinSince time.Time // when a join first met this node's name held elsewhere
		retry := time.NewTimer(0)
		defer retry.Stop()
		var founding <-chan time.Time
		fw := &foundingWatch{rt: rt}
		if rt.BootstrapExpect > 0 && rt.ClusterID() == "" {
			t := time.NewTicker(foundingCheck)
			defer t.Stop()
			founding = t.C
		}
		// The join is tried every joinRetry; the same failure is warned
		// of every joinWarnEvery (nodes of --bootstrap-expect wait for
		// each other that way), the tries between at debug level.
		joinWarns := repeats{window: joinWarnEvery}
		for {
			select {
			case <-stop:
				return
			case <-founding:
				if fw.step(g.Members(), func() { root.Send(self, foundCluster{}) }) {
					founding = nil
				}
			case ev := <-events:
				root.Send(manager, ev)
			case <-g.Done():
				// Serf stopped by itself (it lost a name conflict vote):
				// crash, so the supervisor starts a new one.
				if !w.leaving.Load() {
					root.Send(self, joinFailed{errors.New("gossip: serf stopped by itself")})
				}
				return
			case <-retry.C:
				if joined {
					continue
				}
				if _, err := g.Join(rt.Join); err != nil {
					var twin *gossip.NameConflictError
					if errors.As(err, &twin) && earlierRun(rt, twin, &twinSince) {
						retry.Reset(joinRetry)
						continue
					}
					if errors.Is(err, gossip.ErrClusterMismatch) || errors.Is(err, gossip.ErrShardsMismatch) || errors.Is(err, gossip.ErrNameConflict) {
						root.Send(self, joinFailed{err})
						return
					}
					if _, ok := joinWarns.pass(err.Error()); ok {
						rt.logger().Warn("joining the cluster", "seeds", rt.Join, "err", err)
					} else {
						rt.logger().Debug("joining the cluster", "seeds", rt.Join, "err", err)
					}
					retry.Reset(joinRetry)
					continue
				}
				joined = true
				rt.logger().Info("joined the cluster's gossip", "seeds", rt.Join)
				adoptClusterID(rt, g.Members())
			}
		}
	}()
	return nil
}

// foundingWatch follows, for a node of --bootstrap-expect in no cluster
// yet, what cluster.DecideFounding makes of its gossip members.
type foundingWatch struct {
	rt       *Runtime
	since    time.Time // since when DecideFounding has said found
	lastWait string
}

// step looks at members once and tells whether the watch is over: the
// node is in a cluster (it took a member's ID), or DecideFounding has
// said found for foundingSettle, and found was called.
func (f *foundingWatch) step(members []*messages.Member, found func()) (over bool) {
	rt := f.rt
	if rt.ClusterID() != "" {
		return true
	}
	switch d := cluster.DecideFounding(rt.Name, rt.BootstrapExpect, members); {
	case d.Join != "":
		adoptClusterID(rt, members)
		return true
	case d.Found:
		if f.since.IsZero() {
			f.since = time.Now()
		}
		if time.Since(f.since) < foundingSettle {
			return false
		}
		found()
		return true
	default:
		f.since = time.Time{}
		rt.founding.Store(&d.Wait)
		if d.Wait != f.lastWait {
			rt.logger().Info("not founding a cluster yet", "why", d.Wait)
			f.lastWait = d.Wait
		}
		return false
	}
}

// adoptClusterID gives a node that belongs to no cluster yet the ID its
// gossip peers announce, once it has joined them: the cluster transport
// then refuses other clusters' nodes at once, not only once the system
// group's state reaches this node (which records it in node.json). Until
// then it takes no connection at all (Mux.RefuseUntilCluster).
func adoptClusterID(rt *Runtime, members []*messages.Member) {
	if rt.ClusterID() != "" {
		return
	}
	for _, m := range members {
		if m.Name != rt.Name && m.Status == messages.MemberStatus_ALIVE && m.ClusterId != "" {
			rt.setClusterID(m.ClusterId, false)
			rt.logger().Info("cluster ID taken from gossip", "cluster_id", m.ClusterId, "from", m.Name)
			return
		}
	}
}

// earlierRun tells whether the member that holds this node's name at
// another address is this node's own earlier run, gone (the node restarted
// at new addresses) but not yet seen to fail by gossip: no node of this
// name answers at its cluster address (nothing does, or another node
// does: the address was handed out again). While that holds the join is
// tried again, for at most twinWait from since (set at the first call);
// the cluster then takes the new addresses (the manager's readdress). A
// node of this name that answers there is a live twin: a refusal.
func earlierRun(rt *Runtime, twin *gossip.NameConflictError, since *time.Time) bool {
	first := since.IsZero()
	if first {
		*since = time.Now()
	}
	if twin.ClusterAddr == "" || time.Since(*since) > twinWait {
		return false
	}
	remote, err := rt.Remote()
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	err = remote.Ping(ctx, transport.Peer{Name: rt.Name, Addr: twin.ClusterAddr})
	if err == nil {
		return false
	}
	if first {
		rt.logger().Warn("this node's name is held at another address where no node of this name answers: taken for this node's earlier run; "+
			"joining again until gossip sees it fail", "at", twin.Addr, "cluster_addr", twin.ClusterAddr, "there", err, "wait", twinWait)
	}
	return true
}

func (w *watcherActor) shutdown() {
	if w.stop != nil {
		close(w.stop)
		<-w.done
		w.stop = nil
	}
	if w.g != nil {
		w.g.Shutdown()
		w.g = nil
	}
}
