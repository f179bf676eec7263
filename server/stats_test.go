package server

import (
	"bufio"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coppice-kv/coppice/messages"
)

// slowBackend answers reads at once with a nil bulk, and writes after
// writeTakes with OK, or with a TRYAGAIN error for the key "busy".
type slowBackend struct{ writeTakes time.Duration }

type after struct {
	d time.Duration
	r *messages.Reply
}

func (a after) Wait() *messages.Reply { time.Sleep(a.d); return a.r }

func (slowBackend) Shards() int { return 1 }
func (b slowBackend) Propose(_ int, cmd *messages.Command) Pending {
	if string(cmd.Args[1]) == "busy" {
		return done{errorf("TRYAGAIN shard 0 is not available: no leader")}
	}
	return after{b.writeTakes, replyOK}
}
func (slowBackend) Read(int, *messages.Command) Pending { return done{&messages.Reply{}} }
func (slowBackend) Scan(int, *messages.ScanShard) Pending {
	return done{errorf("ERR no scan here")}
}

// The port counts connections, commands, error replies by prefix and the
// key-value commands' latencies, reads and writes apart, in the Stats it
// is given, and INFO shows the counts as Redis does (errorstats).
func TestStatsCount(t *testing.T) {
	st := &Stats{}
	srv, err := Listen(Config{Addr: "127.0.0.1:0", Stats: st, MaxClients: 1}, slowBackend{writeTakes: 30 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c := dial(t, srv)
	for _, tc := range []struct{ cmd, want string }{
		{"PING", "+PONG"},
		{"SET k v", "+OK"},
		{"SET k v", "+OK"},
		{"GET k", "$-1"},
		{"SET busy v", "-TRYAGAIN shard 0 is not available: no leader"},
		{"GET", "-ERR wrong number of arguments for 'get' command"},
		{"NOSUCH", "-ERR unknown command 'NOSUCH', with args beginning with: "},
	} {
		if got := c.do(tc.cmd); got != tc.want {
			t.Fatalf("%s: %q, want %q", tc.cmd, got, tc.want)
		}
	}
	turnedAway(t, srv) // a second client, at MaxClients

	got := st.Snapshot()
	if got.Open != 1 || got.Connections != 1 || got.Rejected != 1 || got.Commands != 7 {
		t.Errorf("open %d connections %d rejected %d commands %d, want 1 1 1 7", got.Open, got.Connections, got.Rejected, got.Commands)
	}
	if want := map[string]uint64{"TRYAGAIN": 1, "ERR": 2}; fmt.Sprint(got.ErrorReplies) != fmt.Sprint(want) {
		t.Errorf("error replies %v, want %v", got.ErrorReplies, want)
	}
	// Timed: the three SETs (two took 30ms) and the two GETs (the arity
	// error is a read too); not PING, nor the unknown command.
	w, r := got.Writes, got.Reads
	if w.Count != 3 || r.Count != 2 || w.Sum < 60*time.Millisecond || r.Sum >= 30*time.Millisecond {
		t.Errorf("writes %d in %v, reads %d in %v", w.Count, w.Sum, r.Count, r.Sum)
	}
	// Two writes in the bucket of (25ms, 50ms], one (TRYAGAIN) far under.
	for i, le := range LatencyBuckets {
		want := uint64(1)
		if le >= 0.05 {
			want = 3
		}
		if le < 0.025 && w.Cumulative[i] > 1 || le >= 0.05 && w.Cumulative[i] != want {
			t.Errorf("writes up to %gs: %d", le, w.Cumulative[i])
		}
	}
	if r.Cumulative[len(LatencyBuckets)-1] != 2 {
		t.Errorf("reads in the buckets: %v", r.Cumulative)
	}

	// INFO: stats and errorstats, as Redis 7 gives them: the commands
	// that ran (not the two refused, the unknown one, or the INFO).
	body := c.do("INFO")
	for _, want := range []string{"total_commands_processed:4\r\n", "rejected_connections:1\r\n", "total_error_replies:3\r\n",
		"# Errorstats\r\nerrorstat_ERR:count=2\r\nerrorstat_TRYAGAIN:count=1\r\n"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("INFO has no %q:\n%s", want, body)
		}
	}
}

// Error prefixes: the first word, if a space ends it within the reply
// line's first 32 bytes, else ERR (Redis 7.0's rule); past 128 of them,
// OTHER (a bound of coppice's, as Redis 7.2 has).
func TestErrorPrefixes(t *testing.T) {
	var st Stats
	for _, msg := range []string{"WRONGTYPE Operation against a key", "ERR syntax error", "oops lower case", "", "MOVED"} {
		st.errorReply(msg)
	}
	if got := fmt.Sprint(st.Snapshot().ErrorReplies); got != "map[ERR:3 WRONGTYPE:1 oops:1]" {
		t.Fatalf("prefixes: %s", got)
	}
	for i := range 200 {
		st.errorReply(fmt.Sprintf("E%03d x", i))
	}
	got := st.Snapshot().ErrorReplies
	if len(got) != maxErrorPrefixes+1 || got["OTHER"] != 200-(maxErrorPrefixes-3) {
		t.Fatalf("%d prefixes, OTHER %d", len(got), got["OTHER"])
	}
}

// Key-value commands slower than the threshold land in the slow log, the
// newest first and at most SlowlogMaxLen, their arguments cut as Redis
// cuts them; SLOWLOG GET, LEN and RESET read it as Redis's do.
func TestSlowlog(t *testing.T) {
	srv, err := Listen(Config{Addr: "127.0.0.1:0", SlowlogSlowerThan: 20 * time.Millisecond, SlowlogMaxLen: 2},
		slowBackend{writeTakes: 30 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c := dial(t, srv)
	if got := c.do("CLIENT SETNAME slowpoke"); got != "+OK" {
		t.Fatal(got)
	}
	if got := c.do("GET k"); got != "$-1" {
		t.Fatal(got)
	}
	if got := c.do("SLOWLOG LEN"); got != ":0" {
		t.Fatalf("SLOWLOG LEN after a fast read: %q", got)
	}
	long := strings.Repeat("v", 200)
	many := "SET k2 " + strings.Repeat("x ", 38) + "x"
	for _, cmd := range []string{"SET k1 a", "SET k " + long, many} {
		if got := c.do(cmd); !strings.HasPrefix(got, "+OK") && !strings.HasPrefix(got, "-ERR syntax") {
			t.Fatalf("%s: %q", cmd, got)
		}
	}
	if got := c.do("SLOWLOG LEN"); got != ":2" {
		t.Fatalf("SLOWLOG LEN: %q, want the newest 2", got)
	}
	got := c.do("SLOWLOG GET")
	var id1, id2, at, us1 int64
	var rest string
	if n, _ := fmt.Sscanf(got, "[[:%d :%d :%d [", &id1, &at, &us1); n != 3 || id1 != 2 || us1 < 30000 || at < time.Now().Add(-time.Minute).Unix() {
		t.Fatalf("SLOWLOG GET: %q", got)
	}
	// The newest: 41 arguments kept as 31 and a count of the rest.
	if !strings.Contains(got, "[SET k2 x x") || !strings.Contains(got, "x ... (10 more arguments)] ") || !strings.HasSuffix(got, " slowpoke]]") {
		t.Fatalf("SLOWLOG GET, newest entry: %q", got)
	}
	// The one before: its long argument cut at 128 bytes.
	rest = got[strings.Index(got, "] [:")+2:]
	if n, _ := fmt.Sscanf(rest, "[:%d ", &id2); n != 1 || id2 != 1 || !strings.Contains(rest, "[SET k "+strings.Repeat("v", 128)+"... (72 more bytes)] 127.0.0.1:") {
		t.Fatalf("SLOWLOG GET, older entry: %q", rest)
	}
	if got := c.do("SLOWLOG GET 1"); strings.Count(got, "[:") != 1 {
		t.Fatalf("SLOWLOG GET 1: %q", got)
	}
	for _, tc := range []struct{ cmd, want string }{
		{"SLOWLOG GET -2", "-ERR count should be greater than or equal to -1"},
		{"SLOWLOG GET x", "-ERR count should be greater than or equal to -1"},
		{"SLOWLOG LEN 1", "-ERR wrong number of arguments for 'slowlog|len' command"},
		{"SLOWLOG BOGUS", "-ERR unknown subcommand 'BOGUS'. Try SLOWLOG HELP."},
		{"SLOWLOG", "-ERR wrong number of arguments for 'slowlog' command"},
		{"SLOWLOG RESET", "+OK"},
		{"SLOWLOG LEN", ":0"},
		{"CONFIG GET slow*", "[slowlog-log-slower-than 20000 slowlog-max-len 2]"},
	} {
		if got := c.do(tc.cmd); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.cmd, got, tc.want)
		}
	}
}

// Each command counts its calls, their time and error replies, and the
// calls refused before they ran (arity, a leader change's TRYAGAIN); a
// subcommand counts apart, an unknown command nowhere. INFO commandstats
// gives them as Redis does, and the default INFO leaves them out, as
// Redis's does.
func TestCommandStats(t *testing.T) {
	st := &Stats{}
	srv, err := Listen(Config{Addr: "127.0.0.1:0", Stats: st}, slowBackend{writeTakes: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c := dial(t, srv)
	for _, cmd := range []string{"PING", "PING", "SET k v", "SET busy v", "GET k", "get k", "GET", "CLIENT LIST", "NOSUCH"} {
		c.do(cmd)
	}
	got := st.Snapshot().ByCommand
	if len(got) != 4 || got["ping"].Calls != 2 || got["ping"].Time == 0 ||
		got["set"].Calls != 1 || got["set"].Rejected != 1 || got["set"].Failed != 0 || got["set"].Time < 20*time.Millisecond ||
		got["get"].Calls != 2 || got["get"].Rejected != 1 || got["get"].Failed != 0 || got["client|list"].Calls != 1 {
		t.Fatalf("by command: %+v", got)
	}
	info := c.do("INFO commandstats")
	if !strings.HasPrefix(info, "# Commandstats\r\ncmdstat_client|list:calls=1,") ||
		!regexp.MustCompile(`\r\ncmdstat_get:calls=2,usec=\d+,usec_per_call=\d+\.\d\d,rejected_calls=1,failed_calls=0\r\n`).MatchString(info) ||
		!regexp.MustCompile(`\r\ncmdstat_ping:calls=2,usec=\d+,usec_per_call=\d+\.\d\d,rejected_calls=0,failed_calls=0\r\n`).MatchString(info) ||
		strings.Contains(info, "cmdstat_info") {
		t.Fatalf("INFO commandstats:\n%s", info)
	}
	if all := c.do("INFO everything"); !strings.Contains(all, "# Commandstats\r\n") {
		t.Fatalf("INFO everything has no commandstats:\n%s", all)
	}
	if def := c.do("INFO"); strings.Contains(def, "cmdstat_") {
		t.Fatalf("the default INFO has commandstats:\n%s", def)
	}
}

// CONFIG RESETSTAT zeroes what INFO counts, and not what the node
// exports (Stats.Snapshot, /metrics), whose counters only grow.
func TestResetStat(t *testing.T) {
	st := &Stats{}
	srv, err := Listen(Config{Addr: "127.0.0.1:0", Stats: st}, slowBackend{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c := dial(t, srv)
	for _, cmd := range []string{"SET k v", "SET busy v", "GET k", "CONFIG RESETSTAT", "GET k", "SET busy v"} {
		c.do(cmd)
	}
	info := c.do("INFO everything")
	// As in Redis, the RESETSTAT counts itself (once it ran), and the
	// INFO does not.
	for _, want := range []string{"total_commands_processed:2\r\n", "total_error_replies:1\r\n", "errorstat_TRYAGAIN:count=1\r\n",
		"cmdstat_get:calls=1,", "cmdstat_set:calls=0,usec=0,usec_per_call=0.00,rejected_calls=1,", "cmdstat_config|resetstat:calls=1,",
		"total_connections_received:0\r\n"} {
		if !strings.Contains(info, want) {
			t.Errorf("INFO after RESETSTAT has no %q:\n%s", want, info)
		}
	}
	if strings.Contains(info, "cmdstat_info") {
		t.Errorf("INFO counts itself:\n%s", info)
	}
	got := st.Snapshot()
	if got.Commands != 7 || got.Processed != 5 || got.ErrorReplies["TRYAGAIN"] != 2 || got.ByCommand["set"].Calls != 1 || got.ByCommand["set"].Rejected != 2 || got.Connections != 1 {
		t.Errorf("Snapshot after RESETSTAT: %+v", got)
	}
}

// INFO keyspace counts the keys, those with an expiry to come and their
// average time to live (Redis's estimate, exact here), and shows no db0
// line for an empty database, as Redis.
func TestInfoKeyspaceCountsExpires(t *testing.T) {
	srv := trackingServer(t)
	c := dial(t, srv)
	if got := c.do("INFO keyspace"); got != "# Keyspace\r\n" {
		t.Fatalf("empty: %q", got)
	}
	script(t, c, "SET a 1 EX 100", "+OK", "SET b 1 PX 50000", "+OK", "SET c 1", "+OK", "SET gone 1 PXAT 1", "+OK")
	got := c.do("INFO keyspace")
	m := regexp.MustCompile(`^# Keyspace\r\ndb0:keys=3,expires=2,avg_ttl=(\d+)\r\n$`).FindStringSubmatch(got)
	if m == nil {
		t.Fatalf("INFO keyspace: %q", got)
	}
	if avg, _ := strconv.Atoi(m[1]); avg > 75000 || avg < 70000 {
		t.Fatalf("avg_ttl %d, want about (100000+50000)/2", avg)
	}
}

// CONFIG SET changes what the slow log keeps, at once, and CONFIG GET
// answers it.
func TestConfigSetSlowlog(t *testing.T) {
	srv := trackingServer(t)
	c := dial(t, srv)
	script(t, c,
		"CONFIG SET slowlog-log-slower-than -1 slowlog-max-len 2", "+OK",
		"SET a 1", "+OK", "SLOWLOG LEN", ":0",
		"CONFIG SET slowlog-log-slower-than 0", "+OK",
		"SET a 1", "+OK", "GET a", "1", "SET b 2", "+OK", "SLOWLOG LEN", ":2",
		"CONFIG GET slowlog-log-slower-than", "[slowlog-log-slower-than 0]",
		"CONFIG SET slowlog-max-len 0", "+OK", "SLOWLOG RESET", "+OK", "SET c 3", "+OK", "SLOWLOG LEN", ":0",
		"CONFIG SET maxmemory-policy allkeys-lru", "-ERR CONFIG SET failed (possibly related to argument 'maxmemory-policy') - not changeable on coppice, where it is \"noeviction\": coppice keeps its data on disk and never evicts a key (--min-free-disk-mib refuses writes when the disk is low)",
	)
}

// INFO stats counts the reads that found their key or not, and the keys
// deleted at their expiry, as Redis's keyspace_hits, keyspace_misses and
// expired_keys.
func TestInfoCountsHitsMissesExpired(t *testing.T) {
	srv := trackingServer(t)
	c := dial(t, srv)
	counts := func() (hits, misses, expired int) {
		info := c.do("INFO stats")
		for _, f := range []struct {
			name string
			to   *int
		}{{"keyspace_hits", &hits}, {"keyspace_misses", &misses}, {"expired_keys", &expired}} {
			m := regexp.MustCompile(f.name + `:(\d+)\r\n`).FindStringSubmatch(info)
			if m == nil {
				t.Fatalf("INFO stats lacks %s:\n%s", f.name, info)
			}
			*f.to, _ = strconv.Atoi(m[1])
		}
		return
	}
	h0, m0, e0 := counts()
	script(t, c, "GET {a}1", "$-1", "SET {a}1 v", "+OK", "GET {a}1", "v", "MGET {a}1 {a}2", "[v $-1]",
		"SET {a}3 v PXAT 1", "+OK", "GET {a}3", "$-1", "SET {a}3 again", "+OK")
	h, m, e := counts()
	if h-h0 != 2 || m-m0 != 3 || e-e0 != 1 {
		t.Fatalf("hits +%d, misses +%d, expired +%d; want +2, +3 (the expired key read counts as a miss), +1", h-h0, m-m0, e-e0)
	}
}

// turnedAway checks that a new client of srv is refused, over maxclients.
func turnedAway(t *testing.T, srv *Server) {
	t.Helper()
	extra, err := net.DialTimeout("tcp", srv.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	extra.SetDeadline(time.Now().Add(10 * time.Second))
	if line, _ := bufio.NewReader(extra).ReadString('\n'); line != "-ERR max number of clients reached\r\n" {
		t.Fatalf("a client over maxclients: %q", line)
	}
}
