package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coppice-kv/coppice/actors"
	"github.com/coppice-kv/coppice/supervisor"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

var errNotStarted = errors.New("httpapi: the node's actor system is not running")

// Handler serves the endpoint's paths. It answers 503 until the worker of
// Spec has started once (it learns the actor system from it).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	// "GET" patterns match HEAD too; the mux answers other methods with
	// 405 and an Allow header, and unknown paths with 404.
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{
		ErrorLog:      slog2promLogger{s},
		ErrorHandling: promhttp.ContinueOnError,
		Timeout:       s.cfg.Timeout + 5*time.Second,
	}))
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.HandleFunc("GET /v1/status", s.status)
	mux.HandleFunc("GET /v1/backup", s.backup)
	s.clusterRoutes(mux)
	if s.cfg.Pprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	return s.authorize(mux)
}

// authorize passes on the requests that carry Config.Token, the reads
// (GET and HEAD, but the profiler's and the backup's, which is all the
// data) that carry Config.ReadToken, and
// those of the probes, which carry no data and need none. Any other path,
// even one the mux would not serve, needs a token.
func (s *Server) authorize(next http.Handler) http.Handler {
	if s.cfg.Token == "" {
		return next
	}
	// Compared as hashes, in constant time: neither a token's bytes nor
	// its length show in the time an answer takes.
	admin := sha256.Sum256([]byte(s.cfg.Token))
	var reader *[sha256.Size]byte
	if s.cfg.ReadToken != "" {
		h := sha256.Sum256([]byte(s.cfg.ReadToken))
		reader = &h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" {
			next.ServeHTTP(w, r)
			return
		}
		header := r.Header.Get("Authorization")
		scheme, token, _ := strings.Cut(header, " ")
		got := sha256.Sum256([]byte(token))
		bearer := strings.EqualFold(scheme, "Bearer")
		if bearer && subtle.ConstantTimeCompare(got[:], admin[:]) == 1 {
			next.ServeHTTP(w, r)
			return
		}
		if bearer && reader != nil && subtle.ConstantTimeCompare(got[:], reader[:]) == 1 {
			if (r.Method == http.MethodGet || r.Method == http.MethodHead) && !strings.HasPrefix(r.URL.Path, "/debug/") && r.URL.Path != "/v1/backup" {
				next.ServeHTTP(w, r)
				return
			}
			writeJSON(w, http.StatusForbidden, map[string]string{"error": "the --http-read-token reads status and metrics only: this wants the --http-token"})
			return
		}
		msg := "this node's HTTP port wants its --http-token, in the header Authorization: Bearer TOKEN"
		if header != "" {
			msg = "the Authorization header does not carry this node's --http-token as a Bearer token"
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="coppice"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": msg})
	})
}

// healthz is 200 while the root supervisor answers: the process runs and
// its tree is up.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	sys := s.system()
	if sys == nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "error": errNotStarted.Error()})
		return
	}
	root := actor.NewPID(sys.Address(), actors.RootName)
	counts, err := supervisor.CountChildren(sys.Root, root, s.cfg.Timeout)
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"status": "ok",
		"tree":   map[string]uint32{"children": counts.Specs, "active": counts.Active},
	})
}

// readyz is 200 when every shard is ready (actors.ShardStatus.Ready: a
// leader, applied up to the commit index and, on this node's own leaders,
// up to where the log stood at the election); else 503 with the shards
// that are not ready and why.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	st, err := s.gather(r.Context())
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"ready": false, "error": err.Error()})
		return
	}
	if bad := st.NotReady(); len(bad) > 0 {
		body := map[string]any{"ready": false, "shards": bad}
		if st.ClusterError != "" {
			body["cluster_error"] = st.ClusterError // a node in no cluster yet says why
		}
		if st.Removed {
			body["removed"] = true
		}
		writeJSON(w, http.StatusServiceUnavailable, body)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ready": true})
}

// status is the node's status as JSON (actors.Status).
func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	st, err := s.gather(r.Context())
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) gather(ctx context.Context) (*actors.Status, error) {
	sys := s.system()
	if sys == nil {
		return nil, errNotStarted
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	return actors.GatherStatus(ctx, sys, s.cfg.Info)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// slog2promLogger passes promhttp's errors to the node's log.
type slog2promLogger struct{ s *Server }

func (l slog2promLogger) Println(v ...any) { l.s.log.Warn("metrics", "err", v) }
