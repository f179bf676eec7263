// coppice: a follower told that its leader's process is gone stands at
// once, not after its heartbeat timeout.

package raft

import (
	"math/rand"
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
// stands for election within HeartbeatTimeout/8 (a random wait, so that
// two followers told at once seldom split the vote), not after its
// heartbeat timeout (1-2 s at coppice's 1 s) with the group unable to
// take writes. Anything else it is told (another server, a leader already
// replaced, this server not a follower, news older than a heartbeat
// timeout by the time the main loop reads it) changes nothing. What the
// election then checks is what a heartbeat timeout's does: pre-vote, the
// lost store guard, the configuration. The caller must only say so when
// it knows: a leader that is alive and told of as gone may lose its
// leadership to an election it did not need.
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
	r.logger.Info("the leader's process is gone: standing for election", "leader-address", addr, "leader-id", id)
	r.setLeader("", "")
	return time.After(time.Duration(rand.Int63n(int64(hb/8) + 1))), id
}
