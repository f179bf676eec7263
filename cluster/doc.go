// Package cluster holds the cluster's decisions as plain functions and
// types, with no I/O: the system group's replicated state (State, a
// raft.FSM over messages.ClusterState), whether a shard's log still bridges
// a joining node's gap (WALBridgeable), and whether a removal keeps every
// shard's quorum (CheckRemoval). The actors in package actors do the I/O
// around them.
package cluster

import "errors"

// Errors of the cluster package.
var (
	ErrOtherCluster   = errors.New("cluster: node belongs to another cluster")
	ErrShardCount     = errors.New("cluster: node has a different shard count")
	ErrQuorum         = errors.New("cluster: removal would leave a Raft group without quorum")
	ErrUnknownNode    = errors.New("cluster: no such node")
	ErrBadCommand     = errors.New("cluster: bad system command")
	ErrAlreadyInited  = errors.New("cluster: cluster already initialised")
	ErrLastVoter      = errors.New("cluster: cannot remove a Raft group's last voter")
	ErrOpInFlight     = errors.New("cluster: another removal is in progress")
	ErrNotCoordinator = errors.New("cluster: this node is not the coordinator")
	ErrUnreachable    = errors.New("cluster: node does not answer on its cluster address")
	ErrRoleChange     = errors.New("cluster: role change not made")
	ErrACLChanged     = errors.New("cluster: the ACL users changed meanwhile")
)
