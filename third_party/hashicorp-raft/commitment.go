// Copyright IBM Corp. 2013, 2025
// SPDX-License-Identifier: MPL-2.0

package raft

import (
	"sort"
	"sync"
)

// Commitment is used to advance the leader's commit index. The leader and
// replication goroutines report in newly written entries with match(), and
// this notifies on commitCh when the commit index has advanced.
type commitment struct {
	// protects matchIndexes and commitIndex
	sync.Mutex
	// notified when commitIndex increases
	commitCh chan struct{}
	// voter ID to log index: the server stores up through this log entry
	matchIndexes map[ServerID]uint64
	// coppice: the same for the configuration's non-voters, so a
	// non-voter made a voter counts with what it was known to store. Its
	// answer to the entry that promotes it can come before the leader has
	// the new configuration here (the leader replicates while it writes),
	// and was dropped: with no entry after it, the promoted voter counted
	// as storing nothing, and a group that needed its vote never
	// committed the promotion or what came before it.
	nonvoterMatch map[ServerID]uint64
	// coppice: matchWake, once FollowerMatches asked for it, is closed at
	// the next change of a server's match index (or of the configuration),
	// and cleared; nil while nobody waits, so matching costs nothing more.
	matchWake chan struct{}
	// a quorum stores up through this log entry. monotonically increases.
	commitIndex uint64
	// the first index of this leader's term: this needs to be replicated to a
	// majority of the cluster before this leader may mark anything committed
	// (per Raft's commitment rule)
	startIndex uint64
}

// newCommitment returns a commitment struct that notifies the provided
// channel when log entries have been committed. A new commitment struct is
// created each time this server becomes leader for a particular term.
// 'configuration' is the servers in the cluster.
// 'startIndex' is the first index created in this term (see
// its description above).
func newCommitment(commitCh chan struct{}, configuration Configuration, startIndex uint64) *commitment {
	matchIndexes := make(map[ServerID]uint64)
	nonvoterMatch := make(map[ServerID]uint64)
	for _, server := range configuration.Servers {
		if server.Suffrage == Voter {
			matchIndexes[server.ID] = 0
		} else {
			nonvoterMatch[server.ID] = 0
		}
	}
	return &commitment{
		commitCh:      commitCh,
		matchIndexes:  matchIndexes,
		nonvoterMatch: nonvoterMatch,
		commitIndex:   0,
		startIndex:    startIndex,
	}
}

// Called when a new cluster membership configuration is created: it will be
// used to determine commitment from now on. 'configuration' is the servers in
// the cluster.
func (c *commitment) setConfiguration(configuration Configuration) {
	c.Lock()
	defer c.Unlock()
	oldMatchIndexes, oldNonvoterMatch := c.matchIndexes, c.nonvoterMatch
	c.matchIndexes = make(map[ServerID]uint64)
	c.nonvoterMatch = make(map[ServerID]uint64)
	for _, server := range configuration.Servers {
		// A server that leaves the configuration is forgotten: added
		// back, it counts from its answers from then on.
		known := max(oldMatchIndexes[server.ID], oldNonvoterMatch[server.ID]) // defaults to 0
		if server.Suffrage == Voter {
			c.matchIndexes[server.ID] = known
		} else {
			c.nonvoterMatch[server.ID] = known
		}
	}
	c.wakeMatches()
	c.recalculate()
}

// wakeMatches closes matchWake, if anyone waits on it (coppice). Must be
// called with the lock held.
func (c *commitment) wakeMatches() {
	if c.matchWake != nil {
		close(c.matchWake)
		c.matchWake = nil
	}
}

// matchesOf returns the match index of each of ids (a voter's or a
// non-voter's; 0 for a server it does not know) and a channel closed at the
// next change (coppice, for Raft.FollowerMatches).
func (c *commitment) matchesOf(ids []ServerID) (map[ServerID]uint64, <-chan struct{}) {
	c.Lock()
	defer c.Unlock()
	out := make(map[ServerID]uint64, len(ids))
	for _, id := range ids {
		out[id] = max(c.matchIndexes[id], c.nonvoterMatch[id])
	}
	if c.matchWake == nil {
		c.matchWake = make(chan struct{})
	}
	return out, c.matchWake
}

// Called by leader after commitCh is notified
func (c *commitment) getCommitIndex() uint64 {
	c.Lock()
	defer c.Unlock()
	return c.commitIndex
}

// Match is called once a server completes writing entries to disk: either the
// leader has written the new entry or a follower has replied to an
// AppendEntries RPC. The given server's disk agrees with this server's log up
// through the given index.
func (c *commitment) match(server ServerID, matchIndex uint64) {
	c.Lock()
	defer c.Unlock()
	if prev, hasVote := c.matchIndexes[server]; hasVote && matchIndex > prev {
		c.matchIndexes[server] = matchIndex
		c.wakeMatches()
		c.recalculate()
		return
	}
	if prev, ok := c.nonvoterMatch[server]; ok && matchIndex > prev {
		// coppice: kept for a promotion (nonvoterMatch). Only for a
		// server of the configuration: a late answer from one removed
		// must not count for it once it is added back.
		c.nonvoterMatch[server] = matchIndex
		c.wakeMatches()
	}
}

// Internal helper to calculate new commitIndex from matchIndexes.
// Must be called with lock held.
func (c *commitment) recalculate() {
	if len(c.matchIndexes) == 0 {
		return
	}

	matched := make([]uint64, 0, len(c.matchIndexes))
	for _, idx := range c.matchIndexes {
		matched = append(matched, idx)
	}
	sort.Sort(uint64Slice(matched))
	quorumMatchIndex := matched[(len(matched)-1)/2]

	if quorumMatchIndex > c.commitIndex && quorumMatchIndex >= c.startIndex {
		c.commitIndex = quorumMatchIndex
		asyncNotifyCh(c.commitCh)
	}
}
