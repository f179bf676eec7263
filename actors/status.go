package actors

// Status: what the node reports of itself and its shards, gathered from
// every raft-<i> (messages.ShardStatus) in parallel. The HTTP endpoint
// (/v1/status, /readyz, /metrics) and a `node status` command share it.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coppice-kv/coppice/messages"
	"google.golang.org/protobuf/proto"
)

// DefaultStatusTimeout bounds a status request when its context has no
// deadline.
const DefaultStatusTimeout = 5 * time.Second

// Modes and sync states the status reports.
const (
	ModeStandalone = "standalone"
	ModeCluster    = "cluster"

	SyncSynced     = "synced"
	SyncSyncing    = "syncing"
	SyncNotStarted = "not_started"
)

// StatusInfo is what the status says of the node that its actors do not
// know (yet): its name, shard count, role and seeds.
type StatusInfo struct {
	Name   string
	Shards int
	// Role is voter, replica or readonly.
	Role string
	// Join are the seeds the node was started with; none means standalone.
	Join []string
}

// Status is the node's status (/v1/status).
type Status struct {
	Node string `json:"node"`
	// Mode is standalone, or cluster when the node was given seeds.
	Mode string `json:"mode"`
	// SyncStatus is synced when every shard's data is in sync; a node
	// that joins is not_started until the cluster manager reports.
	SyncStatus string        `json:"sync_status"`
	Nodes      []NodeStatus  `json:"nodes"`
	Shards     []ShardStatus `json:"shards"`
	// The cluster, as its coordinator reports it (absent when it did not
	// answer; ClusterError says why).
	ClusterID   string      `json:"cluster_id,omitempty"`
	Coordinator string      `json:"coordinator,omitempty"`
	Syncs       []SyncState `json:"syncs,omitempty"`
	Operations  []Operation `json:"operations,omitempty"`
	// SystemGroup is the system group's configuration as the
	// coordinator has it: the voters are the nodes that elect it.
	SystemGroup  []MemberStatus `json:"system_group,omitempty"`
	ClusterError string         `json:"cluster_error,omitempty"`
	// Removed: the cluster's coordinator told this node that it removed
	// it, and it serves no shard until an operator adds it back (the rest
	// of the cluster part is that coordinator's report).
	Removed bool `json:"removed,omitempty"`
}

// NodeStatus is one node of the cluster as gossip and the cluster state
// see it.
type NodeStatus struct {
	Name   string `json:"name"`
	Status string `json:"status"` // alive, failed, left, leaving, unknown
	Role   string `json:"role"`
	// Member is true once the node is in the cluster state (every shard
	// synced).
	Member      bool   `json:"member"`
	ClusterAddr string `json:"cluster_addr,omitempty"`
	ClientAddr  string `json:"client_addr,omitempty"`
	DownSinceMs int64  `json:"down_since_ms,omitempty"`
	// DiskLow: its data dir has less free space than its
	// --min-free-disk-mib, and the cluster refuses writes that free
	// nothing.
	DiskLow bool `json:"disk_low,omitempty"`
}

// SyncState is one shard's sync to one node.
type SyncState struct {
	Node          string `json:"node"`
	Shard         uint32 `json:"shard"`
	State         string `json:"state"` // not_started, copying, catching_up, synced, failed
	Method        string `json:"method,omitempty"`
	Attempt       uint32 `json:"attempt"`
	BytesDone     uint64 `json:"bytes_done"`
	BytesTotal    uint64 `json:"bytes_total"`
	TargetApplied uint64 `json:"target_applied"`
	LeaderCommit  uint64 `json:"leader_commit"`
	Error         string `json:"error,omitempty"`
	// The attempt's start and end (synced or failed) in Unix
	// milliseconds; finished_ms is 0 while it runs.
	StartedMs  int64 `json:"started_ms"`
	FinishedMs int64 `json:"finished_ms"`
}

// Operation is a membership operation in the journal.
type Operation struct {
	ID         uint64   `json:"id"`
	Kind       string   `json:"kind"` // add_node, remove_node, demote_node
	Node       string   `json:"node"`
	Cause      string   `json:"cause"`
	DoneShards []uint32 `json:"done_shards"`
}

// ShardStatus is one shard's Raft state on this node.
type ShardStatus struct {
	ID           int    `json:"id"`
	Leader       string `json:"leader"`
	LeaderAddr   string `json:"leader_addr,omitempty"`
	State        string `json:"state"` // leader, follower, candidate, shutdown; unknown if it did not answer
	Term         uint64 `json:"term"`
	FirstIndex   uint64 `json:"first_index"`
	LastIndex    uint64 `json:"last_index"`
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
	// TermStartIndex, on a leader, is where its log stood when it took
	// the lead in this term: it is not ready before it has applied that.
	TermStartIndex uint64 `json:"term_start_index,omitempty"`
	// VotesWithheld: the group here started on empty stores (a new or
	// lost data dir) and has not caught up with a leader; it grants no
	// vote until it has, and is not ready.
	VotesWithheld bool           `json:"votes_withheld,omitempty"`
	Members       []MemberStatus `json:"members"`
	// Error is set when the shard did not answer, or answered in part.
	Error string `json:"error,omitempty"`
	// FilterError is why the shard's key filter could not be built (its
	// reads then all go to the store); the shard itself serves.
	FilterError string `json:"filter_error,omitempty"`
}

// MemberStatus is one server of a shard's Raft configuration.
type MemberStatus struct {
	Node     string `json:"node"`
	Suffrage string `json:"suffrage"` // voter, nonvoter, staging
	// Address is the member's cluster address in the configuration: the
	// one the shard's leader sends to.
	Address string `json:"address"`
	// AppliedIndex is the member's own answer (null when it did not
	// answer); Lag is how far it is behind the most advanced member.
	AppliedIndex *uint64 `json:"applied_index"`
	Lag          *uint64 `json:"lag,omitempty"`
	// SilentMs is, when this node leads the group, how long the member
	// has not answered it; membership changes do not count on a voter
	// silent for 2 s or more.
	SilentMs *uint64 `json:"silent_ms,omitempty"`
}

// Leaders are the shards' leaders in shard order ("" for a shard
// without one).
func (s *Status) Leaders() []string {
	out := make([]string, len(s.Shards))
	for i, sh := range s.Shards {
		out[i] = sh.Leader
	}
	return out
}

// Members are the names of the nodes that are cluster members, sorted.
func (s *Status) Members() []string {
	var out []string
	for _, n := range s.Nodes {
		if n.Member {
			out = append(out, n.Name)
		}
	}
	slices.Sort(out)
	return out
}

// WithSuffrage are the shard's members of suffrage kind (voter, nonvoter,
// staging), sorted.
func (s *ShardStatus) WithSuffrage(kind string) []string { return withSuffrage(s.Members, kind) }

// SystemGroupWith are the system group's members of suffrage kind, sorted.
func (s *Status) SystemGroupWith(kind string) []string { return withSuffrage(s.SystemGroup, kind) }

func withSuffrage(members []MemberStatus, kind string) []string {
	var out []string
	for _, m := range members {
		if m.Suffrage == kind {
			out = append(out, m.Node)
		}
	}
	slices.Sort(out)
	return out
}

// Ready reports whether the shard can serve: it has a leader and has
// applied everything committed; if not, reason says why.
func (s *ShardStatus) Ready() (ok bool, reason string) {
	switch {
	case s.Error != "":
		return false, s.Error
	case s.Leader == "":
		return false, "no leader"
	case s.AppliedIndex < s.CommitIndex:
		return false, fmt.Sprintf("applied index %d is behind commit index %d", s.AppliedIndex, s.CommitIndex)
	case s.State == "leader" && s.AppliedIndex < s.TermStartIndex:
		return false, fmt.Sprintf("leader catching up: applied index %d, its log was at %d when it took the lead", s.AppliedIndex, s.TermStartIndex)
	case s.VotesWithheld:
		return false, "started on an empty data dir and not yet caught up with a leader: it grants no vote"
	}
	return true, ""
}

// NotReady lists the shards that are not Ready, with the reasons; a
// shard whose members do not include this node is not ready either
// (errNotMember), nor is any shard of a node the cluster removed
// (errRemoved).
func (s *Status) NotReady() []ShardReadiness {
	var out []ShardReadiness
	for i := range s.Shards {
		sh := &s.Shards[i]
		ok, why := sh.Ready()
		if s.Removed {
			ok, why = false, errRemoved
		} else if s.Node != "" && sh.Error == "" && len(sh.Members) > 0 && !slices.ContainsFunc(sh.Members, func(m MemberStatus) bool { return m.Node == s.Node }) {
			ok, why = false, errNotMember
		}
		if !ok {
			out = append(out, ShardReadiness{ID: sh.ID, Reason: why})
		}
	}
	return out
}

// ShardReadiness names a shard that is not ready and why.
type ShardReadiness struct {
	ID     int    `json:"id"`
	Reason string `json:"reason"`
}

// Status gathers the node's status: see GatherStatus.
func (n *Node) Status(ctx context.Context, info StatusInfo) (*Status, error) {
	return GatherStatus(ctx, n.System, info)
}

// GatherStatus asks every shard of the node running in sys for its status,
// all in parallel, each bounded by ctx's deadline (DefaultStatusTimeout
// without one). A shard that does not answer is reported with its error;
// the error returned is for a bad info or an ended ctx only.
func GatherStatus(ctx context.Context, sys *actor.ActorSystem, info StatusInfo) (*Status, error) {
	if info.Shards < 1 {
		return nil, fmt.Errorf("node: status: %d shards", info.Shards)
	}
	replies, err := ShardStatuses(ctx, sys, info.Shards)
	if err != nil {
		return nil, err
	}
	st := &Status{
		Node:       info.Name,
		Mode:       ModeStandalone,
		SyncStatus: SyncSynced,
		Nodes:      []NodeStatus{{Name: info.Name, Status: "alive", Role: info.Role}},
		Shards:     make([]ShardStatus, len(replies)),
	}
	if len(info.Join) > 0 {
		st.Mode, st.SyncStatus = ModeCluster, SyncNotStarted
	}
	for i, r := range replies {
		st.Shards[i] = shardStatus(i, info.Name, r.Reply, r.Err)
	}
	if _, ok := sys.ProcessRegistry.GetLocal(ManagerPath); ok {
		addCluster(st, clusterStatus(ctx, sys))
	}
	return st, nil
}

// addApplied fills every shard member's applied index and lag from the
// members' own answers.
func addApplied(st *Status, applied []*messages.MemberApplied) {
	type key struct {
		shard uint32
		node  string
	}
	idx := map[key]uint64{}
	best := map[uint32]uint64{}
	for _, a := range applied {
		if a.Error != "" {
			continue
		}
		idx[key{a.Shard, a.Node}] = a.AppliedIndex
		best[a.Shard] = max(best[a.Shard], a.AppliedIndex)
	}
	for i := range st.Shards {
		sh := &st.Shards[i]
		for j := range sh.Members {
			m := &sh.Members[j]
			v, ok := idx[key{uint32(sh.ID), m.Node}]
			if !ok {
				continue
			}
			lag := best[uint32(sh.ID)] - v
			m.AppliedIndex, m.Lag = &v, &lag
		}
	}
}

// clusterStatus asks the manager (which asks the coordinator).
func clusterStatus(ctx context.Context, sys *actor.ActorSystem) *messages.NodeStatusReply {
	r, err := askManager[*messages.NodeStatusReply](ctx, sys, &messages.NodeStatusRequest{})
	if err != nil {
		return &messages.NodeStatusReply{Error: err.Error()}
	}
	return r
}

// askManager asks this node's manager msg and wants an answer of type T
// before ctx's deadline (DefaultStatusTimeout without one).
func askManager[T proto.Message](ctx context.Context, sys *actor.ActorSystem, msg proto.Message) (T, error) {
	var zero T
	timeout := DefaultStatusTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	res, err := Ask(ctx, sys, actor.NewPID(sys.Address(), ManagerPath), msg, timeout)
	if err != nil {
		return zero, err
	}
	r, ok := res.(T)
	if !ok {
		return zero, fmt.Errorf("manager answered %T", res)
	}
	return r, nil
}

// addCluster fills st's cluster part from the coordinator's report.
func addCluster(st *Status, cs *messages.NodeStatusReply) {
	st.Removed = cs.Removed
	if cs.Error != "" {
		st.ClusterError = cs.Error
		return
	}
	if cs.ClusterId == "" {
		return // not initialised yet: the node's own view stands
	}
	st.ClusterID, st.Coordinator = cs.ClusterId, cs.Coordinator
	st.Nodes = st.Nodes[:0]
	members := 0
	self := NodeStatus{}
	for _, n := range cs.Nodes {
		ns := NodeStatus{Name: n.Name, Status: n.Status, Role: n.Role, Member: n.Member,
			ClusterAddr: n.ClusterAddr, ClientAddr: n.ClientAddr, DownSinceMs: n.DownSinceMs, DiskLow: n.DiskLow}
		if ns.Member {
			members++
		}
		if ns.Name == st.Node {
			self = ns
		}
		st.Nodes = append(st.Nodes, ns)
	}
	for _, s := range cs.Syncs {
		st.Syncs = append(st.Syncs, SyncState{Node: s.Node, Shard: s.Shard,
			State: strings.ToLower(strings.TrimPrefix(s.State.String(), "SYNC_")), Method: s.Method, Attempt: s.Attempt,
			BytesDone: s.BytesDone, BytesTotal: s.BytesTotal,
			TargetApplied: s.TargetApplied, LeaderCommit: s.LeaderCommit, Error: s.Error,
			StartedMs: s.StartedMs, FinishedMs: s.FinishedMs})
	}
	syncing := false
	for _, o := range cs.Ops {
		st.Operations = append(st.Operations, Operation{ID: o.Id, Kind: strings.ToLower(o.Kind.String()),
			Node: o.Node.GetName(), Cause: o.Cause, DoneShards: o.DoneShards})
		syncing = syncing || (o.Node.GetName() == st.Node && o.Kind == messages.OpKind_ADD_NODE)
	}
	if members > 1 {
		st.Mode = ModeCluster
	}
	addApplied(st, cs.Applied)
	for _, m := range cs.SystemGroup {
		st.SystemGroup = append(st.SystemGroup, memberStatus(m))
	}
	switch {
	case self.Member:
		st.SyncStatus = SyncSynced
	case syncing:
		st.SyncStatus = SyncSyncing
	default:
		st.SyncStatus = SyncNotStarted
	}
}

// ShardReply is one shard's answer to messages.ShardStatus, or why there
// is none.
type ShardReply struct {
	Reply *messages.ShardStatusReply // nil when Err is set
	Err   error
}

// ShardStatuses sends messages.ShardStatus to every shard's Raft actor at
// once and collects the replies in shard order, each bounded by ctx's
// deadline (DefaultStatusTimeout without one). It returns early, with
// ctx's error, only if ctx ends before its deadline (it is canceled).
func ShardStatuses(ctx context.Context, sys *actor.ActorSystem, shards int) ([]ShardReply, error) {
	timeout := DefaultStatusTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	if timeout <= 0 {
		return nil, fmt.Errorf("node: status: %w", context.DeadlineExceeded)
	}
	out := make([]ShardReply, shards)
	var wg sync.WaitGroup
	for i := range shards {
		f := sys.Root.RequestFuture(actor.NewPID(sys.Address(), RaftPath(i)), &messages.ShardStatus{}, timeout)
		wg.Go(func() {
			res, err := f.Result()
			switch r := res.(type) {
			case nil:
				if err == nil {
					err = fmt.Errorf("no reply")
				}
				out[i].Err = fmt.Errorf("shard %d: status: %w", i, err)
			case *messages.ShardStatusReply:
				out[i].Reply = r
			default:
				out[i].Err = fmt.Errorf("shard %d: status: answered %T", i, res)
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		if ctx.Err() == context.DeadlineExceeded {
			// The futures share the deadline: they end now.
			<-done
			return out, nil
		}
	}
	// Canceled, even if every shard answered first (a shard that is not
	// there answers at once, as a dead letter).
	if errors.Is(ctx.Err(), context.Canceled) {
		return nil, fmt.Errorf("node: status: %w", ctx.Err())
	}
	return out, nil
}

func shardStatus(id int, self string, r *messages.ShardStatusReply, err error) ShardStatus {
	s := ShardStatus{ID: id, State: "unknown", Members: []MemberStatus{}}
	if err != nil {
		s.Error = err.Error()
		return s
	}
	s.Leader, s.LeaderAddr = r.LeaderId, r.LeaderAddr
	s.State = strings.ToLower(r.State)
	s.Term, s.FirstIndex, s.LastIndex = r.Term, r.FirstIndex, r.LastIndex
	s.CommitIndex, s.AppliedIndex, s.TermStartIndex = r.CommitIndex, r.AppliedIndex, r.TermStartIndex
	s.VotesWithheld = r.VotesWithheld
	s.Error, s.FilterError = r.Error, r.FilterError
	for _, m := range r.Configuration {
		ms := memberStatus(m)
		if m.Id == self {
			applied := r.AppliedIndex
			ms.AppliedIndex = &applied
		}
		s.Members = append(s.Members, ms)
	}
	return s
}

// memberStatus is a Raft configuration's server, as status shows it.
func memberStatus(m *messages.RaftServer) MemberStatus {
	return MemberStatus{Node: m.Id, Suffrage: suffrageName(m.Suffrage), Address: m.Address, SilentMs: m.SilentMs}
}

func suffrageName(s messages.Suffrage) string {
	switch s {
	case messages.Suffrage_VOTER:
		return "voter"
	case messages.Suffrage_NONVOTER:
		return "nonvoter"
	case messages.Suffrage_STAGING:
		return "staging"
	}
	return "unknown"
}
