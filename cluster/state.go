package cluster

import (
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/coppice-kv/coppice/messages"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
)

// State is the system group's state machine: the cluster ID, the shard
// count, the members and the journal of membership operations. Every
// command is idempotent, so a coordinator that retries a step after a
// crash or a leader change changes nothing the second time.
type State struct {
	mu sync.RWMutex
	st *messages.ClusterState
	// OnACL, if set, is told the ACL users whenever they change: by an
	// entry, or by a snapshot restored. It runs on Raft's FSM goroutine.
	OnACL func(version uint64, users []string)
}

// NewState is an empty state (no cluster yet).
func NewState() *State { return &State{st: &messages.ClusterState{}} }

// Get returns a copy of the state.
func (s *State) Get() *messages.ClusterState {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return proto.Clone(s.st).(*messages.ClusterState)
}

// Apply applies one log entry (raft.FSM). The result is the op id for
// put_op, the new version for acl_update, or an error.
func (s *State) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	var c messages.SystemCommand
	if err := proto.Unmarshal(l.Data, &c); err != nil {
		return fmt.Errorf("%w: entry %d: %v", ErrBadCommand, l.Index, err)
	}
	s.mu.Lock()
	res := Step(s.st, &c)
	version, users := s.st.AclVersion, slices.Clone(s.st.AclUsers)
	s.mu.Unlock()
	if _, ok := c.Cmd.(*messages.SystemCommand_AclUpdate); ok && s.OnACL != nil {
		if _, failed := res.(error); !failed {
			s.OnACL(version, users)
		}
	}
	return res
}

// Step applies c to st in place. It is Apply without Raft, for tests and
// for planning.
func Step(st *messages.ClusterState, c *messages.SystemCommand) any {
	switch c := c.Cmd.(type) {
	case *messages.SystemCommand_Init:
		if st.ClusterId != "" {
			if st.ClusterId == c.Init.ClusterId {
				return nil
			}
			return fmt.Errorf("%w: %s", ErrAlreadyInited, st.ClusterId)
		}
		st.ClusterId, st.Shards = c.Init.ClusterId, c.Init.Shards
		if c.Init.First != nil {
			putMember(st, c.Init.First)
		}
	case *messages.SystemCommand_PutMember:
		putMember(st, c.PutMember)
	case *messages.SystemCommand_DeleteMember:
		st.Members = slices.DeleteFunc(st.Members, func(m *messages.ClusterMember) bool { return m.Name == c.DeleteMember })
	case *messages.SystemCommand_PutOp:
		op := c.PutOp
		if op.Id == 0 {
			// A new op: one per node at a time; asking again returns
			// the op already in the journal.
			for _, o := range st.Ops {
				if o.Node.GetName() == op.Node.GetName() {
					return o.Id
				}
			}
			st.NextOp++
			op.Id = st.NextOp
			st.Ops = append(st.Ops, op)
			return op.Id
		}
		for i, o := range st.Ops {
			if o.Id == op.Id {
				st.Ops[i] = op
				return op.Id
			}
		}
		return fmt.Errorf("%w: no op %d", ErrBadCommand, op.Id)
	case *messages.SystemCommand_DeleteOp:
		st.Ops = slices.DeleteFunc(st.Ops, func(o *messages.MembershipOp) bool { return o.Id == c.DeleteOp })
	case *messages.SystemCommand_ShardDone:
		for _, o := range st.Ops {
			if o.Id == c.ShardDone.Op && !slices.Contains(o.DoneShards, c.ShardDone.Shard) {
				o.DoneShards = append(o.DoneShards, c.ShardDone.Shard)
			}
		}
	case *messages.SystemCommand_Tombstone:
		if !slices.Contains(st.Removed, c.Tombstone) {
			st.Removed = append(st.Removed, c.Tombstone)
		}
	case *messages.SystemCommand_AclUpdate:
		// All or nothing, and only on the users the change was made
		// from: a concurrent change came first otherwise.
		if c.AclUpdate.FromVersion != st.AclVersion {
			return &ACLChangedError{Version: st.AclVersion, From: c.AclUpdate.FromVersion}
		}
		st.AclUsers = slices.Clone(c.AclUpdate.Users)
		st.AclVersion++
		return st.AclVersion
	case *messages.SystemCommand_ClearTombstone:
		st.Removed = slices.DeleteFunc(st.Removed, func(n string) bool { return n == c.ClearTombstone })
	default:
		return fmt.Errorf("%w: empty command", ErrBadCommand)
	}
	return nil
}

func putMember(st *messages.ClusterState, m *messages.ClusterMember) {
	for i, old := range st.Members {
		if old.Name == m.Name {
			st.Members[i] = m
			return
		}
	}
	st.Members = append(st.Members, m)
}

// Member returns a copy of the member named name, or nil: Get without
// copying the whole state.
func (s *State) Member(name string) *messages.ClusterMember {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if m := Member(s.st, name); m != nil {
		return proto.Clone(m).(*messages.ClusterMember)
	}
	return nil
}

// Member returns the member named name, or nil.
func Member(st *messages.ClusterState, name string) *messages.ClusterMember {
	for _, m := range st.Members {
		if m.Name == name {
			return m
		}
	}
	return nil
}

// OpFor returns the journal's op for the node named name, or nil.
func OpFor(st *messages.ClusterState, name string) *messages.MembershipOp {
	for _, o := range st.Ops {
		if o.Node.GetName() == name {
			return o
		}
	}
	return nil
}

// Snapshot captures the state (raft.FSM).
func (s *State) Snapshot() (raft.FSMSnapshot, error) {
	b, err := proto.Marshal(s.Get())
	if err != nil {
		return nil, err
	}
	return stateSnapshot(b), nil
}

// Restore replaces the state with a snapshot's (raft.FSM).
func (s *State) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 64<<20))
	if err != nil {
		return err
	}
	st := &messages.ClusterState{}
	if err := proto.Unmarshal(b, st); err != nil {
		return fmt.Errorf("cluster: restore: %w", err)
	}
	s.mu.Lock()
	s.st = st
	s.mu.Unlock()
	if s.OnACL != nil && st.AclVersion > 0 {
		s.OnACL(st.AclVersion, slices.Clone(st.AclUsers))
	}
	return nil
}

type stateSnapshot []byte

func (b stateSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(b); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (stateSnapshot) Release() {}

// ACLChangedError refuses an ACL change made from another version of the
// users than the current one.
type ACLChangedError struct{ Version, From uint64 }

func (e *ACLChangedError) Error() string {
	return fmt.Sprintf("%v: version %d, not %d", ErrACLChanged, e.Version, e.From)
}

func (e *ACLChangedError) Is(target error) bool { return target == ErrACLChanged }
