// Package server is the client port: it speaks RESP2 and RESP3 (package
// resp) to Redis clients and runs their commands on the node's shards
// (package kv, through a Backend).
//
// Keys map to 16384 hash slots as in Redis Cluster and slots to shards in
// contiguous ranges. A command on one key runs on that key's shard. A
// command on several keys (MGET, MSET, DEL, UNLINK, EXISTS) is split by
// shard: each shard's part is atomic, the whole is not. DBSIZE, KEYS, SCAN,
// FLUSHDB and FLUSHALL visit every shard.
//
// Pipelined commands are issued without waiting for each other and answered
// in order; a write to a shard waits for the reads issued before it to
// finish, and a read of a shard for the writes issued before it, so every
// command sees the state as of its place in the pipeline.
package server

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coppice-kv/coppice/kv"
	"github.com/coppice-kv/coppice/messages"
	"github.com/coppice-kv/coppice/resp"
)

// Config is the client port's configuration.
type Config struct {
	Addr string
	// RequirePass, when set, makes clients AUTH first.
	RequirePass string
	// DataDir is the node's data directory (CONFIG GET dir).
	DataDir string
	// TLS, when set, serves the port over TLS only (LoadTLS).
	TLS *tls.Config
	// MaxClients bounds open connections (Redis's maxclients).
	MaxClients int
	Limits     resp.Limits
	// MaxWriteBytes, when positive, bounds the bytes of a write command's
	// arguments: a longer one is refused with an error and not applied
	// (its Raft entry would be copied to every replica and held in memory
	// several times over; tens of MB stall a node long enough to cost
	// its shards their leaders). The connection stays open.
	MaxWriteBytes int64
	// Cluster, if set, describes the cluster for the CLUSTER commands.
	Cluster func() (*ClusterView, error)
	// NodeName and the rest feed INFO and HELLO.
	NodeName string
	Version  string
	Log      *slog.Logger
	// SlowlogSlowerThan and SlowlogMaxLen are Redis's slowlog-log-slower-than
	// (negative: log nothing; 0: every key-value command) and
	// slowlog-max-len (0: log nothing); the node's defaults are
	// DefaultSlowlogSlowerThan and DefaultSlowlogMaxLen.
	SlowlogSlowerThan time.Duration
	SlowlogMaxLen     int
	// Stats, if set, is where the port counts (it may outlive the
	// Server); else it counts in its own.
	Stats *Stats
	// Shutdown, if set, stops the node in order (SHUTDOWN): it returns at
	// once, the stop goes on without it.
	Shutdown func()
	// ACL, if set, is the users the port starts with; else the default
	// user alone, with RequirePass as its password if set.
	ACL *kv.ACLUsers
	// ACLUpdate, if set, makes a change to the users for the whole
	// cluster: users (ACL LIST's lines) replace version from, and the
	// new version is returned; ErrACLChanged, with the current version,
	// if from is not the current one. Every node then gets the new users
	// through SetACL. Unset, the Server changes its own users.
	ACLUpdate func(ctx context.Context, from uint64, users []string) (uint64, error)
	// Notify, if set, is the node's notify-keyspace-events, which CONFIG
	// SET changes (the node's shards read it to collect events: see
	// Notify); else the Server keeps its own.
	Notify *kv.NotifyConfig
	// LastSave, if set, is the time of the node's latest snapshot of a
	// shard (LASTSAVE; zero: none yet); else LASTSAVE is when the port
	// opened.
	LastSave func() time.Time
	// ActiveExpire, if set, switches the node's active expiry on or off
	// (DEBUG SET-ACTIVE-EXPIRE); else DEBUG SET-ACTIVE-EXPIRE is refused.
	ActiveExpire func(on bool)
}

// Server accepts client connections until Close.
type Server struct {
	cfg     Config
	backend Backend
	ln      net.Listener
	started time.Time
	scans   *scanCursors
	hub     *hub
	scripts *scripts

	nextID   atomic.Int64
	mu       sync.Mutex
	conns    map[*conn]struct{}
	byID     map[int64]*conn // the same, by id
	track    trackingTable
	pause    clientPause
	monitors monitors
	blocked  blockQueues // the node's blocked commands, in line per key
	closed   bool
	done     chan struct{} // closed by Close: blocked commands end
	wg       sync.WaitGroup
	stats    *Stats // cfg.Stats, or the Server's own

	acl     atomic.Pointer[kv.ACLUsers]
	aclMu   sync.Mutex    // orders SetACL's swaps
	aclWake chan struct{} // closed by each SetACL
	aclLog  aclLog
	// requirePass is CONFIG GET requirepass: RequirePass, or the last
	// CONFIG SET of it on this node.
	requirePass atomic.Pointer[string]
	maxClients  atomic.Int64 // maxclients: Config.MaxClients, then CONFIG SET's
	// replicas is backend when it can answer WAIT (wait.go), else nil.
	replicas ReplicaBackend
	// prober is backend when it can answer writes that change nothing
	// (Prober), else nil.
	prober Prober
	// startHeap is the Go heap's live bytes when the port opened (INFO's
	// used_memory_startup).
	startHeap uint64
}

// Listen opens the client port and serves it in the background.
func Listen(cfg Config, backend Backend) (*Server, error) {
	if cfg.MaxClients <= 0 {
		cfg.MaxClients = 10000
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Notify == nil {
		cfg.Notify = &kv.NotifyConfig{}
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("server: listen %s: %w", cfg.Addr, err)
	}
	if cfg.TLS != nil {
		// Accept returns at once; the handshake runs on the
		// connection's goroutine (conn.serve), bounded.
		ln = tls.NewListener(ln, cfg.TLS)
	}
	s := &Server{cfg: cfg, backend: backend, ln: ln, started: time.Now(), conns: map[*conn]struct{}{}, byID: map[int64]*conn{}, scans: newScanCursors(), hub: newHub(), scripts: newScripts(), stats: cfg.Stats,
		done: make(chan struct{})}
	if s.stats == nil {
		s.stats = &Stats{}
	}
	s.aclWake = make(chan struct{})
	s.aclLog.maxLen.Store(aclLogMaxLen)
	s.maxClients.Store(int64(cfg.MaxClients))
	s.requirePass.Store(&cfg.RequirePass)
	if cfg.ACL != nil {
		s.acl.Store(cfg.ACL)
	} else {
		s.acl.Store(kv.NewACLUsers(kv.DefaultACLUser(cfg.RequirePass)))
	}
	s.replicas, _ = backend.(ReplicaBackend)
	s.prober, _ = backend.(Prober)
	s.startHeap = readGoMemory().allocated
	s.track.instance = strconv.FormatUint(rand.Uint64(), 36)
	s.stats.slow.configure(cfg)
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

// Addr is the listening address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops accepting, closes every connection and waits for them.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
	for c := range s.conns {
		c.nc.Close()
	}
	s.mu.Unlock()
	err := s.ln.Close()
	s.wg.Wait()
	return err
}

func (s *Server) serve() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return
			}
			s.cfg.Log.Warn("client accept", "err", err)
			time.Sleep(10 * time.Millisecond) // transient (EMFILE): back off
			continue
		}
		c := s.newConn(nc)
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			continue
		}
		if int64(len(s.conns)) >= s.maxClients.Load() {
			s.stats.rejected.Add(1)
			// Redis answers and closes; off the accept loop, since on TLS
			// the answer needs a handshake first.
			s.wg.Add(1)
			s.mu.Unlock()
			go func() {
				defer s.wg.Done()
				nc.SetDeadline(time.Now().Add(time.Second))
				nc.Write([]byte("-ERR max number of clients reached\r\n"))
				nc.Close()
			}()
			continue
		}
		s.conns[c] = struct{}{}
		s.byID[c.id] = c
		s.mu.Unlock()
		s.stats.connections.Add(1)
		s.stats.open.Add(1)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			c.serve()
			s.drop(c)
		}()
	}
}

// drop takes c off the port's connections, once: when its goroutine ends,
// or at once when CLIENT KILL closes it (Redis frees a killed client
// before it answers: connected_clients no longer counts it).
func (s *Server) drop(c *conn) {
	s.mu.Lock()
	_, ok := s.conns[c]
	delete(s.conns, c)
	delete(s.byID, c.id)
	s.mu.Unlock()
	if ok {
		s.stats.open.Add(-1)
	}
}

// clientList answers CLIENT LIST [TYPE normal] [ID id ...]: a line per
// connection, in the order of their ids.
func (s *Server) clientList(opts [][]byte) *messages.Reply {
	var ids map[int64]bool
	typed := func(*conn) bool { return true }
	for i := 0; i < len(opts); i++ {
		switch opt := strings.ToLower(string(opts[i])); {
		case opt == "type" && i+1 < len(opts):
			i++
			match, r := clientType(string(opts[i]))
			if r != nil {
				return r
			}
			typed = match
		case opt == "id" && i+1 < len(opts):
			ids = map[int64]bool{}
			for i++; i < len(opts); i++ {
				id, err := strconv.ParseInt(string(opts[i]), 10, 64)
				if err != nil || id <= 0 {
					return errorf("ERR Invalid client ID")
				}
				ids[id] = true
			}
		default:
			return errorf("ERR syntax error")
		}
	}
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		if (ids == nil || ids[c.id]) && typed(c) {
			conns = append(conns, c)
		}
	}
	s.mu.Unlock()
	slices.SortFunc(conns, func(a, b *conn) int { return cmp.Compare(a.id, b.id) })
	var b strings.Builder
	for _, c := range conns {
		b.WriteString(c.info())
	}
	return verbatim(b.String())
}

// clientType reads CLIENT LIST's and CLIENT KILL's TYPE: a test of a
// connection (normal, or pubsub: with subscriptions; master and replica
// are no connection's here), or its error.
func clientType(v string) (match func(*conn) bool, r *messages.Reply) {
	switch strings.ToLower(v) {
	case "normal":
		return func(c *conn) bool { return c.nsubs.Load() == 0 }, nil
	case "pubsub":
		return func(c *conn) bool { return c.nsubs.Load() > 0 }, nil
	case "master", "replica", "slave":
		return func(*conn) bool { return false }, nil
	}
	return nil, errorf("ERR Unknown client type '" + v + "'")
}

// clientKill answers CLIENT KILL ip:port (OK, or an error when no
// connection comes from there) and CLIENT KILL <filter value> ... with the
// filters ID, ADDR, LADDR, TYPE, USER and SKIPME (the number of
// connections closed; by default not the caller's own). A connection is
// closed under its goroutine's feet; the caller's own is closed once its
// reply is written.
func (s *Server) clientKill(self *conn, opts [][]byte) *messages.Reply {
	var match func(c *conn) bool
	skipMe, oldStyle := true, len(opts) == 1
	if oldStyle {
		addr := string(opts[0])
		match = func(c *conn) bool { return c.nc.RemoteAddr().String() == addr }
		skipMe = false
	} else {
		if len(opts)%2 != 0 {
			return errorf("ERR syntax error")
		}
		var tests []func(*conn) bool
		for i := 0; i < len(opts); i += 2 {
			val := string(opts[i+1])
			switch strings.ToLower(string(opts[i])) {
			case "id":
				id, err := strconv.ParseInt(val, 10, 64)
				if err != nil || id <= 0 {
					return errorf("ERR client-id should be greater than 0")
				}
				tests = append(tests, func(c *conn) bool { return c.id == id })
			case "addr":
				tests = append(tests, func(c *conn) bool { return c.nc.RemoteAddr().String() == val })
			case "laddr":
				tests = append(tests, func(c *conn) bool { return c.nc.LocalAddr().String() == val })
			case "type":
				match, r := clientType(val)
				if r != nil {
					return r
				}
				tests = append(tests, match)
			case "user":
				if s.acl.Load().Get(val) == nil {
					return errorf(fmt.Sprintf("ERR No such user '%s'", val))
				}
				tests = append(tests, func(c *conn) bool { return c.userName() == val })
			case "skipme":
				switch strings.ToLower(val) {
				case "yes":
					skipMe = true
				case "no":
					skipMe = false
				default:
					return errorf("ERR syntax error")
				}
			default:
				return errorf("ERR syntax error")
			}
		}
		match = func(c *conn) bool {
			for _, t := range tests {
				if !t(c) {
					return false
				}
			}
			return true
		}
	}
	s.mu.Lock()
	var victims []*conn
	for c := range s.conns {
		if (c != self || !skipMe) && match(c) {
			victims = append(victims, c)
		}
	}
	s.mu.Unlock()
	for _, c := range victims {
		if c == self {
			self.quit = true // after this reply
		} else {
			s.hub.forget(c)
			c.nc.Close()
			s.drop(c)
		}
	}
	if oldStyle {
		if len(victims) == 0 {
			return errorf("ERR No such client")
		}
		return replyOK
	}
	return integer(int64(len(victims)))
}

// Clients is the number of open connections.
func (s *Server) Clients() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}
