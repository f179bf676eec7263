// Package transport carries every Raft group of a node (the shards, later
// the system group and the sync streams) over one listener: the cluster
// address. Each connection opens with a small header naming the stream it
// belongs to, and who dials whom (hello.go); the mux hands it to that
// stream's raft.StreamLayer.
//
// The caller listens once (Listen), asks for a layer per Raft group
// (Layer), builds a raft.NetworkTransport on each, and closes the mux last.
//
// With a MutualTLS (tls.go) every connection, accepted or dialled, is
// mutually authenticated TLS before its header: a peer without a
// certificate signed by the cluster CA is dropped with a warning before
// any stream sees it. Layer.Dial is the one way out of the node to a peer
// (Raft, snapshots, remote requests), so nothing leaves in clear.
//
// A connection from a node of another cluster, or meant for another node,
// is refused too, whatever its stream (SetNode, hello.go).
package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// ErrClosed is the error of a closed mux, layer or remote.
var ErrClosed = errors.New("transport: closed")

const acceptQueue = 16

// Mux accepts connections on one address and routes them by stream id.
type Mux struct {
	ln        net.Listener
	advertise net.Addr
	log       *slog.Logger
	tls       *MutualTLS
	node      atomic.Pointer[nodeID]
	// untilCluster: refuse every connection while the node has no
	// cluster ID (RefuseUntilCluster).
	untilCluster atomic.Bool

	mu       sync.Mutex
	layers   map[uint32]*Layer
	refusals map[string]time.Time // when each kind of refusal was last logged
	closed   bool
	wg       sync.WaitGroup
}

// Listen listens on addr (host:port). advertise, if not empty, is the
// address peers should dial (defaults to the listener's). mtls, if not
// nil, makes every connection in and out mutually authenticated TLS.
func Listen(addr, advertise string, mtls *MutualTLS, log *slog.Logger) (*Mux, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("transport: listen %s: %w", addr, err)
	}
	m := &Mux{ln: ln, advertise: ln.Addr(), log: log, tls: mtls, layers: map[uint32]*Layer{}}
	if advertise != "" {
		a, err := net.ResolveTCPAddr("tcp", advertise)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("transport: advertise address %q: %w", advertise, err)
		}
		m.advertise = a
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	m.wg.Add(1)
	go m.serve()
	return m, nil
}

// Addr is the address peers dial.
func (m *Mux) Addr() net.Addr { return m.advertise }

// nodeID is who the mux's node is: its name, and the ID of the cluster it
// belongs to, read at every connection ("" while it belongs to none).
type nodeID struct {
	name      string
	clusterID func() string
}

// RefuseUntilCluster makes the mux refuse every connection (helloNoCluster)
// while its node's cluster ID is "": for a new node that joins a cluster
// and learns its ID from gossip once it has joined. Until then no
// dialler's cluster can be checked, and a node of another cluster that
// once had a member of this node's name at this address (handed out
// again) would have its leaders append their logs to this node's empty
// groups, which its own cluster's sync could then take for its own
// entries. Nothing of its own cluster dials it before it has joined.
func (m *Mux) RefuseUntilCluster() { m.untilCluster.Store(true) }

// SetNode tells the mux which node it serves: name, and clusterID, called
// at every connection. Until it is called the mux's node has no name and
// belongs to no cluster: it takes every connection.
func (m *Mux) SetNode(name string, clusterID func() string) error {
	if len(name) > maxString {
		return fmt.Errorf("transport: node name of %d bytes, at most %d", len(name), maxString)
	}
	m.node.Store(&nodeID{name: name, clusterID: clusterID})
	return nil
}

// self returns the node's name and its cluster's ID.
func (m *Mux) self() (name, clusterID string) {
	n := m.node.Load()
	if n == nil {
		return "", ""
	}
	if n.clusterID != nil {
		clusterID = n.clusterID()
	}
	return n.name, clusterID
}

// Layer returns the stream layer for stream id, creating it.
func (m *Mux) Layer(id uint32) *Layer {
	m.mu.Lock()
	defer m.mu.Unlock()
	if l := m.layers[id]; l != nil {
		return l
	}
	l := &Layer{mux: m, id: id, conns: make(chan net.Conn, acceptQueue), open: map[*layerConn]struct{}{}}
	l.ctx, l.closeOnce = context.WithCancel(context.Background())
	l.done = l.ctx.Done()
	context.AfterFunc(l.ctx, l.closeConns)
	m.layers[id] = l
	return l
}

// Close stops accepting, closes every layer and waits for the accept loop.
func (m *Mux) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	layers := m.layers
	m.layers = map[uint32]*Layer{}
	m.mu.Unlock()
	err := m.ln.Close()
	for _, l := range layers {
		l.closeOnce()
	}
	m.wg.Wait()
	return err
}

func (m *Mux) serve() {
	defer m.wg.Done()
	for {
		c, err := m.ln.Accept()
		if err != nil {
			m.mu.Lock()
			closed := m.closed
			m.mu.Unlock()
			if closed {
				return
			}
			m.log.Warn("transport: accept", "err", err)
			time.Sleep(10 * time.Millisecond) // a transient accept error (EMFILE): back off
			continue
		}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			m.route(c)
		}()
	}
}

// route authenticates c (with TLS), reads its header and hands it to its
// stream; the handshake and the header together get headerWait.
func (m *Mux) route(c net.Conn) {
	c.SetDeadline(time.Now().Add(headerWait))
	if m.tls != nil {
		tc := tls.Server(c, m.tls.server)
		if err := tc.Handshake(); err != nil {
			if !m.quiet("tls\x00" + remoteHost(c) + "\x00" + err.Error()) {
				m.log.Warn("transport: refused a peer: TLS handshake failed", "remote", c.RemoteAddr().String(), "err", err)
			}
			c.Close()
			return
		}
		c = tc
	}
	h, err := readHello(c)
	if errors.Is(err, ErrVersion) {
		m.laterVersion(c, err)
		return
	}
	if err != nil {
		if !m.quiet("header\x00" + remoteHost(c)) {
			m.log.Warn("transport: dropped a connection with a bad header", "remote", c.RemoteAddr().String(), "err", err)
		}
		c.Close()
		return
	}
	name, clusterID := m.self()
	ans := answer{status: helloOK, name: name, clusterID: clusterID}
	m.mu.Lock()
	l := m.layers[h.stream]
	m.mu.Unlock()
	nameErr := m.tls.checkName(c, h.from)
	switch {
	case clusterID == "" && m.untilCluster.Load():
		ans.status = helloNoCluster
	case clusterID != "" && h.clusterID != "" && h.clusterID != clusterID:
		ans.status = helloOtherCluster
	case name != "" && h.to != "" && h.to != name:
		ans.status = helloOtherNode
	case l == nil:
		ans.status = helloNoStream
	case nameErr != nil:
		ans.status = helloCertName
	}
	if ans.status != helloOK {
		// Logged before the answer goes: the dialler learns of the
		// refusal after the log does.
		m.refused(c, h, ans, nameErr)
	}
	if _, err := c.Write(ans.encode()); err != nil || ans.status != helloOK {
		c.Close()
		return
	}
	c.SetDeadline(time.Time{})
	if c, err = l.track(c); err != nil {
		return // the layer closed meanwhile
	}
	select {
	case l.conns <- c:
	case <-l.done:
		c.Close()
	case <-time.After(headerWait):
		m.log.Warn("transport: stream not accepting", "stream", h.stream)
		c.Close()
	}
}

// laterVersion answers a hello of a later wire version with the version
// this node speaks (hello.go), reads what the dialler sent after the
// hello's first bytes (closing with it unread would reset the connection,
// and the answer could be lost with it), and closes.
func (m *Mux) laterVersion(c net.Conn, err error) {
	if !m.quiet("version\x00" + remoteHost(c)) {
		m.log.Warn("transport: refused a peer of a later wire version; it can dial again in this one", "remote", c.RemoteAddr().String(), "err", err)
	}
	name, _ := m.self()
	if _, err := c.Write(answer{status: helloVersion, name: name, clusterID: magic}.encode()); err == nil {
		c.SetReadDeadline(time.Now().Add(time.Second))
		io.Copy(io.Discard, io.LimitReader(c, 64<<10))
	}
	c.Close()
}

// Layer is one stream's raft.StreamLayer.
type Layer struct {
	mux   *Mux
	id    uint32
	conns chan net.Conn
	// ctx ends when the layer closes (closeOnce), and its dials with it;
	// done is its Done channel.
	ctx       context.Context
	closeOnce context.CancelFunc
	done      <-chan struct{}

	// open holds every connection of the layer, dialled or routed to it,
	// that is not closed yet: the layer's close closes them all
	// (closeConns).
	mu   sync.Mutex
	open map[*layerConn]struct{}
}

var _ raft.StreamLayer = (*Layer)(nil)

// layerConn is a connection of a layer, forgotten by it when closed.
type layerConn struct {
	net.Conn
	l    *Layer
	once sync.Once
}

func (c *layerConn) Close() error {
	err := net.ErrClosed
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.open, c)
		c.l.mu.Unlock()
		err = c.Conn.Close()
	})
	return err
}

// track makes c one of the layer's open connections, or closes it and
// returns ErrClosed if the layer has closed.
func (l *Layer) track(c net.Conn) (net.Conn, error) {
	l.mu.Lock()
	if l.closed() {
		l.mu.Unlock()
		c.Close()
		return nil, ErrClosed
	}
	lc := &layerConn{Conn: c, l: l}
	l.open[lc] = struct{}{}
	l.mu.Unlock()
	return lc, nil
}

// closeConns closes every open connection of the layer (those the mux
// queued for it and no Accept took too), once the layer has closed. A
// Raft group that stops waits for its replication, and an RPC on a
// connection to a peer that went silent (cut off: no reset, no answer)
// would wait out its deadline (10 s) if nothing closed the connection
// under it.
func (l *Layer) closeConns() {
	l.mu.Lock()
	open := l.open
	l.open = nil // track adds no more
	l.mu.Unlock()
	for c := range open {
		c.Close()
	}
}

// Accept waits for the next connection of this stream.
func (l *Layer) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, ErrClosed
	}
}

// Close stops this stream; the mux keeps serving others.
func (l *Layer) Close() error {
	l.mux.mu.Lock()
	if l.mux.layers[l.id] == l {
		delete(l.mux.layers, l.id)
	}
	l.mux.mu.Unlock()
	l.closeOnce()
	return nil
}

func (l *Layer) closed() bool { return l.ctx.Err() != nil }

// Addr is the mux's advertised address.
func (l *Layer) Addr() net.Addr { return l.mux.advertise }

// Dial opens a connection to this stream on the node at address,
// whichever node it is.
func (l *Layer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return l.DialPeer("", address, timeout)
}

// DialPeer opens a connection to this stream on node id at address ("":
// whichever node answers there): with TLS, the handshake (the peer's
// certificate checked against the cluster CA), then the hello and its
// answer (hello.go), all within timeout. A node of another cluster, or
// another node than id, refuses: ErrOtherCluster, ErrOtherNode; with names
// checked, a certificate without its node's name is ErrCertName, on
// either side.
func (l *Layer) DialPeer(id raft.ServerID, address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	name, clusterID := l.mux.self()
	h := hello{stream: l.id, clusterID: clusterID, from: name, to: string(id)}
	b, err := h.encode()
	if err != nil {
		return nil, err
	}
	// A dial ends when the layer closes: a Raft group that stops must not
	// wait out the timeout of a dial to a peer that is cut off (its
	// Shutdown waits for its replication, which waits for the dial).
	ctx, cancel := context.WithTimeout(l.ctx, timeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", string(address))
	if err != nil {
		if l.closed() {
			return nil, ErrClosed
		}
		return nil, err
	}
	c.SetDeadline(time.Now().Add(timeout))
	// The hello's reads and writes fail at once when the layer closes.
	unwatch := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer unwatch()
	fail := func(err error) (net.Conn, error) {
		c.Close()
		if l.closed() {
			return nil, ErrClosed
		}
		return nil, err
	}
	if t := l.mux.tls; t != nil {
		tc := tls.Client(c, t.client)
		if err := tc.Handshake(); err != nil {
			return fail(fmt.Errorf("transport: TLS handshake with %s: %w", address, err))
		}
		c = tc
	}
	if _, err := c.Write(b); err != nil {
		return fail(err)
	}
	ans, err := readAnswer(c)
	if err != nil {
		err = fmt.Errorf("transport: no answer to the hello from %s: %w", address, err)
	} else if err = ans.err(string(address), h); err == nil {
		if nerr := l.mux.tls.checkName(c, ans.name); nerr != nil {
			err = fmt.Errorf("transport: %s answered as node %q: %w", address, ans.name, nerr)
		}
	}
	if err == nil && !unwatch() { // the deadline went to the past
		err = ctx.Err()
	}
	if err != nil {
		return fail(err)
	}
	c.SetDeadline(time.Time{})
	return l.track(c)
}

// refusalEvery bounds the mux's warnings of refused connections: one per
// peer and reason in this time (a peer that still has an old address for a
// node dials it again and again, and a scanner or a misconfigured client
// may connect many times a second).
const refusalEvery = time.Minute

// quiet reports whether a refusal of kind key was logged within
// refusalEvery; if not, it notes one now (the caller logs it).
func (m *Mux) quiet(key string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.refusals) > 1024 { // keys hold what peers send: bound what they cost
		m.refusals = nil
	}
	if m.refusals == nil {
		m.refusals = map[string]time.Time{}
	}
	if time.Since(m.refusals[key]) < refusalEvery {
		return true
	}
	m.refusals[key] = time.Now()
	return false
}

// remoteHost is c's peer's host, the key of its refusals.
func remoteHost(c net.Conn) string {
	host, _, err := net.SplitHostPort(c.RemoteAddr().String())
	if err != nil {
		return c.RemoteAddr().String()
	}
	return host
}

// refused logs the refusal of c, at most once per refusalEvery for the
// same dialling node and reason; nameErr is the certificate's, for
// helloCertName.
func (m *Mux) refused(c net.Conn, h hello, ans answer, nameErr error) {
	if m.quiet(fmt.Sprintf("hello\x00%d\x00%s\x00%s\x00%s", ans.status, h.from, h.to, h.clusterID)) {
		return
	}
	args := []any{"remote", c.RemoteAddr().String(), "from", h.from, "stream", h.stream}
	switch ans.status {
	case helloOtherCluster:
		m.log.Warn("transport: refused a node of another cluster", append(args, "cluster_id", h.clusterID, "ours", ans.clusterID)...)
	case helloOtherNode:
		m.log.Warn("transport: refused a connection meant for another node", append(args, "meant_for", h.to, "this_node", ans.name)...)
	case helloNoStream:
		// The dialling peer logs its side as a warning; here it is most
		// often a group not started yet, as the node starts.
		m.log.Info("transport: refused a connection for a stream not served", args...)
	case helloCertName:
		m.log.Warn("transport: refused a peer whose certificate does not carry its node name", append(args, "err", nameErr)...)
	case helloNoCluster:
		m.log.Info("transport: refused a peer: this node has not joined its cluster yet", append(args, "cluster_id", h.clusterID)...)
	}
}
