package server

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/coppice-kv/coppice/kv"
	"github.com/coppice-kv/coppice/messages"
)

// redisVersion is the Redis version the port reports: the one whose
// replies it reproduces.
const redisVersion = "7.0.15"

// info answers INFO [section ...].
func (s *Server) info(args [][]byte) *messages.Reply {
	want := map[string]bool{}
	for _, a := range args[1:] {
		want[string(bytes.ToLower(a))] = true
	}
	all := len(want) == 0 || want["all"] || want["everything"] || want["default"]
	var b strings.Builder
	section := func(name string, lines ...string) {
		if !all && !want[name] {
			return
		}
		if b.Len() > 0 {
			b.WriteString("\r\n")
		}
		fmt.Fprintf(&b, "# %s\r\n", strings.ToUpper(name[:1])+name[1:])
		for _, l := range lines {
			b.WriteString(l + "\r\n")
		}
	}
	host, _ := os.Hostname()
	up := time.Since(s.started)
	section("server",
		"redis_version:"+redisVersion,
		"coppice_version:"+s.cfg.Version,
		"redis_mode:standalone",
		"os:"+runtime.GOOS,
		"arch_bits:64",
		fmt.Sprintf("process_id:%d", os.Getpid()),
		"tcp_port:"+portOf(s.Addr().String()),
		fmt.Sprintf("uptime_in_seconds:%d", int64(up.Seconds())),
		"executable:coppice",
		"node_name:"+s.cfg.NodeName,
		"hostname:"+host,
	)
	section("clients", fmt.Sprintf("connected_clients:%d", s.Clients()), fmt.Sprintf("maxclients:%d", s.cfg.MaxClients))
	section("persistence", "loading:0", "aof_enabled:1", "rdb_bgsave_in_progress:0", fmt.Sprintf("rdb_last_save_time:%d", s.lastSave()))
	st := s.stats.sinceReset()
	var errReplies uint64
	var errLines []string
	for _, prefix := range sortedKeys(st.ErrorReplies) {
		errReplies += st.ErrorReplies[prefix]
		errLines = append(errLines, fmt.Sprintf("errorstat_%s:count=%d", prefix, st.ErrorReplies[prefix]))
	}
	hits, misses, expired := kv.KeyspaceStats()
	section("stats",
		fmt.Sprintf("total_connections_received:%d", st.Connections),
		fmt.Sprintf("total_commands_processed:%d", st.Commands),
		fmt.Sprintf("rejected_connections:%d", st.Rejected),
		fmt.Sprintf("expired_keys:%d", expired),
		"evicted_keys:0",
		fmt.Sprintf("keyspace_hits:%d", hits),
		fmt.Sprintf("keyspace_misses:%d", misses),
		fmt.Sprintf("total_error_replies:%d", errReplies),
		fmt.Sprintf("pubsub_channels:%d", s.hub.count(channelSub)),
		fmt.Sprintf("pubsub_patterns:%d", s.hub.count(patternSub)),
		fmt.Sprintf("pubsubshard_channels:%d", s.hub.count(shardSub)),
	)
	section("replication", "role:master", "connected_slaves:0")
	section("errorstats", errLines...)
	if want["latencystats"] || want["all"] || want["everything"] { // not in the default INFO, as in Redis
		section("latencystats", s.latencyStats()...)
	}
	if want["commandstats"] || want["all"] || want["everything"] { // not in the default INFO, as in Redis
		var lines []string
		for _, name := range sortedKeys(st.ByCommand) {
			cs := st.ByCommand[name]
			usec := cs.Time.Microseconds()
			lines = append(lines, fmt.Sprintf("cmdstat_%s:calls=%d,usec=%d,usec_per_call=%.2f,rejected_calls=0,failed_calls=%d",
				name, cs.Calls, usec, float64(usec)/float64(cs.Calls), cs.Failed))
		}
		section("commandstats", lines...)
	}
	if s.cfg.Cluster != nil {
		section("cluster", "cluster_enabled:1")
	}
	if all || want["keyspace"] {
		// Redis's avg_ttl is an estimate its expiry cycle keeps; this one
		// is the average of every key's time to live, read now.
		var keys, expires, ttl int64
		for sh := 0; sh < s.backend.Shards(); sh++ {
			r := s.backend.Read(sh, &messages.Command{Args: [][]byte{[]byte(kv.KeyspaceInfoName)}, NowMs: nowMs()}).Wait()
			if items := r.GetArray().GetItems(); len(items) == 3 {
				keys += items[0].GetInteger()
				expires += items[1].GetInteger()
				ttl += items[2].GetInteger()
			}
		}
		avg := int64(0)
		if expires > 0 {
			avg = ttl / expires
		}
		if keys > 0 {
			section("keyspace", fmt.Sprintf("db0:keys=%d,expires=%d,avg_ttl=%d", keys, expires, avg))
		} else {
			section("keyspace")
		}
	}
	return verbatim(b.String())
}
