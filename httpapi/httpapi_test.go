package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coppice-kv/coppice/actors"
	"github.com/coppice-kv/coppice/httpapi"
	"github.com/coppice-kv/coppice/internal/testwait"
	"github.com/coppice-kv/coppice/kv"
	"github.com/coppice-kv/coppice/messages"
	"github.com/coppice-kv/coppice/supervisor"
)

// okExec is a trivial executor: every write is OK and changes nothing.
func okExec(kv.Writer, *messages.Command, *kv.EventLog) *messages.Reply {
	return &messages.Reply{Value: &messages.Reply_Status{Status: "OK"}}
}

const shards = 2

// startNode starts a real node on a temporary data dir, with the HTTP
// worker under the user supervisor, and returns the HTTP base URL.
func startNode(t *testing.T) (*actors.Node, string) {
	t.Helper()
	return startNodeWith(t, nil)
}

// startNodeWith is startNode with tune, if not nil, called on the node's
// Runtime before it starts.
func startNodeWith(t *testing.T, tune func(*actors.Runtime)) (*actors.Node, string) {
	t.Helper()
	rt := &actors.Runtime{Name: "n1", DataDir: t.TempDir(), Shards: shards,
		ClusterAddr: "127.0.0.1:0", ClientAddr: "127.0.0.1:0", Exec: okExec, SnapshotRate: 64 << 20}
	if tune != nil {
		tune(rt)
	}
	srv := httpapi.New(httpapi.Config{Addr: "127.0.0.1:0",
		Info: actors.StatusInfo{Name: "n1", Shards: shards, Role: "voter", Join: rt.Join}, RaftLog: rt.RaftLogStats,
		SnapshotThrottle: rt.SnapshotThrottleStats, DataDir: rt.DataDir, Clients: rt.ClientStats, Stores: rt.StoresStats})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := actors.Start(ctx, actors.Config{Runtime: rt, User: []supervisor.ChildSpec{srv.Spec()}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := n.Stop(ctx); err != nil {
			t.Error(err)
		}
		if srv.Addr() != "" {
			t.Errorf("the HTTP listener %s is still open after the node stopped", srv.Addr())
		}
	})
	if srv.Addr() == "" {
		t.Fatal("the HTTP worker started without a listener")
	}
	return n, "http://" + srv.Addr()
}

var client = &http.Client{Timeout: 10 * time.Second}

func do(t *testing.T, method, url string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, res.Header, string(body)
}

// eventually polls fn (bounded) until it reports true.
func eventually(t *testing.T, what string, fn func() (bool, string)) {
	t.Helper()
	testwait.For(t, 20*time.Second, 25*time.Millisecond, what, func() error {
		if ok, last := fn(); !ok {
			return errors.New(last)
		}
		return nil
	})
}

// writeEveryShard commits a write on every shard (bounded poll: until
// each has elected its leader), so that the status has applied entries to
// show.
func writeEveryShard(t *testing.T, n *actors.Node) {
	t.Helper()
	for i := range shards {
		cmd := &messages.Command{Args: [][]byte{[]byte("SET"), []byte("k"), []byte("v")}}
		eventually(t, "a write on shard "+actors.RaftPath(i), func() (bool, string) {
			res, err := n.System.Root.RequestFuture(actor.NewPID(n.System.Address(), actors.RaftPath(i)),
				&messages.Propose{Command: cmd}, 5*time.Second).Result()
			if err != nil {
				return false, err.Error()
			}
			r, ok := res.(*messages.ProposeReply)
			return ok && r.Error == "", fmt.Sprint(res)
		})
	}
}

// A new node is ready once its shards have elected leaders, with no
// write: a leader's own no-op entry, which hashicorp/raft never hands to
// the state machine, does not hold its applied index behind its commit
// index (storage.LastVisible).
func TestReadyWithoutWrites(t *testing.T) {
	_, base := startNode(t)
	eventually(t, "/readyz 200", func() (bool, string) {
		code, _, body := do(t, "GET", base+"/readyz")
		return code == 200, body
	})
}

// A node of --bootstrap-expect that has not found the nodes to found a
// cluster with says so in /readyz and /v1/status, beside its shards' "no
// leader".
func TestReadyzSaysWhyANodeIsInNoCluster(t *testing.T) {
	_, base := startNodeWith(t, func(rt *actors.Runtime) {
		rt.GossipAddr, rt.GossipFast, rt.Join, rt.BootstrapExpect = "127.0.0.1:0", true, []string{"127.0.0.1:1"}, 2
	})
	want := "this node is in no cluster yet: 1 of the 2 nodes of --bootstrap-expect seen (n1), and no cluster"
	for _, path := range []string{"/readyz", "/v1/status"} {
		eventually(t, path+" says why", func() (bool, string) {
			code, _, body := do(t, "GET", base+path)
			return strings.Contains(body, want) && (path != "/readyz" || code == 503), body
		})
	}
}

func TestEndpoints(t *testing.T) {
	n, base := startNode(t)

	// /healthz: the tree is up.
	code, hdr, body := do(t, "GET", base+"/healthz")
	if code != 200 || !strings.Contains(body, `"status": "ok"`) || hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("/healthz: %d %s %s", code, hdr.Get("Content-Type"), body)
	}

	// /readyz: every shard elects itself and applies what it committed.
	writeEveryShard(t, n)
	eventually(t, "/readyz 200", func() (bool, string) {
		code, _, body := do(t, "GET", base+"/readyz")
		return code == 200 && strings.Contains(body, `"ready": true`), body
	})

	// /v1/status: the node and every shard, led by this node, once the
	// node has made its cluster (it bootstraps one, as the only member).
	var st actors.Status
	eventually(t, "/v1/status with a cluster id", func() (bool, string) {
		code, _, body = do(t, "GET", base+"/v1/status")
		st = actors.Status{}
		return code == 200 && json.Unmarshal([]byte(body), &st) == nil && st.ClusterID != "", body
	})
	if st.Node != "n1" || st.Mode != "standalone" || st.SyncStatus != "synced" {
		t.Errorf("status: node %q mode %q sync_status %q", st.Node, st.Mode, st.SyncStatus)
	}
	if len(st.Nodes) != 1 || st.Nodes[0].Name != "n1" || st.Nodes[0].Status != "alive" || st.Nodes[0].Role != "voter" ||
		!st.Nodes[0].Member || st.Nodes[0].ClientAddr == "" {
		t.Errorf("nodes: %+v", st.Nodes)
	}
	if len(st.Shards) != shards {
		t.Fatalf("%d shards, want %d: %s", len(st.Shards), shards, body)
	}
	for i, sh := range st.Shards {
		if sh.ID != i || sh.Leader != "n1" || sh.State != "leader" || sh.Term == 0 || sh.LastIndex == 0 ||
			sh.CommitIndex == 0 || sh.AppliedIndex < sh.CommitIndex || sh.Error != "" {
			t.Errorf("shard %d: %+v", i, sh)
		}
		if len(sh.Members) != 1 || sh.Members[0].Node != "n1" || sh.Members[0].Suffrage != "voter" ||
			sh.Members[0].AppliedIndex == nil || *sh.Members[0].AppliedIndex != sh.AppliedIndex {
			t.Errorf("shard %d members: %+v", i, sh.Members)
		}
	}
	for _, key := range []string{`"node"`, `"mode"`, `"sync_status"`, `"nodes"`, `"shards"`, `"first_index"`,
		`"last_index"`, `"commit_index"`, `"applied_index"`, `"members"`, `"suffrage"`, `"term"`, `"leader"`, `"state"`} {
		if !strings.Contains(body, key) {
			t.Errorf("/v1/status has no %s: %s", key, body)
		}
	}

	// /metrics: the shard gauges, the event counter, the Go and process
	// collectors.
	code, hdr, body = do(t, "GET", base+"/metrics")
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") {
		t.Fatalf("/metrics: %d %s", code, hdr.Get("Content-Type"))
	}
	for _, want := range []string{
		`coppice_shard_applied_index{shard="0"}`, `coppice_shard_applied_index{shard="1"}`,
		`coppice_shard_commit_index{shard="1"}`, `coppice_shard_last_index{shard="1"}`,
		`coppice_shard_term{shard="1"}`, `coppice_shard_is_leader{shard="0"} 1`, `coppice_shard_up{shard="1"} 1`,
		`coppice_shard_cache_hits_total{shard="1"}`, `coppice_shard_cache_misses_total{shard="0"}`, `coppice_shard_cache_bytes{shard="1"}`,
		`coppice_shard_filter_skips_total{shard="0"}`, `coppice_shard_filter_ready{shard="1"}`,
		`coppice_supervisor_events_total{kind="child_exited"} 0`, "go_goroutines", "process_start_time_seconds",
		"coppice_raftlog_syncs_total", "coppice_raftlog_records_total", "coppice_raftlog_synced_bytes_total",
		`coppice_raftlog_sync_seconds_bucket{le="0.001"}`, `coppice_raftlog_sync_seconds_bucket{le="+Inf"}`, "coppice_raftlog_sync_seconds_count",
		"coppice_snapshot_stream_bytes_total 0", "coppice_snapshot_throttled_seconds_total 0", "coppice_snapshot_rate_limit_bytes 6.7108864e+07",
		"coppice_shard_compactions_running 0", fmt.Sprintf("coppice_shard_compactions_limit %d", max(4, runtime.GOMAXPROCS(0))),
		"coppice_shard_compactions_waiting_stores 0",
		"coppice_shard_compactions_started_total",
		"coppice_shard_memtable_size_bytes 3.3554432e+07", "coppice_shard_block_cache_size_bytes 3.3554432e+07",
		"coppice_shard_block_cache_bytes", "coppice_shard_block_cache_hits_total", "coppice_shard_block_cache_misses_total",
		"coppice_client_connections 0", "coppice_client_connections_received_total 0", "coppice_client_connections_rejected_total 0",
		"coppice_client_commands_total 0", "coppice_writes_unlogged_total 0", `coppice_client_command_duration_seconds_bucket{kind="write",le="0.001"} 0`,
		`coppice_client_command_duration_seconds_bucket{kind="read",le="+Inf"} 0`, `coppice_client_command_duration_seconds_count{kind="read"} 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics has no %s", want)
		}
	}
	// The shards' elections and first entries went through the journal.
	if m := regexp.MustCompile(`(?m)^coppice_raftlog_syncs_total (\d+)$`).FindStringSubmatch(body); m == nil || m[1] == "0" {
		t.Errorf("journal syncs: %v in %s", m, grep(body, "coppice_raftlog"))
	}

	// The data dir's file system: some bytes free, no more than its size.
	free := regexp.MustCompile(`(?m)^coppice_data_dir_free_bytes (\S+)$`).FindStringSubmatch(body)
	size := regexp.MustCompile(`(?m)^coppice_data_dir_size_bytes (\S+)$`).FindStringSubmatch(body)
	if free == nil || size == nil {
		t.Errorf("no data dir space in /metrics: %s", grep(body, "coppice_data_dir"))
	} else if f, s := parseFloat(t, free[1]), parseFloat(t, size[1]); f <= 0 || s < f {
		t.Errorf("data dir space: %v free of %v", f, s)
	}

	// HEAD is GET without a body.
	if code, _, body := do(t, "HEAD", base+"/healthz"); code != 200 || body != "" {
		t.Errorf("HEAD /healthz: %d %q", code, body)
	}
	// Unknown paths are 404; other methods 405 with Allow.
	for _, path := range []string{"/", "/nope", "/metrics/x", "/v1/status/0", "/v2/status"} {
		if code, _, _ := do(t, "GET", base+path); code != 404 {
			t.Errorf("GET %s: %d, want 404", path, code)
		}
	}
	for _, m := range []string{"POST", "PUT", "DELETE"} {
		for _, path := range []string{"/metrics", "/healthz", "/readyz", "/v1/status"} {
			code, hdr, _ := do(t, m, base+path)
			if code != 405 || !strings.Contains(hdr.Get("Allow"), "GET") {
				t.Errorf("%s %s: %d Allow %q, want 405 Allow GET", m, path, code, hdr.Get("Allow"))
			}
		}
	}
}

// A supervisor event (a crashed shard restarting) shows in the counter,
// and readiness comes back after it.
func TestSupervisorEventsAreCounted(t *testing.T) {
	n, base := startNode(t)
	eventually(t, "/readyz 200", func() (bool, string) {
		code, _, body := do(t, "GET", base+"/readyz")
		return code == 200, body
	})
	raft0 := actors.RaftPath(0)
	n.System.Root.Send(actor.NewPID(n.System.Address(), raft0), &messages.Crash{Reason: "test"})
	eventually(t, "child_exited counted", func() (bool, string) {
		_, _, body := do(t, "GET", base+"/metrics")
		return strings.Contains(body, `coppice_supervisor_events_total{kind="child_exited"} 1`), grep(body, "coppice_supervisor_events_total")
	})
	eventually(t, "/readyz 200 after the restart", func() (bool, string) {
		code, _, body := do(t, "GET", base+"/readyz")
		return code == 200, body
	})
}

func grep(body, prefix string) string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// POST /v1/scrub asks the node for a scrub: 202 when the ask starts one
// (now, or after the pass under way), 200 when one is asked for already,
// 503 on a server with no node behind it.
func TestScrubAsks(t *testing.T) {
	for _, tc := range []struct {
		started, running bool
		code             int
		says             string
	}{
		{true, false, http.StatusAccepted, `"scrub": "started"`},
		{true, true, http.StatusAccepted, "starts when the pass under way ends"},
		{false, true, http.StatusOK, "asked for already"},
	} {
		asks := 0
		h := httpapi.New(httpapi.Config{Addr: "127.0.0.1:0", Scrub: func() (bool, bool) { asks++; return tc.started, tc.running }}).Handler()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("POST", "/v1/scrub", nil))
		if rec.Code != tc.code || !strings.Contains(rec.Body.String(), tc.says) || asks != 1 {
			t.Errorf("started %v, running %v: %d %q after %d asks; want %d saying %q after 1", tc.started, tc.running, rec.Code, rec.Body.String(), asks, tc.code, tc.says)
		}
	}
	rec := httptest.NewRecorder()
	httpapi.New(httpapi.Config{Addr: "127.0.0.1:0"}).Handler().ServeHTTP(rec, httptest.NewRequest("POST", "/v1/scrub", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("no node: %d, want 503", rec.Code)
	}
}

// The profiler is served only when Config.Pprof asks for it (--pprof).
func TestPprofOnlyWhenAsked(t *testing.T) {
	for _, on := range []bool{false, true} {
		h := httpapi.New(httpapi.Config{Addr: "127.0.0.1:0", Pprof: on}).Handler()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/debug/pprof/goroutine?debug=1", nil))
		switch {
		case on && (rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "goroutine profile")):
			t.Fatalf("Pprof on: %d %.80q, want the goroutine profile", rec.Code, rec.Body.String())
		case !on && rec.Code != http.StatusNotFound:
			t.Fatalf("Pprof off: %d, want 404", rec.Code)
		}
	}
}

func parseFloat(t *testing.T, s string) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// With Config.Token, every path but the probes wants the bearer token:
// without it, or with another, a request gets 401 and reaches no
// handler.
func TestTokenGuardsAllButTheProbes(t *testing.T) {
	const token = "0123456789abcdef-token"
	h := httpapi.New(httpapi.Config{Addr: "127.0.0.1:0", Token: token, Pprof: true}).Handler()
	serve := func(method, path, auth string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	// The probes need none (503: no actor system in this test).
	for _, p := range []string{"/healthz", "/readyz"} {
		if rec := serve("GET", p, ""); rec.Code != http.StatusServiceUnavailable {
			t.Errorf("GET %s without a token: %d, want the probe's own 503", p, rec.Code)
		}
	}
	for _, tc := range []struct{ method, path string }{
		{"GET", "/v1/status"}, {"GET", "/v1/nodes"}, {"POST", "/v1/nodes"}, {"DELETE", "/v1/nodes/n2"},
		{"POST", "/v1/leave"}, {"POST", "/v1/trust-stores"}, {"POST", "/v1/scrub"}, {"GET", "/v1/checksums"}, {"GET", "/metrics"}, {"GET", "/debug/pprof/cmdline"},
		{"GET", "/v1/backup"}, {"GET", "/no/such/path"}, {"GET", "/healthz/../v1/status"},
	} {
		for _, auth := range []string{"", "Bearer wrong-token-0123456789", "Basic " + token, "Bearer " + token + "x", token} {
			rec := serve(tc.method, tc.path, auth)
			want := "wants its --http-token, in the header Authorization: Bearer TOKEN"
			if auth != "" {
				want = "does not carry this node's --http-token"
			}
			if rec.Code != http.StatusUnauthorized || rec.Header().Get("WWW-Authenticate") != `Bearer realm="coppice"` ||
				!strings.Contains(rec.Body.String(), want) || strings.Contains(rec.Body.String(), token) {
				t.Errorf("%s %s with %q: %d %v %q, want 401 saying %q", tc.method, tc.path, auth, rec.Code, rec.Header(), rec.Body.String(), want)
			}
		}
	}
	// With it (the scheme in any case): served.
	for _, auth := range []string{"Bearer " + token, "bearer " + token} {
		if rec := serve("GET", "/metrics", auth); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "go_goroutines") {
			t.Errorf("GET /metrics with %q: %d %.80q", auth, rec.Code, rec.Body.String())
		}
		if rec := serve("POST", "/v1/leave", auth); rec.Code != http.StatusServiceUnavailable {
			t.Errorf("POST /v1/leave with %q: %d %q, want the handler's 503 (no actor system)", auth, rec.Code, rec.Body.String())
		}
	}
	// Without a token configured, nothing is asked.
	open := httpapi.New(httpapi.Config{Addr: "127.0.0.1:0"}).Handler()
	rec := httptest.NewRecorder()
	open.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Errorf("GET /metrics with no token configured: %d", rec.Code)
	}
}

// With Config.ReadToken too, its bearer reads (status, nodes, checksums,
// metrics) and gets 403 for the operations and the profiler; the full
// token still does everything.
func TestReadToken(t *testing.T) {
	const token, reader = "0123456789abcdef-admin", "0123456789abcdef-reader"
	h := httpapi.New(httpapi.Config{Addr: "127.0.0.1:0", Token: token, ReadToken: reader, Pprof: true}).Handler()
	serve := func(method, path, bearer string) int {
		req := httptest.NewRequest(method, path, nil)
		req.Header.Set("Authorization", "Bearer "+bearer)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	for _, p := range []string{"/metrics", "/v1/status", "/v1/nodes", "/v1/checksums"} {
		for _, m := range []string{"GET", "HEAD"} {
			// 503 or 200: past the check (no actor system in this test).
			if code := serve(m, p, reader); code == http.StatusUnauthorized || code == http.StatusForbidden {
				t.Errorf("%s %s with the read token: %d", m, p, code)
			}
		}
	}
	for _, tc := range []struct{ method, path string }{
		{"POST", "/v1/nodes"}, {"DELETE", "/v1/nodes/n2"}, {"POST", "/v1/leave"}, {"POST", "/v1/trust-stores"}, {"POST", "/v1/scrub"}, {"GET", "/debug/pprof/cmdline"},
		{"GET", "/v1/backup"}, {"HEAD", "/v1/backup"}, // all the data
	} {
		if code := serve(tc.method, tc.path, reader); code != http.StatusForbidden {
			t.Errorf("%s %s with the read token: %d, want 403", tc.method, tc.path, code)
		}
		if code := serve(tc.method, tc.path, token); code == http.StatusUnauthorized || code == http.StatusForbidden {
			t.Errorf("%s %s with the token: %d", tc.method, tc.path, code)
		}
	}
	if code := serve("GET", "/metrics", "0123456789abcdef-other"); code != http.StatusUnauthorized {
		t.Errorf("GET /metrics with another token: %d, want 401", code)
	}
}
