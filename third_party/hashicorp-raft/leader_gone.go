// coppice: a follower told that its leader's process is gone stands at
// once, not after its heartbeat timeout.

package raft

import (
	"slices"
	"time"
)

// goneLeader is a LeaderGone's news: which server, and when.
type goneLeader struct {
	id ServerID
	at time.Time
}

// LeaderGone tells this server that the server id is gone: its process
// ended (coppice checks that its port refuses connections after the
// connection its AppendEntries came on ended: NetworkTransportConfig's
// OnAppenderClosed). A follower whose leader that is forgets it and
// stands for election at its turn (goneTurn: HeartbeatTimeout/32 for the
// first, HeartbeatTimeout/8 more for each next one, so that followers
// told at once do not split the vote), not after its heartbeat timeout
// (1-2 s at coppice's 1 s) with the group unable to take writes. Anything
// else it is told (another server, a leader already replaced, this server
// not a follower, news older than a heartbeat timeout by the time the
// main loop reads it) changes nothing. What the election then checks is
// what a heartbeat timeout's does: pre-vote, the lost store guard, the
// configuration. The caller must only say so when it knows: a leader
// that is alive and told of as gone may lose its leadership to an
// election it did not need.
func (r *Raft) LeaderGone(id ServerID) {
	if id == "" {
		return
	}
	r.leaderGone.Store(&goneLeader{id: id, at: time.Now()})
	asyncNotifyCh(r.leaderGoneCh)
}

// leaderGoneNow reads LeaderGone's news in the follower loop: if it is
// fresh and about this server's leader, the leader is forgotten and the
// timer to stand on is returned, with the gone leader's ID.
func (r *Raft) leaderGoneNow() (<-chan time.Time, ServerID) {
	g := r.leaderGone.Swap(nil)
	hb := r.config().HeartbeatTimeout
	if g == nil || time.Since(g.at) > hb {
		return nil, ""
	}
	addr, id := r.LeaderWithID()
	if id != g.id {
		return nil, ""
	}
	turn := r.goneTurn(id)
	r.logger.Info("the leader's process is gone: standing for election", "leader-address", addr, "leader-id", id, "turn", turn)
	r.setLeader("", "")
	return time.After(hb/32 + time.Duration(turn)*(hb/8)), id
}

// goneTurn is this server's turn to stand once its leader is gone: the
// voters of the latest configuration but the leader, sorted by ID and
// rotated by Config.GroupSeed, stand one after the other, the first after
// HeartbeatTimeout/32 (time for the others to be told too: one that has
// not forgotten the leader refuses the pre-vote), each next one
// HeartbeatTimeout/8 later. Followers told at once compute the same order
// (they share the configuration and the seed), so two of them do not
// stand together and split the vote, as they could with random waits (a
// split vote costs an election timeout, 1-2 s); the next one stands if
// the first cannot win (its log is behind, or it was not told). The
// rotation spreads the new leaderships of a node's groups, each given its
// own seed, over the others.
func (r *Raft) goneTurn(leader ServerID) int {
	var ids []ServerID
	for _, s := range r.configurations.latest.Servers {
		if s.Suffrage == Voter && s.ID != leader {
			ids = append(ids, s.ID)
		}
	}
	slices.Sort(ids)
	for i, id := range ids {
		if id == r.localID {
			return (i + int(r.config().GroupSeed%uint64(len(ids)))) % len(ids)
		}
	}
	return len(ids) // not a voter: it does not stand
}
