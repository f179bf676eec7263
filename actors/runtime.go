package actors

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coppice-kv/coppice/cluster"
	"github.com/coppice-kv/coppice/kv"
	"github.com/coppice-kv/coppice/messages"
	"github.com/coppice-kv/coppice/server"
	"github.com/coppice-kv/coppice/storage"
	"github.com/coppice-kv/coppice/transport"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
)

// askTimeout bounds one request to an actor, here or on a peer.
const askTimeout = 10 * time.Second

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
	// ClusterTLS, if set, is mutual TLS on the cluster port.
	ClusterTLS *transport.MutualTLS
	// ClientAddr is the RESP port; RequirePass makes clients AUTH;
	// ClientTLS, if set, serves it over TLS only.
	ClientAddr  string
	RequirePass string
	ClientTLS   *tls.Config
	Version     string
	// The cluster: gossip's address, seeds to join, the role this node
	// asks for, gossip encryption, how long a failed node stays before
	// its removal, and how many attempts a shard's sync gets.
	GossipAddr string
	HTTPAddr   string
	Join       []string
	// BootstrapExpect, with Join, lets a node on a new data dir found the
	// cluster: once gossip shows it that many nodes, none of them in a
	// cluster and all asking for as many, the first of them by name
	// founds it and the others join it (cluster.DecideFounding). 0: a node
	// with Join only joins.
	BootstrapExpect int
	Role            messages.Role
	GossipKey       []byte
	KeyringFile     string
	RemoveDelay     time.Duration
	SyncRetries     int
	// SyncParallel bounds the shard syncs the coordinator runs at once.
	SyncParallel int
	// SnapshotRate bounds the snapshot bytes the node streams per
	// second, sent and received together, over all its shards (0: no
	// limit).
	SnapshotRate int64
	// SnapshotYield makes that rate follow the node's Raft log syncs
	// (storage.NewYieldingThrottle), SnapshotRate its ceiling.
	SnapshotYield bool
	// ScrubInterval is how long after the start, and after each pass,
	// the node reads every table of its shard stores and Raft log store back and checks
	// their checksums (0: never); ScrubRate bounds the bytes it reads a
	// second (0: no limit).
	ScrubInterval time.Duration
	ScrubRate     int64
	// Compactions bounds the Pebble compactions the shard stores run at
	// once (storage.CompactionPool; 0: max(4, GOMAXPROCS)).
	Compactions int
	// MemTables is the bytes of the shard stores' memtables, all shards
	// together, and BlockCache of the Pebble block cache they share
	// (storage.Stores; 0: the defaults).
	MemTables, BlockCache int64
	// LogCache is the bytes of recent Raft log entries the node's groups
	// keep in memory, all together (storage.RaftLogs.SplitLogCache; 0:
	// the default).
	LogCache int64
	// ManagerTick is how often the manager reconciles the cluster when
	// nothing prompts it (its start, a member event that changes what it
	// knew, a shard synced, an op it journaled, this node becoming the
	// coordinator); 0 for 500 ms.
	ManagerTick time.Duration
	// StallWarnAfter is how long a shard's proposed entry may go
	// unanswered before its Raft actor logs what the group knows (the
	// shard's later writes wait behind it); 0 for stallWarnAfter.
	StallWarnAfter time.Duration
	// Notify is the node's notify-keyspace-events: the shards collect the
	// events it asks for and the client port publishes them (CONFIG SET
	// changes it). Nil: Start makes one, off.
	Notify *kv.NotifyConfig
	// ExpiryEvery is how often each shard's leader looks for expired keys
	// to delete (active expiry, expiry.go); 0: every 100 ms.
	ExpiryEvery time.Duration
	// GossipFast tightens gossip timers (tests on loopback only).
	GossipFast bool
	// Snapshots tunes when shards snapshot and compact their logs (zero
	// values: hashicorp/raft's defaults, threshold 16384).
	Snapshots SnapshotPolicy
	// ReadCache is the bytes of values the node caches in front of its
	// shards' stores, split evenly between the shards: 0 for
	// DefaultReadCache, negative for none.
	ReadCache int64
	// MaxBulkLen is the longest argument the client port accepts (Redis's
	// proto-max-bulk-len); 0 for Redis's default, 512 MB.
	MaxBulkLen int64
	// MaxWriteBytes bounds a write command's bytes at the client port
	// (server.Config.MaxWriteBytes); 0: no bound.
	MaxWriteBytes int64
	// SlowlogSlowerThan and SlowlogMaxLen configure the client port's slow
	// log (server.Config).
	SlowlogSlowerThan time.Duration
	SlowlogMaxLen     int
	// MinFreeDisk is the data dir's free space, in bytes, below which
	// this node says its disk is low (a gossip tag), and the cluster
	// refuses writes that may add data; 0: no floor.
	MinFreeDisk uint64
	// OnLeave is called once the node has left the cluster (leave()): the
	// node binary stops the process.
	OnLeave func()
	// OnShutdown is called when a client sends SHUTDOWN: the node binary
	// stops the node as on SIGTERM. Nil: SHUTDOWN is refused.
	OnShutdown func()
	// OnFault is called when one of the node's stores fails in a way
	// retrying does not mend (storage.ErrStoreFailed: a flush, a
	// compaction or a journal write failed, or a journal sync stalled),
	// once per opening of the stores: the node binary stops the process,
	// which exits 1. Nil: the failure is only logged.
	OnFault func(error)
	Log     *slog.Logger
	// Exec runs a write command on a shard (kv.Exec).
	Exec storage.Executor

	// stores are what the store worker opened, nil while closed: read on
	// every client read and write, so an atomic load, not a lock whose
	// reader count every core would write.
	stores atomic.Pointer[openStores]
	// activeExpiryOff stops this node's shard leaders' active expiry
	// (DEBUG SET-ACTIVE-EXPIRE 0); keys past their expiry stay invisible.
	activeExpiryOff atomic.Bool

	// clients is what the client port counts; it outlives the port's
	// restarts.
	clients server.Stats
	// raftLogDamaged: the node's Raft log store failed with on-disk
	// corruption, recorded in node.json for the next start to rebuild it.
	// raftLogRebuilt: it was rebuilt, now or before (node.json), so the
	// node was in a cluster, and bootstraps no group.
	raftLogDamaged, raftLogRebuilt atomic.Bool
	// rebuilds counts the shards whose damaged store was rebuilt from
	// their group (rebuild).
	rebuilds atomic.Uint64
	// scrubs is what the scrubs of the shard stores did (scrub.go).
	scrubs scrubCounters
	// raftRepeats collapses the groups' repeated Raft warnings and errors
	// (raftLogger).
	raftRepeats repeats
	mu          sync.RWMutex
	mux         *transport.Mux
	remote      *transport.Remote
	// beatsRemote carries the batched Raft heartbeats (heartbeats).
	beatsRemote *transport.Remote
	system      *raft.Raft
	state       *cluster.State
	sys         *actor.ActorSystem
	// clusterID is the cluster this node belongs to, once known;
	// clusterIDRecorded tells whether node.json has it (a joining node
	// takes it from gossip before its system group records it).
	clusterID         string
	clusterIDRecorded bool
	// founder: this node founded its cluster although started with
	// --join (Identity.Founder). founding is why a node of
	// --bootstrap-expect was in no cluster when it last looked
	// (cluster.Founding.Wait; foundingWait).
	founder  atomic.Bool
	founding atomic.Pointer[string]
	// removal is the coordinator's last notice that the cluster removed
	// this node (removedBy).
	removal atomic.Pointer[removal]
	// leaving: the node is leaving the cluster (node leave), so its
	// removal is no news to warn of.
	leaving atomic.Bool
	// dataDirID is node.json's data_dir_id, once the store worker has
	// read it (gossip announces it).
	dataDirID atomic.Pointer[string]
	// roleTold: the node has warned that it runs with another --role
	// than the cluster records for it. recordedRole is the role the
	// cluster records for it, once it is a member (0 before: Role
	// stands).
	roleTold     atomic.Bool
	recordedRole atomic.Int32
	// lowDisk names the nodes whose data dir is below their free-space
	// floor (Runtime.MinFreeDisk; gossip's DiskLow for the others);
	// anyLowDisk is whether there is one, read on every write.
	lowDiskMu  sync.Mutex
	lowDisk    map[string]bool
	anyLowDisk atomic.Bool
	// lead[i] is what this node knows of shard i's leadership (setLead);
	// read on every client command. Made by the first setLead.
	lead atomic.Pointer[[]atomic.Pointer[shardLead]]
	// forwarder runs a client command a peer forwarded, while the client
	// actor is up (it sets it when it starts and clears it when it stops).
	forwarder atomic.Pointer[func(context.Context, *messages.Forward) *messages.ForwardReply]
	// port is the client port while the client actor is up: peers' pub/sub
	// messages and PUBSUB queries go to it.
	port atomic.Pointer[server.Server]
	// aclCur is the cluster's ACL users as this node has them (acl.go).
	aclMu       sync.Mutex
	aclCur      *kv.ACLUsers
	boundClient string
	// addrs is the nodes' cluster addresses as gossip gives them (the
	// manager records them), which the Raft groups dial first.
	addrs addrBook
	// beats batches the Raft groups' periodic heartbeats by follower
	// node, and hands the batches peers send to the groups here.
	beats heartbeats
	// goneProbes shares the checks that a leader's process is gone among
	// the groups it led (leadergone.go).
	goneProbes goneProbes
	// expiry ticks the shards' active expiry (expiry.go).
	expiry expiryTicker
}

// DefaultReadCache is the read cache of a Runtime that sets none.
const DefaultReadCache = 64 << 20

// shardCache is each shard's part of the read cache.
func (rt *Runtime) shardCache() int {
	switch {
	case rt.ReadCache < 0:
		return 0
	case rt.ReadCache == 0:
		return DefaultReadCache / rt.Shards
	}
	return int(rt.ReadCache / int64(rt.Shards))
}

// SnapshotPolicy is when a shard takes a snapshot: after Threshold new
// entries, checked every Interval; TrailingLogs entries stay in the log
// after it (so a follower that far behind still catches up by replay).
type SnapshotPolicy struct {
	Threshold    uint64
	Interval     time.Duration
	TrailingLogs uint64
}

// bootstrap tells whether a node with no Raft state makes itself the first
// voter of every group (standalone, or the founder of --bootstrap-expect),
// rather than wait to be added to a cluster it joins (--join). A node
// whose Raft log store was rebuilt never does: it was in a cluster, and
// its groups wait for their leaders (openRaftLogs).
func (rt *Runtime) bootstrap() bool {
	return (len(rt.Join) == 0 || rt.founder.Load()) && !rt.raftLogRebuilt.Load()
}

// SetActiveExpiry switches the active expiry of the shards this node
// leads on or off (DEBUG SET-ACTIVE-EXPIRE); it is on from the start.
func (rt *Runtime) SetActiveExpiry(on bool) { rt.activeExpiryOff.Store(!on) }

// RaftLogDamaged tells whether the node's Raft log store failed with
// on-disk corruption, which the next start with --join rebuilds.
func (rt *Runtime) RaftLogDamaged() bool { return rt.raftLogDamaged.Load() }

// Layout is the data dir's layout.
func (rt *Runtime) Layout() storage.Layout { return storage.Layout{Dir: rt.DataDir} }

// Shard returns shard i's state machine, opened by the store worker.
func (rt *Runtime) Shard(i int) (*storage.Shard, *storage.SnapshotStore, error) {
	st := rt.stores.Load()
	if st == nil || i < 0 || i >= len(st.shards) || st.shards[i] == nil {
		return nil, nil, fmt.Errorf("node: shard %d is not open", i)
	}
	return st.shards[i], st.snaps[i], nil
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

// Remote returns the node's messaging to its peers, opened with the
// cluster listener.
func (rt *Runtime) Remote() (*transport.Remote, error) {
	rt.mu.RLock()
	defer rt.mu.RUnlock()
	if rt.remote == nil {
		return nil, fmt.Errorf("node: the cluster listener is not open")
	}
	return rt.remote, nil
}

// System returns the system group's Raft and state, while it runs.
func (rt *Runtime) System() (*raft.Raft, *cluster.State, error) {
	rt.mu.RLock()
	defer rt.mu.RUnlock()
	if rt.system == nil {
		return nil, nil, fmt.Errorf("node: the system group is not running")
	}
	return rt.system, rt.state, nil
}

// role is the node's role: the one the cluster records for it once it is
// a member, its --role before.
func (rt *Runtime) role() messages.Role {
	if r := messages.Role(rt.recordedRole.Load()); r != messages.Role_ROLE_UNSPECIFIED {
		return r
	}
	return rt.Role
}

func (rt *Runtime) actorSystem() *actor.ActorSystem {
	rt.mu.RLock()
	defer rt.mu.RUnlock()
	return rt.sys
}

// ClusterID is the ID of the cluster this node belongs to ("" before it
// has joined one or bootstrapped).
func (rt *Runtime) ClusterID() string {
	rt.mu.RLock()
	defer rt.mu.RUnlock()
	return rt.clusterID
}

// setClusterID sets the cluster ID; recorded tells whether node.json
// holds it.
func (rt *Runtime) setClusterID(id string, recorded bool) {
	rt.mu.Lock()
	rt.clusterID, rt.clusterIDRecorded = id, recorded
	rt.mu.Unlock()
}

// clusterIDIsRecorded tells whether node.json holds the cluster ID the node
// has.
// recordedClusterID is the cluster ID once node.json holds it, else "".
func (rt *Runtime) recordedClusterID() string {
	rt.mu.RLock()
	defer rt.mu.RUnlock()
	if !rt.clusterIDRecorded {
		return ""
	}
	return rt.clusterID
}

func (rt *Runtime) clusterIDIsRecorded() bool {
	rt.mu.RLock()
	defer rt.mu.RUnlock()
	return rt.clusterIDRecorded
}

func (rt *Runtime) setSystem(r *raft.Raft, st *cluster.State) {
	rt.mu.Lock()
	rt.system, rt.state = r, st
	rt.mu.Unlock()
}

// openStores are the stores the store worker opened.
type openStores struct {
	logs     *storage.RaftLogs
	shards   []*storage.Shard
	snaps    []*storage.SnapshotStore
	throttle *storage.Throttle
	shared   *storage.Stores
	// fail reports a store failure that stops the node (Runtime.OnFault),
	// once per opening of the stores.
	fail func(error)
}

// storeFailed stops the node for err, a store failure (openStores.fail).
func (rt *Runtime) storeFailed(err error) {
	if st := rt.stores.Load(); st != nil {
		st.fail(err)
	}
}

// setStores publishes what the store worker opened; nil when it closes.
func (rt *Runtime) setStores(st *openStores) { rt.stores.Store(st) }

// RaftLog opens a Raft group's log and stable store (storage.SystemGroup,
// or a shard's number) in the node's RaftLogs, opened by the store worker;
// legacy is where the group kept it before (moved in when found).
func (rt *Runtime) RaftLog(group uint32, legacy string) (storage.LogStore, error) {
	st := rt.stores.Load()
	if st == nil {
		return nil, fmt.Errorf("node: the raft log store is not open")
	}
	return st.logs.Group(group, legacy)
}

// setDiskLow records whether node's data dir is below its free-space
// floor.
func (rt *Runtime) setDiskLow(node string, low bool) {
	rt.lowDiskMu.Lock()
	defer rt.lowDiskMu.Unlock()
	if low {
		if rt.lowDisk == nil {
			rt.lowDisk = map[string]bool{}
		}
		rt.lowDisk[node] = true
	} else {
		delete(rt.lowDisk, node)
	}
	rt.anyLowDisk.Store(len(rt.lowDisk) > 0)
}

// diskLowNode names a node whose data dir is below its free-space floor,
// this one first, the first by name after it; "" when there is none.
func (rt *Runtime) diskLowNode() string {
	if !rt.anyLowDisk.Load() {
		return ""
	}
	rt.lowDiskMu.Lock()
	defer rt.lowDiskMu.Unlock()
	if len(rt.lowDisk) == 0 {
		return ""
	}
	if rt.lowDisk[rt.Name] {
		return rt.Name
	}
	return slices.Min(slices.Collect(maps.Keys(rt.lowDisk)))
}

// diskLowHere tells whether this node's data dir is below its free-space
// floor.
func (rt *Runtime) diskLowHere() bool { return rt.diskLowNode() == rt.Name }

// raftLogFailed is closed when the node's Raft log store fails (nil, which
// never is, while the store is not open).
func (rt *Runtime) raftLogFailed() <-chan struct{} {
	st := rt.stores.Load()
	if st == nil {
		return nil
	}
	return st.logs.Failed()
}

// SnapshotThrottleStats returns the counters of the node's snapshot
// throttle (storage.Throttle; zero with no limit); false while the stores
// are not open.
func (rt *Runtime) SnapshotThrottleStats() (storage.ThrottleStats, bool) {
	st := rt.stores.Load()
	if st == nil {
		return storage.ThrottleStats{}, false
	}
	return st.throttle.Stats(), true
}

// ClientStats returns the client port's counters (connections, commands,
// error replies, latencies) since the node started.
func (rt *Runtime) ClientStats() (server.StatsSnapshot, bool) { return rt.clients.Snapshot(), true }

// StoresStats returns the figures of what the node's shard stores share
// (compactions, memtables, block cache); false while they are closed.
func (rt *Runtime) StoresStats() (storage.StoresStats, bool) {
	st := rt.stores.Load()
	if st == nil || st.shared == nil {
		return storage.StoresStats{}, false
	}
	stats := st.shared.Stats()
	stats.Rebuilds = rt.rebuilds.Load()
	stats.ScrubPasses, stats.ScrubTables, stats.ScrubBytes = rt.scrubs.passes.Load(), rt.scrubs.tables.Load(), rt.scrubs.bytes.Load()
	stats.ScrubLast = rt.scrubs.last.Load()
	return stats, true
}

// RaftLogStats returns the counters of the node's Raft log store; false
// while it is not open.
func (rt *Runtime) RaftLogStats() (storage.RaftLogStats, bool) {
	st := rt.stores.Load()
	if st == nil {
		return storage.RaftLogStats{}, false
	}
	return st.logs.Stats(), true
}

func (rt *Runtime) setMux(m *transport.Mux, r, beats *transport.Remote) {
	rt.mu.Lock()
	rt.mux, rt.remote, rt.beatsRemote = m, r, beats
	rt.mu.Unlock()
}

// shardLead is what a node knows of a shard's leadership.
type shardLead struct {
	// sole: this node leads the shard as its only voter, so no other node
	// can lead it and reads need no barrier.
	sole bool
	// leads: this node led the shard when it last looked (every leader
	// change, and every second): a hint, which a read barrier confirms.
	leads bool
	// other is another node this node last heard lead the shard; empty
	// when this node leads it or knows no leader.
	other leaderRef
	// voters is how many voters the group has, as this node last saw
	// its configuration.
	voters int
	// outside: this node is not in the group's configuration, as this
	// node last saw it (notMember): it was removed from the cluster, or
	// is not added (back) yet.
	outside bool
	// current: the replica here holds what it held before its last start
	// or has caught up with a leader since (not the Raft fork's
	// VotesWithheld: a replica that started on empty stores, or whose
	// damaged store was rebuilt, is empty or behind until it has). Only a
	// current replica serves a read-only node's stale reads.
	current bool
}

// leaderRef names a shard's leader on another node.
type leaderRef struct{ id, addr string }

func (rt *Runtime) setLead(shard int, l shardLead) {
	if rt.lead.Load() == nil {
		s := make([]atomic.Pointer[shardLead], rt.Shards)
		rt.lead.CompareAndSwap(nil, &s)
	}
	(*rt.lead.Load())[shard].Store(&l)
}

func (rt *Runtime) shardLead(shard int) shardLead {
	if s := rt.lead.Load(); s != nil {
		if l := (*s)[shard].Load(); l != nil {
			return *l
		}
	}
	return shardLead{}
}

// soleLeader reports whether this node leads shard as its only voter.
func (rt *Runtime) soleLeader(shard int) bool { return rt.shardLead(shard).sole }

// staleReads reports whether this node may serve shard's reads from its
// own replica without a barrier: it is read-only, its replica is current
// (shardLead.current), and it is a member still: in the group's
// configuration as it last saw it, and not told by the coordinator that
// it was removed (removedBy).
func (rt *Runtime) staleReads(shard int) bool {
	if rt.role() != messages.Role_ROLE_READONLY {
		return false
	}
	if l := rt.shardLead(shard); !l.current || l.outside {
		return false
	}
	_, removed := rt.removedBy()
	return !removed
}

// remoteLeader names the other node this node last heard lead shard (an
// empty addr when none): a client command for it can be forwarded there
// at once. The hint can be stale; the leader then refuses and the command
// is tried again through the shard's Raft actor.
func (rt *Runtime) remoteLeader(shard int) leaderRef { return rt.shardLead(shard).other }

func (rt *Runtime) logger() *slog.Logger {
	if rt.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return rt.Log
}

// ask sends msg to the actor at path on node to (without an address:
// locally) and waits for the answer, within ctx and at most askTimeout.
// Another node than to at its address refuses the request
// (transport.ErrOtherNode).
func (rt *Runtime) ask(ctx context.Context, to transport.Peer, path string, msg proto.Message) (proto.Message, error) {
	ctx, cancel := context.WithTimeout(ctx, askTimeout)
	defer cancel()
	if to.Addr == "" {
		sys := rt.actorSystem()
		if sys == nil {
			return nil, fmt.Errorf("node: not running")
		}
		return deliver(rt, sys)(ctx, path, msg)
	}
	remote, err := rt.Remote()
	if err != nil {
		return nil, err
	}
	return remote.Request(ctx, to, path, msg)
}

// leaderPeer is the leader a shard's status names.
func leaderPeer(st *messages.ShardStatusReply) transport.Peer {
	return transport.Peer{Name: st.LeaderId, Addr: st.LeaderAddr}
}

// memberPeer is a cluster member at the cluster address recorded for it.
func memberPeer(m *messages.ClusterMember) transport.Peer {
	return transport.Peer{Name: m.Name, Addr: m.ClusterAddr}
}

// recordClusterID writes the cluster's ID into node.json, once.
func (rt *Runtime) recordClusterID(id string) error { return rt.writeClusterID(id, false) }

func (rt *Runtime) setDataDirID(id string) { rt.dataDirID.Store(&id) }

// DataDirID is the ID of the data dir the node runs on ("" before the
// store worker has opened it).
func (rt *Runtime) DataDirID() string { return loadString(&rt.dataDirID) }

// foundingWait is why this node, of --bootstrap-expect, is in no cluster
// yet, or "" (also once it is in one).
func (rt *Runtime) foundingWait() string {
	if rt.ClusterID() != "" {
		return ""
	}
	return loadString(&rt.founding)
}

// loadString is the string p points to, or "".
func loadString(p *atomic.Pointer[string]) string {
	if s := p.Load(); s != nil {
		return *s
	}
	return ""
}

// recordFounding makes this node the founder of a new cluster of ID id
// (--bootstrap-expect): node.json records both before any group
// bootstraps, so a restart finishes what this started.
func (rt *Runtime) recordFounding(id string) error {
	if err := rt.writeClusterID(id, true); err != nil {
		return err
	}
	rt.founder.Store(true)
	return nil
}

func (rt *Runtime) writeClusterID(id string, founder bool) error {
	l := rt.Layout()
	ident, ok, err := l.ReadIdentity()
	if err != nil {
		return err
	}
	if !ok {
		ident = storage.Identity{Name: rt.Name, Shards: rt.Shards}
	}
	if ident.ClusterID != id || (founder && !ident.Founder) {
		ident.ClusterID, ident.Founder = id, ident.Founder || founder
		if err := l.WriteIdentity(ident); err != nil {
			return err
		}
	}
	rt.setClusterID(id, true)
	return nil
}
