package actors

// Pub/sub across nodes: a message published on this node goes to every
// other node the gossip says is up, through the cluster port to the
// peer's client path (messages.Publish), where its client port hands it to
// its subscribers (server.Server.Deliver). Each peer has a queue and one
// sender here, so a peer gets this node's messages in the order they were
// published; the sender takes everything queued as one request. PUBLISH
// waits up to publishWait for the peers' counts of the clients reached
// (a peer that answers later, or fails, counts none; its messages still
// go, in order, or are dropped with its request). While a peer's requests
// fail (it is down, and gossip does not say so yet), PUBLISH does not wait
// for it.

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/coppice-kv/coppice/kv/luascript"
	"github.com/coppice-kv/coppice/messages"
	"github.com/coppice-kv/coppice/server"
	"github.com/coppice-kv/coppice/transport"
	"google.golang.org/protobuf/proto"
)

const (
	// publishWait bounds PUBLISH's wait for the peers' counts.
	publishWait = 2 * time.Second
	// publishTimeout bounds one request of messages to a peer.
	publishTimeout = 10 * time.Second
	// publishQueueBytes bounds the bytes waiting for one peer: past it,
	// messages to the peer are dropped (and count no client there).
	publishQueueBytes = 64 << 20
	// publishBatchBytes bounds one request's messages.
	publishBatchBytes = 4 << 20
)

// publisher owns the per-peer queues; close stops their senders.
type publisher struct {
	rt     *Runtime
	mu     sync.Mutex
	qs     map[string]*peerQueue
	ctx    context.Context // ended by close
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newPublisher(rt *Runtime) *publisher {
	ctx, cancel := context.WithCancel(context.Background())
	return &publisher{rt: rt, qs: map[string]*peerQueue{}, ctx: ctx, cancel: cancel}
}

// pubItem is one message for one peer, and where its count goes.
type pubItem struct {
	msg  *messages.Published
	size int
	done chan uint32 // buffered: the sender never waits on it
}

type peerQueue struct {
	mu    sync.Mutex
	peer  transport.Peer
	items []*pubItem
	bytes int
	wake  chan struct{} // buffered 1
	// failing is set while the peer's requests fail: a streak of
	// failures logs once, and PUBLISH does not wait for the peer's count
	// (its messages are still sent, and counted once it answers again).
	failing bool
}

// Broadcast queues the message for every peer up now and returns the
// pending count of the clients it reaches there.
func (p *publisher) Broadcast(channel, message []byte, sharded bool) server.Pending {
	peers := p.rt.addrs.peers(p.rt.Name)
	if len(peers) == 0 {
		return ready{&messages.Reply{Value: &messages.Reply_Integer{}}}
	}
	msg := &messages.Published{Channel: channel, Message: message, Sharded: sharded}
	size := len(channel) + len(message) + 16
	items := make([]*pubItem, 0, len(peers))
	for _, peer := range peers {
		it := &pubItem{msg: msg, size: size, done: make(chan uint32, 1)}
		if queued, failing := p.queue(peer).add(it); queued && !failing {
			items = append(items, it)
		}
	}
	return &broadcast{items: items, deadline: time.Now().Add(publishWait)}
}

// queue is peer's queue, made (with its sender) on first use; the
// address is gossip's latest.
func (p *publisher) queue(peer transport.Peer) *peerQueue {
	p.mu.Lock()
	defer p.mu.Unlock()
	q := p.qs[peer.Name]
	if q == nil {
		q = &peerQueue{peer: peer, wake: make(chan struct{}, 1)}
		p.qs[peer.Name] = q
		if p.ctx.Err() == nil { // else closed: the item waits out publishWait, uncounted
			p.wg.Add(1)
			go p.send(q)
		}
	}
	q.mu.Lock()
	q.peer = peer
	q.mu.Unlock()
	return q
}

// add queues it, and tells whether the peer's requests are failing;
// queued is false when the peer's queue is full (it is dropped).
func (q *peerQueue) add(it *pubItem) (queued, failing bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.bytes+it.size > publishQueueBytes {
		return false, q.failing
	}
	q.items = append(q.items, it)
	q.bytes += it.size
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return true, q.failing
}

// take takes the queue's first items, up to publishBatchBytes (one at
// least).
func (q *peerQueue) take() ([]*pubItem, transport.Peer) {
	q.mu.Lock()
	defer q.mu.Unlock()
	n, bytes := 0, 0
	for n < len(q.items) && (n == 0 || bytes+q.items[n].size <= publishBatchBytes) {
		bytes += q.items[n].size
		n++
	}
	batch := q.items[:n:n]
	q.items = q.items[n:]
	q.bytes -= bytes
	return batch, q.peer
}

// send delivers q's messages to its peer, in order, until close.
func (p *publisher) send(q *peerQueue) {
	defer p.wg.Done()
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-q.wake:
		}
		for {
			batch, peer := q.take()
			if len(batch) == 0 {
				break
			}
			counts, err := p.deliver(peer, batch)
			q.mu.Lock() // before the counts: a PUBLISH after them sees it
			tell := err != nil && !q.failing
			q.failing = err != nil
			q.mu.Unlock()
			if tell {
				p.rt.logger().Warn("pub/sub: messages to a node were lost", "node", peer.Name, "err", err)
			}
			for i, it := range batch {
				var n uint32
				if err == nil && i < len(counts) {
					n = counts[i]
				}
				it.done <- n
			}
		}
	}
}

// deliver sends one batch to peer and returns its counts.
func (p *publisher) deliver(peer transport.Peer, batch []*pubItem) ([]uint32, error) {
	remote, err := p.rt.Remote()
	if err != nil {
		return nil, err
	}
	req := &messages.Publish{Messages: make([]*messages.Published, len(batch))}
	for i, it := range batch {
		req.Messages[i] = it.msg
	}
	ctx, cancel := context.WithTimeout(p.ctx, publishTimeout)
	defer cancel()
	res, err := remote.Request(ctx, peer, ClientPath, req)
	if err != nil {
		return nil, err
	}
	reply, ok := res.(*messages.PublishReply)
	if !ok {
		return nil, fmt.Errorf("answered %T", res)
	}
	return reply.Receivers, nil
}

// AskPubSub asks every peer up for its answer to a PUBSUB query, all at
// once, and returns those that came within publishWait.
func (p *publisher) AskPubSub(q *messages.PubSubQuery) []*messages.PubSubAnswer {
	return askPeers[*messages.PubSubAnswer](p, q, "PUBSUB")
}

// askPeers sends q to every peer up's client port at once, and returns
// the answers (of type A) that came within publishWait; what names the
// question in the log of those that did not.
func askPeers[A any](p *publisher, q proto.Message, what string) []A {
	peers := p.rt.addrs.peers(p.rt.Name)
	remote, err := p.rt.Remote()
	if len(peers) == 0 || err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(p.ctx, publishWait)
	defer cancel()
	type answer struct {
		a  A
		ok bool
	}
	answers := make(chan answer, len(peers))
	for _, peer := range peers {
		go func() {
			res, err := remote.Request(ctx, peer, ClientPath, q)
			a, ok := res.(A) // not: none in time
			if !ok {
				p.rt.logger().Debug("a node did not answer", "question", what, "node", peer.Name, "err", err, "answer", fmt.Sprintf("%T", res))
			}
			answers <- answer{a, ok}
		}()
	}
	var out []A
	for range peers {
		if a := <-answers; a.ok {
			out = append(out, a.a)
		}
	}
	return out
}

// AskScript asks every peer up for a script by its SHA-1, all at once,
// and returns the first body that came within publishWait whose SHA-1 is
// sha (nil if none).
func (p *publisher) AskScript(sha string) []byte {
	for _, a := range p.askScripts(&messages.ScriptQuery{Sha: sha}) {
		if b := a.GetBody(); b != nil && luascript.SHA1(b) == sha {
			return b
		}
	}
	return nil
}

// FlushScripts has every peer up empty its script cache, and waits for
// them (up to publishWait).
func (p *publisher) FlushScripts() { p.askScripts(&messages.ScriptQuery{Flush: true}) }

// askScripts sends q to every peer up at once, and returns the answers
// that came within publishWait.
func (p *publisher) askScripts(q *messages.ScriptQuery) []*messages.ScriptAnswer {
	return askPeers[*messages.ScriptAnswer](p, q, "scripts")
}

// close stops the senders; what they held is lost.
func (p *publisher) close() {
	p.cancel()
	p.wg.Wait()
}

// broadcast is a message's pending count on the peers.
type broadcast struct {
	items    []*pubItem
	deadline time.Time
}

func (b *broadcast) Wait() *messages.Reply {
	var n int64
	t := time.NewTimer(time.Until(b.deadline))
	defer t.Stop()
	for _, it := range b.items {
		select {
		case c := <-it.done:
			n += int64(c)
		case <-t.C:
			return &messages.Reply{Value: &messages.Reply_Integer{Integer: n}}
		}
	}
	return &messages.Reply{Value: &messages.Reply_Integer{Integer: n}}
}
