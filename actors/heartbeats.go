package actors

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coppice-kv/coppice/messages"
	"github.com/coppice-kv/coppice/transport"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
)

// errNoGroupThere is a heartbeat's error on the sending node when the
// follower node has no Raft group on its stream (restarting, or not added
// back yet: RaftHeartbeatAnswer.no_group).
var errNoGroupThere = errors.New("the peer serves no such Raft group")

// heartbeats batches the node's Raft heartbeats (the Raft fork's
// HeartbeatBatcher). hashicorp/raft has every group's leader send each
// follower a heartbeat RPC every 100-200 ms, on the group's own
// connection: a 3-node cluster with --shards 256 made about 3,400 of them
// a second while idle, most of what it did. Here every group's periodic
// heartbeats go at one tick every raftHeartbeatTimeout/10, and those for
// one follower node go together, as one RaftHeartbeats request on a
// messaging stream of their own (transport.StreamHeartbeats: not behind a
// forwarded command's value); the follower node hands each to its group's
// transport (DeliverHeartbeat) and answers them together. The heartbeats
// a leader sends at once to confirm its leadership (VerifyLeader: the read
// barrier) still go alone, on the group's connection, as do all other
// RPCs. Each answer carries the group's commit index on the follower:
// the leader sends the commit again at once to a follower that lost it
// (restarted between two heartbeats), and its replication needs no timer
// for that (the Raft fork's noteFollowerCommit).
//
// A batch that gets no answer fails each of its heartbeats, as the
// follower node's silence would have failed them alone. A peer that
// cannot take a batch (a node of a version before them has no such
// stream) is sent its heartbeats alone, on the groups' connections, for
// batchRefusedFor.
type heartbeats struct {
	mu sync.Mutex
	// tick is closed at the next tick; nil until a group asks for it.
	tick chan struct{}
	// pending is the heartbeats waiting for their batch's flush, by peer.
	pending map[transport.Peer][]*beat
	// refused is when each peer that could not take a batch may be tried
	// again.
	refused map[string]time.Time
	// groups is the transports of the groups on this node, by mux stream.
	groups map[uint32]*raft.NetworkTransport
	// closing is closed when its transport's group is forgotten: a
	// heartbeat of a group that stops no longer waits for its batch.
	closing map[*raft.NetworkTransport]chan struct{}

	batches, beats, failed atomic.Uint64
}

// HeartbeatStats counts the batches of Raft heartbeats the node sent.
type HeartbeatStats struct {
	// Batches is the RaftHeartbeats requests sent, Beats the heartbeats
	// they carried, Failed the requests that got no answer (the
	// follower node down or unreachable, or unable to take them).
	Batches, Beats, Failed uint64
}

// HeartbeatStats returns the node's heartbeat batching counters.
func (rt *Runtime) HeartbeatStats() (HeartbeatStats, bool) {
	h := &rt.beats
	return HeartbeatStats{Batches: h.batches.Load(), Beats: h.beats.Load(), Failed: h.failed.Load()}, true
}

const (
	// heartbeatsPath is the target a RaftHeartbeats request names.
	heartbeatsPath = "raft-heartbeats"
	// batchLinger is how long a batch waits, after its first heartbeat,
	// for the others of its tick: every group's heartbeat goroutine wakes
	// at the tick, and all have sent within a few hundred microseconds.
	batchLinger = 2 * time.Millisecond
	// batchTimeout bounds a batch's request and its answers.
	batchTimeout = 5 * time.Second
	// batchRefusedFor is how long a peer that could not take a batch is
	// sent heartbeats alone.
	batchRefusedFor = time.Minute
	// beatAnswerWait bounds how long a follower node waits for its groups'
	// answers to a batch.
	beatAnswerWait = 100 * time.Millisecond
)

// beat is one group's heartbeat in a batch, and where its answer goes.
type beat struct {
	stream uint32
	req    *raft.AppendEntriesRequest
	done   chan error

	mu sync.Mutex
	// resp is where the answer is written, until the sender gives up
	// waiting (its group stops) and sets it nil: Raft reuses it.
	resp *raft.AppendEntriesResponse
}

// answer writes the answer to the beat's sender, unless it gave up.
func (b *beat) answer(a raft.AppendEntriesResponse) {
	b.mu.Lock()
	if b.resp != nil {
		*b.resp = a
	}
	b.mu.Unlock()
	b.done <- nil
}

// abandon stops the beat's answer from being written.
func (b *beat) abandon() {
	b.mu.Lock()
	b.resp = nil
	b.mu.Unlock()
}

// raftTransport is the transport the group on mux stream gives its Raft:
// trans, with its periodic heartbeats batched with the other groups'. The
// heartbeats its leaders batch reach it through trans until forgotten
// (heartbeats.forget).
func (rt *Runtime) raftTransport(stream uint32, trans *raft.NetworkTransport) raft.Transport {
	h := &rt.beats
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.groups == nil {
		h.groups = map[uint32]*raft.NetworkTransport{}
	}
	h.groups[stream] = trans
	if h.closing == nil {
		h.closing = map[*raft.NetworkTransport]chan struct{}{}
	}
	closing := make(chan struct{})
	h.closing[trans] = closing
	return batchingTransport{NetworkTransport: trans, rt: rt, stream: stream, closing: closing}
}

// forget drops the group on stream, when its transport is trans (a group
// started again since has its own).
func (h *heartbeats) forget(stream uint32, trans *raft.NetworkTransport) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.groups[stream] == trans {
		delete(h.groups, stream)
	}
	if c, ok := h.closing[trans]; ok {
		close(c)
		delete(h.closing, trans)
	}
}

// nextTick returns the channel closed at the next tick, a tick period
// after the first group asked for it.
func (h *heartbeats) nextTick() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.tick == nil {
		tick := make(chan struct{})
		h.tick = tick
		time.AfterFunc(raftHeartbeatTimeout/10, func() {
			h.mu.Lock()
			defer h.mu.Unlock()
			close(tick)
			h.tick = nil
		})
	}
	return h.tick
}

// send sends the heartbeat of the group on stream to server id at target
// with the others of its tick, and waits for its answer, or until closing
// is closed (the group stops: hashicorp/raft's Shutdown waits for its
// heartbeat goroutine, and a batch to a peer cut off takes up to
// batchTimeout).
func (h *heartbeats) send(rt *Runtime, stream uint32, id raft.ServerID, target raft.ServerAddress, req *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse, closing <-chan struct{}) error {
	addr, _ := rt.addrs.ServerAddr(id)
	if addr == "" {
		addr = target
	}
	peer := transport.Peer{Name: string(id), Addr: string(addr)}
	b := &beat{stream: stream, req: req, resp: resp, done: make(chan error, 1)}
	h.mu.Lock()
	if until, ok := h.refused[peer.Name]; ok {
		if time.Now().Before(until) {
			h.mu.Unlock()
			return raft.ErrHeartbeatNotBatched
		}
		delete(h.refused, peer.Name)
	}
	if h.pending == nil {
		h.pending = map[transport.Peer][]*beat{}
	}
	first := len(h.pending[peer]) == 0
	h.pending[peer] = append(h.pending[peer], b)
	h.mu.Unlock()
	if first {
		time.AfterFunc(batchLinger, func() { h.flush(rt, peer) })
	}
	select {
	case err := <-b.done:
		return err
	case <-closing:
		b.abandon()
		return raft.ErrTransportShutdown
	}
}

// flush sends peer's pending heartbeats as one request and hands out the
// answers.
func (h *heartbeats) flush(rt *Runtime, peer transport.Peer) {
	h.mu.Lock()
	batch := h.pending[peer]
	delete(h.pending, peer)
	h.mu.Unlock()
	msg := &messages.RaftHeartbeats{Beats: make([]*messages.RaftHeartbeat, len(batch))}
	for i, b := range batch {
		msg.Beats[i] = &messages.RaftHeartbeat{
			Stream: b.stream, Term: b.req.Term,
			ProtocolVersion: int32(b.req.ProtocolVersion), Id: b.req.ID, Addr: b.req.Addr,
		}
	}
	answers, err := requestBeats(rt, peer, msg)
	h.batches.Add(1)
	h.beats.Add(uint64(len(batch)))
	if err != nil {
		h.failed.Add(1)
	}
	var remoteErr *transport.RemoteError
	if errors.As(err, &remoteErr) || errors.Is(err, transport.ErrUnknownPeer) {
		// The peer cannot take batches: a version before them.
		h.mu.Lock()
		if h.refused == nil {
			h.refused = map[string]time.Time{}
		}
		h.refused[peer.Name] = time.Now().Add(batchRefusedFor)
		h.mu.Unlock()
		rt.logger().Info("Raft heartbeats to this peer go one by one: it does not take them together",
			"peer", peer.String(), "err", err)
		err = raft.ErrHeartbeatNotBatched
	}
	for i, b := range batch {
		if err != nil {
			b.done <- err
			continue
		}
		a := answers[i]
		if a.Error != "" {
			err := errors.New(a.Error)
			if a.NoGroup {
				err = fmt.Errorf("%w: %s", errNoGroupThere, a.Error)
			}
			b.done <- fmt.Errorf("raft heartbeat to %s: %w", peer, err)
			continue
		}
		b.answer(raft.AppendEntriesResponse{
			RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersion(a.ProtocolVersion), ID: a.Id, Addr: a.Addr},
			Term:      a.Term, LastLog: a.LastLog, Success: a.Success, NoRetryBackoff: a.NoRetryBackoff,
			FollowerCommit: a.GetCommitIndex(), FollowerCommitKnown: a.CommitIndex != nil,
		})
	}
}

// requestBeats sends msg to peer and returns its answers, one per heartbeat.
func requestBeats(rt *Runtime, peer transport.Peer, msg *messages.RaftHeartbeats) ([]*messages.RaftHeartbeatAnswer, error) {
	rt.mu.RLock()
	remote := rt.beatsRemote
	rt.mu.RUnlock()
	if remote == nil {
		return nil, raft.ErrHeartbeatNotBatched // stopping: the group's own connection
	}
	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()
	res, err := remote.Request(ctx, peer, heartbeatsPath, msg)
	if err != nil {
		return nil, err
	}
	ans, ok := res.(*messages.RaftHeartbeatAnswers)
	if !ok || len(ans.Answers) != len(msg.Beats) {
		return nil, fmt.Errorf("raft heartbeats to %s: %d beats answered with %T", peer, len(msg.Beats), res)
	}
	return ans.Answers, nil
}

// handler serves the heartbeats stream: RaftHeartbeats and nothing else.
func (h *heartbeats) handler(ctx context.Context, target string, msg proto.Message) (proto.Message, error) {
	m, ok := msg.(*messages.RaftHeartbeats)
	if !ok || target != heartbeatsPath {
		return nil, fmt.Errorf("the heartbeats stream takes RaftHeartbeats to %s, not %T to %s", heartbeatsPath, msg, target)
	}
	return h.serve(ctx, m), nil
}

// serve hands each heartbeat of m to its group on this node and answers
// them, within ctx.
func (h *heartbeats) serve(ctx context.Context, m *messages.RaftHeartbeats) *messages.RaftHeartbeatAnswers {
	out := &messages.RaftHeartbeatAnswers{Answers: make([]*messages.RaftHeartbeatAnswer, len(m.Beats))}
	waits := make([]<-chan raft.RPCResponse, len(m.Beats))
	groups := make([]*raft.NetworkTransport, len(m.Beats))
	h.mu.Lock()
	for i, b := range m.Beats {
		groups[i] = h.groups[b.Stream]
	}
	h.mu.Unlock()
	for i, b := range m.Beats {
		trans := groups[i]
		if trans == nil {
			out.Answers[i] = &messages.RaftHeartbeatAnswer{Error: fmt.Sprintf("no Raft group on stream %d on this node", b.Stream), NoGroup: true}
			continue
		}
		req := &raft.AppendEntriesRequest{
			RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersion(b.ProtocolVersion), ID: b.Id, Addr: b.Addr},
			Term:      b.Term,
		}
		var err error
		if waits[i], err = trans.DeliverHeartbeat(req); err != nil {
			out.Answers[i] = &messages.RaftHeartbeatAnswer{Error: err.Error()}
		}
	}
	// A group answers a heartbeat as it takes it (Raft's heartbeat
	// handler); one shutting down never does, and must not hold up the
	// others' answers past the leader's lease.
	late := time.NewTimer(beatAnswerWait)
	defer late.Stop()
	waiting := true
	for i, wait := range waits {
		if wait == nil {
			continue
		}
		var r raft.RPCResponse
		got := false
		if waiting {
			select {
			case r, got = <-wait:
			case <-late.C:
				waiting = false
			case <-ctx.Done():
				waiting = false
			}
		} else {
			select {
			case r, got = <-wait:
			default:
			}
		}
		resp, ok := r.Response.(*raft.AppendEntriesResponse)
		switch {
		case !got:
			out.Answers[i] = &messages.RaftHeartbeatAnswer{Error: fmt.Sprintf("no answer within %v", beatAnswerWait)}
		case r.Error != nil:
			out.Answers[i] = &messages.RaftHeartbeatAnswer{Error: r.Error.Error()}
		case !ok:
			out.Answers[i] = &messages.RaftHeartbeatAnswer{Error: fmt.Sprintf("answered %T", r.Response)}
		default:
			out.Answers[i] = &messages.RaftHeartbeatAnswer{
				Term: resp.Term, LastLog: resp.LastLog, Success: resp.Success, NoRetryBackoff: resp.NoRetryBackoff,
				ProtocolVersion: int32(resp.ProtocolVersion), Id: resp.ID, Addr: resp.Addr,
				CommitIndex: proto.Uint64(resp.FollowerCommit),
			}
		}
	}
	return out
}

// batchingTransport is a group's Raft transport whose periodic heartbeats
// go through heartbeats.
type batchingTransport struct {
	*raft.NetworkTransport
	rt      *Runtime
	stream  uint32
	closing <-chan struct{}
}

var _ raft.HeartbeatBatcher = batchingTransport{}

func (t batchingTransport) HeartbeatTick() <-chan struct{} { return t.rt.beats.nextTick() }

func (t batchingTransport) BatchedHeartbeat(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	return t.rt.beats.send(t.rt, t.stream, id, target, args, resp, t.closing)
}
