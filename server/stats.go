package server

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/coppice-kv/coppice/kv"
)

// Stats counts what a client port did: connections, commands, error
// replies by their prefix and command latencies. It outlives a Server:
// a client port listening anew (its actor restarted) counts on with the
// same Stats. Safe for concurrent use; the zero value is ready.
type Stats struct {
	open        atomic.Int64 // connections open now
	connections atomic.Int64 // accepted, ever
	rejected    atomic.Int64 // refused at --maxclients
	commands    atomic.Int64 // read from clients, whatever became of them
	// processed counts the commands that ran (Redis's
	// total_commands_processed): not those refused before running, and
	// a script's calls and a transaction's commands each.
	processed atomic.Int64
	// Pub/sub: messages published (here, or on a peer and delivered
	// here), deliveries to this node's subscribers, and subscribers
	// disconnected for not reading theirs.
	published, delivered, slowSubscribers atomic.Uint64
	// netIn and netOut count the bytes read from and written to the
	// clients' connections: one add per read or write call.
	netIn, netOut atomic.Uint64
	// unlogged counts the writes a shard's leader here answered without
	// its log: they changed nothing (Prober).
	unlogged atomic.Uint64
	reads    Latency
	writes   Latency

	errMu sync.Mutex
	errs  map[string]uint64 // error replies by prefix

	slow slowlog

	// latency is the latency monitor; hists the commands' and
	// subcommands' latency histograms, by Spec.Index, kept unless
	// latencyTrackingOff (latency.go).
	latency            latencyMonitor
	latencyTrackingOff atomic.Bool
	latencyPercentiles atomic.Pointer[[]float64] // nil: defaultPercentiles
	histsOnce          sync.Once
	hists              []cmdHist

	cmdsOnce sync.Once
	cmds     []cmdStat // by Spec.Index

	// resetAt is the counts at the last CONFIG RESETSTAT, which INFO
	// subtracts: /metrics keeps counting from the start, as Prometheus
	// wants of a counter.
	resetMu sync.Mutex
	resetAt *StatsSnapshot

	// inst is INFO's instantaneous rates' samples; peakMemory the
	// highest used_memory INFO has seen (info.go).
	inst       instantaneous
	peakMemory atomic.Uint64
}

// cmdStat counts one command as Redis's commandstats do: the calls that
// ran, their time (a key-value command's from its read to its reply, a
// node command's while it ran), those of them that answered an error
// (failed), and the calls refused before running (rejected: arity, ACL,
// authentication, a transaction's queue...).
type cmdStat struct {
	calls, ns, failed, rejected atomic.Uint64
}

// command returns spec's counters; nil for nil (an unknown command or
// subcommand). A subcommand counts apart from its container (CONFIG GET
// as config|get): callers pass kv.StatSpec's spec.
func (s *Stats) command(spec *kv.Spec) *cmdStat {
	if spec == nil {
		return nil
	}
	i, ok := spec.Index()
	if !ok {
		return nil
	}
	s.cmdsOnce.Do(func() { s.cmds = make([]cmdStat, len(allSpecs)) })
	return &s.cmds[i]
}

// ran counts a call of cs (nil: none to count) that ran.
func (s *Stats) ran(cs *cmdStat) {
	if cs != nil {
		cs.calls.Add(1)
		s.processed.Add(1)
	}
}

// CommandStats are one command's counts (Redis's commandstats).
type CommandStats struct {
	Calls, Failed, Rejected uint64
	// Time is the calls' time: a key-value command's from its read to
	// its reply, a node command's (PING, INFO...) while it ran, a
	// script's call's on the node that ran the script.
	Time time.Duration
}

// maxErrorPrefixes bounds the prefixes counted apart, as Redis's
// errorstats does (128): any later one counts as "OTHER".
const maxErrorPrefixes = 128

// LatencyBuckets are the upper bounds, in seconds, of Latency's buckets
// (a last one, +Inf, takes the rest): a read served from memory takes
// tens of microseconds, a replicated write a millisecond or so, and a
// write during a leader change up to its 15 s wait.
var LatencyBuckets = [...]float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20}

// Latency is a histogram of command durations over LatencyBuckets.
type Latency struct {
	buckets [len(LatencyBuckets) + 1]atomic.Uint64 // and the +Inf one
	count   atomic.Uint64
	sumNs   atomic.Uint64
}

func (l *Latency) observe(d time.Duration) {
	s := d.Seconds()
	i := 0
	for i < len(LatencyBuckets) && s > LatencyBuckets[i] {
		i++
	}
	l.buckets[i].Add(1)
	l.count.Add(1)
	l.sumNs.Add(uint64(d.Nanoseconds()))
}

// LatencySnapshot is a Latency read at one time: Cumulative[i] counts
// the durations up to LatencyBuckets[i] (Prometheus's form).
type LatencySnapshot struct {
	Count      uint64
	Sum        time.Duration
	Cumulative []uint64
}

func (l *Latency) snapshot() LatencySnapshot {
	out := LatencySnapshot{Count: l.count.Load(), Sum: time.Duration(l.sumNs.Load()), Cumulative: make([]uint64, len(LatencyBuckets))}
	var n uint64
	for i := range LatencyBuckets {
		n += l.buckets[i].Load()
		out.Cumulative[i] = n
	}
	return out
}

// StatsSnapshot is Stats read at one time.
type StatsSnapshot struct {
	Open, Connections, Rejected, Commands int64
	// Processed counts the commands that ran (total_commands_processed).
	Processed int64
	// ErrorReplies counts the error replies by prefix ("ERR",
	// "WRONGTYPE", "TRYAGAIN", "AMBIGUOUS"...).
	ErrorReplies map[string]uint64
	// Reads and Writes time the key-value commands from the moment the
	// port read them to the moment their reply was ready.
	Reads, Writes LatencySnapshot
	// ByCommand counts each command called or refused at least once, by
	// its name (a subcommand's is "config|get").
	ByCommand map[string]CommandStats
	// Published counts the messages this node's subscribers were offered
	// (published here, or on a peer); Delivered the deliveries to them;
	// SlowSubscribers the subscribers disconnected for not reading.
	Published, Delivered, SlowSubscribers uint64
	// NetIn and NetOut are the bytes read from and written to the
	// clients' connections.
	NetIn, NetOut uint64
	// Unlogged counts the writes this node answered, as a shard's
	// leader, without the shard's log, for changing nothing: its own
	// clients' and those other nodes forwarded (Prober).
	Unlogged uint64
}

// Snapshot reads s.
func (s *Stats) Snapshot() StatsSnapshot {
	out := StatsSnapshot{Open: s.open.Load(), Connections: s.connections.Load(), Rejected: s.rejected.Load(),
		Commands: s.commands.Load(), Processed: s.processed.Load(), Reads: s.reads.snapshot(), Writes: s.writes.snapshot(), ErrorReplies: map[string]uint64{},
		Published: s.published.Load(), Delivered: s.delivered.Load(), SlowSubscribers: s.slowSubscribers.Load(),
		NetIn: s.netIn.Load(), NetOut: s.netOut.Load(), Unlogged: s.unlogged.Load()}
	s.errMu.Lock()
	for k, v := range s.errs {
		out.ErrorReplies[k] = v
	}
	s.errMu.Unlock()
	out.ByCommand = map[string]CommandStats{}
	for _, spec := range allSpecs {
		st := s.command(spec)
		if cs := (CommandStats{Calls: st.calls.Load(), Failed: st.failed.Load(), Rejected: st.rejected.Load(), Time: time.Duration(st.ns.Load())}); cs != (CommandStats{}) {
			out.ByCommand[spec.Name] = cs
		}
	}
	return out
}

// Unlogged counts a write answered without its shard's log (Prober).
func (s *Stats) Unlogged() { s.unlogged.Add(1) }

// errorReply counts an error reply by its code (kv.ErrorCode).
func (s *Stats) errorReply(msg string) { s.errorCode(kv.ErrorCode(msg)) }

// errorCode counts an error reply of that code.
func (s *Stats) errorCode(prefix string) {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	if s.errs == nil {
		s.errs = map[string]uint64{}
	}
	if _, ok := s.errs[prefix]; !ok && len(s.errs) >= maxErrorPrefixes {
		prefix = "OTHER"
	}
	s.errs[prefix]++
}

// resetInfo makes INFO count from now on (CONFIG RESETSTAT).
func (s *Stats) resetInfo() {
	now := s.Snapshot()
	s.resetMu.Lock()
	s.resetAt = &now
	s.resetMu.Unlock()
	s.inst.reset()
	s.peakMemory.Store(0)
}

// sinceReset is Snapshot less the counts at the last resetInfo: what INFO
// shows. Connections open and latencies are as they are.
func (s *Stats) sinceReset() StatsSnapshot {
	out := s.Snapshot()
	s.resetMu.Lock()
	base := s.resetAt
	s.resetMu.Unlock()
	if base == nil {
		return out
	}
	out.Connections -= base.Connections
	out.Rejected -= base.Rejected
	out.Commands -= base.Commands
	out.Processed -= base.Processed
	out.NetIn -= base.NetIn
	out.NetOut -= base.NetOut
	for k, n := range out.ErrorReplies {
		if n -= base.ErrorReplies[k]; n > 0 {
			out.ErrorReplies[k] = n
		} else {
			delete(out.ErrorReplies, k)
		}
	}
	for name, cs := range out.ByCommand {
		b := base.ByCommand[name]
		cs.Calls, cs.Failed, cs.Rejected, cs.Time = cs.Calls-b.Calls, cs.Failed-b.Failed, cs.Rejected-b.Rejected, cs.Time-b.Time
		if cs != (CommandStats{}) {
			out.ByCommand[name] = cs
		} else {
			delete(out.ByCommand, name)
		}
	}
	return out
}
