package server

import (
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coppice-kv/coppice/kv"
	"github.com/coppice-kv/coppice/messages"
)

// The latency monitor (Redis's latency.c): with latency-monitor-threshold
// set (milliseconds; 0, the default, turns it off), a command that took at
// least that long is a sample of the "command" event, or of
// "fast-command" for a command Redis flags fast. A command's time is the
// one the port measures: for a key-value command, from its read to its
// reply (its Raft round for a write), for a command the node serves, its
// run. Each event keeps Redis's 160 latest samples, one a second (the
// highest of that second), and its all-time high. LATENCY LATEST, HISTORY,
// RESET, DOCTOR, GRAPH and HELP read them as Redis's do; events are listed
// by name (Redis lists them in its hash table's order). Redis's other
// events (fork, aof-*, expire-cycle, eviction-*) have no counterpart here.
//
// LATENCY HISTOGRAM gives each command's (and subcommand's) latency
// distribution, as Redis 7.0's, over power-of-two buckets of nanoseconds
// from 1024 ns (Redis's are an HDR histogram's, reported from 1024 ns by
// powers of two too): a bucket is reported by its upper bound in
// microseconds, rounded down (1, 2, 4, 8, 16, 32, 65, 131...), with the
// number of calls up to it, for the buckets where that number grows. It is
// kept while latency-tracking is yes (the default) and reset by CONFIG
// RESETSTAT, as Redis's is. Calls refused for their arity or an unknown
// subcommand are not counted, as Redis does not run them; the commands
// MULTI queues count in their EXEC's time, not apart.

const (
	latencyTSLen     = 160 // Redis's LATENCY_TS_LEN
	latencyGraphCols = 80  // Redis's LATENCY_GRAPH_COLS

	histBuckets = 21 // 1024 ns << 20 is past Redis's highest value, 1 s
)

type latencySample struct {
	time    int64 // Unix seconds; 0: unused
	latency int64 // ms
}

type latencySeries struct {
	idx     int
	max     int64
	samples [latencyTSLen]latencySample
}

type latencyMonitor struct {
	threshold atomic.Int64 // ms; 0: off
	mu        sync.Mutex
	events    map[string]*latencySeries
}

// addIfNeeded adds a sample of event when the monitor is on and took is
// at least its threshold (Redis's latencyAddSampleIfNeeded).
func (m *latencyMonitor) addIfNeeded(event string, took time.Duration) {
	ms := took.Milliseconds()
	if th := m.threshold.Load(); th == 0 || ms < th {
		return
	}
	m.add(event, ms, time.Now().Unix())
}

// add is Redis's latencyAddSample.
func (m *latencyMonitor) add(event string, ms, now int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.events == nil {
		m.events = map[string]*latencySeries{}
	}
	ts := m.events[event]
	if ts == nil {
		ts = &latencySeries{}
		m.events[event] = ts
	}
	ts.max = max(ts.max, ms)
	prev := (ts.idx + latencyTSLen - 1) % latencyTSLen
	if ts.samples[prev].time == now {
		ts.samples[prev].latency = max(ts.samples[prev].latency, ms)
		return
	}
	ts.samples[ts.idx] = latencySample{now, ms}
	ts.idx = (ts.idx + 1) % latencyTSLen
}

// names is the events', sorted.
func (m *latencyMonitor) names() []string { return sortedKeys(m.events) }

// cmdHist is one command's (or subcommand's) latency histogram: bucket i
// counts the calls that took up to 1024<<i ns (the last, every longer one
// too).
type cmdHist struct {
	buckets [histBuckets]atomic.Uint64
}

func (h *cmdHist) observe(took time.Duration) {
	i := 0
	if took > 1024 {
		i = min(bits.Len64(uint64(took-1)>>10), histBuckets-1)
	}
	h.buckets[i].Add(1)
}

// allSpecs is every command and subcommand of kv's table: the commands'
// counters and histograms are indexed by their Spec.Index.
var allSpecs = kv.Specs()

// histograms is every command's and subcommand's histogram, by
// Spec.Index.
func (s *Stats) histograms() []cmdHist {
	s.histsOnce.Do(func() { s.hists = make([]cmdHist, len(allSpecs)) })
	return s.hists
}

// histFor is the histogram of a command (kv.StatSpec's spec: a
// subcommand's own) and whether Redis flags it fast; nil when spec is nil.
func (s *Stats) histFor(spec *kv.Spec) (*cmdHist, bool) {
	if spec == nil {
		return nil, false
	}
	i, ok := spec.Index()
	if !ok {
		return nil, false
	}
	return &s.histograms()[i], histFast[i]
}

// histFast says which of allSpecs Redis flags fast.
var histFast = func() []bool {
	f := make([]bool, len(allSpecs))
	for i, s := range allSpecs {
		f[i] = s.Has("fast")
	}
	return f
}()

// equalFold reports whether b is s in any ASCII case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// commandTook records a command that ran: its histogram h, and the
// latency monitor's "fast-command" (fast) or "command" event. r is its
// reply: a call refused before it ran (rejected) is none Redis would
// time.
func (s *Stats) commandTook(h *cmdHist, fast bool, took time.Duration, r *messages.Reply) {
	if rejected(r) {
		return
	}
	if !s.latencyTrackingOff.Load() {
		h.observe(took)
	}
	if s.latency.threshold.Load() != 0 {
		event := "command"
		if fast {
			event = "fast-command"
		}
		s.latency.addIfNeeded(event, took)
	}
}

// resetHistograms empties every histogram (CONFIG RESETSTAT).
func (s *Stats) resetHistograms() {
	hists := s.histograms()
	for i := range hists {
		for j := range hists[i].buckets {
			hists[i].buckets[j].Store(0)
		}
	}
}

// snapshot reads the histogram's buckets, and their total.
func (h *cmdHist) snapshot() (counts [histBuckets]uint64, total uint64) {
	for i := range counts {
		counts[i] = h.buckets[i].Load()
		total += counts[i]
	}
	return counts, total
}

// histogramReply is fillCommandCDF's: calls, then histogram_usec, the
// cumulative counts of the buckets where they grow.
func histogramReply(h *cmdHist) (*messages.Reply, bool) {
	counts, total := h.snapshot()
	if total == 0 {
		return nil, false
	}
	var cdf []*messages.Reply
	cum := uint64(0)
	for i, n := range counts {
		if n == 0 {
			continue
		}
		cum += n
		cdf = append(cdf, integer(int64(1024)<<i/1000), integer(int64(cum)))
	}
	return mapReply(bulkString("calls"), integer(int64(total)), bulkString("histogram_usec"), mapReply(cdf...)), true
}

// latencyHistogram answers LATENCY HISTOGRAM [command ...]: every
// command's with calls, by name, or the ones named (a container's
// subcommands too), in the order given, unknown names left out.
func (s *Server) latencyHistogram(names [][]byte) *messages.Reply {
	hists := s.stats.histograms()
	var items []*messages.Reply
	add := func(spec *kv.Spec) {
		i, _ := spec.Index()
		if r, ok := histogramReply(&hists[i]); ok {
			items = append(items, bulkString(spec.Name), r)
		}
	}
	if len(names) == 0 {
		specs := slices.Clone(allSpecs)
		slices.SortFunc(specs, func(a, b *kv.Spec) int { return strings.Compare(a.Name, b.Name) })
		for _, spec := range specs {
			add(spec)
		}
		return mapReply(items...)
	}
	for _, n := range names {
		container, sub, isSub := strings.Cut(string(n), "|")
		spec, ok := kv.Lookup([]byte(container))
		if !ok {
			continue
		}
		if isSub {
			if spec = spec.Sub([]byte(sub)); spec == nil {
				continue
			}
		}
		add(spec)
		for _, sub := range spec.Subcommands {
			add(sub)
		}
	}
	return mapReply(items...)
}

// latencyCmd answers LATENCY's subcommands.
func (s *Server) latencyCmd(args [][]byte) *messages.Reply {
	if r := kv.CheckSubcommand(args); r != nil {
		return r
	}
	m := &s.stats.latency
	switch strings.ToLower(string(args[1])) {
	case "histogram":
		return s.latencyHistogram(args[2:])
	case "help":
		return kv.HelpReply("LATENCY",
			"DOCTOR",
			"    Return a human readable latency analysis report.",
			"GRAPH <event>",
			"    Return an ASCII latency graph for the <event> class.",
			"HISTORY <event>",
			"    Return time-latency samples for the <event> class.",
			"LATEST",
			"    Return the latest latency samples for all events.",
			"RESET [<event> ...]",
			"    Reset latency data of one or more <event> classes.",
			"    (default: reset all data for all event classes)",
			"HISTOGRAM [COMMAND ...]",
			"    Return a cumulative distribution of latencies in the format of a histogram for the specified command names.",
			"    If no commands are specified then all histograms are replied.",
		)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch strings.ToLower(string(args[1])) {
	case "history":
		ts := m.events[string(args[2])]
		var items []*messages.Reply
		if ts != nil {
			for j := range latencyTSLen {
				smp := ts.samples[(ts.idx+j)%latencyTSLen]
				if smp.time != 0 {
					items = append(items, array(integer(smp.time), integer(smp.latency)))
				}
			}
		}
		return array(items...)
	case "latest":
		var items []*messages.Reply
		for _, name := range m.names() {
			ts := m.events[name]
			last := ts.samples[(ts.idx+latencyTSLen-1)%latencyTSLen]
			items = append(items, array(bulkString(name), integer(last.time), integer(last.latency), integer(ts.max)))
		}
		return array(items...)
	case "reset":
		n := 0
		for name := range m.events {
			if len(args) == 2 || slices.ContainsFunc(args[2:], func(a []byte) bool { return strings.EqualFold(string(a), name) }) {
				delete(m.events, name)
				n++
			}
		}
		return integer(int64(n))
	case "graph":
		ts := m.events[string(args[2])]
		if ts == nil {
			return errorf(fmt.Sprintf("ERR No samples available for event '%s'", args[2]))
		}
		return verbatim(latencyGraph(string(args[2]), ts, time.Now().Unix()))
	case "doctor":
		return verbatim(s.latencyReport())
	}
	return errorf(fmt.Sprintf("ERR unknown subcommand '%s'. Try LATENCY HELP.", args[1]))
}

// latencyGraph is Redis's latencyCommandGenSparkeline: the event's samples
// as an ASCII sparkline, each labelled with how long ago it was.
func latencyGraph(event string, ts *latencySeries, now int64) string {
	var seq sparkSeq
	var lo, hi int64
	for j := range latencyTSLen {
		smp := ts.samples[(ts.idx+j)%latencyTSLen]
		if smp.time == 0 {
			continue
		}
		if len(seq.samples) == 0 {
			lo, hi = smp.latency, smp.latency
		} else {
			hi, lo = max(hi, smp.latency), min(lo, smp.latency)
		}
		elapsed := now - smp.time
		var label string
		switch {
		case elapsed < 60:
			label = fmt.Sprintf("%ds", elapsed)
		case elapsed < 3600:
			label = fmt.Sprintf("%dm", elapsed/60)
		case elapsed < 3600*24:
			label = fmt.Sprintf("%dh", elapsed/3600)
		default:
			label = fmt.Sprintf("%dd", elapsed/(3600*24))
		}
		seq.add(float64(smp.latency), label)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s - high %d ms, low %d ms (all time high %d ms)\n", event, hi, lo, ts.max)
	b.WriteString(strings.Repeat("-", latencyGraphCols) + "\n")
	seq.render(&b, latencyGraphCols, 4)
	return b.String()
}

// sparkSeq is Redis's sparkline sequence (sparkline.c), rendered with
// SPARKLINE_FILL.
type sparkSeq struct {
	samples  []sparkSample
	min, max float64
	labels   int
}

type sparkSample struct {
	value float64
	label string
}

func (q *sparkSeq) add(v float64, label string) {
	if len(q.samples) == 0 {
		q.min, q.max = v, v
	} else if v < q.min {
		q.min = v
	} else if v > q.max { // as Redis's: not when the sample was a new min
		q.max = v
	}
	q.samples = append(q.samples, sparkSample{v, label})
	if label != "" {
		q.labels++
	}
}

func (q *sparkSeq) render(b *strings.Builder, columns, rows int) {
	for j := 0; j < len(q.samples); j += columns {
		if j != 0 {
			b.WriteByte('\n')
		}
		q.renderRange(b, rows, j, min(columns, len(q.samples)-j))
	}
}

func (q *sparkSeq) renderRange(b *strings.Builder, rows, offset, n int) {
	const charsetFill = "_o#"
	const labelMarginTop = 1
	relmax := q.max - q.min
	if relmax == 0 {
		relmax = 1
	}
	steps := len(charsetFill) * rows
	chars := make([]byte, n)
	for row, loop := 0, true; loop; {
		loop = false
		for j := range chars {
			chars[j] = ' '
		}
		for j := range n {
			s := q.samples[j+offset]
			relval := s.value - q.min
			step := int(float64(int(relval*float64(steps))) / relmax)
			step = max(0, min(step, steps-1))
			if row < rows {
				loop = true
				idx := step - (rows-row-1)*len(charsetFill)
				if idx >= 0 && idx < len(charsetFill) {
					chars[j] = charsetFill[idx]
				} else if idx >= len(charsetFill) {
					chars[j] = '|'
				}
				continue
			}
			if q.labels > 0 && row-rows < labelMarginTop {
				loop = true
				break
			}
			if c := row - rows - labelMarginTop; s.label != "" && len(s.label) > c {
				loop = true
				chars[j] = s.label[c]
			}
		}
		if loop {
			row++
			b.Write(chars)
			b.WriteByte('\n')
		}
	}
}

// latencyReport is Redis's createLatencyReport for the events recorded
// here (the caller holds the monitor's lock). Redis's advice on
// transparent huge pages, which reads its own memory map, is left out.
func (s *Server) latencyReport() string {
	m := &s.stats.latency
	threshold := m.threshold.Load()
	if len(m.events) == 0 && threshold == 0 {
		return "I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this Redis instance. You may use \"CONFIG SET latency-monitor-threshold <milliseconds>.\" in order to enable it. If we weren't in a deep space mission I'd suggest to take a look at https://redis.io/topics/latency-monitor.\n"
	}
	var b strings.Builder
	var slowlogEnabled, slowlogTuning, slowlogInspect, scheduler, largeObjects bool
	advices := 0
	now := time.Now().Unix()
	for i, name := range m.names() {
		ts := m.events[name]
		if i == 0 {
			b.WriteString("Dave, I have observed latency spikes in this Redis instance. You don't mind talking about it, do you Dave?\n\n")
		}
		var samples, sum, lo, hi, oldest int64
		for _, smp := range ts.samples {
			if smp.time == 0 {
				continue
			}
			samples++
			if samples == 1 {
				lo, hi = smp.latency, smp.latency
			} else {
				lo, hi = min(lo, smp.latency), max(hi, smp.latency)
			}
			sum += smp.latency
			if oldest == 0 || smp.time < oldest {
				oldest = smp.time
			}
		}
		var avg, mad, period int64
		if samples > 0 {
			avg = sum / samples
			if period = now - oldest; period == 0 {
				period = 1
			}
			var dev int64
			for _, smp := range ts.samples {
				if smp.time != 0 {
					d := avg - smp.latency
					dev += max(d, -d)
				}
			}
			mad = dev / samples
		}
		fmt.Fprintf(&b, "%d. %s: %d latency spikes (average %dms, mean deviation %dms, period %.2f sec). Worst all time event %dms.",
			i+1, name, samples, avg, mad, float64(period)/float64(samples), ts.max)
		switch strings.ToLower(name) {
		case "command":
			slow := s.stats.slow.slowerThan.Load() // ns; negative: off
			if slow < 0 {
				slowlogEnabled = true
				advices++
			} else if slow/int64(time.Millisecond) > threshold {
				slowlogTuning = true
				advices++
			}
			slowlogInspect, largeObjects = true, true
			advices += 2
		case "fast-command":
			scheduler = true
			advices++
		}
		b.WriteString("\n")
	}
	switch {
	case len(m.events) == 0 && advices == 0:
		b.WriteString("Dave, no latency spike was observed during the lifetime of this Redis instance, not in the slightest bit. I honestly think you ought to sit down calmly, take a stress pill, and think things over.\n")
	case advices == 0:
		b.WriteString("\nWhile there are latency events logged, I'm not able to suggest any easy fix. Please use the Redis community to get some help, providing this report in your help request.\n")
	default:
		b.WriteString("\nI have a few advices for you:\n\n")
		if slowlogEnabled {
			fmt.Fprintf(&b, "- There are latency issues with potentially slow commands you are using. Try to enable the Slow Log Redis feature using the command 'CONFIG SET slowlog-log-slower-than %d'. If the Slow log is disabled Redis is not able to log slow commands execution for you.\n", threshold*1000)
		}
		if slowlogTuning {
			fmt.Fprintf(&b, "- Your current Slow Log configuration only logs events that are slower than your configured latency monitor threshold. Please use 'CONFIG SET slowlog-log-slower-than %d'.\n", threshold*1000)
		}
		if slowlogInspect {
			b.WriteString("- Check your Slow Log to understand what are the commands you are running which are too slow to execute. Please check https://redis.io/commands/slowlog for more information.\n")
		}
		if scheduler {
			b.WriteString("- The system is slow to execute Redis code paths not containing system calls. This usually means the system does not provide Redis CPU time to run for long periods. You should try to:\n" +
				"  1) Lower the system load.\n" +
				"  2) Use a computer / VM just for Redis if you are running other software in the same system.\n" +
				"  3) Check if you have a \"noisy neighbour\" problem.\n" +
				"  4) Check with 'redis-cli --intrinsic-latency 100' what is the intrinsic latency in your system.\n" +
				"  5) Check if the problem is allocator-related by recompiling Redis with MALLOC=libc, if you are using Jemalloc. However this may create fragmentation problems.\n")
		}
		if largeObjects {
			b.WriteString("- Deleting, expiring or evicting (because of maxmemory policy) large objects is a blocking operation. If you have very large objects that are often deleted, expired, or evicted, try to fragment those objects into multiple smaller objects.\n")
		}
	}
	return b.String()
}

// defaultPercentiles is Redis's latency-tracking-info-percentiles.
var defaultPercentiles = []float64{50, 99, 99.9}

// percentiles is latency-tracking-info-percentiles.
func (s *Stats) percentiles() []float64 {
	if p := s.latencyPercentiles.Load(); p != nil {
		return *p
	}
	return defaultPercentiles
}

// parsePercentiles reads latency-tracking-info-percentiles as Redis does:
// numbers from 0 to 100, apart by spaces ("" for none); else why not.
func parsePercentiles(v string) ([]float64, string) {
	ps := []float64{}
	for _, f := range strings.Fields(v) {
		p, err := strconv.ParseFloat(f, 64)
		if err != nil || math.IsNaN(p) || strings.ContainsAny(f, "xX_") {
			return nil, "Invalid latency-tracking-info-percentiles parameters"
		}
		if p > 100 || p < 0 {
			return nil, "latency-tracking-info-percentiles parameters should sit between [0.0,100.0]"
		}
		ps = append(ps, p)
	}
	return ps, ""
}

// trimDouble is a percentile as Redis writes it: "%f" without its
// trailing zeros.
func trimDouble(p float64) string {
	f := strconv.FormatFloat(p, 'f', 6, 64)
	return strings.TrimSuffix(strings.TrimRight(f, "0"), ".")
}

func formatPercentiles(ps []float64) string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = trimDouble(p)
	}
	return strings.Join(out, " ")
}

// latencyStats is INFO latencystats: for each command with calls, its
// latency-tracking-info-percentiles, in microseconds. A percentile is the
// upper bound of the histogram's bucket it falls in (a power of two of
// nanoseconds: 1.024, 2.048, 4.096...), where Redis's HDR histogram gives
// a value within 1% of one seen.
func (s *Server) latencyStats() []string {
	hists := s.stats.histograms()
	ps := s.stats.percentiles()
	specs := slices.Clone(allSpecs)
	slices.SortFunc(specs, func(a, b *kv.Spec) int { return strings.Compare(a.Name, b.Name) })
	var lines []string
	for _, spec := range specs {
		i, _ := spec.Index()
		counts, total := hists[i].snapshot()
		if total == 0 {
			continue
		}
		parts := make([]string, len(ps))
		for j, p := range ps {
			// As hdr_value_at_percentile: the bucket where the count
			// reaches p% of the calls (one call at least).
			want := max(uint64(p/100*float64(total)+0.5), 1)
			k, cum := 0, uint64(0)
			for k = range counts {
				if cum += counts[k]; cum >= want {
					break
				}
			}
			parts[j] = fmt.Sprintf("p%s=%.3f", trimDouble(p), float64(int64(1024)<<k)/1000)
		}
		lines = append(lines, "latency_percentiles_usec_"+spec.Name+":"+strings.Join(parts, ","))
	}
	return lines
}
