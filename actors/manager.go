package actors

// manager: supervised by node (rest_for_one), permanent worker. The
// cluster manager. Every node runs one; the one on the system group's
// leader is the coordinator, the only one that changes membership. It
// keeps what gossip says of every node (from the watcher), and reconciles
// the cluster state with it on a goroutine of its own (one pass at a time)
// when something prompts it (its start, a member event that changes what
// it knew, a shard synced, an op it journaled, this node becoming the
// coordinator) and every Runtime.ManagerTick: new nodes get an add op,
// nodes down past --remove-delay a removal, and every op in the journal
// is driven one idempotent step further. Syncs run as sync children; their progress
// comes back here. Operators' requests (AddNode, RemoveNode, LeaveCluster,
// NodeStatusRequest) are forwarded to the coordinator when this node is
// not it.

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coppice-kv/coppice/cluster"
	"github.com/coppice-kv/coppice/gossip"
	"github.com/coppice-kv/coppice/messages"
	"github.com/coppice-kv/coppice/storage"
	"github.com/coppice-kv/coppice/supervisor"
	"github.com/coppice-kv/coppice/transport"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
)

// Paths of the cluster's actors.
const (
	ManagerPath = RootName + "/manager"
	SyncsPath   = RootName + "/syncs"
)

const (
	defaultManagerTick = 500 * time.Millisecond
	// leavePoll is how often a leaving node asks again whether the
	// coordinator took its removal, and whether it is out.
	leavePoll = 500 * time.Millisecond
	// reconcileTimeout bounds one reconcile pass.
	reconcileTimeout = 30 * time.Second
	// reconcileSoon is when a pass runs again after one that found a
	// new node not ready yet (reconciled.soon).
	reconcileSoon = 200 * time.Millisecond
	// systemVoters is how many voters the system group has at most.
	systemVoters = 3
	// syncRearm is how long a shard sync that used its --sync-retries
	// attempts waits before it gets a new set, while its join is under
	// way (and no sync starts to a node gossip sees down): a joining node
	// restarted faster than gossip notices is never seen down and back.
	syncRearm = 30 * time.Second
	// probeTimeout bounds the check that a new node answers on its
	// cluster address.
	probeTimeout = 3 * time.Second
)

type managerActor struct {
	rt   *Runtime
	self *actor.PID
	root *actor.RootContext
	stop chan struct{}

	// members is what gossip says, by name; downSince when each was
	// first seen failed or gone.
	members   map[string]*messages.Member
	downSince map[string]time.Time
	// syncs is the latest progress of every sync child, by op and shard.
	syncs    map[syncKey]*messages.ShardSync
	attempts map[syncKey]int
	running  map[syncKey]*actor.PID
	// gaveUp is when each sync that used its attempts gave up.
	gaveUp map[syncKey]time.Time
	// busy while a reconcile pass runs; kick when another was asked for
	// meanwhile (it runs when this one ends).
	busy, kick bool
	// soonArmed: a reconcileSoonMsg is on its way (at most one is).
	soonArmed bool
	// balanced is when the last leader balancing pass ran.
	balanced time.Time
	// removedSeen: removed nodes alive in gossip, as the coordinator
	// deals with them (removedAlive), until gossip sees them go.
	removedSeen map[string]*seenRemoved
	// warned is when each reconcile error was last logged as a warning
	// (warnReconcile), by its text without figures.
	warned map[string]time.Time
	// toldForeign passes the explanation of a node gossip refused for
	// another cluster ID once every foreignWarnEvery (foreignMember).
	toldForeign *repeats
}

// memberRefused is gossip keeping a member out outside a join
// (gossip.Config.OnRefused).
type memberRefused struct {
	name string
	err  error
}

// foreignWarnEvery is how often the coordinator explains a member that
// came back as a node of another cluster.
const foreignWarnEvery = 10 * time.Minute

type syncKey struct {
	op    uint64
	shard uint32
}

type managerTickMsg struct{}

// reconcileSoonMsg is a pass's own request for another (reconciled.soon).
type reconcileSoonMsg struct{}

// retrySyncs gives an op's shard syncs that gave up a new set of attempts.
type retrySyncs struct{ op uint64 }

// reconciled reports a reconcile pass: the syncs it started, and whether
// it looked at the shards' leaders.
type reconciled struct {
	started map[syncKey]*actor.PID
	// stale: running syncs whose op is no longer a join in the journal
	// (an abandoned join's, turned into a removal), for the actor to stop.
	stale    []syncKey
	balanced bool
	// again: the pass journaled a new op (an add or a removal), which
	// only the next pass drives: it runs at once, not at the next tick.
	again bool
	// soon: a new node refused the pass for the moment (between its
	// gossip join and taking the cluster's ID): the next pass runs in
	// reconcileSoon, not at the next tick, and no gossip event would
	// prompt it (the node's tags do not change).
	soon bool
	// removedAlive: nodes gossip sees alive that were removed (by an
	// operator, or by leaving) and are not added back.
	removedAlive []string
	err          error
}

func (m *managerActor) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		m.self, m.root = ctx.Self(), ctx.ActorSystem().Root
		m.members, m.downSince = map[string]*messages.Member{}, map[string]time.Time{}
		m.syncs, m.attempts, m.running = map[syncKey]*messages.ShardSync{}, map[syncKey]int{}, map[syncKey]*actor.PID{}
		m.gaveUp = map[syncKey]time.Time{}
		m.stop = make(chan struct{})
		m.balanced = time.Now()
		m.removedSeen = map[string]*seenRemoved{}
		m.toldForeign = &repeats{window: foreignWarnEvery}
		tick := m.rt.ManagerTick
		if tick <= 0 {
			tick = defaultManagerTick
		}
		go ticker(m.root, m.self, m.stop, tick, func() any { return managerTickMsg{} })
		// A restarted manager (or one that started after the system
		// group elected this node) looks at once.
		m.reconcileNow()
	case *actor.Stopping:
		close(m.stop)
	case *messages.MemberEvent:
		// A node joined, changed, came back or failed: act on it now
		// (the watcher's periodic resync repeats what is known).
		if m.memberEvent(msg) {
			m.reconcileNow()
		}
	case managerTickMsg:
		m.rearm(time.Now())
		m.reconcileNow()
	case memberRefused:
		m.foreignMember(msg)
	case reconcileSoonMsg:
		m.soonArmed = false
		m.reconcileNow()
	case coordinatorNow:
		m.reconcileNow()
	case *reconciled:
		m.busy = false
		if msg.balanced {
			m.balanced = time.Now()
		}
		for k, pid := range msg.started {
			m.running[k] = pid
		}
		for _, k := range msg.stale {
			m.stopSync(k)
		}
		m.removedAlive(msg.removedAlive, time.Now())
		if msg.err != nil && !errors.Is(msg.err, cluster.ErrNotCoordinator) {
			m.warnReconcile(msg.err)
		}
		if msg.again || m.kick {
			m.kick = false
			m.reconcileNow()
		} else if msg.soon && !m.soonArmed {
			m.soonArmed = true
			self, root := m.self, m.root
			time.AfterFunc(reconcileSoon, func() { root.Send(self, reconcileSoonMsg{}) })
		}
	case *messages.SyncProgress:
		m.progress(msg)
		if msg.Sync.GetState() == messages.SyncState_SYNC_SYNCED {
			m.reconcileNow() // a shard is synced: the op's next step
		}
	case *messages.GossipMembers:
		r := &messages.GossipMembersReply{}
		for _, mem := range m.members {
			r.Members = append(r.Members, mem)
		}
		ctx.Respond(r)
	case retrySyncs:
		m.retrySyncs(func(k syncKey) bool { return k.op == msg.op })
	case syncStopped:
		if m.running[msg.k] == msg.pid {
			delete(m.running, msg.k)
		}
	case *messages.RemovedNotice:
		ctx.Respond(m.rt.removedNotice(msg))
	case *messages.ClusterViewRequest:
		// Asks every shard: off the mailbox.
		rt, sys, to, root := m.rt, ctx.ActorSystem(), ctx.Sender(), m.root
		go func() { root.Send(to, rt.clusterViewReply(sys)) }()
	case *messages.LeaveCluster:
		in, to, root := m.inputs(), ctx.Sender(), m.root
		go func() { root.Send(to, in.leave()) }()
	case *messages.AddNode, *messages.RemoveNode, *messages.NodeStatusRequest:
		in, to, root := m.inputs(), ctx.Sender(), m.root
		go func() { root.Send(to, in.operate(msg.(proto.Message))) }()
	}
}

// foreignMember explains, on the coordinator, a node this cluster knows
// that gossip refuses because it announces another cluster ID: a node
// that lost its data dir and was started again without --join founds a
// cluster of its own, empty, and serves it to its clients. Gossip only
// says "cluster id mismatch", and the cluster sees the member down.
func (m *managerActor) foreignMember(r memberRefused) {
	if !errors.Is(r.err, gossip.ErrClusterMismatch) {
		return
	}
	// A member, or one gossip knew (removed for being down since: gossip
	// keeps a failed member until it reaps it, and tries it again).
	sys, st, err := m.rt.System()
	if err != nil || sys.State() != raft.Leader || (st.Member(r.name) == nil && m.members[r.name] == nil) {
		return
	}
	if _, ok := m.toldForeign.pass(r.name); !ok {
		return
	}
	m.rt.logger().Error("a node this cluster knows answers as a node of another cluster: its data dir was probably lost and, "+
		"started again without --join, it founded a new, empty cluster, which it serves to its clients; here it counts as down "+
		"(removed after --remove-delay). Stop it, empty its data dir and start it with --join, the other nodes' gossip addresses: "+
		"it rejoins and gets its data back (--bootstrap-expect on every node keeps a node from founding a second cluster)",
		"node", r.name, "err", r.err)
}

// reconcileNow starts a reconcile pass, or has one start when the
// running pass ends. Passes also run every Runtime.ManagerTick.
func (m *managerActor) reconcileNow() {
	if m.busy {
		m.kick = true
		return
	}
	m.busy = true
	in := m.inputs()
	in.balanceDue = time.Since(m.balanced) >= leaderBalanceEvery
	self, root := m.self, m.root
	go func() { root.Send(self, in.reconcile()) }()
}

// reconcileWarnEvery bounds the warnings of a reconcile pass that fails
// the same way pass after pass, every 500 ms: a removal refused while
// another voter is down, a node that gossip sees and the cluster
// transport refuses. Once in this time it is a warning, the passes
// between are logged at debug level.
const reconcileWarnEvery = time.Minute

// figures are what changes between two passes that fail the same way:
// durations, indexes, addresses (a number that starts a word: n3 stays).
var figures = regexp.MustCompile(`\b[0-9][0-9.:]*`)

// warnReconcile logs a reconcile pass's error: a warning the first time
// its text (figures aside) is seen in reconcileWarnEvery, at debug level
// otherwise.
func (m *managerActor) warnReconcile(err error) {
	key, now := figures.ReplaceAllString(err.Error(), "#"), time.Now()
	if at, ok := m.warned[key]; ok && now.Sub(at) < reconcileWarnEvery {
		m.rt.logger().Debug("cluster reconcile, failed as before", "err", err)
		return
	}
	if m.warned == nil || len(m.warned) > 256 { // keys hold peers' names and errors: bound them
		m.warned = map[string]time.Time{}
	}
	m.warned[key] = now
	m.rt.logger().Warn("cluster reconcile", "err", err)
}

// ticker sends make() to pid every d until stop closes.
func ticker(root *actor.RootContext, pid *actor.PID, stop <-chan struct{}, d time.Duration, make func() any) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			root.Send(pid, make())
		}
	}
}

// memberEvent records what gossip says and tells whether it changed
// anything.
func (m *managerActor) memberEvent(ev *messages.MemberEvent) (changed bool) {
	now := time.Now()
	for _, mem := range ev.Members {
		if ev.Kind == messages.MemberEventKind_MEMBER_REAP {
			if _, ok := m.members[mem.Name]; ok {
				changed = true
			}
			delete(m.members, mem.Name)
			delete(m.removedSeen, mem.Name)
			m.rt.addrs.set(mem.Name, "")
			m.rt.setDiskLow(mem.Name, false)
			continue
		}
		if mem.Name != m.rt.Name { // this node's own: the watcher's
			m.rt.setDiskLow(mem.Name, mem.DiskLow && mem.Status == messages.MemberStatus_ALIVE)
		}
		if mem.ClusterAddr != "" {
			m.rt.addrs.set(mem.Name, mem.ClusterAddr)
		}
		m.rt.addrs.setDown(mem.Name, mem.Status != messages.MemberStatus_ALIVE)
		prev := m.members[mem.Name]
		if !proto.Equal(prev, mem) {
			changed = true
		}
		if prev != nil && prev.Status != messages.MemberStatus_ALIVE && mem.Status == messages.MemberStatus_ALIVE {
			// Back (restarted, or the network healed): syncs to it that
			// gave up, its being down the likely cause, start over.
			m.retrySyncs(func(k syncKey) bool { return m.syncs[k].GetNode() == mem.Name })
		}
		m.members[mem.Name] = mem
		if mem.Status == messages.MemberStatus_ALIVE {
			delete(m.downSince, mem.Name)
		} else {
			delete(m.removedSeen, mem.Name)
			if _, ok := m.downSince[mem.Name]; !ok {
				m.downSince[mem.Name] = now
			}
		}
	}
	return changed
}

// retrySyncs gives the shard syncs that match, and are not running, a new
// set of attempts.
func (m *managerActor) retrySyncs(match func(syncKey) bool) {
	for k := range m.attempts {
		if m.running[k] == nil && match(k) {
			delete(m.attempts, k)
			delete(m.gaveUp, k)
		}
	}
}

// rearm gives the syncs that gave up syncRearm or more before now a new
// set of attempts.
func (m *managerActor) rearm(now time.Time) {
	m.retrySyncs(func(k syncKey) bool {
		t, ok := m.gaveUp[k]
		return ok && now.Sub(t) >= syncRearm
	})
}

func (m *managerActor) progress(p *messages.SyncProgress) {
	k := syncKey{p.Op, p.Sync.Shard}
	// A sync reports FAILED once per attempt, then exits.
	if p.Sync.State == messages.SyncState_SYNC_FAILED {
		m.attempts[k]++
		m.rt.logger().Warn("shard sync failed", "shard", p.Sync.Shard, "node", p.Sync.Node, "attempt", m.attempts[k], "err", p.Sync.Error)
		p.Sync.Attempt = uint32(m.attempts[k])
	} else {
		p.Sync.Attempt = uint32(m.attempts[k] + 1)
	}
	m.pruneSyncs(p.Op)
	m.syncs[k] = p.Sync
	if p.Sync.State == messages.SyncState_SYNC_SYNCED {
		delete(m.running, k)
	}
	if m.attempts[k] >= m.rt.SyncRetries {
		if _, ok := m.gaveUp[k]; !ok {
			m.gaveUp[k] = time.Now()
		}
		m.stopSync(k)
	}
}

// stopSync terminates sync k if it runs. It counts as running until its
// supervisor has stopped it, so no pass starts it again or acts as if it
// were gone in the meantime.
func (m *managerActor) stopSync(k syncKey) {
	pid := m.running[k]
	if pid == nil {
		return
	}
	sup, root, self, log := actor.NewPID(m.self.Address, SyncsPath), m.root, m.self, m.rt.logger()
	go func() {
		if err := supervisor.TerminateChild(root, sup, pid.Id, askTimeout); err != nil {
			log.Warn("stopping a sync", "sync", pid.Id, "err", err)
		}
		root.Send(self, syncStopped{k: k, pid: pid})
	}()
}

// syncStopped reports that stopSync's sync is gone.
type syncStopped struct {
	k   syncKey
	pid *actor.PID
}

// keptOps is how many operations' sync results the manager keeps for
// node_status.
const keptOps = 16

// pruneSyncs forgets the syncs of all but the keptOps newest operations
// (op ids grow), making room for op's.
func (m *managerActor) pruneSyncs(op uint64) {
	ops := []uint64{op}
	for k := range m.syncs {
		if !slices.Contains(ops, k.op) {
			ops = append(ops, k.op)
		}
	}
	if len(ops) <= keptOps {
		return
	}
	slices.Sort(ops)
	oldest := ops[len(ops)-keptOps]
	for k := range m.syncs {
		if k.op < oldest && m.running[k] == nil {
			delete(m.syncs, k)
			delete(m.attempts, k)
			delete(m.gaveUp, k)
		}
	}
}

// managerInputs is a copy of what a reconcile pass or an operation reads,
// so it runs off the actor's goroutine.
type managerInputs struct {
	rt        *Runtime
	root      *actor.RootContext
	self      *actor.PID
	members   map[string]*messages.Member
	downSince map[string]time.Time
	syncs     map[syncKey]*messages.ShardSync
	attempts  map[syncKey]int
	running   map[syncKey]*actor.PID
	// balanceDue: the pass may move a shard's leadership to even out
	// the leaders.
	balanceDue bool
}

func (m *managerActor) inputs() *managerInputs {
	in := &managerInputs{rt: m.rt, root: m.root, self: m.self,
		members: map[string]*messages.Member{}, downSince: map[string]time.Time{},
		syncs: map[syncKey]*messages.ShardSync{}, attempts: map[syncKey]int{}, running: map[syncKey]*actor.PID{}}
	for k, v := range m.members {
		in.members[k] = v
	}
	for k, v := range m.downSince {
		in.downSince[k] = v
	}
	for k, v := range m.syncs {
		in.syncs[k] = proto.Clone(v).(*messages.ShardSync)
	}
	for k, v := range m.attempts {
		in.attempts[k] = v
	}
	for k, v := range m.running {
		in.running[k] = v
	}
	return in
}

// syncing reports whether a sync of op is running (or still stopping).
func (in *managerInputs) syncing(op uint64) bool {
	for k := range in.running {
		if k.op == op {
			return true
		}
	}
	return false
}

func (in *managerInputs) alive(name string) bool {
	if name == in.rt.Name {
		return true
	}
	mem := in.members[name]
	return mem != nil && mem.Status == messages.MemberStatus_ALIVE
}

// coordinator returns the system group's Raft and state when this node
// leads it.
func (in *managerInputs) coordinator() (*raft.Raft, *messages.ClusterState, error) {
	r, st, err := in.rt.System()
	if err != nil {
		return nil, nil, err
	}
	if r.State() != raft.Leader {
		return r, st.Get(), cluster.ErrNotCoordinator
	}
	return r, st.Get(), nil
}

// propose commits a command to the system group through its actor.
func (in *managerInputs) propose(ctx context.Context, c *messages.SystemCommand) (uint64, error) {
	res, err := in.rt.ask(ctx, transport.Peer{}, SystemPath, c)
	if err != nil {
		return 0, err
	}
	r, ok := res.(*messages.ManagerReply)
	if !ok {
		return 0, fmt.Errorf("system group answered %T", res)
	}
	if r.Error != "" {
		return 0, errors.New(r.Error)
	}
	return r.Op, nil
}

// selfMember describes this node as the cluster state records it.
func (in *managerInputs) selfMember() *messages.ClusterMember {
	rt := in.rt
	m := &messages.ClusterMember{Name: rt.Name, Role: rt.Role, ClientAddr: rt.BoundClientAddr(),
		HttpAddr: rt.HTTPAddr, GossipAddr: rt.GossipAddr, AddedMs: time.Now().UnixMilli(), DataDirId: rt.DataDirID()}
	if mux, err := rt.Mux(); err == nil {
		m.ClusterAddr = mux.Addr().String()
	}
	return m
}

func memberOf(g *messages.Member) *messages.ClusterMember {
	return &messages.ClusterMember{Name: g.Name, Role: RoleOf(g.Role), ClusterAddr: g.ClusterAddr,
		ClientAddr: g.ClientAddr, HttpAddr: g.HttpAddr, GossipAddr: g.GossipAddr, DataDirId: g.DataDirId}
}

// RoleOf is the role named s (voter, replica, readonly); anything else is
// voter.
func RoleOf(s string) messages.Role {
	switch s {
	case "replica":
		return messages.Role_ROLE_REPLICA
	case "readonly":
		return messages.Role_ROLE_READONLY
	}
	return messages.Role_ROLE_VOTER
}

// reconcile is one pass; it runs on its own goroutine.
func (in *managerInputs) reconcile() *reconciled {
	ctx, cancel := context.WithTimeout(context.Background(), reconcileTimeout)
	defer cancel()
	out := &reconciled{started: map[syncKey]*actor.PID{}}
	in.learnClusterID()
	in.checkRole()
	r, st, err := in.coordinator()
	if err != nil {
		out.err = err
		return out
	}
	if st.ClusterId == "" {
		// A founder made its cluster's ID with its data dir; a data dir
		// from before that has none yet.
		id := in.rt.ClusterID()
		if id == "" {
			id = storage.NewClusterID()
		}
		_, out.err = in.propose(ctx, &messages.SystemCommand{Cmd: &messages.SystemCommand_Init{Init: &messages.InitCluster{
			ClusterId: id, Shards: uint32(in.rt.Shards), First: in.selfMember()}}})
		if out.err == nil {
			in.learnClusterID()
			// Nodes that joined gossip meanwhile are added by the next
			// pass, at once: with the ID made beforehand, the tags do
			// not change, so no gossip event prompts it.
			out.again = true
		}
		return out
	}
	var errs []error
	// New nodes: an add op each, exactly once (the journal dedups).
	for _, g := range in.members {
		if g.Name == in.rt.Name || g.Status != messages.MemberStatus_ALIVE || cluster.Member(st, g.Name) != nil ||
			cluster.OpFor(st, g.Name) != nil {
			continue
		}
		if slices.Contains(st.Removed, g.Name) {
			out.removedAlive = append(out.removedAlive, g.Name)
			continue
		}
		if err := admissible(st, g); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := in.reachable(ctx, g); err != nil {
			if !errors.Is(err, transport.ErrNoCluster) {
				errs = append(errs, err)
			} else {
				// A new node refuses connections for the moment
				// between its gossip join and taking the cluster's
				// ID from it: the next pass, soon, adds it.
				out.soon = true
			}
			continue
		}
		op := &messages.MembershipOp{Kind: messages.OpKind_ADD_NODE, Node: memberOf(g), StartedMs: time.Now().UnixMilli(), Cause: "join"}
		if _, err := in.propose(ctx, &messages.SystemCommand{Cmd: &messages.SystemCommand_PutOp{PutOp: op}}); err != nil {
			errs = append(errs, err)
		} else {
			out.again = true
		}
	}
	// Nodes back at new addresses: every group they belong to, then the
	// state, follow them. The ops are driven on the new state, by the
	// next pass, which runs at once.
	movedAny := false
	for _, g := range in.members {
		moved, err := in.readdress(ctx, r, st, g, out)
		if err != nil {
			errs = append(errs, fmt.Errorf("re-addressing %s: %w", g.Name, err))
		}
		movedAny = movedAny || moved
	}
	if movedAny {
		out.again, out.err = true, errors.Join(errs...)
		return out
	}
	// Members back on a new data dir (a lost or replaced disk): the new
	// ID is recorded, and the change told once. Their groups catch up
	// from the leaders; each withholds its votes until it has (the Raft
	// fork's LostStoreGuard).
	for _, g := range in.members {
		if g.Status != messages.MemberStatus_ALIVE {
			continue
		}
		rec, was := cluster.NewDataDir(st, memberOf(g))
		if rec == nil {
			continue
		}
		if _, err := in.propose(ctx, &messages.SystemCommand{Cmd: &messages.SystemCommand_PutMember{PutMember: rec}}); err != nil {
			errs = append(errs, fmt.Errorf("recording %s's data dir: %w", g.Name, err))
			continue
		}
		if was != "" {
			in.rt.logger().Warn("a member came back on a new data dir (lost or replaced): it holds none of what it had; "+
				"its groups catch up from the leaders and grant no vote until they have (votes_withheld in its /v1/status); "+
				"if the others that could catch it up lost theirs too, see node trust-stores",
				"node", g.Name, "data_dir_id", rec.DataDirId, "was", was)
		}
	}
	// Nodes down past the delay, members or still joining: one removal
	// at a time, never one that is syncing.
	if op := cluster.DueRemoval(st, in.rt.Name, in.downSince, time.Now(), in.rt.RemoveDelay, in.syncing); op != nil {
		if _, err := in.propose(ctx, &messages.SystemCommand{Cmd: &messages.SystemCommand_PutOp{PutOp: op}}); err != nil {
			errs = append(errs, err)
		} else {
			out.again = true
			if op.Id != 0 {
				in.rt.logger().Warn("join abandoned: the node was down past the removal delay", "node", op.Node.Name, "op", op.Id, "delay", in.rt.RemoveDelay)
			}
		}
	}
	for k := range in.running {
		if !slices.ContainsFunc(st.Ops, func(o *messages.MembershipOp) bool {
			return o.Id == k.op && o.Kind == messages.OpKind_ADD_NODE
		}) {
			out.stale = append(out.stale, k)
		}
	}
	for _, op := range st.Ops {
		var err error
		switch op.Kind {
		case messages.OpKind_ADD_NODE:
			err = in.driveAdd(ctx, r, op, out)
		case messages.OpKind_REMOVE_NODE:
			err = in.driveRemove(ctx, r, st, op)
		case messages.OpKind_DEMOTE_NODE:
			err = in.driveDemote(ctx, r, st, op)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("op %d (%v %s): %w", op.Id, op.Kind, op.Node.GetName(), err))
		}
	}
	if len(st.Ops) == 0 && len(errs) == 0 {
		if err := in.topUpSystemVoters(r, st, ""); err != nil {
			errs = append(errs, fmt.Errorf("system group voters: %w", err))
		}
	}
	if in.balanceDue && len(st.Ops) == 0 && len(in.running) == 0 && len(errs) == 0 {
		out.balanced = true
		if err := in.balanceLeaders(ctx); err != nil {
			errs = append(errs, fmt.Errorf("leader balance: %w", err))
		}
	}
	out.err = errors.Join(errs...)
	return out
}

// leaderBalanceEvery is how often the coordinator looks at the shards'
// leaders, and leaderMovesAtOnce how many it may move then, together (of
// different shards): a cluster grown from one node with 64 shards evens
// out in 6 passes, not 43.
const (
	leaderBalanceEvery = 5 * time.Second
	leaderMovesAtOnce  = 8
	// leaderMoveLag: no move to a voter whose log lacks more entries of
	// its leader's than this (notBehind).
	leaderMoveLag = 1024
)

// balanceLeaders moves shards' leaderships when the nodes lead uneven
// numbers of shards (cluster.PlanLeaderMoves), only between nodes that are
// up (down), and never to a voter far behind its leader (notBehind). A
// leader does more than a follower (it takes every write first, forwards
// from other nodes land on it, reads wait for its barrier): without this,
// a cluster grown from one node keeps every shard led by that node.
// Cluster-aware clients (CLUSTER SLOTS) spread their connections with the
// leaders.
func (in *managerInputs) balanceLeaders(ctx context.Context) error {
	sys := in.rt.actorSystem()
	if sys == nil {
		return nil
	}
	replies, err := ShardStatuses(ctx, sys, in.rt.Shards)
	if err != nil {
		return err
	}
	leaders, voters := make([]string, len(replies)), make([][]string, len(replies))
	for i, r := range replies {
		if r.Err != nil || r.Reply.Error != "" {
			return nil // mid-change: the next pass looks again
		}
		leaders[i] = r.Reply.LeaderId
		down := in.down(configSilence(r.Reply.Configuration))
		for _, srv := range r.Reply.Configuration {
			if srv.Suffrage == messages.Suffrage_VOTER && down(srv.Id) == "" {
				voters[i] = append(voters[i], srv.Id)
			}
		}
	}
	moves := cluster.PlanLeaderMoves(leaders, voters, leaderMovesAtOnce)
	errs := make([]error, len(moves))
	var wg sync.WaitGroup
	for i, m := range moves {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var to string
			for _, srv := range replies[m.Shard].Reply.Configuration {
				if srv.Id == m.To {
					to = srv.Address
				}
			}
			lag := uint64(leaderMoveLag)
			err := in.transferLeadership(ctx, leaderPeer(replies[m.Shard].Reply), m.Shard,
				&messages.TransferLeadership{ToId: m.To, ToAddress: to, MaxLag: &lag})
			if errors.Is(err, errBehind) {
				// It catches up; a later pass moves it.
				in.rt.logger().Debug("shard leadership not moved to balance the leaders", "shard", m.Shard, "from", m.From, "to", m.To, "err", err)
				return
			}
			if err != nil {
				errs[i] = fmt.Errorf("shard %d from %s to %s: %w", m.Shard, m.From, m.To, err)
				return
			}
			in.rt.logger().Info("shard leadership moved to balance the leaders", "shard", m.Shard, "from", m.From, "to", m.To)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// transferLeadership asks shard's Raft actor on its leader to hand its
// leadership over as m says, and waits for the outcome.
func (in *managerInputs) transferLeadership(ctx context.Context, leader transport.Peer, shard int, m *messages.TransferLeadership) error {
	res, err := in.rt.ask(ctx, leader, RaftPath(shard), m)
	if err != nil {
		return err
	}
	t, ok := res.(*messages.TransferLeadershipReply)
	switch {
	case !ok:
		return fmt.Errorf("answered %T", res)
	case t.Behind:
		return fmt.Errorf("%w: %s", errBehind, t.Error)
	case t.Error != "":
		return errors.New(t.Error)
	}
	return nil
}

// learnClusterID records the cluster's ID once the system group has it:
// in node.json and in the node's gossip tags (through the watcher).
func (in *managerInputs) learnClusterID() {
	_, st, err := in.rt.System()
	if err != nil {
		return
	}
	id := st.Get().ClusterId
	if id == "" || (id == in.rt.ClusterID() && in.rt.clusterIDIsRecorded()) {
		return
	}
	if err := in.rt.recordClusterID(id); err != nil {
		in.rt.logger().Error("recording the cluster id", "cluster_id", id, "err", err)
		return
	}
	in.root.Send(actor.NewPID(in.self.Address, WatcherPath), announceTags{})
}

// checkRole takes this node's role from the cluster's record of it
// (Runtime.role), and warns, once per run, when it runs with another
// --role: a member's role is set when it is added, or changed by adding it
// again with another (changeRole), and the recorded one decides its
// suffrage in every group and whether it serves stale reads (readonly).
func (in *managerInputs) checkRole() {
	_, st, err := in.rt.System()
	if err != nil {
		return
	}
	m := st.Member(in.rt.Name)
	if m == nil {
		return
	}
	if was := messages.Role(in.rt.recordedRole.Swap(int32(m.Role))); was != m.Role && was != messages.Role_ROLE_UNSPECIFIED {
		in.rt.logger().Info("the cluster records a new role for this node", "role", roleName(m.Role), "was", roleName(was))
	}
	if m.Role == in.rt.Role || in.rt.roleTold.Load() {
		return
	}
	in.rt.roleTold.Store(true)
	in.rt.logger().Warn("this node runs with another --role than the cluster records for it; the recorded role stands: "+
		"start it with that role to match, or change the recorded one (node add NAME --role ROLE)",
		"flag", roleName(in.rt.Role), "recorded", roleName(m.Role))
}

// admissible refuses a node of another cluster or with another shard
// count.
func admissible(st *messages.ClusterState, g *messages.Member) error {
	if g.ClusterId != "" && g.ClusterId != st.ClusterId {
		return fmt.Errorf("%w: %s has cluster id %s, this cluster is %s", cluster.ErrOtherCluster, g.Name, g.ClusterId, st.ClusterId)
	}
	if g.Shards != 0 && g.Shards != st.Shards {
		return fmt.Errorf("%w: %s has %d shards, this cluster %d", cluster.ErrShardCount, g.Name, g.Shards, st.Shards)
	}
	return nil
}

// reachable checks that g answers on its cluster address before anything
// is journaled for it: a node the cluster transport refuses (with mutual
// TLS, one whose certificate the cluster CA did not sign) is refused
// here, changing nothing, rather than added to groups it cannot reach.
func (in *managerInputs) reachable(ctx context.Context, g *messages.Member) error {
	remote, err := in.rt.Remote()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	if err := remote.Ping(ctx, transport.Peer{Name: g.Name, Addr: g.ClusterAddr}); err != nil {
		return fmt.Errorf("%w: %s at %s: %w", cluster.ErrUnreachable, g.Name, g.ClusterAddr, err)
	}
	return nil
}

// driveAdd takes an add op one step: the node joins the system group, a
// sync child runs for every shard not synced yet, and once all are the
// node becomes a member.
func (in *managerInputs) driveAdd(ctx context.Context, r *raft.Raft, op *messages.MembershipOp, out *reconciled) error {
	node := op.Node
	if err := in.joinSystemGroup(r, node); err != nil {
		return err
	}
	done := 0
	for shard := uint32(0); shard < uint32(in.rt.Shards); shard++ {
		k := syncKey{op.Id, shard}
		if slices.Contains(op.DoneShards, shard) {
			done++
			continue
		}
		if p := in.syncs[k]; p != nil && p.State == messages.SyncState_SYNC_SYNCED {
			if _, err := in.propose(ctx, &messages.SystemCommand{Cmd: &messages.SystemCommand_ShardDone{ShardDone: &messages.ShardDone{Op: op.Id, Shard: shard}}}); err != nil {
				return err
			}
			done++
			continue
		}
		if in.running[k] != nil || in.attempts[k] >= in.rt.SyncRetries {
			continue
		}
		if g := in.members[node.Name]; g == nil || g.Status != messages.MemberStatus_ALIVE {
			continue // down in gossip: an attempt now would only fail
		}
		if len(in.running)+len(out.started) >= max(in.rt.SyncParallel, 1) {
			continue // bounded parallelism: the next pass starts the rest
		}
		pid, err := supervisor.StartSimpleChild(in.root, actor.NewPID(in.self.Address, SyncsPath), askTimeout,
			&messages.SyncShard{Op: op.Id, Shard: shard, Node: node})
		if err != nil {
			return fmt.Errorf("starting the sync of shard %d: %w", shard, err)
		}
		out.started[k] = pid
	}
	if done < in.rt.Shards {
		return nil
	}
	node.AddedMs = time.Now().UnixMilli()
	if _, err := in.propose(ctx, &messages.SystemCommand{Cmd: &messages.SystemCommand_PutMember{PutMember: node}}); err != nil {
		return err
	}
	_, err := in.propose(ctx, &messages.SystemCommand{Cmd: &messages.SystemCommand_DeleteOp{DeleteOp: op.Id}})
	if err == nil {
		msg := "node added"
		if op.Cause == causePromotion {
			msg = "node promoted"
		}
		in.rt.logger().Info(msg, "node", node.Name, "role", roleName(node.Role))
	}
	return err
}

// joinSystemGroup adds node to the system group: as a voter while the
// group has fewer than systemVoters and the node's role votes, else as a
// non-voter, so it follows the cluster state.
func (in *managerInputs) joinSystemGroup(r *raft.Raft, node *messages.ClusterMember) error {
	f := r.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	voters := 0
	for _, s := range f.Configuration().Servers {
		if string(s.ID) == node.Name {
			return nil
		}
		if s.Suffrage == raft.Voter {
			voters++
		}
	}
	id, addr := raft.ServerID(node.Name), raft.ServerAddress(node.ClusterAddr)
	if voters < systemVoters && node.Role == messages.Role_ROLE_VOTER {
		return r.AddVoter(id, addr, 0, membershipTimeout).Error()
	}
	return r.AddNonvoter(id, addr, 0, membershipTimeout).Error()
}

// topUpSystemVoters gives the system group a voter for each it lacks
// (fewer than systemVoters besides leaving, a voter about to leave it or
// lose its vote; "" for none): a non-voter of the group that is a member
// with the voter role and is up (down), in name order, one per
// call. Voters join the system group only while it has fewer than
// systemVoters; without this, one removed (down past the delay, or by an
// operator) left it with two, and the next failure left the cluster
// without a coordinator: no more removals, joins or role changes. Removals
// and demotions call it before the voter goes, so the group never has two
// voters between the two steps.
func (in *managerInputs) topUpSystemVoters(r *raft.Raft, st *messages.ClusterState, leaving string) error {
	f := r.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	voters, _ := countVoters(f.Configuration(), raft.ServerID(leaving))
	if voters >= systemVoters {
		return nil
	}
	servers := f.Configuration().Servers
	down := in.down(groupSilence(r))
	var pick *raft.Server
	for i, srv := range servers {
		m := cluster.Member(st, string(srv.ID))
		if srv.Suffrage != raft.Nonvoter || m == nil || m.Role != messages.Role_ROLE_VOTER || m.Name == leaving || down(m.Name) != "" {
			continue
		}
		if pick == nil || srv.ID < pick.ID {
			pick = &servers[i]
		}
	}
	if pick == nil {
		return nil
	}
	if err := r.AddVoter(pick.ID, pick.Address, f.Index(), membershipTimeout).Error(); err != nil {
		return err
	}
	in.rt.logger().Info("system group: a member made a voter, for one it lacked", "node", pick.ID, "voters", voters+1, "leaving", leaving)
	return nil
}

// leaveSystemGroup takes node out of the system group (remove) or only its
// vote, with a voter put in its place first (topUpSystemVoters), and never
// below quorum (checkSystemRemoval). The
// coordinator cannot do either to itself: it hands the group over, and
// the next coordinator resumes the op from the journal; handedOver says
// it did.
func (in *managerInputs) leaveSystemGroup(r *raft.Raft, st *messages.ClusterState, node string, remove bool) (handedOver bool, err error) {
	f := r.GetConfiguration()
	if err := f.Error(); err != nil {
		return false, err
	}
	var srv *raft.Server
	servers := f.Configuration().Servers
	for i := range servers {
		if string(servers[i].ID) == node {
			srv = &servers[i]
		}
	}
	if srv == nil || (!remove && srv.Suffrage != raft.Voter) {
		return false, nil // not in it, or no vote to take
	}
	if node == in.rt.Name {
		return true, r.LeadershipTransfer().Error()
	}
	if srv.Suffrage == raft.Voter {
		if err := in.topUpSystemVoters(r, st, node); err != nil {
			return false, err
		}
		if err := in.checkSystemRemoval(r, node); err != nil {
			return false, err
		}
	}
	if remove {
		return false, r.RemoveServer(srv.ID, 0, membershipTimeout).Error()
	}
	return false, r.DemoteVoter(srv.ID, 0, membershipTimeout).Error()
}

// checkSystemRemoval is cluster.CheckRemoval on the system group, which
// this node leads.
func (in *managerInputs) checkSystemRemoval(r *raft.Raft, node string) error {
	f := r.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	var voters []string
	for _, srv := range f.Configuration().Servers {
		if srv.Suffrage == raft.Voter {
			voters = append(voters, string(srv.ID))
		}
	}
	return cluster.CheckRemoval("the system group", voters, node, in.down(groupSilence(r)))
}

// driveRemove takes a removal one step: for every shard, leadership moves
// off the node first, then the node leaves the shard's configuration, never
// below quorum; then it leaves the system group and the cluster state.
func (in *managerInputs) driveRemove(ctx context.Context, r *raft.Raft, st *messages.ClusterState, op *messages.MembershipOp) error {
	node := op.Node.GetName()
	if in.syncing(op.Id) {
		// An abandoned join's sync still stopping: it could yet add the
		// node to its shard behind the removal.
		return nil
	}
	if err := in.leaveShards(ctx, op, messages.ChangeMembership_REMOVE); err != nil {
		return err
	}
	if handedOver, err := in.leaveSystemGroup(r, st, node, true); handedOver || err != nil {
		return err
	}
	if op.Cause != "failed" {
		// Removed on purpose: gossip may still see it, but it is not
		// added back unless an operator adds it.
		if _, err := in.propose(ctx, &messages.SystemCommand{Cmd: &messages.SystemCommand_Tombstone{Tombstone: node}}); err != nil {
			return err
		}
	}
	if _, err := in.propose(ctx, &messages.SystemCommand{Cmd: &messages.SystemCommand_DeleteMember{DeleteMember: node}}); err != nil {
		return err
	}
	_, err := in.propose(ctx, &messages.SystemCommand{Cmd: &messages.SystemCommand_DeleteOp{DeleteOp: op.Id}})
	if err == nil {
		in.rt.logger().Info("node removed", "node", node, "cause", op.Cause)
	}
	return err
}

// shardLeader finds shard's leader and its status, and gives a shardSync
// for node with which to change the shard's membership (change).
func (in *managerInputs) shardLeader(ctx context.Context, shard int, node *messages.ClusterMember) (*shardSync, *messages.ShardStatusReply, error) {
	s := &shardSync{rt: in.rt, job: &messages.SyncShard{Shard: uint32(shard), Node: node}}
	leader, err := s.leader(ctx)
	return s, leader, err
}

// checkRemoval is cluster.CheckRemoval on the voters in the leader's
// status.
func (in *managerInputs) checkRemoval(shard int, leader *messages.ShardStatusReply, node string) error {
	var voters []string
	for _, srv := range leader.Configuration {
		if srv.Suffrage == messages.Suffrage_VOTER {
			voters = append(voters, srv.Id)
		}
	}
	return cluster.CheckRemoval(fmt.Sprintf("shard %d", shard), voters, node, in.down(configSilence(leader.Configuration)))
}

// removeFromShard takes node out of shard's configuration (change
// REMOVE), or only its vote (DEMOTE): never below quorum, leadership moved
// off it first.
func (in *managerInputs) removeFromShard(ctx context.Context, shard int, node *messages.ClusterMember, change messages.ChangeMembership_Op) error {
	s, leader, err := in.shardLeader(ctx, shard, node)
	if err != nil {
		return err
	}
	switch {
	case change == messages.ChangeMembership_DEMOTE && member(leader, node.Name) != messages.Suffrage_VOTER:
		return nil // no vote here (any more)
	case member(leader, node.Name) == messages.Suffrage_SUFFRAGE_UNSPECIFIED:
		// Not there, but a sync's change to add it may still be on its
		// way (an abandoned join's sync stopped as it sent one): a
		// removal of an absent server moves the configuration's index
		// on, and a change decided on the configuration before fails.
		return s.change(ctx, leader, messages.ChangeMembership_REMOVE)
	}
	if err := in.checkRemoval(shard, leader, node.Name); err != nil {
		return err
	}
	if leader.LeaderId == node.Name {
		// Hand leadership to a caught-up voter first; the change goes
		// to the new leader.
		if err := in.transferLeadership(ctx, leaderPeer(leader), shard, &messages.TransferLeadership{}); err != nil {
			return fmt.Errorf("shard %d: leadership transfer from %s: %w", shard, node.Name, err)
		}
		if leader, err = s.leader(ctx); err != nil {
			return err
		}
		if leader.LeaderId == node.Name {
			return fmt.Errorf("shard %d: %s still leads after the transfer", shard, node.Name)
		}
	}
	return s.change(ctx, leader, change)
}

// leaveShards takes op's node out of every shard the op is not done with
// (removeFromShard with change), marking each done in the journal.
func (in *managerInputs) leaveShards(ctx context.Context, op *messages.MembershipOp, change messages.ChangeMembership_Op) error {
	for shard := uint32(0); shard < uint32(in.rt.Shards); shard++ {
		if slices.Contains(op.DoneShards, shard) {
			continue
		}
		if err := in.removeFromShard(ctx, int(shard), op.Node, change); err != nil {
			return err
		}
		if _, err := in.propose(ctx, &messages.SystemCommand{Cmd: &messages.SystemCommand_ShardDone{ShardDone: &messages.ShardDone{Op: op.Id, Shard: shard}}}); err != nil {
			return err
		}
	}
	return nil
}

// driveDemote takes a demotion one step: for every shard, leadership moves
// off the node, then its vote goes, never below quorum (a shard that would
// lose it fails the step, and the next pass tries again); then its vote
// in the system group (leaveSystemGroup: another voter is made first);
// then the member's record gets its new role.
func (in *managerInputs) driveDemote(ctx context.Context, r *raft.Raft, st *messages.ClusterState, op *messages.MembershipOp) error {
	if err := in.leaveShards(ctx, op, messages.ChangeMembership_DEMOTE); err != nil {
		return err
	}
	if handedOver, err := in.leaveSystemGroup(r, st, op.Node.GetName(), false); handedOver || err != nil {
		return err
	}
	// The member's record as it is now (its addresses may have moved on
	// since the op was journaled), with the new role.
	node := op.Node
	if mem := cluster.Member(st, node.Name); mem != nil {
		node = proto.Clone(mem).(*messages.ClusterMember)
		node.Role = op.Node.Role
	}
	if _, err := in.propose(ctx, &messages.SystemCommand{Cmd: &messages.SystemCommand_PutMember{PutMember: node}}); err != nil {
		return err
	}
	_, err := in.propose(ctx, &messages.SystemCommand{Cmd: &messages.SystemCommand_DeleteOp{DeleteOp: op.Id}})
	if err == nil {
		in.rt.logger().Info("node demoted", "node", node.Name, "role", roleName(node.Role))
	}
	return err
}

// leaveTimeout bounds leave(): every shard's leadership moves and the
// node is removed from every group.
const leaveTimeout = 3 * time.Minute

// leave takes this node out of the cluster: the coordinator removes it from
// every shard (leadership moves off it first) and from the cluster state,
// then gossip says goodbye and the node stops (Runtime.OnLeave).
func (in *managerInputs) leave() *messages.ManagerReply {
	ctx, cancel := context.WithTimeout(context.Background(), leaveTimeout)
	defer cancel()
	if _, removed := in.rt.removedBy(); removed {
		return in.leaveGossip(ctx, 0, in.rt.Name+" was removed from the cluster already; it left gossip; stopping")
	}
	in.rt.leaving.Store(true)
	r := in.leaveCluster(ctx)
	if r.Error != "" {
		in.rt.leaving.Store(false)
	}
	return r
}

// leaveCluster is leave's work once it is under way.
func (in *managerInputs) leaveCluster(ctx context.Context) *messages.ManagerReply {
	var accepted *messages.ManagerReply
	for accepted == nil {
		res := in.operate(&messages.RemoveNode{Name: in.rt.Name})
		r, ok := res.(*messages.ManagerReply)
		switch {
		case !ok:
			return &messages.ManagerReply{Error: fmt.Sprintf("leave: coordinator answered %T", res)}
		case r.Error == "":
			accepted = r
		case strings.Contains(r.Error, "no coordinator"):
			// An election: try again.
		default:
			return &messages.ManagerReply{Error: "leave: " + r.Error}
		}
		if err := sleepCtx(ctx, leavePoll); err != nil {
			return &messages.ManagerReply{Error: "leave: " + err.Error()}
		}
	}
	// Wait until the coordinator no longer counts this node. Once out of
	// the system group this node hears nothing more, so ask the members
	// it knew.
	_, st, err := in.rt.System()
	if err != nil {
		return &messages.ManagerReply{Error: "leave: " + err.Error()}
	}
	peers := st.Get().Members
	for {
		if gone, err := in.departed(ctx, peers); err == nil && gone {
			break
		}
		if err := sleepCtx(ctx, leavePoll); err != nil {
			return &messages.ManagerReply{Op: accepted.Op, Error: "leave: still a member: " + err.Error()}
		}
	}
	return in.leaveGossip(ctx, accepted.Op, in.rt.Name+" left the cluster; stopping")
}

// leaveGossip ends a leave once the node is out of the cluster: gossip
// says goodbye, and the node stops (Runtime.OnLeave).
func (in *managerInputs) leaveGossip(ctx context.Context, op uint64, detail string) *messages.ManagerReply {
	if _, err := in.rt.ask(ctx, transport.Peer{}, WatcherPath, &messages.LeaveCluster{}); err != nil {
		in.rt.logger().Warn("gossip leave", "err", err)
	}
	in.rt.logger().Info("left the cluster", "node", in.rt.Name)
	if in.rt.OnLeave != nil {
		go in.rt.OnLeave()
	}
	return &messages.ManagerReply{Op: op, Detail: detail}
}

// departed asks the other members' managers for the coordinator's view
// until one answers: true when this node is neither a member nor the
// subject of an op.
func (in *managerInputs) departed(ctx context.Context, peers []*messages.ClusterMember) (bool, error) {
	var lastErr error
	for _, p := range peers {
		if p.Name == in.rt.Name || p.ClusterAddr == "" {
			continue
		}
		res, err := in.rt.ask(ctx, transport.Peer{Name: p.Name, Addr: p.ClusterAddr}, ManagerPath, &messages.NodeStatusRequest{})
		st, ok := res.(*messages.NodeStatusReply)
		if err != nil || !ok || st.Error != "" {
			lastErr = fmt.Errorf("%s: %v", p.Name, err)
			continue
		}
		for _, o := range st.Ops {
			if o.Node.GetName() == in.rt.Name {
				return false, nil
			}
		}
		for _, n := range st.Nodes {
			if n.Name == in.rt.Name && n.Member {
				return false, nil
			}
		}
		return true, nil
	}
	return false, lastErr
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// operate runs an operator's request: here on the coordinator, else
// forwarded to it.
func (in *managerInputs) operate(msg proto.Message) proto.Message {
	ctx, cancel := context.WithTimeout(context.Background(), reconcileTimeout)
	defer cancel()
	if why := in.rt.foundingWait(); why != "" {
		return managerError(msg, "this node is in no cluster yet: "+why)
	}
	r, st, err := in.coordinator()
	if errors.Is(err, cluster.ErrNotCoordinator) {
		if by, removed := in.rt.removedBy(); removed {
			// Its system group knows no leader, or a stale one: the
			// coordinator that told it of its removal answers.
			res := in.askCoordinator(ctx, by, msg)
			if s, ok := res.(*messages.NodeStatusReply); ok {
				s.Removed = true
			}
			return res
		}
		addr, id := r.LeaderWithID()
		if addr == "" {
			if f := r.GetConfiguration(); f.Error() == nil && notMember(f.Configuration(), raft.ServerID(in.rt.Name)) {
				return managerError(msg, "system group: "+errNotMember)
			}
			return managerError(msg, "no coordinator: the system group has no leader")
		}
		return in.askCoordinator(ctx, transport.Peer{Name: string(id), Addr: string(addr)}, msg)
	}
	if err != nil {
		return managerError(msg, err.Error())
	}
	switch m := msg.(type) {
	case *messages.NodeStatusRequest:
		return in.status(r, st)
	case *messages.AddNode:
		return in.addNode(ctx, st, m)
	case *messages.RemoveNode:
		return in.removeNode(ctx, st, m.Name, "operator")
	}
	return managerError(msg, fmt.Sprintf("unexpected %T", msg))
}

// askCoordinator hands an operator's request to the coordinator.
func (in *managerInputs) askCoordinator(ctx context.Context, to transport.Peer, msg proto.Message) proto.Message {
	res, err := in.rt.ask(ctx, to, ManagerPath, msg)
	if err != nil {
		return managerError(msg, fmt.Sprintf("coordinator %s: %v", to.Name, err))
	}
	return res
}

// recordedRole is the role status shows for a node: a member's recorded
// one, else the one it asks for.
func recordedRole(mem *messages.ClusterMember, asked string) string {
	if mem != nil {
		return roleName(mem.Role)
	}
	return asked
}

func managerError(req proto.Message, text string) proto.Message {
	if _, ok := req.(*messages.NodeStatusRequest); ok {
		return &messages.NodeStatusReply{Error: text}
	}
	return &messages.ManagerReply{Error: text}
}

func (in *managerInputs) addNode(ctx context.Context, st *messages.ClusterState, m *messages.AddNode) proto.Message {
	mem, o := cluster.Member(st, m.Name), cluster.OpFor(st, m.Name)
	switch {
	case mem != nil:
		return in.changeRole(ctx, mem, m.Role, o)
	case m.Name == in.rt.Name:
		return &messages.ManagerReply{Detail: "this node is a member already"}
	case o != nil:
		// Asked again: shards whose sync gave up get a new set of attempts.
		in.root.Send(in.self, retrySyncs{op: o.Id})
		return &messages.ManagerReply{Op: o.Id, Detail: "an operation on " + m.Name + " is under way; failed shard syncs are retried"}
	}
	g := in.members[m.Name]
	if g == nil || g.Status != messages.MemberStatus_ALIVE {
		return &messages.ManagerReply{Error: fmt.Sprintf("%v: %s is not alive in gossip: start it with --join", cluster.ErrUnknownNode, m.Name)}
	}
	if err := admissible(st, g); err != nil {
		return &messages.ManagerReply{Error: err.Error()}
	}
	if err := in.reachable(ctx, g); err != nil {
		return &messages.ManagerReply{Error: err.Error()}
	}
	node := memberOf(g)
	if m.Role != messages.Role_ROLE_UNSPECIFIED {
		node.Role = m.Role
	}
	if slices.Contains(st.Removed, m.Name) {
		if _, err := in.propose(ctx, &messages.SystemCommand{Cmd: &messages.SystemCommand_ClearTombstone{ClearTombstone: m.Name}}); err != nil {
			return &messages.ManagerReply{Error: err.Error()}
		}
	}
	op := &messages.MembershipOp{Kind: messages.OpKind_ADD_NODE, Node: node, StartedMs: time.Now().UnixMilli(), Cause: "operator"}
	id, err := in.propose(ctx, &messages.SystemCommand{Cmd: &messages.SystemCommand_PutOp{PutOp: op}})
	if err != nil {
		return &messages.ManagerReply{Error: err.Error()}
	}
	return &messages.ManagerReply{Op: id, Detail: "adding " + m.Name}
}

// causePromotion is the cause of a replica's promotion's add op.
const causePromotion = "promotion"

// changeRole answers the addition of a member with role:
//   - no role, or its own: a no-op;
//   - a non-voter asked to be a voter is promoted, as a join is: an add op
//     for the member with the voter role, whose shard syncs find it a
//     caught-up non-voter, replay the little it lacks and make it a voter
//     once it has stayed caught up;
//   - a voter asked to be a non-voter is demoted: a demotion op takes its
//     vote out of every shard, its leaderships first, refused up front
//     (nothing changed) when a shard would be left without quorum, as a
//     removal is;
//   - between replica and readonly, both non-voters: the record only.
//
// Ops are resumed by a new coordinator, like any other.
func (in *managerInputs) changeRole(ctx context.Context, mem *messages.ClusterMember, role messages.Role, under *messages.MembershipOp) proto.Message {
	if role == messages.Role_ROLE_UNSPECIFIED || role == mem.Role {
		return &messages.ManagerReply{Detail: mem.Name + " is a member already"}
	}
	if under != nil {
		return &messages.ManagerReply{Error: fmt.Sprintf("%v: %s: an operation on it is under way (op %d)", cluster.ErrRoleChange, mem.Name, under.Id)}
	}
	node := proto.Clone(mem).(*messages.ClusterMember)
	node.Role = role
	var op *messages.MembershipOp
	detail := ""
	switch {
	case role == messages.Role_ROLE_VOTER:
		op = &messages.MembershipOp{Kind: messages.OpKind_ADD_NODE, Node: node, StartedMs: time.Now().UnixMilli(), Cause: causePromotion}
		detail = "promoting " + mem.Name + " to voter"
	case mem.Role == messages.Role_ROLE_VOTER:
		if err := in.checkEveryShard(ctx, mem); err != nil {
			return &messages.ManagerReply{Error: fmt.Sprintf("%v: demoting %s refused: %v", cluster.ErrRoleChange, mem.Name, err)}
		}
		op = &messages.MembershipOp{Kind: messages.OpKind_DEMOTE_NODE, Node: node, StartedMs: time.Now().UnixMilli(), Cause: "operator"}
		detail = "demoting " + mem.Name + " to " + roleName(role)
	default:
		if _, err := in.propose(ctx, &messages.SystemCommand{Cmd: &messages.SystemCommand_PutMember{PutMember: node}}); err != nil {
			return &messages.ManagerReply{Error: err.Error()}
		}
		in.rt.logger().Info("node's role changed", "node", mem.Name, "role", roleName(role), "was", roleName(mem.Role))
		return &messages.ManagerReply{Detail: mem.Name + "'s role is now " + roleName(role)}
	}
	id, err := in.propose(ctx, &messages.SystemCommand{Cmd: &messages.SystemCommand_PutOp{PutOp: op}})
	if err != nil {
		return &messages.ManagerReply{Error: err.Error()}
	}
	return &messages.ManagerReply{Op: id, Detail: detail}
}

// checkEveryShard checks, in every shard at once, that taking node's vote
// away keeps the shard's quorum (checkRemoval).
func (in *managerInputs) checkEveryShard(ctx context.Context, node *messages.ClusterMember) error {
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for shard := 0; shard < in.rt.Shards; shard++ {
		wg.Go(func() {
			_, leader, err := in.shardLeader(ctx, shard, node)
			if err == nil {
				err = in.checkRemoval(shard, leader, node.Name)
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// removeNode journals a removal after checking, for every shard, that it
// keeps quorum.
func (in *managerInputs) removeNode(ctx context.Context, st *messages.ClusterState, name, cause string) proto.Message {
	mem, o := cluster.Member(st, name), cluster.OpFor(st, name)
	if o != nil && o.Kind == messages.OpKind_REMOVE_NODE {
		return &messages.ManagerReply{Op: o.Id, Detail: "removal of " + name + " under way"}
	}
	// A node still joining, or a member whose role is changing: its op is
	// abandoned, and the node leaves the shards it was in, as a member
	// would (a removal under way was answered above).
	if mem == nil && o != nil {
		mem = o.Node
	}
	if mem == nil {
		return &messages.ManagerReply{Error: fmt.Sprintf("%v: %s", cluster.ErrUnknownNode, name)}
	}
	if err := in.checkEveryShard(ctx, mem); err != nil {
		return &messages.ManagerReply{Error: "refused: " + err.Error()}
	}
	if o != nil {
		return in.abandonOp(ctx, o, cause)
	}
	op := cluster.RemovalOp(mem, 0, cause, time.Now())
	id, err := in.propose(ctx, &messages.SystemCommand{Cmd: &messages.SystemCommand_PutOp{PutOp: op}})
	if err != nil {
		return &messages.ManagerReply{Error: err.Error()}
	}
	return &messages.ManagerReply{Op: id, Detail: "removing " + name}
}

// abandonOp turns a join, promotion or demotion under way into the node's
// removal: one journal entry replaces the op with a removal op, so the
// coordinator (this one or the next) starts no more syncs to it, stops
// those running (a reconcile pass finds them stale), and takes it out of
// every shard it was in. A join can need this when the joining node is
// gone for good.
func (in *managerInputs) abandonOp(ctx context.Context, under *messages.MembershipOp, cause string) proto.Message {
	op := cluster.RemovalOp(under.Node, under.Id, cause, time.Now())
	if _, err := in.propose(ctx, &messages.SystemCommand{Cmd: &messages.SystemCommand_PutOp{PutOp: op}}); err != nil {
		return &messages.ManagerReply{Error: err.Error()}
	}
	what := "join"
	switch {
	case under.Kind == messages.OpKind_DEMOTE_NODE:
		what = "demotion"
	case under.Cause == causePromotion:
		what = "promotion"
	}
	return &messages.ManagerReply{Op: under.Id, Detail: what + " of " + under.Node.GetName() + " abandoned; removing it from the shards it was in"}
}

func (in *managerInputs) status(r *raft.Raft, st *messages.ClusterState) *messages.NodeStatusReply {
	_, coord := r.LeaderWithID()
	out := &messages.NodeStatusReply{ClusterId: st.ClusterId, Coordinator: string(coord), Ops: st.Ops}
	seen := map[string]bool{}
	for _, g := range in.members {
		seen[g.Name] = true
		mem := cluster.Member(st, g.Name)
		ns := &messages.GossipMemberStatus{Name: g.Name, Status: statusName(g.Status), Role: recordedRole(mem, g.Role),
			ClusterAddr: g.ClusterAddr, ClientAddr: g.ClientAddr, Member: mem != nil,
			Removed: slices.Contains(st.Removed, g.Name), DiskLow: g.DiskLow}
		if t, ok := in.downSince[g.Name]; ok {
			ns.DownSinceMs = t.UnixMilli()
		}
		out.Nodes = append(out.Nodes, ns)
	}
	if !seen[in.rt.Name] {
		seen[in.rt.Name] = true
		mem := cluster.Member(st, in.rt.Name)
		out.Nodes = append(out.Nodes, &messages.GossipMemberStatus{Name: in.rt.Name, Status: "alive", Role: recordedRole(mem, roleName(in.rt.Role)),
			Member: mem != nil, ClientAddr: in.rt.BoundClientAddr(), DiskLow: in.rt.diskLowHere()})
	}
	for _, mem := range st.Members {
		if !seen[mem.Name] {
			out.Nodes = append(out.Nodes, &messages.GossipMemberStatus{Name: mem.Name, Status: "unknown", Member: true,
				ClusterAddr: mem.ClusterAddr, ClientAddr: mem.ClientAddr})
		}
	}
	slices.SortFunc(out.Nodes, func(a, b *messages.GossipMemberStatus) int { return cmpString(a.Name, b.Name) })
	for _, s := range in.syncs {
		out.Syncs = append(out.Syncs, s)
	}
	out.Applied = in.appliedEverywhere(st.Members)
	if f := r.GetConfiguration(); f.Error() == nil {
		out.SystemGroup = raftServers(f.Configuration())
		markSilence(r, out.SystemGroup)
	}
	slices.SortFunc(out.Syncs, func(a, b *messages.ShardSync) int {
		if c := cmpString(a.Node, b.Node); c != 0 {
			return c
		}
		return int(a.Shard) - int(b.Shard)
	})
	return out
}

// memberStatusTimeout bounds the status requests behind node_status.
const memberStatusTimeout = 2 * time.Second

// appliedEverywhere asks every member for every shard's applied index, all
// at once; a member that does not answer is reported with its error.
func (in *managerInputs) appliedEverywhere(members []*messages.ClusterMember) []*messages.MemberApplied {
	ctx, cancel := context.WithTimeout(context.Background(), memberStatusTimeout)
	defer cancel()
	var out []*messages.MemberApplied
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, m := range members {
		at := memberPeer(m)
		if m.Name == in.rt.Name {
			at = transport.Peer{}
		}
		for shard := 0; shard < in.rt.Shards; shard++ {
			wg.Go(func() {
				a := &messages.MemberApplied{Node: m.Name, Shard: uint32(shard)}
				res, err := in.rt.ask(ctx, at, RaftPath(shard), &messages.ShardStatus{})
				if r, ok := res.(*messages.ShardStatusReply); err == nil && ok {
					a.AppliedIndex = r.AppliedIndex
				} else if err != nil {
					a.Error = err.Error()
				}
				mu.Lock()
				out = append(out, a)
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	slices.SortFunc(out, func(a, b *messages.MemberApplied) int {
		if a.Shard != b.Shard {
			return int(a.Shard) - int(b.Shard)
		}
		return cmpString(a.Node, b.Node)
	})
	return out
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func statusName(s messages.MemberStatus) string {
	switch s {
	case messages.MemberStatus_ALIVE:
		return "alive"
	case messages.MemberStatus_LEAVING:
		return "leaving"
	case messages.MemberStatus_LEFT:
		return "left"
	case messages.MemberStatus_FAILED:
		return "failed"
	}
	return "unknown"
}
