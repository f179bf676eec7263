package actors

// Membership changes and leadership transfers, for any Raft group the node
// runs (the shards and the system group). The group's actor calls these
// from its Receive: each starts the Raft future and answers from a
// goroutine, so the mailbox never waits on Raft.

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coppice-kv/coppice/messages"
	"github.com/coppice-kv/coppice/storage"
	"github.com/hashicorp/raft"
)

const membershipTimeout = 10 * time.Second

// changeMembership applies m to r's configuration and answers to.
func changeMembership(root *actor.RootContext, to *actor.PID, r *raft.Raft, m *messages.ChangeMembership) {
	if r == nil || to == nil {
		return
	}
	id, addr := raft.ServerID(m.Id), raft.ServerAddress(m.Address)
	var f raft.IndexFuture
	switch m.Op {
	case messages.ChangeMembership_ADD_NONVOTER:
		f = r.AddNonvoter(id, addr, m.PrevIndex, membershipTimeout)
	case messages.ChangeMembership_ADD_VOTER:
		f = r.AddVoter(id, addr, m.PrevIndex, membershipTimeout)
	case messages.ChangeMembership_DEMOTE:
		f = r.DemoteVoter(id, m.PrevIndex, membershipTimeout)
	case messages.ChangeMembership_REMOVE:
		f = r.RemoveServer(id, m.PrevIndex, membershipTimeout)
	default:
		root.Send(to, &messages.ChangeMembershipReply{Error: fmt.Sprintf("unknown membership op %v", m.Op)})
		return
	}
	go func() {
		reply := &messages.ChangeMembershipReply{}
		if err := f.Error(); err != nil {
			reply.Error, reply.LeaderAddr, reply.LeaderId = leaderError(r, err)
		} else {
			reply.Index = f.Index()
		}
		root.Send(to, reply)
	}()
}

// transferLeadership hands r's leadership to m's target (or the most
// caught-up voter) and answers to.
func transferLeadership(root *actor.RootContext, to *actor.PID, r *raft.Raft, m *messages.TransferLeadership) {
	if r == nil || to == nil {
		return
	}
	var f raft.Future
	if m.ToId == "" {
		f = r.LeadershipTransfer()
	} else if err := notBehind(r, raft.ServerID(m.ToId), m.MaxLag); err != nil {
		root.Send(to, &messages.TransferLeadershipReply{Error: err.Error(), Behind: true})
		return
	} else {
		f = r.LeadershipTransferToServer(raft.ServerID(m.ToId), raft.ServerAddress(m.ToAddress))
	}
	go func() {
		reply := &messages.TransferLeadershipReply{}
		if err := f.Error(); err != nil {
			reply.Error, _, _ = leaderError(r, err)
		}
		root.Send(to, reply)
	}()
}

// errBehind is the error of a transfer refused because its target is
// behind (TransferLeadership.max_lag; its reply's behind).
var errBehind = errors.New("the target is behind")

// notBehind returns an error (errBehind) when r leads its group and its
// server id lacks more than maxLag (nil: any number) of r's entries. A
// leadership transfer first brings its target up to date, and the group
// takes no writes until it has or the transfer gives up (after an
// election timeout): a transfer to a node that has just restarted or lost
// its disk would stall the group's writes for that long, and then leave
// the leadership where it was.
func notBehind(r *raft.Raft, id raft.ServerID, maxLag *uint64) error {
	if maxLag == nil {
		return nil
	}
	matches, _ := r.FollowerMatches()
	match, ok := matches[id]
	if !ok { // not the leader, or id is not in its group: Raft answers
		return nil
	}
	if last := r.LastIndex(); match+*maxLag < last {
		return fmt.Errorf("%w: %s's log matches the leader's up to index %d of %d, more than %d entries short", errBehind, id, match, last, *maxLag)
	}
	return nil
}

// leaderError turns a Raft error into the reply's text, with where the
// leader is: not_leader when this node does not lead the group (nothing
// was done), leadership_lost when it lost leadership with the request in
// its log (it may or may not take effect).
func leaderError(r *raft.Raft, err error) (text, addr, id string) {
	switch {
	case errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipTransferInProgress):
		text = ErrNotLeader // refused before it was appended
	case errors.Is(err, raft.ErrLeadershipLost) || errors.Is(err, raft.ErrRaftShutdown):
		// Appended, or queued when the group shut down: outcome unknown.
		text = ErrLeadershipLost
	default:
		text = err.Error()
	}
	if r != nil {
		la, lid := r.LeaderWithID()
		addr, id = string(la), string(lid)
	}
	return text, addr, id
}

// groupStatus reads r's state for a status reply; applied is the index the
// group's state machine has applied.
func groupStatus(r *raft.Raft, logs raft.LogStore, shard uint32, applied uint64) *messages.ShardStatusReply {
	reply := &messages.ShardStatusReply{Shard: shard}
	la, lid := r.LeaderWithID()
	reply.State, reply.LeaderAddr, reply.LeaderId = r.State().String(), string(la), string(lid)
	reply.Term, reply.LastIndex, reply.CommitIndex = r.CurrentTerm(), r.LastIndex(), r.CommitIndex()
	reply.AppliedIndex = applied
	reply.VotesWithheld = r.VotesWithheld()
	reply.FirstIndex, _ = logs.FirstIndex()
	f := r.GetConfiguration()
	if err := f.Error(); err != nil {
		reply.Error = err.Error()
		return reply
	}
	reply.ConfigurationIndex = f.Index()
	reply.Configuration = raftServers(f.Configuration())
	markSilence(r, reply.Configuration)
	return reply
}

// raftServers is c's servers as messages.
func raftServers(c raft.Configuration) []*messages.RaftServer {
	out := make([]*messages.RaftServer, 0, len(c.Servers))
	for _, s := range c.Servers {
		out = append(out, &messages.RaftServer{Id: string(s.ID), Address: string(s.Address), Suffrage: suffrage(s.Suffrage)})
	}
	return out
}

// raftHeartbeatTimeout is every group's HeartbeatTimeout; its leaders
// send heartbeats ten times as often (heartbeats).
const raftHeartbeatTimeout = time.Second

// setRaftTimers sets every group's timers: hashicorp/raft's defaults
// (heartbeat and election 1s, leader lease 500ms). Half of those made
// leaders step down under ordinary write load on a 2-core machine, where
// an fsync or a scheduling stall can take a few hundred milliseconds.
//
// The first heartbeat timeout after a start is a quarter of the others
// (the Raft fork's FirstHeartbeatTimeout): a cluster whose nodes all
// start together (a power cut, a maintenance stop) elects its leaders
// 250-500 ms after the start, not 1-2 s. A node restarted alone whose
// leaders have not reached it by then asks for pre-votes, which the
// other voters refuse while they hear from their leader: nothing changes.
func setRaftTimers(conf *raft.Config) {
	conf.HeartbeatTimeout = raftHeartbeatTimeout
	conf.ElectionTimeout = time.Second
	conf.LeaderLeaseTimeout = 500 * time.Millisecond
	conf.FirstHeartbeatTimeout = raftHeartbeatTimeout / 4
}

// handOver gives r's leadership to another voter before the group stops
// (a node stopped with SIGTERM, or restarting), so the group's writes go
// on under a new leader at once, not after an election timeout, and the
// entries in flight commit instead of failing with the shutdown. It offers
// the leadership to each other voter in turn (handOverOrder) until one
// takes it; each try is bounded by Raft's own transfer timeout (its
// ElectionTimeout). A group this node does not lead, or with no other
// voter, has nothing to hand over.
func handOver(r *raft.Raft, log *slog.Logger, group string) {
	if r == nil || r.State() != raft.Leader {
		return
	}
	f := r.GetConfiguration()
	if f.Error() != nil {
		return
	}
	_, self := r.LeaderWithID()
	start := time.Now()
	conf := r.ReloadableConfig()
	matches, _ := r.FollowerMatches()
	targets := handOverOrder(f.Configuration(), self, groupSilence(r), matches, conf.HeartbeatTimeout/2)
	if len(targets) == 0 {
		return
	}
	// A transfer already under way (the coordinator's balancing) is let
	// finish first, bounded by its own timeout: every try would fail at
	// once with ErrLeadershipTransferInProgress, and the node would stop
	// as the leader if that transfer failed.
	deadline := start.Add(2 * conf.ElectionTimeout)
	transfer := func(to raft.Server) error {
		for {
			err := r.LeadershipTransferToServer(to.ID, to.Address).Error()
			if !errors.Is(err, raft.ErrLeadershipTransferInProgress) || time.Now().After(deadline) {
				return err
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	var err error
	tries := 0
	for _, to := range targets {
		if r.State() != raft.Leader {
			break
		}
		tries++
		if err = transfer(to); err == nil {
			break
		}
	}
	if err != nil && r.State() == raft.Leader {
		log.Warn("leadership not handed over before stopping", "group", group, "tries", tries, "err", err)
		return
	}
	log.Info("leadership handed over before stopping", "group", group, "took", time.Since(start).Round(time.Millisecond), "tries", tries)
}

// handOverOrder is the order in which a leader offers its leadership to
// the other voters of c before it stops: first those it heard from within
// quiet (silent says how long each has not answered), the furthest along
// first among them (matches: Raft's own pick); then those gone silent (cut
// off, restarting, their process stopped), which would each take a
// transfer timeout to fail. A server missing from silent counts as heard.
func handOverOrder(c raft.Configuration, self raft.ServerID, silent silence, matches map[raft.ServerID]uint64, quiet time.Duration) []raft.Server {
	var out []raft.Server
	for _, s := range c.Servers {
		if s.Suffrage == raft.Voter && s.ID != self {
			out = append(out, s)
		}
	}
	slices.SortStableFunc(out, func(a, b raft.Server) int {
		as, bs := silent[string(a.ID)] >= quiet, silent[string(b.ID)] >= quiet
		if as != bs {
			if as {
				return 1
			}
			return -1
		}
		return cmp.Compare(matches[b.ID], matches[a.ID])
	})
	return out
}

// countVoters counts c's voters other than self, and tells whether self is one.
func countVoters(c raft.Configuration, self raft.ServerID) (others int, selfVotes bool) {
	for _, s := range c.Servers {
		if s.Suffrage != raft.Voter {
			continue
		}
		if s.ID == self {
			selfVotes = true
		} else {
			others++
		}
	}
	return others, selfVotes
}

// notMember tells whether self is missing from c, a configuration that
// has servers: this node was removed from the group (from the cluster),
// or is not added (back) yet. A group with no configuration yet (a node
// that has just joined, before its first sync) is not told apart: its
// node is in no cluster yet, or waits for its sync.
func notMember(c raft.Configuration, self raft.ServerID) bool {
	return len(c.Servers) > 0 && !slices.ContainsFunc(c.Servers, func(s raft.Server) bool { return s.ID == self })
}

// errNotMember says why a group of a node that is not its member
// (notMember) serves nothing here.
const errNotMember = "this node is not a member of the group (removed from the cluster, or not added back yet): the cluster's members serve it"

// voterCount is how many voters countVoters found: the others, and self
// if it votes.
func voterCount(others int, selfVotes bool) int {
	if selfVotes {
		return others + 1
	}
	return others
}

// handOverNow asks a group's actor to hand its leadership over
// (handOver); it answers handedOver when that has ended, either way.
type handOverNow struct{}

type handedOver struct{}

// startHandOver runs handOver on a goroutine of its own, so the actor's
// mailbox never waits on Raft, and answers to.
func startHandOver(root *actor.RootContext, to *actor.PID, r *raft.Raft, log *slog.Logger, group string) {
	go func() {
		handOver(r, log, group)
		if to != nil {
			root.Send(to, handedOver{})
		}
	}()
}

// closeGroup shuts the Raft down of the group on mux stream, then its
// transport (which then gets no more batched heartbeats) and log store; any
// of them may be nil (a start that failed half-way).
func closeGroup(rt *Runtime, stream uint32, r *raft.Raft, trans *raft.NetworkTransport, logs storage.LogStore) error {
	var errs []error
	var shut raft.Future
	if r != nil {
		shut = r.Shutdown()
	}
	// The transport closes before the wait for Raft's goroutines: its
	// stream layer then ends their dials at once (a replication's to a
	// peer cut off would wait out the transport's 10 s, and the node's
	// groups stop one after another).
	if trans != nil {
		rt.beats.forget(stream, trans)
		errs = append(errs, trans.Close())
	}
	if shut != nil {
		errs = append(errs, shut.Error())
	}
	if logs != nil {
		errs = append(errs, logs.Close())
	}
	return errors.Join(errs...)
}

// alsoOnLogFailure shuts r down as soon as the node's Raft log store fails
// (storage.RaftLogs.Failure) and returns unwatch extended to stop that
// watch. A group whose log cannot be written can neither lead nor vote:
// every group of the node stops at once, not each at its next write (the
// Raft fork shuts a group down itself when it cannot save a term or read
// an entry, where upstream panics and ends the process), and the node
// stops in order (OnFault).
func alsoOnLogFailure(rt *Runtime, r *raft.Raft, group string, unwatch func()) func() {
	failed := rt.raftLogFailed()
	done := make(chan struct{})
	go func() {
		select {
		case <-failed:
			rt.logger().Error("the Raft log store failed: group shut down", "group", group)
			r.Shutdown()
		case <-done:
		}
	}()
	return func() {
		close(done)
		if unwatch != nil {
			unwatch()
		}
	}
}

// watchRaft runs fn on a goroutine of its own: at once, on every
// observation of r that keep accepts, and, with every > 0, at least that
// often. The returned stop returns once fn has run for the last time, and
// deregisters the observer.
func watchRaft(r *raft.Raft, keep raft.FilterFn, every time.Duration, fn func()) (stop func()) {
	obs := make(chan raft.Observation, 16)
	observer := raft.NewObserver(obs, false, keep)
	r.RegisterObserver(observer)
	var ticker *time.Ticker
	var tick <-chan time.Time // nil: never
	if every > 0 {
		ticker = time.NewTicker(every)
		tick = ticker.C
	}
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			fn()
			select {
			case <-obs:
			case <-tick:
			case <-quit:
				return
			}
		}
	}()
	return func() {
		close(quit)
		<-done
		if ticker != nil {
			ticker.Stop()
		}
		r.DeregisterObserver(observer)
	}
}
