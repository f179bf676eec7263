package server

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coppice-kv/coppice/kv"
)

func engineServer(t *testing.T, cfg Config) (*Server, *Stats) {
	t.Helper()
	if cfg.Stats == nil {
		cfg.Stats = &Stats{}
	}
	cfg.Addr = "127.0.0.1:0"
	srv, err := Listen(cfg, newEngineBackend())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv, cfg.Stats
}

// The latency monitor records a command at least as slow as
// latency-monitor-threshold as a sample of "command", one a second, and
// LATENCY LATEST, HISTORY, GRAPH, DOCTOR and RESET read it.
func TestLatencyMonitor(t *testing.T) {
	srv, _ := engineServer(t, Config{})
	c := dial(t, srv)
	if got := c.do("DEBUG SLEEP 0.03"); got != "+OK" {
		t.Fatalf("DEBUG SLEEP: %s", got)
	}
	if got := c.do("LATENCY LATEST"); got != "[]" {
		t.Fatalf("LATENCY LATEST with the monitor off: %s", got)
	}
	c.do("CONFIG SET latency-monitor-threshold 20")
	start := time.Now()
	c.do("DEBUG SLEEP 0.05")
	if took := time.Since(start); took < 50*time.Millisecond {
		t.Fatalf("DEBUG SLEEP 0.05 took %v", took)
	}
	c.do("DEBUG SLEEP 0.001") // under the threshold: not a sample
	latest := regexp.MustCompile(`^\[\[command :(\d+) :(\d+) :(\d+)\]\]$`).FindStringSubmatch(c.do("LATENCY LATEST"))
	if latest == nil {
		t.Fatalf("LATENCY LATEST: %s", c.do("LATENCY LATEST"))
	}
	at, _ := strconv.ParseInt(latest[1], 10, 64)
	ms, _ := strconv.ParseInt(latest[2], 10, 64)
	if now := time.Now().Unix(); at < start.Unix() || at > now || ms < 50 || ms > 10_000 || latest[3] != latest[2] {
		t.Errorf("LATENCY LATEST: %v", latest)
	}
	if got, want := c.do("LATENCY HISTORY command"), fmt.Sprintf("[[:%d :%d]]", at, ms); got != want {
		t.Errorf("LATENCY HISTORY command: %s, want %s", got, want)
	}
	graph := c.do("LATENCY GRAPH command")
	lines := strings.Split(graph, "\n")
	// One sample: at the bottom, then its label ("0s", or "1s" had a
	// second gone by), as Redis draws it.
	if len(lines) != 10 || lines[0] != fmt.Sprintf("command - high %d ms, low %d ms (all time high %d ms)", ms, ms, ms) ||
		lines[1] != strings.Repeat("-", 80) || strings.Join(lines[2:7], "|") != " | | |_| " || lines[8] != "s" || lines[9] != "" {
		t.Errorf("LATENCY GRAPH command:\n%s", graph)
	}
	if doc := c.do("LATENCY DOCTOR"); !strings.Contains(doc, "1. command: 1 latency spikes (average "+latest[2]+"ms") ||
		!strings.Contains(doc, "- Check your Slow Log") {
		t.Errorf("LATENCY DOCTOR:\n%s", doc)
	}
	if got := c.do("LATENCY RESET nosuchevent"); got != ":0" {
		t.Errorf("LATENCY RESET nosuchevent: %s", got)
	}
	if got := c.do("LATENCY RESET COMMAND"); got != ":1" {
		t.Errorf("LATENCY RESET COMMAND: %s", got)
	}
	if got := c.do("LATENCY LATEST"); got != "[]" {
		t.Errorf("LATENCY LATEST after RESET: %s", got)
	}
}

// A command Redis flags fast is a sample of "fast-command"; samples of one
// second keep the highest; the all-time high outlives them.
func TestLatencySamples(t *testing.T) {
	st := &Stats{}
	st.latency.threshold.Store(5)
	h, fast := st.histFor(lookup(t, "get"))
	if !fast {
		t.Fatal("GET is not fast")
	}
	st.commandTook(h, fast, 7*time.Millisecond, replyOK)
	st.commandTook(h, fast, 4*time.Millisecond, replyOK) // under the threshold
	st.commandTook(h, fast, 9*time.Millisecond, errorf("ERR wrong number of arguments for 'get' command"))
	ts := st.latency.events["fast-command"]
	if ts == nil || ts.max != 7 || len(st.latency.events) != 1 {
		t.Fatalf("events %v", st.latency.events)
	}
	m := &st.latency
	m.add("x", 10, 100)
	m.add("x", 30, 100)
	m.add("x", 20, 100)
	m.add("x", 5, 101)
	if x := m.events["x"]; x.max != 30 || x.samples[0] != (latencySample{100, 30}) || x.samples[1] != (latencySample{101, 5}) || x.idx != 2 {
		t.Errorf("x: %+v", x)
	}
	for i := range latencyTSLen + 5 {
		m.add("y", int64(i), int64(1000+i))
	}
	if y := m.events["y"]; y.idx != 5 || y.samples[4].latency != latencyTSLen+4 || y.samples[5].latency != 5 {
		t.Errorf("y wraps: idx %d", y.idx)
	}
}

// LATENCY HISTOGRAM: each command's calls in power-of-two buckets,
// cumulative, reported by their upper bound in microseconds; subcommands
// apart; calls refused for their arity not counted; CONFIG RESETSTAT and
// latency-tracking no as Redis's.
func TestLatencyHistogram(t *testing.T) {
	srv, _ := engineServer(t, Config{})
	c := dial(t, srv)
	for range 5 {
		c.do("SET k v")
	}
	c.do("GET k")
	c.do("GET")
	c.do("CONFIG GET maxclients")
	got := c.do("LATENCY HISTOGRAM set GET config nosuch")
	m := regexp.MustCompile(`^\[set \[calls :5 histogram_usec \[([\d: ]+)\]\] get \[calls :1 histogram_usec \[:(\d+) :1\]\] config\|get \[calls :1 histogram_usec \[:\d+ :1\]\]\]$`).FindStringSubmatch(got)
	if m == nil {
		t.Fatalf("LATENCY HISTOGRAM: %s", got)
	}
	cdf := strings.Fields(strings.ReplaceAll(m[1], ":", ""))
	last, prevBound := int64(0), int64(0)
	for i := 0; i < len(cdf); i += 2 {
		bound, _ := strconv.ParseInt(cdf[i], 10, 64)
		n, _ := strconv.ParseInt(cdf[i+1], 10, 64)
		k := int64(0)
		for int64(1024)<<k/1000 < bound {
			k++
		}
		if int64(1024)<<k/1000 != bound || bound <= prevBound || n <= last {
			t.Errorf("set's buckets: %v", cdf)
		}
		last, prevBound = n, bound
	}
	if last != 5 {
		t.Errorf("set's buckets end at %d calls: %v", last, cdf)
	}
	if got := c.do("LATENCY HISTOGRAM config|get"); !strings.HasPrefix(got, "[config|get [calls :1 ") {
		t.Errorf("LATENCY HISTOGRAM config|get: %s", got)
	}
	// Every histogram: by name, the two LATENCY HISTOGRAMs above included
	// (a call counts once it has answered, as in Redis).
	if got := c.do("LATENCY HISTOGRAM"); !regexp.MustCompile(`^\[config\|get \[.*\] get \[.*\] latency\|histogram \[calls :2 .*\] set \[.*\]\]$`).MatchString(got) {
		t.Errorf("LATENCY HISTOGRAM: %s", got)
	}
	// INFO latencystats: each command's percentiles, the upper bounds of
	// the buckets they fall in.
	info := c.do("INFO latencystats")
	for _, want := range []string{
		`(?m)^latency_percentiles_usec_set:p50=\d+\.\d{3},p99=\d+\.\d{3},p99\.9=\d+\.\d{3}\r$`,
		`(?m)^latency_percentiles_usec_config\|get:p50=(\d+\.\d{3}),p99=(\d+\.\d{3}),p99\.9=(\d+\.\d{3})\r$`,
	} {
		if !regexp.MustCompile(want).MatchString(info) {
			t.Errorf("INFO latencystats lacks %s:\n%s", want, info)
		}
	}
	if !strings.HasPrefix(info, "# Latencystats\r\n") || strings.Contains(c.do("INFO"), "Latencystats") {
		t.Errorf("INFO latencystats:\n%s", info)
	}
	c.do("CONFIG SET latency-tracking-info-percentiles \"0 100\"")
	m = regexp.MustCompile(`(?m)^latency_percentiles_usec_set:p0=(\d+\.\d{3}),p100=(\d+\.\d{3})\r$`).FindStringSubmatch(c.do("INFO latencystats"))
	exact := func(label string) string { // a bucket's bound, from its name in whole µs
		n, _ := strconv.ParseInt(label, 10, 64)
		k := 0
		for int64(1024)<<k/1000 < n {
			k++
		}
		return fmt.Sprintf("%.3f", float64(int64(1024)<<k)/1000)
	}
	if m == nil || m[1] != exact(cdf[0]) || m[2] != exact(cdf[len(cdf)-2]) {
		t.Errorf("INFO latencystats with percentiles 0 and 100: %v; set's buckets %v", m, cdf)
	}
	c.do("CONFIG SET latency-tracking no")
	c.do("GET k")
	c.do("CONFIG SET latency-tracking yes")
	if got := c.do("LATENCY HISTOGRAM get"); !strings.HasPrefix(got, "[get [calls :1 ") {
		t.Errorf("GET counted with latency-tracking no: %s", got)
	}
	c.do("CONFIG RESETSTAT")
	if got := c.do("LATENCY HISTOGRAM set get"); got != "[]" {
		t.Errorf("after CONFIG RESETSTAT: %s", got)
	}
}

// Histograms: bucket i holds up to 1024<<i ns, the last one everything
// longer.
func TestHistogramBuckets(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want int
	}{{0, 0}, {1024, 0}, {1025, 1}, {2048, 1}, {2049, 2}, {time.Millisecond, 10}, {time.Second, 20}, {time.Hour, 20}} {
		var h cmdHist
		h.observe(c.d)
		if h.buckets[c.want].Load() != 1 {
			t.Errorf("%v: not in bucket %d", c.d, c.want)
		}
	}
}

// MEMORY STATS has the Go runtime's figures and the node's keys; MEMORY
// USAGE goes to the key's shard; DOCTOR and MALLOC-STATS answer text.
func TestMemory(t *testing.T) {
	srv, _ := engineServer(t, Config{})
	c := dial(t, srv)
	for i := range 10 {
		c.do(fmt.Sprintf("SET key%d value", i))
	}
	stats := c.do("MEMORY STATS")
	for _, want := range []string{`^\[total\.allocated :[1-9]\d* keys\.count :10 allocator\.allocated :[1-9]\d* allocator\.active :[1-9]\d* `, ` go\.goroutines :[1-9]\d*\]$`} {
		if !regexp.MustCompile(want).MatchString(stats) {
			t.Errorf("MEMORY STATS: %s", stats)
		}
	}
	if got := c.do("MEMORY USAGE key3"); got != ":"+strconv.Itoa(1+4+1+5) {
		t.Errorf("MEMORY USAGE key3: %s", got)
	}
	if got := c.do("MEMORY DOCTOR"); !strings.HasPrefix(got, "Hi Sam, this is a coppice node") {
		t.Errorf("MEMORY DOCTOR: %s", got)
	}
	if got := c.do("MEMORY MALLOC-STATS"); !strings.Contains(got, "heap_alloc: ") {
		t.Errorf("MEMORY MALLOC-STATS: %s", got)
	}
	// Inside MULTI, USAGE is queued to the key's shard, the node's
	// subcommands run at EXEC; DEBUG is refused.
	c.do("MULTI")
	for _, cmd := range []string{"MEMORY USAGE key3", "MEMORY DOCTOR"} {
		if got := c.do(cmd); got != "+QUEUED" {
			t.Errorf("%s in MULTI: %s", cmd, got)
		}
	}
	if got := c.do("DEBUG SLEEP 0"); !strings.HasPrefix(got, "-ERR '") || !strings.Contains(got, "inside MULTI") {
		t.Errorf("DEBUG SLEEP in MULTI: %s", got)
	}
	c.do("DISCARD")
	c.do("MULTI")
	c.do("MEMORY USAGE key3")
	c.do("MEMORY DOCTOR")
	if got := c.do("EXEC"); !strings.HasPrefix(got, "[:"+strconv.Itoa(1+4+1+5)+" Hi Sam, this is a coppice node") {
		t.Errorf("EXEC of MEMORY USAGE and DOCTOR: %s", got)
	}
}

// LASTSAVE is the node's latest snapshot, or when the port opened; SAVE,
// BGSAVE and BGREWRITEAOF answer as Redis's; DEBUG SET-ACTIVE-EXPIRE
// switches the node's active expiry where it can, and is refused where it
// cannot.
func TestPersistenceAndActiveExpire(t *testing.T) {
	before := time.Now().Unix()
	srv, _ := engineServer(t, Config{})
	c := dial(t, srv)
	n, _ := strconv.ParseInt(strings.TrimPrefix(c.do("LASTSAVE"), ":"), 10, 64)
	if n < before || n > time.Now().Unix() {
		t.Errorf("LASTSAVE %d, the port opened at %d", n, before)
	}
	for cmd, want := range map[string]string{"SAVE": "+OK", "BGSAVE": "+Background saving started", "BGSAVE SCHEDULE": "+Background saving started",
		"BGREWRITEAOF": "+Background append only file rewriting started"} {
		if got := c.do(cmd); got != want {
			t.Errorf("%s: %s", cmd, got)
		}
	}
	if got := c.do("DEBUG SET-ACTIVE-EXPIRE 0"); !strings.HasPrefix(got, "-ERR DEBUG SET-ACTIVE-EXPIRE: ") {
		t.Errorf("DEBUG SET-ACTIVE-EXPIRE without a switch: %s", got)
	}

	var mu sync.Mutex // the switch is called on the connection's goroutine
	var expiry []bool
	srv2, _ := engineServer(t, Config{
		LastSave: func() time.Time { return time.Unix(1234, 0) },
		ActiveExpire: func(on bool) {
			mu.Lock()
			expiry = append(expiry, on)
			mu.Unlock()
		},
	})
	c2 := dial(t, srv2)
	if got := c2.do("LASTSAVE"); got != ":1234" {
		t.Errorf("LASTSAVE: %s", got)
	}
	if got := c2.do("INFO persistence"); !strings.Contains(got, "\r\nrdb_last_save_time:1234\r\n") {
		t.Errorf("INFO persistence: %q", got)
	}
	c2.do("DEBUG SET-ACTIVE-EXPIRE 0")
	c2.do("DEBUG SET-ACTIVE-EXPIRE 1")
	c2.do("DEBUG SET-ACTIVE-EXPIRE x") // C's atoi: 0
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(expiry) != "[false true false]" {
		t.Errorf("active expiry switched %v", expiry)
	}
}

// LOLWUT VERSION 5 draws Schotter: at its default size, 66 Braille
// characters a line; its last rows turn at random.
func TestLolwut5(t *testing.T) {
	r := lolwut([][]byte{[]byte("lolwut"), []byte("version"), []byte("5")})
	text := r.GetVerbatim()
	art, caption, ok := strings.Cut(text, "\nGeorg Nees - schotter, plotter on paper, 1968. Redis ver. "+redisVersion+"\n")
	if !ok || caption != "" {
		t.Fatalf("LOLWUT VERSION 5: %q", text)
	}
	// 12 squares of (132-4)/8 = 16 pixels, 2 of padding each side: 196
	// pixels, 4 a line; as Redis's, each line ends with a newline.
	lines := strings.Split(strings.TrimSuffix(art, "\n"), "\n")
	if len(lines) != 49 || !strings.HasSuffix(art, "\n") {
		t.Errorf("%d lines", len(lines))
	}
	for i, l := range lines {
		if n := len([]rune(l)); n != 66 || strings.Trim(l, "\u2800") == "" && i < 45 {
			t.Errorf("line %d: %d characters: %q", i, n, l)
		}
	}
}

// LOLWUT VERSION 6 draws a skyline: at its default size, 20 lines of 80
// pixels in the terminal's four grays: white sky above the buildings,
// which are at most 19 pixels tall.
func TestLolwut6(t *testing.T) {
	r := lolwut([][]byte{[]byte("lolwut"), []byte("version"), []byte("6")})
	text := r.GetVerbatim()
	art, caption, ok := strings.Cut(text, "\nDedicated to the 8 bit game developers of past and present.\n"+
		"Original 8 bit image from Plaguemon by hikikomori. Redis ver. "+redisVersion+"\n")
	if !ok || caption != "" {
		t.Fatalf("LOLWUT VERSION 6: %q", text)
	}
	pixel := regexp.MustCompile("\033\\[0;(30;40|90;100|37;47|97;107)m \033\\[0m")
	lines := strings.Split(art, "\n")
	if len(lines) != 20 {
		t.Fatalf("%d lines", len(lines))
	}
	colors := map[string]int{}
	for i, l := range lines {
		ps := pixel.FindAllStringSubmatch(l, -1)
		if len(ps) != 80 || pixel.ReplaceAllString(l, "") != "" {
			t.Fatalf("line %d: %d pixels: %q", i, len(ps), l)
		}
		for _, p := range ps {
			colors[p[1]]++
		}
		if i == 0 && len(ps) > 0 && strings.Count(l, "97;107") != 80 {
			t.Errorf("the top line is not all sky: %q", l)
		}
	}
	if len(colors) != 4 {
		t.Errorf("colors: %v", colors)
	}
}

func lookup(t *testing.T, name string) *kv.Spec {
	t.Helper()
	s, ok := kv.Lookup([]byte(name))
	if !ok {
		t.Fatalf("no %s", name)
	}
	return s
}

// CLUSTER COUNTKEYSINSLOT and GETKEYSINSLOT read the slot's shard, with
// Redis's checks.
func TestKeysInSlot(t *testing.T) {
	srv, _ := engineServer(t, Config{Cluster: func() (*ClusterView, error) { return testView(), nil }})
	c := dial(t, srv)
	for _, k := range []string{"{a}3", "{a}1", "{a}2", "b", "c"} {
		c.do("SET " + k + " v")
	}
	c.do("SET {a}gone v PX 1")
	slot := strconv.Itoa(kv.Slot([]byte("a")))
	deadline := time.Now().Add(10 * time.Second)
	for c.do("EXISTS {a}gone") != ":0" { // past its expiry: not counted
		if time.Now().After(deadline) {
			t.Fatal("{a}gone does not expire")
		}
		time.Sleep(time.Millisecond)
	}
	for cmd, want := range map[string]string{
		"CLUSTER COUNTKEYSINSLOT " + slot:       ":3",
		"CLUSTER GETKEYSINSLOT " + slot + " 2":  "[{a}1 {a}2]",
		"CLUSTER GETKEYSINSLOT " + slot + " 10": "[{a}1 {a}2 {a}3]",
		"CLUSTER GETKEYSINSLOT " + slot + " 0":  "[]",
		"CLUSTER COUNTKEYSINSLOT 0":             ":0",
		"CLUSTER COUNTKEYSINSLOT x":             "-ERR value is not an integer or out of range",
		"CLUSTER COUNTKEYSINSLOT -1":            "-ERR Invalid slot",
		"CLUSTER COUNTKEYSINSLOT 16384":         "-ERR Invalid slot",
		"CLUSTER COUNTKEYSINSLOT 01":            "-ERR value is not an integer or out of range",
		"CLUSTER GETKEYSINSLOT x -1":            "-ERR value is not an integer or out of range",
		"CLUSTER GETKEYSINSLOT 16384 x":         "-ERR value is not an integer or out of range",
		"CLUSTER GETKEYSINSLOT 16384 1":         "-ERR Invalid slot or number of keys",
		"CLUSTER GETKEYSINSLOT 0 -1":            "-ERR Invalid slot or number of keys",
		"CLUSTER GETKEYSINSLOT 0":               "-ERR wrong number of arguments for 'cluster|getkeysinslot' command",
		"CLUSTER COUNTKEYSINSLOT":               "-ERR wrong number of arguments for 'cluster|countkeysinslot' command",
	} {
		if got := c.do(cmd); got != want {
			t.Errorf("%s: %s, want %s", cmd, got, want)
		}
	}
}

// DEBUG SLEEP goes into the slow log, as in Redis: the node's commands
// are logged over their run.
func TestSlowlogHasNodeCommands(t *testing.T) {
	srv, _ := engineServer(t, Config{SlowlogSlowerThan: 20 * time.Millisecond, SlowlogMaxLen: 10})
	c := dial(t, srv)
	c.do("DEBUG SLEEP 0.03")
	c.do("DEBUG SLEEP 0")
	got := c.do("SLOWLOG GET")
	m := regexp.MustCompile(`^\[\[:0 :\d+ :(\d+) \[DEBUG SLEEP 0\.03\] 127\.0\.0\.1:\d+ \]\]$`).FindStringSubmatch(got)
	if m == nil {
		t.Fatalf("SLOWLOG GET: %s", got)
	}
	if us, _ := strconv.Atoi(m[1]); us < 30000 {
		t.Errorf("DEBUG SLEEP 0.03 took %d µs", us)
	}
}

// DEBUG SLEEP reads its seconds as C's strtod: the number the argument
// starts with.
func TestLeadingFloat(t *testing.T) {
	for in, want := range map[string]float64{"0.5": 0.5, " 2x": 2, "x": 0, "": 0, "-1": -1, ".25s": 0.25, "1e-3": 0.001, "3.": 3, "+4": 4,
		"1e": 1, "inf": 0, strings.Repeat("9", 100000) + "x": math.Inf(1)} {
		if got := leadingFloat(in); got != want {
			t.Errorf("%.20q: %v, want %v", in, got, want)
		}
	}
}
