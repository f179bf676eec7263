package server

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// infoLeftOut are the fields Redis 7.0's INFO prints that coppice's does
// not, each with its reason.
var infoLeftOut = map[string]string{
	"total_reads_processed":  "the read calls on client sockets: counting them would cost a second atomic add per read",
	"total_writes_processed": "the write calls on client sockets: counting them would cost a second atomic add per write",
}

// infoSection is one "# Title" section of INFO's text: its lines in
// order.
type infoSection struct {
	title string
	lines []string
}

func parseInfo(t *testing.T, text string) []infoSection {
	t.Helper()
	var out []infoSection
	for _, l := range strings.Split(strings.TrimRight(text, "\r\n"), "\r\n") {
		switch {
		case strings.HasPrefix(l, "# "):
			out = append(out, infoSection{title: l[2:]})
		case l == "":
		case len(out) == 0:
			t.Fatalf("INFO: a line before any section: %q", l)
		default:
			out[len(out)-1].lines = append(out[len(out)-1].lines, l)
		}
	}
	return out
}

// fields is a section's field names in order and their values.
func fields(s infoSection) ([]string, map[string]string) {
	var names []string
	values := map[string]string{}
	for _, l := range s.lines {
		name, value, _ := strings.Cut(l, ":")
		names = append(names, name)
		values[name] = value
	}
	return names, values
}

// infoValueShape classes an INFO value as Redis formats them.
func infoValueShape(name, v string) string {
	for _, c := range []struct{ shape, re string }{
		{"int", `^-?\d+$`},
		{"fixed2", `^-?\d+\.\d\d$`},
		{"cpu", `^\d+\.\d{6}$`},
		{"percent", `^\d+\.\d\d%$`},
	} {
		if regexp.MustCompile(c.re).MatchString(v) {
			return c.shape
		}
	}
	if strings.HasSuffix(name, "_human") {
		if humanValue.MatchString(v) {
			return "human"
		}
		return "bad human value " + v
	}
	return "text"
}

var humanValue = regexp.MustCompile(`^(\d+B|\d+\.\d\d[KMGTP])$`)

// Byte counts as Redis's bytesToHuman writes them (the sizes are from a
// redis-server 7.0.15's INFO memory).
func TestBytesToHuman(t *testing.T) {
	for n, want := range map[uint64]string{0: "0B", 1023: "1023B", 1024: "1.00K", 966008: "943.37K",
		6811648: "6.50M", 1100000: "1.05M", 25276194816: "23.54G", 1 << 40: "1.00T", 1 << 50: "1.00P"} {
		if got := bytesToHuman(n); got != want {
			t.Errorf("bytesToHuman(%d) = %q, want %q", n, got, want)
		}
	}
}

// INFO everything prints the sections Redis 7.0 prints, in its order, and
// in each every field Redis prints, in its order (but infoLeftOut), each
// value in the shape of Redis's; the sections whose lines are the
// server's content (commandstats, errorstats, latencystats, keyspace)
// have lines of Redis's shape after the same commands.
func TestInfoAgainstRedis(t *testing.T) {
	redis := dialRedis(t)
	ours := dial(t, trackingServer(t))

	var infos [2][]infoSection
	for side, c := range []*client{redis, ours} {
		for _, cmd := range []string{"INFO server", "SET {k}a 1", "SET {k}b 2 EX 1000", "GET {k}a", "GET {k}nope",
			"LPUSH {k}a x", "INCR {k}b", "INCR {k}nope", "NOSUCHCOMMAND"} {
			c.do(cmd)
		}
		infos[side] = parseInfo(t, c.do("INFO everything"))
	}
	redisInfo, ourInfo := infos[0], infos[1]
	titles := func(ss []infoSection) (out []string) {
		for _, s := range ss {
			out = append(out, s.title)
		}
		return out
	}
	if r, o := titles(redisInfo), titles(ourInfo); !slices.Equal(r, o) {
		t.Fatalf("sections:\n  redis:   %v\n  coppice: %v", r, o)
	}
	byContent := map[string]*regexp.Regexp{
		"Commandstats": regexp.MustCompile(`^cmdstat_([a-z|_-]+):calls=\d+,usec=\d+,usec_per_call=\d+\.\d\d,rejected_calls=\d+,failed_calls=\d+$`),
		"Errorstats":   regexp.MustCompile(`^errorstat_([A-Z]+):count=\d+$`),
		"Latencystats": regexp.MustCompile(`^latency_percentiles_usec_([a-z|_-]+):p50=\d+\.\d{3},p99=\d+\.\d{3},p99\.9=\d+\.\d{3}$`),
		"Keyspace":     regexp.MustCompile(`^(db0:keys=\d+,expires=\d+),avg_ttl=\d+$`),
	}
	leftOutSeen := map[string]bool{}
	for i, rs := range redisInfo {
		cs := ourInfo[i]
		if re := byContent[rs.title]; re != nil {
			// The same names (commands, error prefixes, the db and its
			// counts) in lines of the same shape.
			names := func(side string, s infoSection) []string {
				var out []string
				for _, l := range s.lines {
					m := re.FindStringSubmatch(l)
					if m == nil {
						t.Errorf("%s %s: a line not of Redis's shape: %q", side, s.title, l)
						continue
					}
					out = append(out, m[1])
				}
				slices.Sort(out)
				return out
			}
			if r, o := names("redis", rs), names("coppice", cs); !slices.Equal(r, o) || len(r) == 0 {
				t.Errorf("%s: redis has %v, coppice %v", rs.title, r, o)
			}
			continue
		}
		rNames, rValues := fields(rs)
		oNames, oValues := fields(cs)
		var ourOrder []string // Redis's fields, as coppice orders them
		for _, n := range oNames {
			if _, ok := rValues[n]; ok {
				ourOrder = append(ourOrder, n)
			}
		}
		var want []string
		for _, n := range rNames {
			if _, ok := oValues[n]; ok {
				want = append(want, n)
				continue
			}
			if _, ok := infoLeftOut[n]; ok {
				leftOutSeen[n] = true
				continue
			}
			t.Errorf("%s: coppice has no %s (redis: %s:%s)", rs.title, n, n, rValues[n])
		}
		if !slices.Equal(want, ourOrder) {
			t.Errorf("%s: fields out of Redis's order:\n  redis:   %v\n  coppice: %v", rs.title, want, ourOrder)
		}
		for _, n := range want {
			r, o := infoValueShape(n, rValues[n]), infoValueShape(n, oValues[n])
			if r != o {
				t.Errorf("%s: %s:%s is not of the shape of redis's %s:%s (%s, %s)", rs.title, n, oValues[n], n, rValues[n], o, r)
			}
			if strings.HasSuffix(n, "_human") && !humanValue.MatchString(oValues[n]) {
				t.Errorf("%s:%s is not as Redis writes a size", n, oValues[n])
			}
		}
	}
	for n := range infoLeftOut {
		if !leftOutSeen[n] {
			t.Errorf("infoLeftOut has %s, which redis does not print or coppice does", n)
		}
	}
}

// infoFields reads every field of INFO's sections.
func infoFields(t *testing.T, c *client, sections string) map[string]string {
	t.Helper()
	all := map[string]string{}
	for _, s := range parseInfo(t, c.do("INFO "+sections)) {
		_, values := fields(s)
		for k, v := range values {
			all[k] = v
		}
	}
	return all
}

func infoInt(t *testing.T, f map[string]string, name string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(f[name], 10, 64)
	if err != nil {
		t.Fatalf("%s:%q is not an integer", name, f[name])
	}
	return n
}

// INFO's figures: Redis's constants where the node has no such mechanism,
// its own where it has: the process, the clock, memory, connections,
// blocked and tracking clients, the bytes in and out and the rates.
func TestInfoValues(t *testing.T) {
	b := newEngineBackend()
	srv, err := Listen(Config{Addr: "127.0.0.1:0", Notify: b.notify}, b)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c := dial(t, srv)
	f := infoFields(t, c, "everything")
	for name, want := range map[string]string{
		"maxmemory": "0", "maxmemory_human": "0B", "maxmemory_policy": "noeviction", "mem_allocator": "go",
		"aof_enabled": "1", "rdb_bgsave_in_progress": "0", "master_failover_state": "no-failover", "evicted_keys": "0",
		"total_forks": "0", "hz": "10", "configured_hz": "10", "redis_mode": "standalone", "cluster_enabled": "0",
		"role": "master", "config_file": "", "connected_clients": "1", "blocked_clients": "0", "tracking_clients": "0",
		"process_id": strconv.Itoa(os.Getpid()), "tcp_port": portOf(srv.Addr().String()), "redis_version": redisVersion,
	} {
		if got, ok := f[name]; !ok || got != want {
			t.Errorf("%s:%q, want %q", name, got, want)
		}
	}
	if exe, _ := os.Executable(); f["executable"] != exe {
		t.Errorf("executable:%s, want %s", f["executable"], exe)
	}
	if !regexp.MustCompile(`^[0-9a-f]{40}$`).MatchString(f["run_id"]) || infoFields(t, c, "server")["run_id"] != f["run_id"] {
		t.Errorf("run_id:%s: not 40 hex digits, or not the same twice", f["run_id"])
	}
	now := time.Now()
	if d := infoInt(t, f, "server_time_usec") - now.UnixMicro(); d > 0 || d < -5e6 {
		t.Errorf("server_time_usec is %dµs from now", d)
	}
	if d := now.Unix()&(1<<24-1) - infoInt(t, f, "lru_clock"); d < 0 || d > 5 {
		t.Errorf("lru_clock:%s, now %d", f["lru_clock"], now.Unix()&(1<<24-1))
	}
	used, rss, peak := infoInt(t, f, "used_memory"), infoInt(t, f, "used_memory_rss"), infoInt(t, f, "used_memory_peak")
	if used <= 0 || rss <= 0 || peak < used || f["used_memory_human"] != bytesToHuman(uint64(used)) ||
		f["used_memory_rss_human"] != bytesToHuman(uint64(rss)) || infoInt(t, f, "total_system_memory") <= 0 {
		t.Errorf("memory: used %s (%s), rss %s (%s), peak %s, system %s", f["used_memory"], f["used_memory_human"],
			f["used_memory_rss"], f["used_memory_rss_human"], f["used_memory_peak"], f["total_system_memory"])
	}

	// Scripts cached, function libraries and their functions.
	c.do("SCRIPT LOAD \"return 1\"")
	lib := "#!lua name=mylib\nredis.register_function('f1', function() return 1 end)\nredis.register_function('f2', function() return 2 end)"
	if got := c.doArgs("FUNCTION", "LOAD", lib); got != "mylib" {
		t.Fatalf("FUNCTION LOAD: %s", got)
	}
	f = infoFields(t, c, "memory")
	for name, want := range map[string]string{"number_of_cached_scripts": "1", "used_memory_scripts_eval": "8",
		"number_of_libraries": "1", "number_of_functions": "2", "used_memory_functions": strconv.Itoa(len(lib))} {
		if f[name] != want {
			t.Errorf("%s:%s, want %s", name, f[name], want)
		}
	}

	// Bytes in and out: the command and its reply, at least.
	f = infoFields(t, c, "stats")
	in0, out0 := infoInt(t, f, "total_net_input_bytes"), infoInt(t, f, "total_net_output_bytes")
	value := strings.Repeat("v", 5000)
	c.do("SET k " + value)
	c.do("GET k")
	f = infoFields(t, c, "stats")
	if in, out := infoInt(t, f, "total_net_input_bytes"), infoInt(t, f, "total_net_output_bytes"); in-in0 < 5000 || out-out0 < 5000 {
		t.Errorf("net bytes in +%d, out +%d after a 5000-byte SET and its GET", in-in0, out-out0)
	}

	// Connections, blocked clients (with a timeout or not), tracking.
	blocked, timed, tracker := dial(t, srv), dial(t, srv), dial(t, srv)
	tracker.do("CLIENT TRACKING ON")
	tracker.do("GET {t}x")
	blocked.send("BLPOP list 0")
	timed.send("BLPOP list2 100")
	poll := func(what string, ok func(map[string]string) bool) map[string]string {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second) // within the connections' deadline
		for {
			f := infoFields(t, c, "clients stats")
			if ok(f) {
				return f
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 5s:\n%v", what, f)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	f = poll("two clients blocked", func(f map[string]string) bool { return f["blocked_clients"] == "2" })
	for name, want := range map[string]string{"connected_clients": "4", "clients_in_timeout_table": "1",
		"tracking_clients": "1", "tracking_total_keys": "1", "tracking_total_items": "1"} {
		if f[name] != want {
			t.Errorf("%s:%s, want %s", name, f[name], want)
		}
	}
	c.do("RPUSH list a")
	if got := blocked.read(); got != "[list a]" {
		t.Fatalf("BLPOP: %s", got)
	}
	poll("one client blocked", func(f map[string]string) bool {
		return f["blocked_clients"] == "1" && f["clients_in_timeout_table"] == "1"
	})

	// A burst of commands shows in instantaneous_ops_per_sec and the
	// kbps.
	f = poll("ops/sec under a burst", func(map[string]string) bool {
		var burst strings.Builder
		for range 200 {
			burst.WriteString("PING\r\n")
		}
		fmt.Fprint(c.nc, burst.String())
		for range 200 {
			c.read()
		}
		f := infoFields(t, c, "stats")
		return infoInt(t, f, "instantaneous_ops_per_sec") > 0
	})
	for _, name := range []string{"instantaneous_input_kbps", "instantaneous_output_kbps"} {
		if v, err := strconv.ParseFloat(f[name], 64); err != nil || v <= 0 {
			t.Errorf("%s:%s under a burst", name, f[name])
		}
	}

	// The burst took CPU time.
	f = infoFields(t, c, "cpu")
	user, err1 := strconv.ParseFloat(f["used_cpu_user"], 64)
	sys, err2 := strconv.ParseFloat(f["used_cpu_sys"], 64)
	if err1 != nil || err2 != nil || user+sys <= 0 {
		t.Errorf("used_cpu_user:%s used_cpu_sys:%s after a burst", f["used_cpu_user"], f["used_cpu_sys"])
	}

	// maxclients is CONFIG SET's.
	c.do("CONFIG SET maxclients 50")
	if got := infoFields(t, c, "clients")["maxclients"]; got != "50" {
		t.Errorf("maxclients:%s after CONFIG SET maxclients 50", got)
	}

	// CONFIG RESETSTAT counts the bytes anew.
	c.do("CONFIG RESETSTAT")
	if in := infoInt(t, infoFields(t, c, "stats"), "total_net_input_bytes"); in > 100 {
		t.Errorf("total_net_input_bytes:%d after CONFIG RESETSTAT", in)
	}
}

// INFO's section arguments, as Redis reads them: any case, several,
// "default", "all" and "everything"; modules and module_list name the
// Modules section.
func TestInfoSectionArguments(t *testing.T) {
	srv, err := Listen(Config{Addr: "127.0.0.1:0"}, newEngineBackend())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c := dial(t, srv)
	def := []string{"Server", "Clients", "Memory", "Persistence", "Stats", "Replication", "CPU", "Modules", "Errorstats", "Cluster", "Keyspace"}
	every := []string{"Server", "Clients", "Memory", "Persistence", "Stats", "Replication", "CPU", "Modules", "Commandstats",
		"Errorstats", "Latencystats", "Cluster", "Keyspace"}
	for args, want := range map[string][]string{
		"":                      def,
		"default":               def,
		"all":                   every,
		"everything":            every,
		"MEMORY cpu":            {"Memory", "CPU"},
		"cpu memory":            {"Memory", "CPU"},
		"modules":               {"Modules"},
		"module_list":           {"Modules"},
		"default commandstats":  append(append([]string{}, def[:8]...), append([]string{"Commandstats"}, def[8:]...)...),
		"nosuchsection":         nil,
		"latencystats keyspace": {"Latencystats", "Keyspace"},
	} {
		var got []string
		for _, s := range parseInfo(t, c.do(strings.TrimSpace("INFO "+args))) {
			got = append(got, s.title)
		}
		if !slices.Equal(got, want) {
			t.Errorf("INFO %s: %v, want %v", args, got, want)
		}
	}
}
