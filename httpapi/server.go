// Package httpapi is the node's HTTP endpoint: Prometheus metrics, health
// and readiness probes, and the node's status as JSON.
//
//	GET /metrics    Prometheus text: process and Go runtime, per-shard Raft
//	                gauges, supervisor events by kind
//	GET /healthz    200 while the supervision tree's root answers
//	GET /readyz     200 when every shard has a leader and has applied up to
//	                its commit index; 503 and the shards that are not
//	GET /v1/status  the node's status (actors.Status) as JSON
//	GET /v1/backup  every shard of the node, checkpointed after a read
//	                barrier, in storage's backup format (backup.go)
//
// Other paths are 404; other methods than GET and HEAD are 405 with an
// Allow header (the cluster routes, cluster.go, add POST and DELETE).
//
// With Config.Token, every request but the probes (/healthz, /readyz)
// must carry it (Authorization: Bearer <token>), or gets 401 and nothing
// is done; Config.ReadToken may read (403 for the rest). With Config.TLS
// the port speaks HTTPS only.
//
// The listener is owned by an actor in the node's supervision tree: New
// makes the Server (its metrics outlive restarts of the actor), and Spec
// is the worker to put in the tree. The worker listens when it starts (a
// bad or busy address fails its start) and shuts the server down, letting
// requests finish within a bounded time, when it stops.
package httpapi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/eventstream"
	"github.com/coppice-kv/coppice/actors"
	"github.com/coppice-kv/coppice/messages"
	"github.com/coppice-kv/coppice/server"
	"github.com/coppice-kv/coppice/storage"
	"github.com/coppice-kv/coppice/supervisor"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults.
const (
	DefaultTimeout = 5 * time.Second
	// shutdownGrace is how long a stop lets requests in flight finish;
	// the worker's shutdown time (Spec) is longer.
	shutdownGrace = 5 * time.Second
)

// Config of the endpoint.
type Config struct {
	// Addr is the listen address, host:port (port 0: any free port).
	Addr string
	// Info is what the status says of the node itself.
	Info actors.StatusInfo
	Log  *slog.Logger
	// Timeout bounds the status requests one HTTP request (or scrape)
	// makes to the shards; DefaultTimeout if zero.
	Timeout time.Duration
	// Pprof serves net/http/pprof under /debug/pprof/.
	Pprof bool
	// Scrub asks for a scrub of the node's stores now
	// (actors.Runtime.ScrubNow); nil: POST /v1/scrub answers 503.
	Scrub func() (started, running bool)
	// RaftLog reads the counters of the node's Raft log store
	// (actors.Runtime.RaftLogStats) for /metrics; nil: not exported.
	RaftLog func() (storage.RaftLogStats, bool)
	// SnapshotThrottle reads the counters of the node's snapshot throttle
	// (actors.Runtime.SnapshotThrottleStats); nil: not exported.
	SnapshotThrottle func() (storage.ThrottleStats, bool)
	// Stores reads the figures of what the node's shard stores share
	// (actors.Runtime.StoresStats); nil: not exported.
	Stores func() (storage.StoresStats, bool)
	// Heartbeats reads the counters of the node's Raft heartbeat batches
	// (actors.Runtime.HeartbeatStats); nil: not exported.
	Heartbeats func() (actors.HeartbeatStats, bool)
	// DataDir is the node's data dir: /metrics exports the free and total
	// bytes of its file system (a node whose disk fills stops); "": not
	// exported.
	DataDir string
	// Clients reads the client port's counters (actors.Runtime.ClientStats)
	// for /metrics; nil: not exported.
	Clients func() (server.StatsSnapshot, bool)
	// Token, if set, is the bearer token every request but /healthz and
	// /readyz must carry: the operations (add, remove, leave), the status,
	// the metrics and the profiler.
	Token string
	// ReadToken, if set (with Token), lets its bearer read: GET and HEAD
	// of the status, nodes, checksums and metrics; not the operations, nor
	// the profiler. For a scraper or a dashboard.
	ReadToken string
	// TLS, if set, makes the port serve HTTPS only.
	TLS *tls.Config
	// Backup, if set, checkpoints the node's shards for GET /v1/backup
	// (actors.Runtime.Backup).
	Backup func(ctx context.Context) (Backup, error)
}

// Backup is a node's shards checkpointed for a backup (actors.Backup).
type Backup interface {
	Write(w io.Writer) (storage.BackupInfo, error)
	Close() error
}

// Server is the endpoint: its handlers and metrics, and the address its
// worker listens on.
type Server struct {
	cfg    Config
	log    *slog.Logger
	reg    *prometheus.Registry
	events *prometheus.CounterVec

	sys atomic.Pointer[actor.ActorSystem]

	mu   sync.Mutex
	addr string
}

// New makes the endpoint and its metrics registry. Nothing listens until
// the worker of Spec starts.
func New(cfg Config) *Server {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	s := &Server{cfg: cfg, log: cfg.Log}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.reg, s.events = newRegistry(s)
	return s
}

// Spec is the worker "http" that owns the listener. Put it in the node's
// tree after the shards (today: under the user supervisor, through
// actors.Config.User).
func (s *Server) Spec() supervisor.ChildSpec {
	c := supervisor.Worker("http", func() actor.Actor { return &httpActor{s: s} })
	c.Kind = "http"
	c.Shutdown = shutdownGrace + 5*time.Second
	c.Backoff = &supervisor.Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second, Jitter: 0.2}
	return c
}

// Addr is the address the endpoint listens on (useful with port 0), empty
// while it does not listen.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

func (s *Server) setAddr(a string) {
	s.mu.Lock()
	s.addr = a
	s.mu.Unlock()
}

// system is the node's actor system, nil before the worker first started.
func (s *Server) system() *actor.ActorSystem { return s.sys.Load() }

// countEvent counts a supervisor event by kind.
func (s *Server) countEvent(ev any) {
	if e, ok := ev.(*messages.SupervisorEvent); ok {
		s.events.WithLabelValues(eventKind(e.Kind)).Inc()
	}
}

// httpActor: supervised by the tree's user supervisor today (one_for_one),
// permanent worker with backoff. It owns the HTTP listener and its serving
// goroutine, and the event-stream subscription that counts supervisor
// events.
type httpActor struct {
	s    *Server
	srv  *http.Server
	done chan struct{}
	sub  *eventstream.Subscription
	sys  *actor.ActorSystem
}

// serveFailed reports that Serve returned on its own: the worker crashes,
// and its supervisor restarts it.
type serveFailed struct{ err error }

func (a *httpActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		if err := a.start(ctx); err != nil {
			a.stop()
			panic(err)
		}
	case *serveFailed:
		panic(fmt.Errorf("httpapi: serve: %w", m.err))
	case *actor.Stopping:
		a.stop()
	}
}

func (a *httpActor) start(ctx actor.Context) error {
	s := a.s
	a.sys = ctx.ActorSystem()
	s.sys.Store(a.sys)
	a.sub = a.sys.EventStream.Subscribe(s.countEvent)
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("httpapi: listen %s: %w", s.cfg.Addr, err)
	}
	if s.cfg.TLS != nil {
		ln = tls.NewListener(ln, s.cfg.TLS)
	}
	a.srv = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      s.cfg.Timeout + 20*time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	a.done = make(chan struct{})
	srv, done, self, root := a.srv, a.done, ctx.Self(), a.sys.Root
	go func() {
		defer close(done)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			root.Send(self, &serveFailed{err})
		}
	}()
	s.setAddr(ln.Addr().String())
	s.log.Info("http listener", "addr", ln.Addr().String(), "tls", s.cfg.TLS != nil, "token", s.cfg.Token != "")
	return nil
}

func (a *httpActor) stop() {
	a.s.setAddr("")
	if a.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		if err := a.srv.Shutdown(ctx); err != nil {
			a.s.log.Warn("http shutdown", "err", err)
			a.srv.Close()
		}
		cancel()
		<-a.done
		a.srv = nil
	}
	if a.sub != nil {
		a.sys.EventStream.Unsubscribe(a.sub)
		a.sub = nil
	}
}
