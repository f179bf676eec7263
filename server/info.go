package server

import (
	"bytes"
	cryptorand "crypto/rand"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coppice-kv/coppice/kv"
	"github.com/coppice-kv/coppice/messages"
)

// redisVersion is the Redis version the port reports: the one whose
// replies it reproduces.
const redisVersion = "7.0.15"

// INFO prints every section and field Redis 7.0 prints, in Redis's order,
// with coppice's own fields (coppice_version, node_name, hostname) added.
// A field has the node's real figure where the node has the concept;
// where a field measures a mechanism of Redis's the node has none of
// (forks, RDB and AOF rewrites, eviction, defragmentation, lazy free,
// replication buffers, the cluster bus), it has Redis's value for "none"
// (0, -1, ok, no-failover...), so that tools reading it find it. The
// mappings that are not obvious:
//
//   - Memory: a coppice node is a Go process whose keys live in Pebble
//     (on disk and in its caches), so used_memory and allocator_allocated
//     are the Go heap's live objects (runtime/metrics'
//     /memory/classes/heap/objects, MEMORY STATS' total.allocated),
//     allocator_active the heap's spans in use (objects and their unused
//     room), allocator_resident the memory the Go runtime holds from the
//     OS and has not returned, used_memory_rss the process's resident set
//     (/proc/self/statm), and the ratios between them as Redis computes
//     them. used_memory_peak is the highest used_memory INFO has read
//     (Redis samples it every 100 ms too); used_memory_startup is the heap
//     when the port opened, and is used_memory_overhead, Redis's other
//     overheads (client buffers, backlog, AOF buffer) not being measured
//     apart: used_memory_dataset is the heap grown since. Lua runs in the
//     shards on the Go heap: its VMs are not measured apart (0);
//     used_memory_scripts_eval is the bytes of the scripts cached for
//     EVALSHA, used_memory_functions the bytes of the libraries' code.
//     maxmemory is 0 and maxmemory_policy noeviction: a node never evicts.
//   - Persistence: every write is fsynced to the Raft log before it is
//     answered, hence aof_enabled:1; the AOF's figures Redis adds then
//     (aof_current_size...) are left out: the log's size is not the
//     port's to know. rdb_last_save_time is LASTSAVE's (a shard's latest
//     snapshot); rdb_changes_since_last_save is not counted (0).
//   - CPU: coppice has no main thread (commands run on goroutines over
//     every thread): the *_main_thread fields are the whole process's.
//   - Stats: instantaneous_* are rates over the last 1.6 s of the samples
//     INFO took (one kept every 100 ms at most, 16 of them), or since the
//     previous INFO when that is older: see instantaneous.
//   - Replication: shards replicate by Raft, not by Redis's replication:
//     the node is a master with no replicas, master_replid a random id
//     made at start (as Redis's), and the offsets and backlog Redis's idle
//     ones.
//   - Clients: blocked_clients counts the connections in a blocking
//     command or WAIT, or held by CLIENT PAUSE, clients_in_timeout_table
//     those in a blocking command or WAIT with a timeout; the input and
//     output buffers are the connections' own and not measured (0).
//
// Two fields Redis prints are left out (infoLeftOut in the test):
// total_reads_processed and total_writes_processed, the read and write
// calls on client sockets, which would cost a second atomic add on every
// read and write (the bytes take one).

// runID is INFO's run_id and replID its master_replid: 40 random hex
// characters made once per process, as Redis makes its at start.
var runID, replID = randomHex(20), randomHex(20)

func randomHex(n int) string {
	b := make([]byte, n)
	cryptorand.Read(b)
	return hex.EncodeToString(b)
}

// defaultInfoSections are the sections of INFO with no argument, or
// "default" (Redis's list: module_list is the Modules section).
var defaultInfoSections = []string{"server", "clients", "memory", "persistence", "stats", "replication",
	"cpu", "module_list", "errorstats", "cluster", "keyspace"}

// infoSections reads INFO's arguments as Redis's genInfoSectionDict does:
// the sections named (any case), "default" for the default ones, "all"
// and "everything" for every section.
func infoSections(args [][]byte) (want map[string]bool, all bool) {
	want = map[string]bool{}
	if len(args) == 0 {
		args = [][]byte{[]byte("default")}
	}
	for _, a := range args {
		switch name := string(bytes.ToLower(a)); name {
		case "default":
			for _, d := range defaultInfoSections {
				want[d] = true
			}
		case "all", "everything":
			all = true
		default:
			want[name] = true
		}
	}
	return want, all
}

// info answers INFO [section ...].
func (s *Server) info(args [][]byte) *messages.Reply {
	want, all := infoSections(args[1:])
	has := func(names ...string) bool {
		if all {
			return true
		}
		for _, n := range names {
			if want[n] {
				return true
			}
		}
		return false
	}
	var b strings.Builder
	section := func(title string, lines []string) {
		if b.Len() > 0 {
			b.WriteString("\r\n")
		}
		b.WriteString("# " + title + "\r\n")
		for _, l := range lines {
			b.WriteString(l + "\r\n")
		}
	}
	st := s.stats.sinceReset()
	if has("server") {
		section("Server", s.infoServer())
	}
	if has("clients") {
		section("Clients", s.infoClients())
	}
	if has("memory") {
		section("Memory", s.infoMemory())
	}
	if has("persistence") {
		section("Persistence", s.infoPersistence())
	}
	if has("stats") {
		section("Stats", s.infoStats(st))
	}
	if has("replication") {
		section("Replication", infoReplication())
	}
	if has("cpu") {
		section("CPU", infoCPU())
	}
	if has("module_list", "modules") {
		section("Modules", nil) // none
	}
	if has("commandstats") { // not in the default INFO, as in Redis
		var lines []string
		for _, name := range sortedKeys(st.ByCommand) {
			cs := st.ByCommand[name]
			usec, perCall := cs.Time.Microseconds(), float32(0)
			if cs.Calls > 0 {
				perCall = float32(usec) / float32(cs.Calls) // Redis's (float) division
			}
			lines = append(lines, fmt.Sprintf("cmdstat_%s:calls=%d,usec=%d,usec_per_call=%.2f,rejected_calls=%d,failed_calls=%d",
				name, cs.Calls, usec, perCall, cs.Rejected, cs.Failed))
		}
		section("Commandstats", lines)
	}
	if has("errorstats") {
		var lines []string
		for _, prefix := range sortedKeys(st.ErrorReplies) {
			lines = append(lines, fmt.Sprintf("errorstat_%s:count=%d", prefix, st.ErrorReplies[prefix]))
		}
		section("Errorstats", lines)
	}
	if has("latencystats") { // not in the default INFO, as in Redis
		section("Latencystats", s.latencyStats())
	}
	if has("cluster") {
		enabled := 0
		if s.cfg.Cluster != nil {
			enabled = 1
		}
		section("Cluster", []string{fmt.Sprintf("cluster_enabled:%d", enabled)})
	}
	if has("keyspace") {
		// Redis's avg_ttl is an estimate its expiry cycle keeps; this one
		// is the average of every key's time to live, read now.
		keys, expires, ttl := s.keyspaceTotals()
		avg := int64(0)
		if expires > 0 {
			avg = ttl / expires
		}
		if keys > 0 {
			section("Keyspace", []string{fmt.Sprintf("db0:keys=%d,expires=%d,avg_ttl=%d", keys, expires, avg)})
		} else {
			section("Keyspace", nil)
		}
	}
	return verbatim(b.String())
}

// buildInfo is what the binary says of its build: the git commit (8 hex
// digits, Redis's redis_git_sha1; 00000000 when unknown, as Redis's),
// whether the tree was modified, and a build id, a hash of the versions
// and the commit (Redis's is a hash of its build too).
var buildInfo = sync.OnceValues(func() (sha1 string, dirty int) {
	sha1 = "00000000"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, kv := range bi.Settings {
			switch kv.Key {
			case "vcs.revision":
				if len(kv.Value) >= 8 {
					sha1 = kv.Value[:8]
				}
			case "vcs.modified":
				if kv.Value == "true" {
					dirty = 1
				}
			}
		}
	}
	return sha1, dirty
})

func (s *Server) infoServer() []string {
	sha1, dirty := buildInfo()
	h := fnv.New64a()
	fmt.Fprint(h, redisVersion, s.cfg.Version, sha1, runtime.Version())
	exe, _ := os.Executable()
	host, _ := os.Hostname()
	now := time.Now()
	up := int64(now.Sub(s.started).Seconds())
	return []string{
		"redis_version:" + redisVersion,
		"coppice_version:" + s.cfg.Version,
		"redis_git_sha1:" + sha1,
		fmt.Sprintf("redis_git_dirty:%d", dirty),
		fmt.Sprintf("redis_build_id:%x", h.Sum64()),
		"redis_mode:standalone",
		"os:" + osName(),
		fmt.Sprintf("arch_bits:%d", strconv.IntSize),
		"monotonic_clock:POSIX clock_gettime", // Go's monotonic clock
		"multiplexing_api:" + pollerName(),
		"atomicvar_api:sync/atomic",
		"gcc_version:0.0.0", // Redis's when not built by GCC
		fmt.Sprintf("process_id:%d", os.Getpid()),
		"process_supervised:no",
		"run_id:" + runID,
		"tcp_port:" + portOf(s.Addr().String()),
		fmt.Sprintf("server_time_usec:%d", now.UnixMicro()),
		fmt.Sprintf("uptime_in_seconds:%d", up),
		fmt.Sprintf("uptime_in_days:%d", up/(3600*24)),
		"hz:10",
		"configured_hz:10",
		fmt.Sprintf("lru_clock:%d", now.Unix()&(1<<24-1)), // Redis's: seconds, 24 bits
		"executable:" + exe,
		"config_file:",
		"io_threads_active:0",
		"node_name:" + s.cfg.NodeName,
		"hostname:" + host,
	}
}

// pollerName is the system call Go's network poller waits with
// (multiplexing_api).
func pollerName() string {
	switch runtime.GOOS {
	case "linux", "android":
		return "epoll"
	case "darwin", "ios", "freebsd", "netbsd", "openbsd", "dragonfly":
		return "kqueue"
	case "solaris", "illumos":
		return "evport"
	case "windows":
		return "iocp"
	}
	return "poll"
}

func (s *Server) infoClients() []string {
	var blocked, timed int
	s.mu.Lock()
	open := len(s.conns)
	for c := range s.conns {
		if f := c.flag.Load(); f == 'b' || f == 'p' {
			blocked++
			if c.timed.Load() {
				timed++
			}
		}
	}
	s.mu.Unlock()
	return []string{
		fmt.Sprintf("connected_clients:%d", open),
		"cluster_connections:0", // no Redis cluster bus
		fmt.Sprintf("maxclients:%d", s.maxClients.Load()),
		"client_recent_max_input_buffer:0",
		"client_recent_max_output_buffer:0",
		fmt.Sprintf("blocked_clients:%d", blocked),
		fmt.Sprintf("tracking_clients:%d", s.track.clients.Load()),
		fmt.Sprintf("clients_in_timeout_table:%d", timed),
	}
}

// goMemory is the Go runtime's memory, read with runtime/metrics (which,
// unlike runtime.ReadMemStats, does not stop the world): allocated, the
// heap's objects; active, its spans in use; resident, what the runtime
// holds from the OS and has not returned.
// goMemory is the Go runtime's memory: INFO's and MEMORY STATS' figures.
type goMemory struct{ allocated, active, resident, sys, objects, gcCycles uint64 }

var goMemoryMetrics = []string{
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/unused:bytes",
	"/memory/classes/total:bytes",
	"/memory/classes/heap/released:bytes",
	"/gc/heap/objects:objects",
	"/gc/cycles/total:gc-cycles",
}

func readGoMemory() goMemory {
	samples := make([]metrics.Sample, len(goMemoryMetrics))
	for i, name := range goMemoryMetrics {
		samples[i].Name = name
	}
	metrics.Read(samples)
	v := make([]uint64, len(samples))
	for i, sm := range samples {
		if sm.Value.Kind() == metrics.KindUint64 {
			v[i] = sm.Value.Uint64()
		}
	}
	return goMemory{allocated: v[0], active: v[0] + v[1], resident: v[2] - v[3], sys: v[2], objects: v[4], gcCycles: v[5]}
}

// bytesToHuman formats n as Redis's bytesToHuman does: 943.37K, 1.05M,
// 0B.
func bytesToHuman(n uint64) string {
	units := []string{"K", "M", "G", "T", "P"}
	if n < 1024 {
		return fmt.Sprintf("%dB", n)
	}
	d := float64(n) / 1024
	for _, u := range units {
		if d < 1024 {
			return fmt.Sprintf("%.2f%s", d, u)
		}
		d /= 1024
	}
	return fmt.Sprintf("%dB", n)
}

// keyspaceTotals is every shard's keys, keys with an expiry and their
// times to live summed, the shards asked at once.
func (s *Server) keyspaceTotals() (keys, expires, ttl int64) {
	pending := make([]Pending, s.backend.Shards())
	for sh := range pending {
		pending[sh] = s.backend.Read(sh, &messages.Command{Args: [][]byte{[]byte(kv.KeyspaceInfoName)}, NowMs: nowMs()})
	}
	for _, p := range pending {
		if items := p.Wait().GetArray().GetItems(); len(items) == 3 {
			keys += items[0].GetInteger()
			expires += items[1].GetInteger()
			ttl += items[2].GetInteger()
		}
	}
	return keys, expires, ttl
}

// ratio is a/b, 0 when b is.
func ratio(a, b uint64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func (s *Server) infoMemory() []string {
	m := readGoMemory()
	used := m.allocated
	peak := s.stats.peakMemory.Load()
	for used > peak && !s.stats.peakMemory.CompareAndSwap(peak, used) {
		peak = s.stats.peakMemory.Load()
	}
	peak = max(peak, used)
	rss := uint64(max(residentSet(), 0))
	startup := s.startHeap
	dataset := uint64(0)
	if used > startup {
		dataset = used - startup
	}
	net := uint64(1)
	if used > startup {
		net = used - startup
	}
	scripts, scriptBytes := s.scripts.size()
	libs, funcs, libBytes := s.functionsSize()
	total := totalSystemMemory()
	signed := func(a, b uint64) int64 { return int64(a) - int64(b) }
	return []string{
		fmt.Sprintf("used_memory:%d", used),
		"used_memory_human:" + bytesToHuman(used),
		fmt.Sprintf("used_memory_rss:%d", rss),
		"used_memory_rss_human:" + bytesToHuman(rss),
		fmt.Sprintf("used_memory_peak:%d", peak),
		"used_memory_peak_human:" + bytesToHuman(peak),
		fmt.Sprintf("used_memory_peak_perc:%.2f%%", ratio(used*100, peak)),
		fmt.Sprintf("used_memory_overhead:%d", startup),
		fmt.Sprintf("used_memory_startup:%d", startup),
		fmt.Sprintf("used_memory_dataset:%d", dataset),
		fmt.Sprintf("used_memory_dataset_perc:%.2f%%", ratio(dataset*100, net)),
		fmt.Sprintf("allocator_allocated:%d", m.allocated),
		fmt.Sprintf("allocator_active:%d", m.active),
		fmt.Sprintf("allocator_resident:%d", m.resident),
		fmt.Sprintf("total_system_memory:%d", total),
		"total_system_memory_human:" + bytesToHuman(total),
		"used_memory_lua:0",
		"used_memory_vm_eval:0",
		"used_memory_lua_human:0B",
		fmt.Sprintf("used_memory_scripts_eval:%d", scriptBytes),
		fmt.Sprintf("number_of_cached_scripts:%d", scripts),
		fmt.Sprintf("number_of_functions:%d", funcs),
		fmt.Sprintf("number_of_libraries:%d", libs),
		"used_memory_vm_functions:0",
		"used_memory_vm_total:0",
		"used_memory_vm_total_human:0B",
		fmt.Sprintf("used_memory_functions:%d", libBytes),
		fmt.Sprintf("used_memory_scripts:%d", scriptBytes+libBytes),
		"used_memory_scripts_human:" + bytesToHuman(scriptBytes+libBytes),
		"maxmemory:0",
		"maxmemory_human:0B",
		"maxmemory_policy:noeviction",
		fmt.Sprintf("allocator_frag_ratio:%.2f", ratio(m.active, m.allocated)),
		fmt.Sprintf("allocator_frag_bytes:%d", signed(m.active, m.allocated)),
		fmt.Sprintf("allocator_rss_ratio:%.2f", ratio(m.resident, m.active)),
		fmt.Sprintf("allocator_rss_bytes:%d", signed(m.resident, m.active)),
		fmt.Sprintf("rss_overhead_ratio:%.2f", ratio(rss, m.resident)),
		fmt.Sprintf("rss_overhead_bytes:%d", signed(rss, m.resident)),
		fmt.Sprintf("mem_fragmentation_ratio:%.2f", ratio(rss, used)),
		fmt.Sprintf("mem_fragmentation_bytes:%d", signed(rss, used)),
		"mem_not_counted_for_evict:0",
		"mem_replication_backlog:0",
		"mem_total_replication_buffers:0",
		"mem_clients_slaves:0",
		"mem_clients_normal:0",
		"mem_cluster_links:0",
		"mem_aof_buffer:0",
		"mem_allocator:go",
		"active_defrag_running:0",
		"lazyfree_pending_objects:0",
		"lazyfreed_objects:0",
	}
}

// size is the number of scripts cached for EVALSHA and their bytes.
func (sc *scripts) size() (n int, bytes uint64) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	for _, body := range sc.loaded {
		n++
		bytes += uint64(len(body))
	}
	for sha, body := range sc.evald {
		if _, ok := sc.loaded[sha]; !ok {
			n++
			bytes += uint64(len(body))
		}
	}
	return n, bytes
}

// functionsSize is the function libraries (shard 0's: every shard has the
// same), their functions and their code's bytes; zeros when shard 0 does
// not answer.
func (s *Server) functionsSize() (libs, funcs int, code uint64) {
	all, _ := decodeLibraries(s.backend.Read(0, &messages.Command{Args: [][]byte{[]byte(kv.FunctionName), []byte("list")}, NowMs: nowMs()}).Wait())
	for _, lib := range all { // none when shard 0 cannot say: INFO answers anyway
		funcs += len(lib.Funcs)
		code += uint64(len(lib.Code))
	}
	return len(all), funcs, code
}

func (s *Server) infoPersistence() []string {
	return []string{
		"loading:0",
		"async_loading:0",
		"current_cow_peak:0",
		"current_cow_size:0",
		"current_cow_size_age:0",
		"current_fork_perc:0.00",
		"current_save_keys_processed:0",
		"current_save_keys_total:0",
		"rdb_changes_since_last_save:0",
		"rdb_bgsave_in_progress:0",
		fmt.Sprintf("rdb_last_save_time:%d", s.lastSave()),
		"rdb_last_bgsave_status:ok",
		"rdb_last_bgsave_time_sec:-1",
		"rdb_current_bgsave_time_sec:-1",
		"rdb_saves:0",
		"rdb_last_cow_size:0",
		"rdb_last_load_keys_expired:0",
		"rdb_last_load_keys_loaded:0",
		"aof_enabled:1",
		"aof_rewrite_in_progress:0",
		"aof_rewrite_scheduled:0",
		"aof_last_rewrite_time_sec:-1",
		"aof_current_rewrite_time_sec:-1",
		"aof_last_bgrewrite_status:ok",
		"aof_rewrites:0",
		"aof_rewrites_consecutive_failures:0",
		"aof_last_write_status:ok",
		"aof_last_cow_size:0",
		"module_fork_in_progress:0",
		"module_fork_last_cow_size:0",
	}
}

func (s *Server) infoStats(st StatsSnapshot) []string {
	ops, inKbps, outKbps := s.stats.inst.rates(instSample{at: time.Now(), commands: s.stats.processed.Load(),
		in: s.stats.netIn.Load(), out: s.stats.netOut.Load()})
	var errReplies uint64
	for _, n := range st.ErrorReplies {
		errReplies += n
	}
	hits, misses, expired := kv.KeyspaceStats()
	keys, items, prefixes := s.track.sizes()
	return []string{
		fmt.Sprintf("total_connections_received:%d", st.Connections),
		fmt.Sprintf("total_commands_processed:%d", st.Processed),
		fmt.Sprintf("instantaneous_ops_per_sec:%d", int64(ops)),
		fmt.Sprintf("total_net_input_bytes:%d", st.NetIn),
		fmt.Sprintf("total_net_output_bytes:%d", st.NetOut),
		"total_net_repl_input_bytes:0",
		"total_net_repl_output_bytes:0",
		fmt.Sprintf("instantaneous_input_kbps:%.2f", inKbps),
		fmt.Sprintf("instantaneous_output_kbps:%.2f", outKbps),
		"instantaneous_input_repl_kbps:0.00",
		"instantaneous_output_repl_kbps:0.00",
		fmt.Sprintf("rejected_connections:%d", st.Rejected),
		"sync_full:0",
		"sync_partial_ok:0",
		"sync_partial_err:0",
		fmt.Sprintf("expired_keys:%d", expired),
		"expired_stale_perc:0.00",
		"expired_time_cap_reached_count:0",
		"expire_cycle_cpu_milliseconds:0",
		"evicted_keys:0",
		"evicted_clients:0",
		"total_eviction_exceeded_time:0",
		"current_eviction_exceeded_time:0",
		fmt.Sprintf("keyspace_hits:%d", hits),
		fmt.Sprintf("keyspace_misses:%d", misses),
		fmt.Sprintf("pubsub_channels:%d", s.hub.count(channelSub)),
		fmt.Sprintf("pubsub_patterns:%d", s.hub.count(patternSub)),
		fmt.Sprintf("pubsubshard_channels:%d", s.hub.count(shardSub)),
		"latest_fork_usec:0",
		"total_forks:0",
		"migrate_cached_sockets:0", // MIGRATE dials a connection per call
		"slave_expires_tracked_keys:0",
		"active_defrag_hits:0",
		"active_defrag_misses:0",
		"active_defrag_key_hits:0",
		"active_defrag_key_misses:0",
		"total_active_defrag_time:0",
		"current_active_defrag_time:0",
		fmt.Sprintf("tracking_total_keys:%d", keys),
		fmt.Sprintf("tracking_total_items:%d", items),
		fmt.Sprintf("tracking_total_prefixes:%d", prefixes),
		"unexpected_error_replies:0",
		fmt.Sprintf("total_error_replies:%d", errReplies),
		"dump_payload_sanitizations:0",
		"io_threaded_reads_processed:0",
		"io_threaded_writes_processed:0",
		"reply_buffer_shrinks:0",
		"reply_buffer_expands:0",
	}
}

// sizes is the keys tracked, the sum of their readers (Redis's
// tracking_total_items) and the BCAST prefixes.
func (t *trackingTable) sizes() (keys, items, prefixes int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, readers := range t.keys {
		items += len(readers)
	}
	return len(t.keys), items, len(t.prefixes)
}

func infoReplication() []string {
	return []string{
		"role:master",
		"connected_slaves:0",
		"master_failover_state:no-failover",
		"master_replid:" + replID,
		"master_replid2:0000000000000000000000000000000000000000",
		"master_repl_offset:0",
		"second_repl_offset:-1",
		"repl_backlog_active:0",
		"repl_backlog_size:1048576", // Redis's default
		"repl_backlog_first_byte_offset:0",
		"repl_backlog_histlen:0",
	}
}

func infoCPU() []string {
	self, children := cpuTimes()
	return []string{
		"used_cpu_sys:" + self.sys,
		"used_cpu_user:" + self.user,
		"used_cpu_sys_children:" + children.sys,
		"used_cpu_user_children:" + children.user,
		"used_cpu_sys_main_thread:" + self.sys,
		"used_cpu_user_main_thread:" + self.user,
	}
}

// cpuTime is a process's system and user CPU time as Redis prints them:
// seconds, a point, six digits of microseconds.
type cpuTime struct{ sys, user string }

func formatCPU(sec, usec int64) string { return fmt.Sprintf("%d.%06d", sec, usec) }

// instSample is the counters behind INFO's instantaneous rates at a time.
type instSample struct {
	at       time.Time
	commands int64
	in, out  uint64
}

// instantaneous keeps the samples INFO takes, at most one every
// instInterval and the last instSamples of them, as Redis keeps one every
// 100 ms over 16; Redis's are taken by its cron, these when INFO asks, so
// nothing runs between INFOs.
type instantaneous struct {
	mu      sync.Mutex
	samples [instSamples]instSample
	n, next int
}

const (
	instSamples  = 16
	instInterval = 100 * time.Millisecond
)

// rates gives the commands a second and the kilobytes read and written a
// second from the oldest sample of the last instSamples*instInterval (or,
// when every sample is older, the newest) to now, and keeps now as a
// sample if the last was taken instInterval ago or more. Zeros without an
// earlier sample.
func (i *instantaneous) rates(now instSample) (ops, inKbps, outKbps float64) {
	i.mu.Lock()
	defer i.mu.Unlock()
	var newest, oldestIn *instSample
	for k := 0; k < i.n; k++ {
		// From the oldest kept to the newest.
		sm := &i.samples[(i.next-i.n+k+instSamples)%instSamples]
		if !sm.at.Before(now.at) {
			continue
		}
		newest = sm
		if oldestIn == nil && now.at.Sub(sm.at) <= instSamples*instInterval {
			oldestIn = sm
		}
	}
	base := oldestIn
	if base == nil {
		base = newest
	}
	if i.n == 0 || now.at.Sub(i.samples[(i.next-1+instSamples)%instSamples].at) >= instInterval {
		i.samples[i.next] = now
		i.next = (i.next + 1) % instSamples
		i.n = min(i.n+1, instSamples)
	}
	if base == nil {
		return 0, 0, 0
	}
	dt := now.at.Sub(base.at).Seconds()
	if dt <= 0 {
		return 0, 0, 0
	}
	return float64(now.commands-base.commands) / dt, float64(now.in-base.in) / dt / 1024, float64(now.out-base.out) / dt / 1024
}

// reset forgets the samples (CONFIG RESETSTAT).
func (i *instantaneous) reset() {
	i.mu.Lock()
	i.n, i.next = 0, 0
	i.mu.Unlock()
}
