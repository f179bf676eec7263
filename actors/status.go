package actors

// Status: what the node reports of itself and its shards, gathered from
// every raft-<i> (messages.ShardStatus) in parallel. The HTTP endpoint
// (/v1/status, /readyz, /metrics) and a `node status` command share it.

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coppice-kv/coppice/messages"
)

// DefaultStatusTimeout bounds a status request when its context has no
// deadline.
const DefaultStatusTimeout = 5 * time.Second

// Modes and sync states the status reports.
const (
	ModeStandalone = "standalone"
	ModeCluster    = "cluster"

	SyncSynced     = "synced"
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
}

// NodeStatus is one member of the cluster as this node sees it.
type NodeStatus struct {
	Name   string `json:"name"`
	Status string `json:"status"` // alive
	Role   string `json:"role"`
}

// ShardStatus is one shard's Raft state on this node.
type ShardStatus struct {
	ID           int            `json:"id"`
	Leader       string         `json:"leader"`
	LeaderAddr   string         `json:"leader_addr,omitempty"`
	State        string         `json:"state"` // leader, follower, candidate, shutdown; unknown if it did not answer
	Term         uint64         `json:"term"`
	FirstIndex   uint64         `json:"first_index"`
	LastIndex    uint64         `json:"last_index"`
	CommitIndex  uint64         `json:"commit_index"`
	AppliedIndex uint64         `json:"applied_index"`
	Members      []MemberStatus `json:"members"`
	// Error is set when the shard did not answer, or answered in part.
	Error string `json:"error,omitempty"`
}

// MemberStatus is one server of a shard's Raft configuration.
type MemberStatus struct {
	Node     string `json:"node"`
	Suffrage string `json:"suffrage"` // voter, nonvoter, staging
	// AppliedIndex is known for this node only (null for the others).
	AppliedIndex *uint64 `json:"applied_index"`
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
	}
	return true, ""
}

// NotReady lists the shards that are not Ready, with the reasons.
func (s *Status) NotReady() []ShardReadiness {
	var out []ShardReadiness
	for i := range s.Shards {
		if ok, why := s.Shards[i].Ready(); !ok {
			out = append(out, ShardReadiness{ID: s.Shards[i].ID, Reason: why})
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
	return st, nil
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
		return out, nil
	case <-ctx.Done():
		if ctx.Err() == context.DeadlineExceeded {
			// The futures share the deadline: they end now.
			<-done
			return out, nil
		}
		return nil, fmt.Errorf("node: status: %w", ctx.Err())
	}
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
	s.CommitIndex, s.AppliedIndex = r.CommitIndex, r.AppliedIndex
	s.Error = r.Error
	for _, m := range r.Configuration {
		ms := MemberStatus{Node: m.Id, Suffrage: suffrageName(m.Suffrage)}
		if m.Id == self {
			applied := r.AppliedIndex
			ms.AppliedIndex = &applied
		}
		s.Members = append(s.Members, ms)
	}
	return s
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
