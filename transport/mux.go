// Package transport carries every Raft group of a node (the shards, later
// the system group and the sync streams) over one listener: the cluster
// address. Each connection opens with a small header naming the stream it
// belongs to; the mux hands it to that stream's raft.StreamLayer.
//
// The caller listens once (Listen), asks for a layer per Raft group
// (Layer), builds a raft.NetworkTransport on each, and closes the mux last.
//
// With a MutualTLS (tls.go) every connection, accepted or dialled, is
// mutually authenticated TLS before its header: a peer without a
// certificate signed by the cluster CA is dropped with a warning before
// any stream sees it. Layer.Dial is the one way out of the node to a peer
// (Raft, snapshots, remote requests), so nothing leaves in clear.
package transport

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Errors of the transport package.
var (
	ErrClosed      = errors.New("transport: closed")
	ErrBadHeader   = errors.New("transport: bad stream header")
	ErrUnknownPeer = errors.New("transport: no such stream")
)

// header: magic "CPX1", then the stream id, big-endian.
const (
	magic       = "CPX1"
	headerLen   = len(magic) + 4
	headerWait  = 5 * time.Second
	acceptQueue = 16
)

// Mux accepts connections on one address and routes them by stream id.
type Mux struct {
	ln        net.Listener
	advertise net.Addr
	log       *slog.Logger
	tls       *MutualTLS

	mu     sync.Mutex
	layers map[uint32]*Layer
	closed bool
	wg     sync.WaitGroup
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

// Layer returns the stream layer for stream id, creating it.
func (m *Mux) Layer(id uint32) *Layer {
	m.mu.Lock()
	defer m.mu.Unlock()
	if l := m.layers[id]; l != nil {
		return l
	}
	l := &Layer{mux: m, id: id, conns: make(chan net.Conn, acceptQueue), done: make(chan struct{})}
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
			m.log.Warn("transport: refused a peer: TLS handshake failed", "remote", c.RemoteAddr().String(), "err", err)
			c.Close()
			return
		}
		c = tc
	}
	var hdr [headerLen]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil || string(hdr[:len(magic)]) != magic {
		m.log.Warn("transport: dropped connection with a bad header", "remote", c.RemoteAddr().String())
		c.Close()
		return
	}
	c.SetDeadline(time.Time{})
	id := binary.BigEndian.Uint32(hdr[len(magic):])
	m.mu.Lock()
	l := m.layers[id]
	m.mu.Unlock()
	if l == nil {
		m.log.Warn("transport: connection for an unknown stream", "stream", id, "remote", c.RemoteAddr().String())
		c.Close()
		return
	}
	select {
	case l.conns <- c:
	case <-l.done:
		c.Close()
	case <-time.After(headerWait):
		m.log.Warn("transport: stream not accepting", "stream", id)
		c.Close()
	}
}

// Layer is one stream's raft.StreamLayer.
type Layer struct {
	mux   *Mux
	id    uint32
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

var _ raft.StreamLayer = (*Layer)(nil)

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

func (l *Layer) closeOnce() { l.once.Do(func() { close(l.done) }) }

// Addr is the mux's advertised address.
func (l *Layer) Addr() net.Addr { return l.mux.advertise }

// Dial opens a connection to this stream on the node at address: with
// TLS, the handshake (the peer's certificate checked against the cluster
// CA) and the header together get timeout.
func (l *Layer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", string(address), timeout)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(timeout))
	if t := l.mux.tls; t != nil {
		tc := tls.Client(c, t.client)
		if err := tc.Handshake(); err != nil {
			c.Close()
			return nil, fmt.Errorf("transport: TLS handshake with %s: %w", address, err)
		}
		c = tc
	}
	var hdr [headerLen]byte
	copy(hdr[:], magic)
	binary.BigEndian.PutUint32(hdr[len(magic):], l.id)
	if _, err := c.Write(hdr[:]); err != nil {
		c.Close()
		return nil, err
	}
	c.SetDeadline(time.Time{})
	return c, nil
}
