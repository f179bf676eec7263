package server

import (
	"fmt"
	"math"
	"os"
	"regexp"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/coppice-kv/coppice/kv"
	"github.com/coppice-kv/coppice/messages"
)

// Redis's server commands that the node serves: MEMORY (but USAGE, the
// engine's on the key's shard), DEBUG (but OBJECT, the engine's), ROLE,
// LASTSAVE, SAVE, BGSAVE, BGREWRITEAOF, LOLWUT. LATENCY is latency.go's.

// memory answers MEMORY: USAGE goes to the key's shard (kv's cmdMemory);
// DOCTOR, STATS, MALLOC-STATS, PURGE and HELP are the node's.
func (c *conn) memory(args [][]byte) {
	if r := kv.CheckSubcommand(args); r != nil {
		c.reply(r)
		return
	}
	switch strings.ToLower(string(args[1])) {
	case "usage":
		c.data("memory", args)
	case "stats":
		c.reply(c.s.memoryStats())
	case "doctor":
		c.reply(verbatim(memoryDoctor()))
	case "malloc-stats":
		c.reply(bulkString(mallocStats()))
	case "purge":
		debug.FreeOSMemory()
		c.reply(replyOK)
	case "help":
		c.reply(kv.HelpReply("MEMORY",
			"DOCTOR",
			"    Return memory problems reports.",
			"MALLOC-STATS",
			"    Return internal statistics report from the memory allocator.",
			"PURGE",
			"    Attempt to purge dirty pages for reclamation by the allocator.",
			"STATS",
			"    Return information about the memory usage of the server.",
			"USAGE <key> [SAMPLES <count>]",
			"    Return memory in bytes used by <key> and its value. Nested values are",
			"    sampled up to <count> times (default: 5, 0 means sample all).",
		))
	}
}

// memoryStats answers MEMORY STATS with the figures a Go process has, under
// Redis's names where they mean the same: total.allocated and
// allocator.allocated the bytes of live heap objects (Redis's
// zmalloc_used_memory and the allocator's "allocated"), allocator.active
// those and the heap's unused room in their spans, allocator.resident the memory the Go runtime
// holds from the OS and has not returned, their ratios as Redis computes
// them, keys.count the node's keys (every shard it holds, read now), and
// the process's resident set where the OS tells it (Linux). Redis's
// figures of its own structures (replication backlog, client buffers,
// Lua caches, dataset overhead) have no counterpart and are left out;
// go.* fields are the Go runtime's own. The keys' data is in Pebble, on
// disk and in its caches, not on the Go heap: MEMORY USAGE estimates a
// key's bytes.
func (s *Server) memoryStats() *messages.Reply {
	m := readGoMemory() // INFO memory's figures, without stopping the world
	allocated, active, resident := int64(m.allocated), int64(m.active), int64(m.resident)
	keys, _, _ := s.keyspaceTotals()
	ratio := func(a, b int64) float64 { return ratio(uint64(max(a, 0)), uint64(max(b, 0))) }
	items := []*messages.Reply{
		bulkString("total.allocated"), integer(allocated),
		bulkString("keys.count"), integer(keys),
		bulkString("allocator.allocated"), integer(allocated),
		bulkString("allocator.active"), integer(active),
		bulkString("allocator.resident"), integer(resident),
		bulkString("allocator-fragmentation.ratio"), double(ratio(active, allocated)),
		bulkString("allocator-fragmentation.bytes"), integer(active - allocated),
		bulkString("allocator.rss-ratio"), double(ratio(resident, active)),
		bulkString("allocator.rss-bytes"), integer(resident - active),
	}
	if rss := residentSet(); rss > 0 {
		items = append(items,
			bulkString("rss-overhead.ratio"), double(ratio(rss, resident)),
			bulkString("rss-overhead.bytes"), integer(rss-resident),
			bulkString("fragmentation"), double(ratio(rss, allocated)),
			bulkString("fragmentation.bytes"), integer(rss-allocated))
	}
	items = append(items,
		bulkString("go.sys"), integer(int64(m.sys)),
		bulkString("go.heap.objects"), integer(int64(m.objects)),
		bulkString("go.gc.cycles"), integer(int64(m.gcCycles)),
		bulkString("go.goroutines"), integer(int64(runtime.NumGoroutine())))
	return mapReply(items...)
}

func double(f float64) *messages.Reply {
	return &messages.Reply{Value: &messages.Reply_Double{Double: f}}
}

// residentSet is the process's resident set in bytes, from
// /proc/self/statm; 0 where there is none.
func residentSet() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0
	}
	return pages * int64(os.Getpagesize())
}

// memoryDoctor is MEMORY DOCTOR's text: Redis's advice is about its own
// allocator and structures, none of which a coppice node has.
func memoryDoctor() string {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return fmt.Sprintf("Hi Sam, this is a coppice node: its keys are stored in Pebble, on disk and in Pebble's caches, not in the process's heap, so I have none of Redis's memory issues to look for. "+
		"The Go heap holds %d bytes in %d objects (%d bytes taken from the OS, %d returned to it; %d garbage collections so far). "+
		"MEMORY STATS has these figures, MEMORY USAGE a key's size in the store.\n",
		ms.HeapAlloc, ms.HeapObjects, ms.Sys, ms.HeapReleased, ms.NumGC)
}

// mallocStats is MEMORY MALLOC-STATS's text: the Go runtime's memory
// statistics (there is no jemalloc here).
func mallocStats() string {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	var b strings.Builder
	fmt.Fprintf(&b, "Go runtime memory statistics (%s)\n", runtime.Version())
	for _, f := range []struct {
		name string
		v    uint64
	}{
		{"sys", ms.Sys}, {"heap_alloc", ms.HeapAlloc}, {"heap_sys", ms.HeapSys}, {"heap_idle", ms.HeapIdle},
		{"heap_inuse", ms.HeapInuse}, {"heap_released", ms.HeapReleased}, {"heap_objects", ms.HeapObjects},
		{"total_alloc", ms.TotalAlloc}, {"mallocs", ms.Mallocs}, {"frees", ms.Frees},
		{"stack_inuse", ms.StackInuse}, {"stack_sys", ms.StackSys}, {"mspan_inuse", ms.MSpanInuse},
		{"mcache_inuse", ms.MCacheInuse}, {"gc_sys", ms.GCSys}, {"other_sys", ms.OtherSys},
		{"next_gc", ms.NextGC}, {"num_gc", uint64(ms.NumGC)},
	} {
		fmt.Fprintf(&b, "%s: %d\n", f.name, f.v)
	}
	return b.String()
}

// debugCmd answers DEBUG as Redis 7.0 does with enable-debug-command set
// (Redis refuses DEBUG by default; the node serves the subcommands below,
// which are safe): HELP, SLEEP seconds (this connection sleeps: Redis's
// whole server would, a node's other connections go on), SET-ACTIVE-EXPIRE
// 0|1 (this node's active expiry, where the node lets it be switched),
// ERROR, LOG, PROTOCOL (debugProtocol), OBJECT key and DIGEST-VALUE key...
// (on the keys' shards: kv's cmdDebug) and DIGEST (every shard's keys,
// kv.DatasetDigest). Any other subcommand,
// Redis's included, gets Redis's unknown-subcommand error.
func (c *conn) debugCmd(args [][]byte) {
	if len(args) < 2 {
		c.reply(arityError("debug"))
		return
	}
	switch sub := strings.ToLower(string(args[1])); {
	case sub == "help" && len(args) == 2:
		c.reply(kv.HelpReply("DEBUG",
			"DIGEST",
			"    Output a hex signature representing the current DB content.",
			"DIGEST-VALUE <key> [<key> ...]",
			"    Output a hex signature of the values of all the specified keys.",
			"ERROR <string>",
			"    Return a Redis protocol error with <string> as message. Useful for clients",
			"    unit tests to simulate Redis errors.",
			"LOG <message>",
			"    Write <message> to the server log.",
			"OBJECT <key>",
			"    Show low level info about `key` and associated value.",
			"PROTOCOL <type>",
			"    Reply with a test value of the specified type. <type> can be: string,",
			"    integer, double, bignum, null, array, set, map, attrib, push, verbatim,",
			"    true, false.",
			"SET-ACTIVE-EXPIRE <0|1>",
			"    Setting it to 0 disables expiring keys in background when they are not",
			"    accessed (otherwise the Redis behavior). Setting it to 1 reenables back the",
			"    default.",
			"SLEEP <seconds>",
			"    Stop the server for <seconds>. Decimals allowed.",
		))
	case sub == "sleep" && len(args) == 3:
		// Redis's strtod: the number the argument starts with, 0 if none;
		// to the microsecond. A sleep too long for a time.Duration lasts
		// until the port closes.
		if us := math.Floor(leadingFloat(string(args[2])) * 1e6); us >= 1 {
			var wake <-chan time.Time
			if us < math.MaxInt64/1000 {
				t := time.NewTimer(time.Duration(us) * time.Microsecond)
				defer t.Stop()
				wake = t.C
			}
			select {
			case <-wake:
			case <-c.s.done:
			}
		}
		c.reply(replyOK)
	case sub == "set-active-expire" && len(args) == 3:
		if c.s.cfg.ActiveExpire == nil {
			c.reply(errorf("ERR DEBUG SET-ACTIVE-EXPIRE: this node's active expiry cannot be switched"))
			return
		}
		c.s.cfg.ActiveExpire(atoi(args[2]) != 0)
		c.reply(replyOK)
	case sub == "error" && len(args) == 3:
		// The string as the whole error, no newline in it.
		c.reply(errorf(strings.NewReplacer("\r", " ", "\n", " ").Replace(string(args[2]))))
	case sub == "log" && len(args) == 3:
		c.s.cfg.Log.Warn("DEBUG LOG: " + string(args[2]))
		c.reply(replyOK)
	case sub == "protocol" && len(args) == 3:
		c.debugProtocol(strings.ToLower(string(args[2])))
	case sub == "object" && len(args) == 3:
		c.data("debug", args)
	case sub == "digest" && len(args) == 2:
		c.everyShardOwned([][]byte{[]byte(kv.DatasetDigestName)}, false, kv.DatasetDigest)
	case sub == "digest-value":
		// Each key on its shard, the digests in the keys' order.
		m := &multi{combine: concatArrays}
		for _, k := range c.cloneArgs(args[2:]) {
			m.parts = append(m.parts, c.issueRead(c.shardOf(k), [][]byte{[]byte("debug"), []byte("digest-value"), k}))
		}
		c.push(m)
	default:
		c.reply(kv.DebugUnknown(args[1]))
	}
}

// debugProtocol answers DEBUG PROTOCOL type with Redis's test values.
// Two of RESP3's types have no form here: a bignum is sent as a bulk
// string (RESP2's form), and an attribute is left out before the reply
// that follows it (as in RESP2).
func (c *conn) debugProtocol(typ string) {
	ints := func() []*messages.Reply { return []*messages.Reply{integer(0), integer(1), integer(2)} }
	switch typ {
	case "string":
		c.reply(bulkString("Hello World"))
	case "integer":
		c.reply(integer(12345))
	case "double":
		c.reply(double(3.141))
	case "bignum":
		c.reply(bulkString("1234567999999999999999999999999999999"))
	case "null":
		c.reply(nullBulk())
	case "array":
		c.reply(array(ints()...))
	case "set":
		c.reply(&messages.Reply{Value: &messages.Reply_Set{Set: &messages.Replies{Items: ints()}}})
	case "map":
		c.reply(mapReply(integer(0), boolean(false), integer(1), boolean(true), integer(2), boolean(false)))
	case "attrib":
		c.reply(bulkString("Some real reply following the attribute"))
	case "push":
		if c.proto < 3 {
			c.reply(errorf("ERR RESP2 is not supported by this command"))
			return
		}
		c.reply(&messages.Reply{Value: &messages.Reply_Push{Push: &messages.Replies{Items: []*messages.Reply{bulkString("server-cpu-usage"), integer(42)}}}})
		c.reply(bulkString("Some real reply following the push reply"))
	case "true", "false":
		c.reply(boolean(typ == "true"))
	case "verbatim":
		c.reply(verbatim("This is a verbatim\nstring"))
	default:
		c.reply(errorf("ERR Wrong protocol type name. Please use one of the following: string|integer|double|bignum|null|array|set|map|attrib|push|verbatim|true|false"))
	}
}

func boolean(b bool) *messages.Reply {
	return &messages.Reply{Value: &messages.Reply_Boolean{Boolean: b}}
}

// leadingFloat is C's strtod of s, without its hexadecimal, infinity and
// NaN forms: the decimal number s starts with (after spaces), 0 if none.
func leadingFloat(s string) float64 {
	m := decimalPrefix.FindString(strings.TrimLeft(s, " \t\n\v\f\r"))
	f, _ := strconv.ParseFloat(m, 64) // 0 for ""; ±Inf past float64's range
	return f
}

var decimalPrefix = regexp.MustCompile(`^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?`)

// atoi is C's atoi: the integer the argument starts with, 0 if none.
func atoi(b []byte) int64 {
	s := strings.TrimLeft(string(b), " \t\n\v\f\r")
	end := 0
	if end < len(s) && (s[end] == '-' || s[end] == '+') {
		end++
	}
	for end < len(s) && s[end] >= '0' && s[end] <= '9' {
		end++
	}
	n, _ := strconv.ParseInt(s[:end], 10, 32)
	return n
}

// role answers ROLE as a Redis master without replicas does: ["master", 0,
// []]. A coppice node replicates through Raft, not Redis's replication: no
// Redis replica follows it, and it follows none.
func (c *conn) role(args [][]byte) {
	if len(args) != 1 {
		c.reply(arityError("role"))
		return
	}
	c.reply(array(bulkString("master"), integer(0), array()))
}

// lastSave is LASTSAVE's time: the node's latest Raft snapshot of a shard
// it holds, where the node tells it (Config.LastSave), else when the port
// opened (every write is on disk once it is acknowledged: see SAVE).
func (s *Server) lastSave() int64 {
	if s.cfg.LastSave != nil {
		if t := s.cfg.LastSave(); !t.IsZero() {
			return t.Unix()
		}
	}
	return s.started.Unix()
}

// persistence answers SAVE, BGSAVE [SCHEDULE] and BGREWRITEAOF as Redis
// does, and does nothing: a coppice node has no RDB file or AOF to write.
// Every write is in its shard's Raft log, synced to disk before it is
// acknowledged, and applied to Pebble; each shard snapshots (and compacts
// its log) on its own schedule. So once a write is acknowledged it is as
// saved as SAVE would make it, and there is no AOF to rewrite.
func (c *conn) persistence(name string, args [][]byte) {
	switch name {
	case "save", "bgrewriteaof":
		if len(args) != 1 {
			c.reply(arityError(name))
			return
		}
		if name == "save" {
			c.reply(replyOK)
		} else {
			c.reply(status("Background append only file rewriting started"))
		}
	case "bgsave":
		if len(args) > 2 || (len(args) == 2 && !strings.EqualFold(string(args[1]), "schedule")) {
			c.reply(errorf("ERR syntax error"))
			return
		}
		c.reply(status("Background saving started"))
	}
}

// pfSelfTest answers PFSELFTEST: kv's HyperLogLog checks, Redis's.
func (c *conn) pfSelfTest(args [][]byte) {
	if r := kv.CheckArity(args); r != nil {
		c.reply(r)
		return
	}
	if failed := kv.HLLSelfTest(); failed != "" {
		c.reply(errorf(failed))
		return
	}
	c.reply(replyOK)
}
