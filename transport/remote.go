package transport

// Remote is request/response messaging between nodes over the cluster
// address: a request names an actor path on the receiving node and carries
// a protobuf message (messages.Envelope, length-prefixed); the receiving
// node's Handler delivers it and answers. Requests on one connection are
// multiplexed by id, so a slow request does not hold up the others.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coppice-kv/coppice/messages"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Stream ids on the mux besides the shards' (ShardStream).
const (
	StreamSystem uint32 = 1 << 30 // the system Raft group
	StreamRemote uint32 = 1<<30 + 1
	// StreamHeartbeats carries the Raft groups' heartbeats, batched
	// (actors/heartbeats.go), on connections of their own: behind a
	// forwarded command's large value on the remote stream, they would
	// wait for it.
	StreamHeartbeats uint32 = 1<<30 + 2
)

// ShardStream is the mux stream of shard's Raft group.
func ShardStream(shard int) uint32 { return uint32(shard) + 1 }

const (
	// maxFrame bounds one envelope: a forwarded command carries a client's
	// value, which the client port bounds to 512 MiB.
	maxFrame = 520 << 20
	// maxInFlight bounds the requests one connection has under way.
	maxInFlight = 1024
	dialTimeout = 5 * time.Second
)

// Errors of remote messaging. ErrNotSent wraps a request's failure before
// any of it went out (no connection to the peer): the peer never saw it.
var (
	ErrFrameTooLarge = errors.New("transport: frame too large")
	ErrConnLost      = errors.New("transport: connection lost")
	ErrNotSent       = errors.New("transport: request not sent")
)

// RemoteError is a request the remote node could not deliver or answer.
type RemoteError struct{ Addr, Target, Text string }

func (e *RemoteError) Error() string {
	return fmt.Sprintf("transport: %s at %s: %s", e.Target, e.Addr, e.Text)
}

// Handler answers a request for the actor at target on this node. It is
// called on its own goroutine and should return within ctx, which ends
// after the Remote's timeout, when the requesting peer's connection
// closes (its answer could not be sent), or on Close (which waits for the
// handlers).
type Handler func(ctx context.Context, target string, msg proto.Message) (proto.Message, error)

// Remote sends requests to other nodes and serves theirs.
type Remote struct {
	layer   *Layer
	handler Handler
	log     *slog.Logger
	timeout time.Duration

	mu     sync.Mutex
	conns  map[Peer]*remoteConn
	dials  map[Peer]*dial
	closed bool
	served map[net.Conn]struct{}
	wg     sync.WaitGroup
	// handling is the parent of every handler's context; Close cancels
	// it, so a handler under way does not hold Close up.
	handling context.Context
	stop     context.CancelFunc
}

// NewRemote serves h on m's remote stream; timeout bounds each request it
// handles.
func NewRemote(m *Mux, h Handler, timeout time.Duration) *Remote {
	return NewRemoteOn(m, StreamRemote, h, timeout)
}

// NewRemoteOn is NewRemote on another stream of m: its requests go to the
// peers' Remote on that stream, on connections of their own.
func NewRemoteOn(m *Mux, stream uint32, h Handler, timeout time.Duration) *Remote {
	r := &Remote{layer: m.Layer(stream), handler: h, log: m.log, timeout: timeout,
		conns: map[Peer]*remoteConn{}, dials: map[Peer]*dial{}, served: map[net.Conn]struct{}{}}
	r.handling, r.stop = context.WithCancel(context.Background())
	r.wg.Add(1)
	go r.accept()
	return r
}

// Close stops serving and fails every request under way, its own and the
// ones it was handling (their contexts are cancelled).
func (r *Remote) Close() error {
	r.stop()
	r.mu.Lock()
	r.closed = true
	conns := r.conns
	r.conns = map[Peer]*remoteConn{}
	for c := range r.served {
		c.Close()
	}
	r.mu.Unlock()
	r.layer.Close()
	for _, c := range conns {
		c.fail(ErrClosed)
	}
	r.wg.Wait()
	return nil
}

// Peer is a node to send requests to: its name ("": whichever node
// answers at the address) and its cluster address. A node of another name
// there refuses the connection (ErrOtherNode), so a request never reaches
// a node it was not meant for.
type Peer struct{ Name, Addr string }

func (p Peer) String() string {
	if p.Name == "" {
		return p.Addr
	}
	return p.Name + " at " + p.Addr
}

// Request sends msg to the actor at target on node to, and waits for the
// answer or ctx's end.
func (r *Remote) Request(ctx context.Context, to Peer, target string, msg proto.Message) (proto.Message, error) {
	body, err := anypb.New(msg)
	if err != nil {
		return nil, err
	}
	env, err := r.roundTrip(ctx, to, &messages.Envelope{Target: target, Body: body})
	if err != nil {
		return nil, err
	}
	if env.Body == nil {
		return nil, &RemoteError{Addr: to.Addr, Target: target, Text: "empty answer"}
	}
	return env.Body.UnmarshalNew()
}

// pingTarget is Ping's target: the transport answers it itself.
const pingTarget = "transport/ping"

// Ping checks that node to answers at its address: a round trip, so with
// mutual TLS each side has accepted the other's certificate, and the node
// there is to (or, when to has no name, any node of this cluster).
func (r *Remote) Ping(ctx context.Context, to Peer) error {
	_, err := r.roundTrip(ctx, to, &messages.Envelope{Target: pingTarget})
	return err
}

// roundTrip sends env to node to and returns the answer; an answer
// carrying an error is a *RemoteError.
func (r *Remote) roundTrip(ctx context.Context, to Peer, env *messages.Envelope) (*messages.Envelope, error) {
	c, err := r.conn(ctx, to)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotSent, err)
	}
	ans, err := c.call(ctx, env)
	if err != nil {
		return nil, err
	}
	if ans.Error != "" {
		return nil, &RemoteError{Addr: to.Addr, Target: env.Target, Text: ans.Error}
	}
	return ans, nil
}

// conn returns the connection to node to, dialing it when there is none.
// The dial runs without the lock, bounded by ctx, and callers for the same
// node share it; a failed dial answers for its node until
// redialAfter has passed, so a dead node costs its callers one dial
// timeout, not one each, and never holds up requests to other nodes.
func (r *Remote) conn(ctx context.Context, to Peer) (*remoteConn, error) {
	for {
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return nil, ErrClosed
		}
		if c := r.conns[to]; c != nil && !c.dead() {
			r.mu.Unlock()
			return c, nil
		}
		if d := r.dials[to]; d != nil {
			select {
			case <-d.done: // failed (a dial that worked is not kept)
				if time.Since(d.at) < redialAfter {
					r.mu.Unlock()
					return nil, d.err
				}
			default: // under way: wait for it
				r.mu.Unlock()
				select {
				case <-d.done:
				case <-ctx.Done():
					return nil, fmt.Errorf("transport: dial %s: %w", to, ctx.Err())
				}
				continue
			}
		}
		d := &dial{done: make(chan struct{})}
		r.dials[to] = d
		r.mu.Unlock()
		c, err := r.dial(ctx, to)
		r.mu.Lock()
		d.err, d.at = err, time.Now()
		close(d.done)
		if err == nil {
			delete(r.dials, to)
			if r.closed {
				r.mu.Unlock()
				c.fail(ErrClosed)
				return nil, ErrClosed
			}
			r.conns[to] = c
			r.start(to, c)
		}
		r.mu.Unlock()
		return c, err
	}
}

// dial is one dial under way (done open) or one that failed at at; its
// fields are written under Remote.mu before done closes.
type dial struct {
	done chan struct{}
	err  error
	at   time.Time
}

// staleAfter: a request that waited this long, written out, without the
// connection carrying any byte back drops the connection when it gives up;
// and once requests have waited this long in silence, the peer is pinged
// on a connection of its own, and this one dropped if the ping is not
// answered within pingTimeout (a peer frozen or cut off without a reset),
// so the requests fail and may be tried elsewhere instead of waiting out
// their own deadlines. Variables for the tests.
var (
	staleAfter  = time.Second
	pingTimeout = 2 * time.Second
)

// redialAfter is how long a failed dial answers for its node.
const redialAfter = 500 * time.Millisecond

func (r *Remote) dial(ctx context.Context, to Peer) (*remoteConn, error) {
	timeout := dialTimeout
	if d, ok := ctx.Deadline(); ok && time.Until(d) < timeout {
		timeout = max(time.Until(d), time.Millisecond)
	}
	nc, err := r.layer.DialPeer(raft.ServerID(to.Name), raft.ServerAddress(to.Addr), timeout)
	if err != nil {
		return nil, fmt.Errorf("transport: dial %s: %w", to, err)
	}
	return &remoteConn{nc: nc, w: bufio.NewWriter(nc), pending: map[uint64]*pendingCall{}, failed: make(chan struct{})}, nil
}

// start runs c's reply reader and its silence watch; r.mu is held.
func (r *Remote) start(to Peer, c *remoteConn) {
	r.wg.Add(2)
	go func() {
		defer r.wg.Done()
		c.watch(func() error { return r.probe(to) })
	}()
	go func() {
		defer r.wg.Done()
		c.fail(c.readReplies())
		r.mu.Lock()
		if r.conns[to] == c {
			delete(r.conns, to)
		}
		r.mu.Unlock()
	}()
}

// remoteConn is one outgoing connection; its reader routes answers by id.
type remoteConn struct {
	nc      net.Conn
	wmu     sync.Mutex
	w       *bufio.Writer
	mu      sync.Mutex
	next    uint64
	pending map[uint64]*pendingCall
	err     error
	failed  chan struct{} // closed when err is set
	// lastRead is when the last bytes arrived (UnixNano); decoding is set
	// while the reader decodes a frame.
	lastRead atomic.Int64
	decoding atomic.Bool
}

// pendingCall is a request waiting for its answer; sent is when its frame
// was written out (UnixNano; 0 while it waits to be written).
type pendingCall struct {
	ch   chan *messages.Envelope
	sent atomic.Int64
}

func (c *remoteConn) dead() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err != nil
}

// call sends env and waits for its answer.
func (c *remoteConn) call(ctx context.Context, env *messages.Envelope) (*messages.Envelope, error) {
	p := &pendingCall{ch: make(chan *messages.Envelope, 1)}
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return nil, c.err
	}
	c.next++
	env.Id = c.next
	c.pending[env.Id] = p
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, env.Id)
		c.mu.Unlock()
	}()
	b, err := frame(env)
	if err != nil {
		return nil, err
	}
	c.wmu.Lock()
	if d, ok := ctx.Deadline(); ok {
		c.nc.SetWriteDeadline(d)
	}
	_, err = c.w.Write(b)
	if err == nil {
		err = c.w.Flush()
	}
	c.wmu.Unlock()
	if err != nil {
		c.nc.Close()
		return nil, fmt.Errorf("%w: %v", ErrConnLost, err)
	}
	sent := time.Now()
	p.sent.Store(sent.UnixNano())
	select {
	case ans, ok := <-p.ch:
		if !ok {
			c.mu.Lock()
			defer c.mu.Unlock()
			return nil, c.err
		}
		return ans, nil
	case <-ctx.Done():
		if waited := time.Since(sent); waited >= staleAfter && c.quietSince(sent) {
			// Nothing at all came back while this request waited: the
			// peer is gone or cut off without a reset (a partition). TCP
			// would retransmit into the void for minutes; drop the
			// connection so the next request dials afresh.
			c.fail(fmt.Errorf("no answer on the connection for %v", waited.Round(time.Millisecond)))
		}
		return nil, ctx.Err()
	}
}

// progressReader notes when bytes arrive: a large answer still arriving
// is the peer answering.
type progressReader struct {
	r    io.Reader
	last *atomic.Int64
}

func (p progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.last.Store(time.Now().UnixNano())
	}
	return n, err
}

func (c *remoteConn) readReplies() error {
	rd := bufio.NewReader(progressReader{c.nc, &c.lastRead})
	for {
		b, err := readFrame(rd)
		if err != nil {
			return err
		}
		// Decoding a large answer takes a while; meanwhile the socket is
		// not read, so the peer is not to be judged by it.
		c.decoding.Store(true)
		env, err := decodeFrame(b)
		c.lastRead.Store(time.Now().UnixNano())
		c.decoding.Store(false)
		if err != nil {
			return err
		}
		c.mu.Lock()
		p, ok := c.pending[env.Id]
		delete(c.pending, env.Id)
		c.mu.Unlock()
		if ok {
			p.ch <- env
		}
	}
}

// watch probes the peer while requests wait in silence (staleAfter) and
// fails the connection when the probe is not answered within pingTimeout
// and nothing has come back meanwhile: the peer is frozen or cut off
// without a reset. The probe is a ping on a connection of its own, so a
// peer still reading a large frame on this one answers it.
func (c *remoteConn) watch(probe func() error) {
	t := time.NewTicker(staleAfter / 4)
	defer t.Stop()
	for {
		select {
		case <-c.failed:
			return
		case <-t.C:
		}
		if !c.silentWhileWaiting(time.Now()) {
			continue
		}
		sent := time.Now()
		if err := probe(); err != nil && c.quietSince(sent) {
			c.fail(fmt.Errorf("requests waited %v and more in silence, and the peer did not answer a ping: %v", staleAfter, err))
		}
	}
}

// probe pings node to on a new connection, within pingTimeout.
func (r *Remote) probe(to Peer) error {
	nc, err := r.layer.DialPeer(raft.ServerID(to.Name), raft.ServerAddress(to.Addr), pingTimeout)
	if err != nil {
		return err
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(pingTimeout))
	b, err := frame(&messages.Envelope{Id: 1, Target: pingTarget})
	if err == nil {
		_, err = nc.Write(b)
	}
	if err != nil {
		return err
	}
	if _, err := readFrame(bufio.NewReader(nc)); err != nil {
		return fmt.Errorf("no answer within %v: %w", pingTimeout, err)
	}
	return nil
}

// quietSince reports whether no byte has arrived since t and the reader
// is not busy decoding a frame.
func (c *remoteConn) quietSince(t time.Time) bool {
	return !c.decoding.Load() && c.lastRead.Load() < t.UnixNano()
}

// silentWhileWaiting reports whether a request written out staleAfter or
// more ago still waits and no byte has come back on the connection for as
// long.
func (c *remoteConn) silentWhileWaiting(now time.Time) bool {
	if !c.quietSince(now.Add(-staleAfter)) {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.pending {
		if sent := p.sent.Load(); sent != 0 && now.Sub(time.Unix(0, sent)) >= staleAfter {
			return true
		}
	}
	return false
}

// fail closes the connection and ends every request waiting on it.
func (c *remoteConn) fail(err error) {
	c.nc.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = fmt.Errorf("%w: %v", ErrConnLost, err)
		close(c.failed)
	}
	for id, p := range c.pending {
		close(p.ch)
		delete(c.pending, id)
	}
}

func (r *Remote) accept() {
	defer r.wg.Done()
	for {
		nc, err := r.layer.Accept()
		if err != nil {
			return
		}
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			nc.Close()
			return
		}
		r.served[nc] = struct{}{}
		r.wg.Add(1)
		r.mu.Unlock()
		go func() {
			defer r.wg.Done()
			r.serve(nc)
			r.mu.Lock()
			delete(r.served, nc)
			r.mu.Unlock()
		}()
	}
}

// serve answers one incoming connection's requests, each on its own
// goroutine, at most maxInFlight at once.
func (r *Remote) serve(nc net.Conn) {
	defer nc.Close()
	rd, w := bufio.NewReader(nc), bufio.NewWriter(nc)
	var wmu sync.Mutex
	var wg sync.WaitGroup
	// Answers go back on nc only: once it is closed (by the peer, or by
	// Close), the handlers still running are cancelled.
	conn, gone := context.WithCancelCause(r.handling)
	defer func() {
		gone(ErrConnLost)
		wg.Wait()
	}()
	slots := make(chan struct{}, maxInFlight)
	for {
		req, err := readFrame(rd)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				r.log.Warn("transport: remote request stream", "remote", nc.RemoteAddr().String(), "err", err)
			}
			return
		}
		slots <- struct{}{}
		wg.Add(1)
		// Decoded on the request's own goroutine: the loop goes on reading
		// while a large request is decoded.
		go func() {
			defer func() { <-slots; wg.Done() }()
			env, err := decodeFrame(req)
			if err != nil {
				r.log.Warn("transport: remote request stream", "remote", nc.RemoteAddr().String(), "err", err)
				nc.Close()
				return
			}
			ans := r.answer(conn, env)
			if conn.Err() != nil {
				// Closing, or the connection gone: a handler cut short
				// says only "context canceled", and the caller must see
				// the connection lost (retryable), not that answer.
				return
			}
			b, err := frame(ans)
			if err != nil { // an answer too large to send: say so instead
				b, err = frame(&messages.Envelope{Id: env.Id, Error: "transport: answer: " + err.Error()})
			}
			if err != nil {
				nc.Close()
				return
			}
			wmu.Lock()
			defer wmu.Unlock()
			nc.SetWriteDeadline(time.Now().Add(r.timeout))
			if _, err := w.Write(b); err != nil || w.Flush() != nil {
				nc.Close()
			}
		}()
	}
}

func (r *Remote) answer(conn context.Context, env *messages.Envelope) *messages.Envelope {
	ans := &messages.Envelope{Id: env.Id}
	if env.Target == pingTarget {
		return ans
	}
	if env.Body == nil {
		ans.Error = "no message"
		return ans
	}
	msg, err := env.Body.UnmarshalNew()
	if err != nil {
		ans.Error = fmt.Sprintf("unknown message %s: %v", env.Body.TypeUrl, err)
		return ans
	}
	ctx, cancel := context.WithTimeout(conn, r.timeout)
	defer cancel()
	reply, err := r.handler(ctx, env.Target, msg)
	if err == nil && reply != nil {
		ans.Body, err = anypb.New(reply)
	}
	if err != nil {
		ans.Error = err.Error()
	}
	return ans
}

// A frame is a 4-byte big-endian length, then the marshalled envelope.
// frame makes one, outside the connection's write lock, so other writers
// do not wait while a large envelope is encoded.
func frame(env *messages.Envelope) ([]byte, error) {
	size := proto.Size(env)
	if size > maxFrame {
		return nil, ErrFrameTooLarge
	}
	b, err := proto.MarshalOptions{}.MarshalAppend(make([]byte, 4, 4+size), env)
	if err != nil {
		return nil, err
	}
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b, nil
}

// readFrame reads one frame's envelope bytes.
func readFrame(rd *bufio.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(rd, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > maxFrame {
		return nil, fmt.Errorf("%w: %d bytes", ErrFrameTooLarge, n)
	}
	// Grow with the bytes that arrive, not with the header's claim.
	var buf bytes.Buffer
	if _, err := io.CopyN(&buf, rd, int64(n)); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConnLost, err)
	}
	return buf.Bytes(), nil
}

func decodeFrame(b []byte) (*messages.Envelope, error) {
	env := &messages.Envelope{}
	if err := proto.Unmarshal(b, env); err != nil {
		return nil, fmt.Errorf("transport: bad frame: %w", err)
	}
	return env, nil
}
