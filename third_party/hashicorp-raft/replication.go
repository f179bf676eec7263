// Copyright IBM Corp. 2013, 2025
// SPDX-License-Identifier: MPL-2.0

package raft

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-metrics"
)

const (
	maxFailureScale = 12
	failureWait     = 10 * time.Millisecond
)

var (
	// ErrLogNotFound indicates a given log entry is not available.
	ErrLogNotFound = errors.New("log not found")

	// ErrPipelineReplicationNotSupported can be returned by the transport to
	// signal that pipeline replication is not supported in general, and that
	// no error message should be produced.
	ErrPipelineReplicationNotSupported = errors.New("pipeline replication not supported")
)

// followerReplication is in charge of sending snapshots and log entries from
// this leader during this particular term to a remote follower.
type followerReplication struct {
	// currentTerm and nextIndex must be kept at the top of the struct so
	// they're 64 bit aligned which is a requirement for atomic ops on 32 bit
	// platforms.

	// currentTerm is the term of this leader, to be included in AppendEntries
	// requests.
	currentTerm uint64

	// nextIndex is the index of the next log entry to send to the follower,
	// which may fall past the end of the log.
	nextIndex uint64

	// peer contains the network address and ID of the remote follower.
	peer Server
	// peerLock protects 'peer'
	peerLock sync.RWMutex

	// commitment tracks the entries acknowledged by followers so that the
	// leader's commit index can advance. It is updated on successful
	// AppendEntries responses.
	commitment *commitment

	// stopCh is notified/closed when this leader steps down or the follower is
	// removed from the cluster. In the follower removed case, it carries a log
	// index; replication should be attempted with a best effort up through that
	// index, before exiting.
	stopCh chan uint64

	// triggerCh is notified every time new entries are appended to the log.
	triggerCh chan struct{}

	// resumeCh is notified when the follower may answer again (coppice
	// fork): the configuration gave it a new address, or a heartbeat
	// reached it after failures. A replication backing off from its
	// failures tries again at once.
	resumeCh chan struct{}

	// triggerDeferErrorCh is used to provide a backchannel. By sending a
	// deferErr, the sender can be notified when the replication is done.
	triggerDeferErrorCh chan *deferError

	// commitCh is notified when a commit index no request to the
	// follower carried is commitPropagateDelay old (coppice fork), and
	// sentCommit is the commit index the last request to it carried: the
	// replication then sends it on its own, so a follower applies a write
	// within milliseconds, not at the next CommitTimeout (50-100 ms) when
	// no other write follows it.
	commitCh   chan struct{}
	sentCommit atomic.Uint64

	// commitReported is whether the follower's last heartbeat answer
	// told its commit index (coppice fork, noteFollowerCommit): the
	// pipeline then needs no safety net.
	commitReported atomic.Bool

	// lastContact is updated to the current time whenever any response is
	// received from the follower (successful or not). This is used to check
	// whether the leader should step down (Raft.checkLeaderLease()).
	lastContact time.Time
	// lastContactLock protects 'lastContact'.
	lastContactLock sync.RWMutex

	// failures counts the number of failed RPCs since the last success, which is
	// used to apply backoff.
	failures uint64

	// notifyCh is notified to send out a heartbeat, which is used to check that
	// this server is still leader.
	notifyCh chan struct{}
	// notify is a map of futures to be resolved upon receipt of an
	// acknowledgement, then cleared from this map; each with the time it
	// was registered (coppice fork: see notifyAll).
	notify map[*verifyFuture]time.Time
	// notifyLock protects 'notify'.
	notifyLock sync.Mutex

	// stepDown is used to indicate to the leader that we
	// should step down based on information from a follower.
	stepDown chan struct{}

	// allowPipeline is used to determine when to pipeline the AppendEntries RPCs.
	// It is private to this replication goroutine.
	allowPipeline bool
}

// notifyAll is used to notify all the waiting verify futures
// if the follower believes we are still the leader.
//
// coppice fork: an acknowledgement of a request sent at `sent` votes only
// for the futures registered before then. Upstream counted it for every
// future waiting when the answer came: a leader paused (SIGSTOP, a VM
// stall) with a heartbeat in flight, woken after another leader was
// elected, took the answer its follower gave before that election as
// confirming a VerifyLeader asked after it woke, and served a stale read
// (coppice's fault suite, TestPauseLeader, saw it: a read sent during the
// pause answered the value of before it). A later future waits for a
// request sent after it (VerifyLeader's own heartbeat). A refusal (not
// leader) ends every future: failing one is always safe.
func (s *followerReplication) notifyAll(leader bool, sent time.Time) {
	var n []*verifyFuture
	s.notifyLock.Lock()
	for v, registered := range s.notify {
		if !leader || registered.Before(sent) {
			n = append(n, v)
			delete(s.notify, v)
		}
	}
	s.notifyLock.Unlock()

	// Submit our votes
	for _, v := range n {
		v.vote(leader)
	}
}

// cleanNotify is used to delete notify, .
func (s *followerReplication) cleanNotify(v *verifyFuture) {
	s.notifyLock.Lock()
	delete(s.notify, v)
	s.notifyLock.Unlock()
}

// LastContact returns the time of last contact.
func (s *followerReplication) LastContact() time.Time {
	s.lastContactLock.RLock()
	last := s.lastContact
	s.lastContactLock.RUnlock()
	return last
}

// setLastContact sets the last contact to the current time.
func (s *followerReplication) setLastContact() {
	s.lastContactLock.Lock()
	s.lastContact = time.Now()
	s.lastContactLock.Unlock()
}

// commitPropagateDelay is how long the leader waits for its requests to
// carry a new commit index before a replication sends one for it alone
// (coppice fork): under load the next entries carry it and nothing more is
// sent. One timer per leader, armed by a commit when it is not already
// (leaderLoop), so a stream of writes costs one wake-up per delay, not
// per commit.
const commitPropagateDelay = 5 * time.Millisecond

// commitPending reports whether the leader's commit index is past what the
// last request to s carried.
func (r *Raft) commitPending(s *followerReplication) bool {
	return s.sentCommit.Load() < r.getCommitIndex()
}

// replicate is a long running routine that replicates log entries to a single
// follower.
func (r *Raft) replicate(s *followerReplication) {
	// Start an async heartbeating routing
	stopHeartbeat := make(chan struct{})
	defer close(stopHeartbeat)
	r.goFunc(func() { r.heartbeat(s, stopHeartbeat) })

RPC:
	shouldStop := false
	for !shouldStop {
		select {
		case <-s.commitCh:
			if r.commitPending(s) {
				shouldStop = r.replicateTo(s, r.replicationLastIndex())
			}
		case maxIndex := <-s.stopCh:
			// Make a best effort to replicate up to this index
			if maxIndex > 0 {
				r.replicateTo(s, maxIndex)
			}
			return
		case deferErr := <-s.triggerDeferErrorCh:
			lastLogIdx := r.replicationLastIndex()
			shouldStop = r.replicateTo(s, lastLogIdx)
			if !shouldStop {
				deferErr.respond(nil)
			} else {
				deferErr.respond(fmt.Errorf("replication failed"))
			}
		case <-s.triggerCh:
			lastLogIdx := r.replicationLastIndex()
			shouldStop = r.replicateTo(s, lastLogIdx)
		// This is _not_ our heartbeat mechanism but is to ensure
		// followers quickly learn the leader's commit index when
		// raft commits stop flowing naturally. The actual heartbeats
		// can't do this to keep them unblocked by disk IO on the
		// follower. See https://github.com/hashicorp/raft/issues/282.
		case <-randomTimeout(r.config().CommitTimeout):
			lastLogIdx := r.replicationLastIndex()
			shouldStop = r.replicateTo(s, lastLogIdx)
		}

		// If things looks healthy, switch to pipeline mode
		if !shouldStop && s.allowPipeline {
			goto PIPELINE
		}
	}
	return

PIPELINE:
	// Disable until re-enabled
	s.allowPipeline = false

	// Replicates using a pipeline for high performance. This method
	// is not able to gracefully recover from errors, and so we fall back
	// to standard mode on failure.
	if err := r.pipelineReplicate(s); err != nil {
		if err != ErrPipelineReplicationNotSupported {
			s.peerLock.RLock()
			peer := s.peer
			s.peerLock.RUnlock()
			r.logger.Error("failed to start pipeline replication to", "peer", peer, "error", err)
		}
	}
	goto RPC
}

// replicateTo is a helper to replicate(), used to replicate the logs up to a
// given last index.
// If the follower log is behind, we take care to bring them up to date.
func (r *Raft) replicateTo(s *followerReplication, lastIndex uint64) (shouldStop bool) {
	// Create the base request
	var req AppendEntriesRequest
	var resp AppendEntriesResponse
	var start time.Time
	var peer Server

START:
	// Prevent an excessive retry rate on errors
	if s.failures > 0 {
		select {
		case <-time.After(backoff(failureWait, s.failures, maxFailureScale)):
		case <-r.shutdownCh:
		case <-s.stopCh:
			// coppice fork: asked to stop (the peer left the
			// configuration, or we stepped down) while backing off
			// from a peer that failed. Upstream slept the backoff out
			// (up to ~41 s) and then went on sending, the snapshot
			// included, to a server that may since have been added
			// back, beside its new replication.
			return true
		case <-s.resumeCh:
			// coppice fork: the follower has a new address (a node
			// restarted elsewhere), or answers heartbeats again (a node
			// restarted, a link healed): the failures are behind it.
			// Upstream slept the backoff out first, up to ~41 s with
			// the follower behind.
			s.failures = 0
		}
	}

	s.peerLock.RLock()
	peer = s.peer
	s.peerLock.RUnlock()

	// Setup the request
	if err := r.setupAppendEntries(s, &req, atomic.LoadUint64(&s.nextIndex), lastIndex); err == ErrLogNotFound {
		goto SEND_SNAP
	} else if err != nil {
		return
	}

	// Make the RPC call
	start = time.Now()
	if err := r.trans.AppendEntries(peer.ID, peer.Address, &req, &resp); err != nil {
		r.logger.Error("failed to appendEntries to", "peer", peer, "error", err)
		s.failures++
		return
	}
	appendStats(string(peer.ID), start, float32(len(req.Entries)), r.noLegacyTelemetry)

	// Check for a newer term, stop running
	if resp.Term > req.Term {
		r.handleStaleTerm(s)
		return true
	}

	// Update the last contact
	s.setLastContact()

	// Update s based on success
	if resp.Success {
		// Update our replication state
		updateLastAppended(s, &req, start)

		// Clear any failures, allow pipelining
		s.failures = 0
		s.allowPipeline = true
	} else {
		atomic.StoreUint64(&s.nextIndex, max(min(s.nextIndex-1, resp.LastLog+1), 1))
		if resp.NoRetryBackoff {
			s.failures = 0
		} else {
			s.failures++
		}
		r.logger.Warn("appendEntries rejected, sending older logs", "peer", peer, "next", atomic.LoadUint64(&s.nextIndex))
	}

CHECK_MORE:
	// Poll the stop channel here in case we are looping and have been asked
	// to stop, or have stepped down as leader. Even for the best effort case
	// where we are asked to replicate to a given index and then shutdown,
	// it's better to not loop in here to send lots of entries to a straggler
	// that's leaving the cluster anyways.
	select {
	case <-s.stopCh:
		return true
	default:
	}

	// Check if there are more logs to replicate
	if atomic.LoadUint64(&s.nextIndex) <= lastIndex {
		goto START
	}
	return

	// SEND_SNAP is used when we fail to get a log, usually because the follower
	// is too far behind, and we must ship a snapshot down instead
SEND_SNAP:
	// coppice fork: no snapshot once asked to stop. Installing one
	// discards the follower's log, so a stopped replication's snapshot,
	// arriving after the peer was added back and had caught up through
	// its new replication, took it back to the snapshot's index.
	select {
	case <-s.stopCh:
		return true
	default:
	}
	if stop, err := r.sendLatestSnapshot(s); stop {
		return true
	} else if err != nil {
		r.logger.Error("failed to send snapshot to", "peer", peer, "error", err)
		return
	}

	// Check if there is more to replicate
	goto CHECK_MORE
}

// sendLatestSnapshot is used to send the latest snapshot we have
// down to our follower.
func (r *Raft) sendLatestSnapshot(s *followerReplication) (bool, error) {
	// Get the snapshots
	snapshots, err := r.snapshots.List()
	if err != nil {
		r.logger.Error("failed to list snapshots", "error", err)
		return false, err
	}

	// Check we have at least a single snapshot
	if len(snapshots) == 0 {
		return false, fmt.Errorf("no snapshots found")
	}

	// Open the most recent snapshot
	snapID := snapshots[0].ID
	r.logger.Info("opening snapshot", "id", snapID)
	meta, snapshot, err := r.snapshots.Open(snapID)
	if err != nil {
		r.logger.Error("failed to open snapshot", "id", snapID, "error", err)
		return false, err
	}
	defer func() { _ = snapshot.Close() }()

	// Setup the request
	req := InstallSnapshotRequest{
		RPCHeader:       r.getRPCHeader(),
		SnapshotVersion: meta.Version,
		Term:            s.currentTerm,
		// this is needed for retro compatibility, before RPCHeader.Addr was added
		Leader:             r.trans.EncodePeer(r.localID, r.localAddr),
		LastLogIndex:       meta.Index,
		LastLogTerm:        meta.Term,
		Peers:              meta.Peers,
		Size:               meta.Size,
		Configuration:      EncodeConfiguration(meta.Configuration),
		ConfigurationIndex: meta.ConfigurationIndex,
	}

	s.peerLock.RLock()
	peer := s.peer
	s.peerLock.RUnlock()

	r.logger.Info("installing snapshot on", "peer", peer.ID, "id", snapID, "size", req.Size)
	// Make the call
	start := time.Now()
	var resp InstallSnapshotResponse
	if err := r.trans.InstallSnapshot(peer.ID, peer.Address, &req, &resp, snapshot); err != nil {
		r.logger.Error("failed to install snapshot", "peer", peer.ID, "id", snapID, "error", err)
		s.failures++
		return false, err
	}
	labels := []metrics.Label{{Name: "peer_id", Value: string(peer.ID)}}
	metrics.MeasureSinceWithLabels([]string{"raft", "replication", "installSnapshot"}, start, labels)

	if !r.noLegacyTelemetry {
		// Duplicated information. Kept for backward compatibility.
		metrics.MeasureSince([]string{"raft", "replication", "installSnapshot", string(peer.ID)}, start)
	}

	// Check for a newer term, stop running
	if resp.Term > req.Term {
		r.handleStaleTerm(s)
		return true, nil
	}

	// Update the last contact
	s.setLastContact()

	// Check for success
	if resp.Success {
		// Update the indexes
		atomic.StoreUint64(&s.nextIndex, meta.Index+1)
		s.commitment.match(peer.ID, meta.Index)

		// Clear any failures
		s.failures = 0

		// Notify we are still leader
		s.notifyAll(true, start)
	} else {
		s.failures++
		r.logger.Warn("installSnapshot rejected to", "peer", peer.ID, "id", snapID)
	}
	return false, nil
}

// heartbeat is used to periodically invoke AppendEntries on a peer
// to ensure they don't time out. This is done async of replicate(),
// since that routine could potentially be blocked on disk IO.
func (r *Raft) heartbeat(s *followerReplication, stopCh chan struct{}) {
	var failures uint64
	req := AppendEntriesRequest{
		RPCHeader: r.getRPCHeader(),
		Term:      s.currentTerm,
		// this is needed for retro compatibility, before RPCHeader.Addr was added
		Leader: r.trans.EncodePeer(r.localID, r.localAddr),
	}

	var resp AppendEntriesResponse
	batcher, _ := r.trans.(HeartbeatBatcher) // coppice fork
	for {
		// Wait for the next heartbeat interval or forced notify
		var timeout <-chan time.Time
		var tick <-chan struct{}
		if batcher != nil {
			tick = batcher.HeartbeatTick()
		} else {
			timeout = randomTimeout(r.config().HeartbeatTimeout / 10)
		}
		batched := false
		select {
		case <-s.notifyCh:
		case <-timeout:
		case <-tick:
			batched = true
		case <-stopCh:
			return
		}

		s.peerLock.RLock()
		peer := s.peer
		s.peerLock.RUnlock()

		start := time.Now()
		sent := s.sentCommit.Load()
		resp.FollowerCommitKnown = false
		err := ErrHeartbeatNotBatched
		if batched {
			if err = batcher.BatchedHeartbeat(peer.ID, peer.Address, &req, &resp); err == nil {
				err = checkResponder(peer.ID, &resp)
			}
		}
		if err == ErrHeartbeatNotBatched {
			err = r.trans.AppendEntries(peer.ID, peer.Address, &req, &resp)
		}
		if err != nil {
			nextBackoffTime := cappedExponentialBackoff(failureWait, failures, maxFailureScale, r.config().HeartbeatTimeout/2)
			r.logger.Error("failed to heartbeat to", "peer", peer.Address, "backoff time",
				nextBackoffTime, "error", err)
			r.observe(FailedHeartbeatObservation{PeerID: peer.ID, LastContact: s.LastContact()})
			failures++
			select {
			case <-time.After(nextBackoffTime):
			case <-stopCh:
				return
			}
		} else {
			if failures > 0 {
				r.observe(ResumedHeartbeatObservation{PeerID: peer.ID})
				asyncNotifyCh(s.resumeCh) // coppice fork
			}
			if resp.Term > req.Term {
				// coppice fork: a follower in a later term ends this
				// leadership. Upstream's leader learnt it from the next
				// AppendEntries, which an idle leader now sends only
				// every HeartbeatTimeout (pipelineReplicate).
				r.handleStaleTerm(s)
				return
			}
			s.setLastContact()
			failures = 0
			if batched {
				// A periodic heartbeat: one VerifyLeader sent at once
				// never goes through the batcher, and tells nothing of
				// whether the batches carry the commit index.
				noteFollowerCommit(s, &resp, sent)
			}
			labels := []metrics.Label{{Name: "peer_id", Value: string(peer.ID)}}
			metrics.MeasureSinceWithLabels([]string{"raft", "replication", "heartbeat"}, start, labels)

			if !r.noLegacyTelemetry {
				// Duplicated information. Kept for backward compatibility.
				metrics.MeasureSince([]string{"raft", "replication", "heartbeat", string(peer.ID)}, start)
			}

			s.notifyAll(resp.Success, start)
		}
	}
}

// pipelineReplicate is used when we have synchronized our state with the follower,
// and want to switch to a higher performance pipeline mode of replication.
// We only pipeline AppendEntries commands, and if we ever hit an error, we fall
// back to the standard replication which can handle more complex situations.
func (r *Raft) pipelineReplicate(s *followerReplication) error {
	s.peerLock.RLock()
	peer := s.peer
	s.peerLock.RUnlock()

	// Create a new pipeline
	pipeline, err := r.trans.AppendEntriesPipeline(peer.ID, peer.Address)
	if err != nil {
		return err
	}
	defer func() { _ = pipeline.Close() }()

	// Log start and stop of pipeline
	r.logger.Info("pipelining replication", "peer", peer)
	defer r.logger.Info("aborting pipeline replication", "peer", peer)

	// Create a shutdown and finish channel
	stopCh := make(chan struct{})
	finishCh := make(chan struct{})

	// Start a dedicated decoder
	r.goFunc(func() { r.pipelineDecode(s, pipeline, stopCh, finishCh) })

	// Start pipeline sends at the last good nextIndex
	nextIndex := atomic.LoadUint64(&s.nextIndex)

	shouldStop := false
SEND:
	for !shouldStop {
		select {
		case <-s.commitCh:
			if r.commitPending(s) {
				shouldStop = r.pipelineSend(s, pipeline, &nextIndex, r.replicationLastIndex())
			}
		case <-finishCh:
			break SEND
		case maxIndex := <-s.stopCh:
			// Make a best effort to replicate up to this index
			if maxIndex > 0 {
				r.pipelineSend(s, pipeline, &nextIndex, maxIndex)
			}
			break SEND
		case deferErr := <-s.triggerDeferErrorCh:
			lastLogIdx := r.replicationLastIndex()
			shouldStop = r.pipelineSend(s, pipeline, &nextIndex, lastLogIdx)
			if !shouldStop {
				deferErr.respond(nil)
			} else {
				deferErr.respond(fmt.Errorf("replication failed"))
			}
		case <-s.triggerCh:
			lastLogIdx := r.replicationLastIndex()
			shouldStop = r.pipelineSend(s, pipeline, &nextIndex, lastLogIdx)
		case <-s.resumeCh:
			// coppice fork: the follower answers heartbeats again after
			// failing them. It may have restarted, its log whole but
			// its commit index lost, and heartbeats do not carry it:
			// send it the commit now, not at the next safety net (on a
			// pipeline that broke with the restart, the send fails and
			// replicate sends it anew).
			shouldStop = r.pipelineSend(s, pipeline, &nextIndex, r.replicationLastIndex())
		case <-r.pipelineSafetyNet(s):
			// coppice fork: every HeartbeatTimeout, not every
			// CommitTimeout, and never while the follower's heartbeats
			// report its commit index (noteFollowerCommit). New entries
			// come through triggerCh and the commit through commitCh;
			// this request is for a follower that restarted between two
			// heartbeats, its log whole but its commit index lost
			// (hashicorp/raft's heartbeats do not carry it), behind a
			// pipeline whose connection died unseen. Upstream's request
			// every CommitTimeout (50-100 ms) was, in a node running
			// hundreds of groups, most of its idle work.
			shouldStop = r.pipelineSend(s, pipeline, &nextIndex, r.replicationLastIndex())
		}
	}

	// Stop our decoder, and wait for it to finish
	close(stopCh)
	select {
	case <-finishCh:
	case <-r.shutdownCh:
	}
	return nil
}

// pipelineSafetyNet (coppice fork) is when a pipeline sends with no
// trigger: every HeartbeatTimeout, never more often than CommitTimeout;
// never (nil) while the follower's heartbeats report its commit index.
func (r *Raft) pipelineSafetyNet(s *followerReplication) <-chan time.Time {
	if s.commitReported.Load() {
		return nil
	}
	c := r.config()
	if c.CommitTimeout > c.HeartbeatTimeout {
		return randomTimeout(c.CommitTimeout)
	}
	return randomTimeout(c.HeartbeatTimeout)
}

// noteFollowerCommit (coppice fork) takes the follower's commit index
// from a heartbeat's answer, when the transport carried it: below the
// commit index the requests had carried when the heartbeat went (sent),
// the follower lost it (it restarted, its log whole), and the replication
// sends it again at once; and as long as the answers carry it, the
// pipeline needs no safety net. A follower only a request behind (one
// on its way as the heartbeat overtook it) costs one request more.
func noteFollowerCommit(s *followerReplication, resp *AppendEntriesResponse, sent uint64) {
	known := resp.FollowerCommitKnown
	if s.commitReported.Swap(known) && !known {
		// The pipeline waits with no safety net: it takes it up again.
		asyncNotifyCh(s.commitCh)
	}
	if known && resp.FollowerCommit < sent && s.sentCommit.CompareAndSwap(sent, resp.FollowerCommit) {
		asyncNotifyCh(s.commitCh)
	}
}

// pipelineSend is used to send data over a pipeline. It is a helper to
// pipelineReplicate.
func (r *Raft) pipelineSend(s *followerReplication, p AppendPipeline, nextIdx *uint64, lastIndex uint64) (shouldStop bool) {
	// Create a new append request
	req := new(AppendEntriesRequest)
	if err := r.setupAppendEntries(s, req, *nextIdx, lastIndex); err != nil {
		return true
	}

	// Pipeline the append entries
	if _, err := p.AppendEntries(req, new(AppendEntriesResponse)); err != nil {
		r.logger.Error("failed to pipeline appendEntries", "peer", s.currentPeer(), "error", err)
		return true
	}

	// Increase the next send log to avoid re-sending old logs
	if n := len(req.Entries); n > 0 {
		last := req.Entries[n-1]
		atomic.StoreUint64(nextIdx, last.Index+1)
	}
	return false
}

// pipelineDecode is used to decode the responses of pipelined requests.
func (r *Raft) pipelineDecode(s *followerReplication, p AppendPipeline, stopCh, finishCh chan struct{}) {
	defer close(finishCh)
	// coppice fork: a pipeline nobody decodes any more is closed at once.
	// NetworkTransport hands each request to its decoder and each answer
	// to this consumer through channels of MaxRPCsInFlight-2 (none by
	// default): once this returns (a refusal, a newer term), the next
	// send waits for the decoder, which waits for this consumer, for good
	// (the SEND loop picks a ready trigger as readily as finishCh), and
	// the replication goroutine with it: the follower gets no entry
	// again, and Shutdown waits forever. Closing the pipeline fails that
	// send instead (ErrPipelineShutdown).
	defer func() { _ = p.Close() }()
	respCh := p.Consumer()
	for {
		select {
		case ready := <-respCh:
			s.peerLock.RLock()
			peer := s.peer
			s.peerLock.RUnlock()

			req, resp := ready.Request(), ready.Response()
			appendStats(string(peer.ID), ready.Start(), float32(len(req.Entries)), r.noLegacyTelemetry)

			// Check for a newer term, stop running
			if resp.Term > req.Term {
				r.handleStaleTerm(s)
				return
			}

			// Update the last contact
			s.setLastContact()

			// Abort pipeline if not successful
			if !resp.Success {
				return
			}

			// Update our replication state
			updateLastAppended(s, req, ready.Start())
		case <-stopCh:
			return
		}
	}
}

// setupAppendEntries is used to setup an append entries request.
func (r *Raft) setupAppendEntries(s *followerReplication, req *AppendEntriesRequest, nextIndex, lastIndex uint64) error {
	req.RPCHeader = r.getRPCHeader()
	req.Term = s.currentTerm
	// this is needed for retro compatibility, before RPCHeader.Addr was added
	req.Leader = r.trans.EncodePeer(r.localID, r.localAddr)
	req.LeaderCommitIndex = r.getCommitIndex()
	s.sentCommit.Store(req.LeaderCommitIndex)
	if err := r.setPreviousLog(req, nextIndex); err != nil {
		return err
	}
	if err := r.setNewLogs(req, nextIndex, lastIndex); err != nil {
		return err
	}
	return nil
}

// setPreviousLog is used to setup the PrevLogEntry and PrevLogTerm for an
// AppendEntriesRequest given the next index to replicate.
func (r *Raft) setPreviousLog(req *AppendEntriesRequest, nextIndex uint64) error {
	// Guard for the first index, since there is no 0 log entry
	// Guard against the previous index being a snapshot as well
	lastSnapIdx, lastSnapTerm := r.getLastSnapshot()
	if nextIndex == 1 {
		req.PrevLogEntry = 0
		req.PrevLogTerm = 0

	} else if (nextIndex - 1) == lastSnapIdx {
		req.PrevLogEntry = lastSnapIdx
		req.PrevLogTerm = lastSnapTerm

	} else {
		var l Log
		if err := r.replicationLog(nextIndex-1, &l); err != nil {
			r.logger.Error("failed to get log", "index", nextIndex-1, "error", err)
			return err
		}

		// Set the previous index and term (0 if nextIndex is 1)
		req.PrevLogEntry = l.Index
		req.PrevLogTerm = l.Term
	}
	return nil
}

// setNewLogs is used to setup the logs which should be appended for a request.
func (r *Raft) setNewLogs(req *AppendEntriesRequest, nextIndex, lastIndex uint64) error {
	// Append up to MaxAppendEntries or up to the lastIndex. we need to use a
	// consistent value for maxAppendEntries in the lines below in case it ever
	// becomes reloadable.
	maxAppendEntries := r.config().MaxAppendEntries
	req.Entries = make([]*Log, 0, maxAppendEntries)
	maxIndex := min(nextIndex+uint64(maxAppendEntries)-1, lastIndex)
	for i := nextIndex; i <= maxIndex; i++ {
		oldLog := new(Log)
		if err := r.replicationLog(i, oldLog); err != nil {
			r.logger.Error("failed to get log", "index", i, "error", err)
			return err
		}
		req.Entries = append(req.Entries, oldLog)
	}
	return nil
}

// appendStats is used to emit stats about an AppendEntries invocation.
func appendStats(peer string, start time.Time, logs float32, skipLegacy bool) {
	labels := []metrics.Label{{Name: "peer_id", Value: peer}}
	metrics.MeasureSinceWithLabels([]string{"raft", "replication", "appendEntries", "rpc"}, start, labels)
	metrics.IncrCounterWithLabels([]string{"raft", "replication", "appendEntries", "logs"}, logs, labels)

	if !skipLegacy {
		// Duplicated information. Kept for backward compatibility.
		metrics.MeasureSince([]string{"raft", "replication", "appendEntries", "rpc", peer}, start)
		metrics.IncrCounter([]string{"raft", "replication", "appendEntries", "logs", peer}, logs)
	}
}

// currentPeer is s.peer, read under its lock: the leader's loop changes
// it when the server's address or suffrage changes (coppice fork).
func (s *followerReplication) currentPeer() Server {
	s.peerLock.RLock()
	defer s.peerLock.RUnlock()
	return s.peer
}

// handleStaleTerm is used when a follower indicates that we have a stale term.
func (r *Raft) handleStaleTerm(s *followerReplication) {
	if r.getLeadershipTransferInProgress() || s.currentTerm == atomic.LoadUint64(&r.transferredTerm) {
		// coppice fork: the election a leadership transfer asked for,
		// its expected end (the transfer may be over by the time a
		// replication hears of it).
		r.logger.Info("peer has newer term, stopping replication", "peer", s.currentPeer(), "leadership-transfer", true)
	} else {
		r.logger.Error("peer has newer term, stopping replication", "peer", s.currentPeer())
	}
	s.notifyAll(false, time.Time{}) // No longer leader
	asyncNotifyCh(s.stepDown)
}

// updateLastAppended is used to update follower replication state after a
// successful AppendEntries RPC, sent at sent.
// TODO: This isn't used during InstallSnapshot, but the code there is similar.
func updateLastAppended(s *followerReplication, req *AppendEntriesRequest, sent time.Time) {
	// Mark any inflight logs as committed
	if logs := req.Entries; len(logs) > 0 {
		last := logs[len(logs)-1]
		atomic.StoreUint64(&s.nextIndex, last.Index+1)
		s.commitment.match(s.currentPeer().ID, last.Index)
	}

	// Notify still leader
	s.notifyAll(true, sent)
}

// replicationLastIndex is the last index replication may send: that of the
// last entry stored, or of the last being stored by dispatchLogs (coppice).
func (r *Raft) replicationLastIndex() uint64 {
	last := r.getLastIndex()
	r.dispatchingLock.RLock()
	if n := len(r.dispatching); n > 0 {
		last = max(last, r.dispatching[n-1].Index)
	}
	r.dispatchingLock.RUnlock()
	return last
}

// replicationLog reads the entry at index from those dispatchLogs is
// storing, or else from the log store (coppice). Entries are not changed
// once dispatched: out shares their data.
func (r *Raft) replicationLog(index uint64, out *Log) error {
	r.dispatchingLock.RLock()
	if n := len(r.dispatching); n > 0 && index >= r.dispatching[0].Index && index <= r.dispatching[n-1].Index {
		*out = *r.dispatching[index-r.dispatching[0].Index]
		r.dispatchingLock.RUnlock()
		return nil
	}
	r.dispatchingLock.RUnlock()
	return r.logs.GetLog(index, out)
}
