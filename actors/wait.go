package actors

// WAIT's side of the node (server/wait.go has the command): a shard's
// leader counts the members of its group, other than itself, that store
// its log up to an index, as its Raft's match indexes tell it
// (raft.FollowerMatches, a change of the fork), and answers once enough
// do or the asker's wait passes: it waits on its Raft's notice of a
// change, not by polling. The client port asks through backend.ReplicaAcks,
// of the shard's Raft actor on this node or on the leader's node.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coppice-kv/coppice/messages"
	"github.com/coppice-kv/coppice/transport"
	"github.com/hashicorp/raft"
)

const (
	// maxAcksWait bounds how long a leader holds a ReplicaAcks: the
	// asker asks again for a longer wait.
	maxAcksWait = 5 * time.Second
	// acksRecheck is how often a waiting count is made again with no
	// change of a match index: for index 0 (members reached, which only
	// time changes), and a leader that stepped down.
	acksRecheck = 100 * time.Millisecond
)

// replicaAcks answers m from a goroutine: the count once m.Want members
// store m.Index, or after m.WaitMs; not_leader at once on a follower.
func (a *raftActor) replicaAcks(to *actor.PID, m *messages.ReplicaAcks) {
	root, r := a.system.Root, a.r
	if r.State() != raft.Leader {
		e, addr, id := a.leaderError(raft.ErrNotLeader)
		root.Send(to, &messages.ReplicaAcksReply{Error: e, LeaderAddr: addr, LeaderId: id})
		return
	}
	wait := min(time.Duration(m.WaitMs)*time.Millisecond, maxAcksWait)
	go func() {
		n, ok := awaitAcks(r, m.Index, int(m.Want), wait)
		reply := &messages.ReplicaAcksReply{Acks: uint32(n)}
		if !ok {
			reply.Error, reply.LeaderAddr, reply.LeaderId = leaderError(r, raft.ErrNotLeader)
		}
		root.Send(to, reply)
	}()
}

// awaitAcks waits up to wait until want members of r's group other than
// itself store index (countAcks), and returns how many do; ok is false if
// r does not lead the group (any more).
func awaitAcks(r *raft.Raft, index uint64, want int, wait time.Duration) (n int, ok bool) {
	deadline := time.Now().Add(wait)
	var timer, recheck *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
			recheck.Stop()
		}
	}()
	for {
		matches, changed := r.FollowerMatches()
		if matches == nil {
			return 0, false
		}
		var contacts map[raft.ServerID]time.Time
		if index == 0 {
			contacts = r.FollowerContacts()
		}
		n = countAcks(matches, contacts, index, time.Now())
		left := time.Until(deadline)
		if n >= want || left <= 0 {
			return n, true
		}
		if timer == nil {
			timer, recheck = time.NewTimer(left), time.NewTimer(acksRecheck)
		}
		select {
		case <-changed:
		case <-recheck.C:
			recheck.Reset(acksRecheck)
		case <-timer.C:
			deadline = time.Now() // count once more and answer
		}
	}
}

// countAcks counts the members other than the leader that store the
// leader's log up to index, by their match indexes (matches); for index 0
// (a client that wrote nothing), those the leader reaches: that answered
// it within silentVoterAfter of now (contacts).
func countAcks(matches map[raft.ServerID]uint64, contacts map[raft.ServerID]time.Time, index uint64, now time.Time) int {
	n := 0
	if index == 0 {
		for id := range matches {
			if at, ok := contacts[id]; ok && now.Sub(at) < silentVoterAfter {
				n++
			}
		}
		return n
	}
	for _, m := range matches {
		if m >= index {
			n++
		}
	}
	return n
}

// ReplicaAcks asks shard's leader how many members of its group other
// than itself store its log up to index (index 0: how many it reaches),
// waiting up to wait for want of them (server.ReplicaBackend: WAIT). The
// shard's Raft actor on this node is asked, or the leader this node last
// heard of (if that fails, the one here), and then the leader a follower
// names.
//
// An index WAIT asks about is a write's that was acknowledged, so
// committed: stored by a majority of the group's voters, at least
// committedFloor of them besides any leader. The count is never less,
// also when no leader answers: a leader new in its term counts its
// followers' match indexes from 0 until they answer it, and one that
// stepped down answers nothing, where the write is as durable as before.
func (b *backend) ReplicaAcks(ctx context.Context, shard int, index uint64, want int, wait time.Duration) (int, error) {
	if shard < 0 || shard >= b.rt.Shards {
		return 0, fmt.Errorf("shard %d does not exist", shard)
	}
	floor := 0
	if index > 0 {
		floor = committedFloor(b.rt.shardLead(shard).voters)
	}
	n, err := b.replicaAcks(ctx, shard, index, want, wait)
	if err != nil && floor > 0 {
		return floor, nil
	}
	return max(n, floor), err
}

// committedFloor is how many voters of a group of voters, besides its
// leader, store a committed entry at least: a majority stores it, and the
// leader may be one of them.
func committedFloor(voters int) int { return voters / 2 }

// replicaAcks is ReplicaAcks's ask of the leader.
func (b *backend) replicaAcks(ctx context.Context, shard int, index uint64, want int, wait time.Duration) (int, error) {
	req := &messages.ReplicaAcks{Index: index, Want: uint32(max(want, 0)), WaitMs: uint32(min(wait, maxAcksWait).Milliseconds())}
	at := transport.Peer{} // this node
	hinted := false
	if l := b.rt.remoteLeader(shard); l.addr != "" {
		at, hinted = transport.Peer{Name: l.id, Addr: l.addr}, true
	}
	for hops := 0; ; hops++ {
		res, err := b.rt.ask(ctx, at, RaftPath(shard), req)
		if err != nil && hinted && ctx.Err() == nil {
			// The hint may be stale (a leader gone): the shard's Raft
			// actor here names the leader.
			at, hinted = transport.Peer{}, false
			continue
		}
		if err != nil {
			return 0, err
		}
		reply, ok := res.(*messages.ReplicaAcksReply)
		switch {
		case !ok:
			return 0, fmt.Errorf("shard %d answered %T", shard, res)
		case reply.Error == "":
			return int(reply.Acks), nil
		case reply.Error == ErrNotLeader && reply.LeaderAddr != "" && hops < 2:
			at = transport.Peer{Name: reply.LeaderId, Addr: reply.LeaderAddr}
			if reply.LeaderId == b.rt.Name {
				at = transport.Peer{}
			}
		default:
			return 0, errors.New(reply.Error)
		}
	}
}
