package cluster

import (
	"fmt"
	"slices"
)

// WALBridgeable reports whether a node whose shard has applied up to
// targetIndex can catch up by replaying the leader's log, whose first entry
// is leaderFirstIndex: every entry after targetIndex must still be there.
// An empty log (leaderFirstIndex 0) bridges any gap from its snapshot, so
// Raft sends the snapshot: that is not a bridge unless the target is
// already at or past it, which only the leader's last index can tell, so
// it counts as not bridgeable.
func WALBridgeable(targetIndex, leaderFirstIndex uint64) bool {
	if leaderFirstIndex == 0 {
		return false
	}
	return targetIndex+1 >= leaderFirstIndex
}

// NeedsResync reports whether a shard on a target must be copied from the
// leader rather than replayed: its applied index does not reach the
// leader's log.
func NeedsResync(targetApplied, leaderFirstIndex, leaderLastIndex uint64) bool {
	if targetApplied >= leaderLastIndex {
		return false
	}
	return !WALBridgeable(targetApplied, leaderFirstIndex)
}

// CheckRemoval reports whether removing node from a shard whose voters are
// voters leaves it able to make progress: the remaining voters must not be
// empty, and those alive must be a majority of them. alive tells which
// nodes gossip sees alive.
func CheckRemoval(shard int, voters []string, node string, alive func(string) bool) error {
	if !slices.Contains(voters, node) {
		return nil // a non-voter never counts toward quorum
	}
	rest := slices.DeleteFunc(slices.Clone(voters), func(v string) bool { return v == node })
	if len(rest) == 0 {
		return fmt.Errorf("%w: shard %d, node %s", ErrLastVoter, shard, node)
	}
	up := 0
	for _, v := range rest {
		if alive(v) {
			up++
		}
	}
	if up <= len(rest)/2 {
		return fmt.Errorf("%w: shard %d would keep %d voters of which %d are alive", ErrQuorum, shard, len(rest), up)
	}
	return nil
}
