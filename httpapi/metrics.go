package httpapi

import (
	"context"
	"strconv"
	"strings"

	"github.com/coppice-kv/coppice/actors"
	"github.com/coppice-kv/coppice/messages"
	"github.com/coppice-kv/coppice/server"
	"github.com/coppice-kv/coppice/storage"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// newRegistry registers the process and Go collectors, the per-shard
// gauges (read at scrape time) and the supervisor event counter.
func newRegistry(s *Server) (*prometheus.Registry, *prometheus.CounterVec) {
	reg := prometheus.NewRegistry()
	events := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "coppice_supervisor_events_total",
		Help: "Supervisor events (messages.SupervisorEvent) by kind, since the HTTP worker started.",
	}, []string{"kind"})
	for k := range messages.EventKind_name {
		if kind := messages.EventKind(k); kind != messages.EventKind_EVENT_KIND_UNSPECIFIED {
			events.WithLabelValues(eventKind(kind))
		}
	}
	reg.MustRegister(
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector(),
		events,
		&shardCollector{s: s},
	)
	if s.cfg.RaftLog != nil {
		reg.MustRegister(raftLogCollector(s.cfg.RaftLog))
	}
	if s.cfg.SnapshotThrottle != nil {
		reg.MustRegister(throttleCollector(s.cfg.SnapshotThrottle))
	}
	if s.cfg.Heartbeats != nil {
		reg.MustRegister(heartbeatCollector(s.cfg.Heartbeats))
	}
	if s.cfg.Stores != nil {
		reg.MustRegister(storesCollector(s.cfg.Stores))
	}
	if s.cfg.DataDir != "" {
		reg.MustRegister(diskCollector(s.cfg.DataDir))
	}
	if s.cfg.Clients != nil {
		reg.MustRegister(clientCollector(s.cfg.Clients))
	}
	return reg, events
}

// eventKind is the label of an event kind: "child_exited".
func eventKind(k messages.EventKind) string { return strings.ToLower(k.String()) }

var (
	shardLabels    = []string{"shard"}
	descShardUp    = prometheus.NewDesc("coppice_shard_up", "1 if the shard's Raft actor answered the status request of this scrape.", shardLabels, nil)
	descApplied    = prometheus.NewDesc("coppice_shard_applied_index", "Index of the last Raft entry the shard's state machine applied.", shardLabels, nil)
	descCommit     = prometheus.NewDesc("coppice_shard_commit_index", "The shard's Raft commit index as this node knows it.", shardLabels, nil)
	descLast       = prometheus.NewDesc("coppice_shard_last_index", "Index of the last entry in the shard's Raft log on this node.", shardLabels, nil)
	descTerm       = prometheus.NewDesc("coppice_shard_term", "The shard's current Raft term on this node.", shardLabels, nil)
	descIsLeader   = prometheus.NewDesc("coppice_shard_is_leader", "1 if this node leads the shard.", shardLabels, nil)
	descRecvDone   = prometheus.NewDesc("coppice_shard_snapshot_receive_bytes", "File bytes of the snapshot (a sync's checkpoint copy) this node is receiving for the shard; 0 when none.", shardLabels, nil)
	descRecvTotal  = prometheus.NewDesc("coppice_shard_snapshot_receive_total_bytes", "Size of the snapshot this node is receiving for the shard; 0 when none.", shardLabels, nil)
	descCacheHits  = prometheus.NewDesc("coppice_shard_cache_hits_total", "Reads of the shard's store (clients' and its state machine's) its read cache answered.", shardLabels, nil)
	descCacheMiss  = prometheus.NewDesc("coppice_shard_cache_misses_total", "Reads of the shard's store its read cache did not answer (they read Pebble).", shardLabels, nil)
	descCacheBytes = prometheus.NewDesc("coppice_shard_cache_bytes", "Bytes the shard's read cache holds (--cache-mib splits its size between the shards).", shardLabels, nil)
	descFilterSkip = prometheus.NewDesc("coppice_shard_filter_skips_total", "Reads of the shard's store its key filter answered as absent without reading Pebble.", shardLabels, nil)
	descFilterUp   = prometheus.NewDesc("coppice_shard_filter_ready", "1 once the shard's key filter is built; 0 while it reads the store, or when that failed (filter_error in /v1/status).", shardLabels, nil)
	descSilent     = prometheus.NewDesc("coppice_shard_member_silent_seconds", "On the shard's leader, for each other member: time since it last answered the leader. Membership changes do not count on a voter silent for 2s or more.", []string{"shard", "node"}, nil)
	shardDescs     = []*prometheus.Desc{descShardUp, descApplied, descCommit, descLast, descTerm, descIsLeader, descRecvDone, descRecvTotal,
		descCacheHits, descCacheMiss, descCacheBytes, descFilterSkip, descFilterUp, descSilent}
	shardGaugeType = prometheus.GaugeValue
)

// shardCollector asks every shard for its status at scrape time.
type shardCollector struct{ s *Server }

func (c *shardCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range shardDescs {
		ch <- d
	}
}

func (c *shardCollector) Collect(ch chan<- prometheus.Metric) {
	sys := c.s.system()
	if sys == nil || c.s.cfg.Info.Shards < 1 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.s.cfg.Timeout)
	defer cancel()
	replies, err := actors.ShardStatuses(ctx, sys, c.s.cfg.Info.Shards)
	if err != nil {
		return
	}
	for i, r := range replies {
		shard := strconv.Itoa(i)
		if r.Err != nil {
			ch <- prometheus.MustNewConstMetric(descShardUp, shardGaugeType, 0, shard)
			continue
		}
		st := r.Reply
		ch <- prometheus.MustNewConstMetric(descShardUp, shardGaugeType, 1, shard)
		ch <- prometheus.MustNewConstMetric(descApplied, shardGaugeType, float64(st.AppliedIndex), shard)
		ch <- prometheus.MustNewConstMetric(descCommit, shardGaugeType, float64(st.CommitIndex), shard)
		ch <- prometheus.MustNewConstMetric(descLast, shardGaugeType, float64(st.LastIndex), shard)
		ch <- prometheus.MustNewConstMetric(descTerm, shardGaugeType, float64(st.Term), shard)
		ch <- prometheus.MustNewConstMetric(descIsLeader, shardGaugeType, boolGauge(strings.EqualFold(st.State, "leader")), shard)
		ch <- prometheus.MustNewConstMetric(descRecvDone, shardGaugeType, float64(st.SnapshotBytesDone), shard)
		ch <- prometheus.MustNewConstMetric(descRecvTotal, shardGaugeType, float64(st.SnapshotBytesTotal), shard)
		ch <- prometheus.MustNewConstMetric(descCacheHits, prometheus.CounterValue, float64(st.CacheHits), shard)
		ch <- prometheus.MustNewConstMetric(descCacheMiss, prometheus.CounterValue, float64(st.CacheMisses), shard)
		ch <- prometheus.MustNewConstMetric(descCacheBytes, shardGaugeType, float64(st.CacheBytes), shard)
		ch <- prometheus.MustNewConstMetric(descFilterSkip, prometheus.CounterValue, float64(st.FilterSkips), shard)
		ch <- prometheus.MustNewConstMetric(descFilterUp, shardGaugeType, boolGauge(st.FilterReady), shard)
		for _, srv := range st.Configuration {
			if srv.SilentMs != nil {
				ch <- prometheus.MustNewConstMetric(descSilent, shardGaugeType, float64(*srv.SilentMs)/1000, shard, srv.Id)
			}
		}
	}
}

var (
	descLogSyncs   = prometheus.NewDesc("coppice_raftlog_syncs_total", "Writes of the Raft log store's journal, each followed by an fdatasync (one for every group's appends waiting then: group commit).", nil, nil)
	descLogRecords = prometheus.NewDesc("coppice_raftlog_records_total", "Writes to the Raft log store (appends, stable values) the journal's syncs made durable; records/syncs is the group commit's batching.", nil, nil)
	descLogBytes   = prometheus.NewDesc("coppice_raftlog_synced_bytes_total", "Bytes the journal wrote and synced.", nil, nil)
	descLogSync    = prometheus.NewDesc("coppice_raftlog_sync_seconds", "Time of one journal write and its fdatasync: what every acknowledged write waits for.", nil, nil)
)

// statsCollector exports, at scrape time, what read returns (nothing when
// it says false) as the metrics emit makes of it, all among descs.
type statsCollector[T any] struct {
	descs []*prometheus.Desc
	read  func() (T, bool)
	emit  func(T, chan<- prometheus.Metric)
}

func (c statsCollector[T]) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c statsCollector[T]) Collect(ch chan<- prometheus.Metric) {
	if st, ok := c.read(); ok {
		c.emit(st, ch)
	}
}

var (
	descDiskFree  = prometheus.NewDesc("coppice_data_dir_free_bytes", "Bytes free to the node on the file system of its data dir: a store that cannot write stops the node.", nil, nil)
	descDiskTotal = prometheus.NewDesc("coppice_data_dir_size_bytes", "Total bytes of the file system of the node's data dir.", nil, nil)
)

// diskCollector exports the free and total bytes of dir's file system
// (nothing where storage.DiskSpace cannot tell).
func diskCollector(dir string) prometheus.Collector {
	type space struct{ free, total uint64 }
	return statsCollector[space]{
		descs: []*prometheus.Desc{descDiskFree, descDiskTotal},
		read: func() (space, bool) {
			free, total, err := storage.DiskSpace(dir)
			return space{free, total}, err == nil
		},
		emit: func(s space, ch chan<- prometheus.Metric) {
			ch <- prometheus.MustNewConstMetric(descDiskFree, prometheus.GaugeValue, float64(s.free))
			ch <- prometheus.MustNewConstMetric(descDiskTotal, prometheus.GaugeValue, float64(s.total))
		},
	}
}

// raftLogCollector exports the Raft log store's counters.
func raftLogCollector(read func() (storage.RaftLogStats, bool)) prometheus.Collector {
	return statsCollector[storage.RaftLogStats]{
		descs: []*prometheus.Desc{descLogSyncs, descLogRecords, descLogBytes, descLogSync},
		read:  read,
		emit: func(st storage.RaftLogStats, ch chan<- prometheus.Metric) {
			ch <- prometheus.MustNewConstMetric(descLogSyncs, prometheus.CounterValue, float64(st.Syncs))
			ch <- prometheus.MustNewConstMetric(descLogRecords, prometheus.CounterValue, float64(st.Records))
			ch <- prometheus.MustNewConstMetric(descLogBytes, prometheus.CounterValue, float64(st.Bytes))
			buckets := make(map[float64]uint64, len(storage.SyncBucketBounds))
			var cum uint64
			for i, le := range storage.SyncBucketBounds {
				cum += st.SyncBuckets[i]
				buckets[le] = cum
			}
			ch <- prometheus.MustNewConstHistogram(descLogSync, st.Syncs, st.SyncSeconds, buckets)
		},
	}
}

var (
	descCompRunning = prometheus.NewDesc("coppice_shard_compactions_running", "Pebble compactions the node's shard stores run now (all of them share one scheduler).", nil, nil)
	descCompLimit   = prometheus.NewDesc("coppice_shard_compactions_limit", "Compactions the node's shard stores may run at once.", nil, nil)
	descCompWaiting = prometheus.NewDesc("coppice_shard_compactions_waiting_stores", "Shard stores waiting to start a compaction: the node's limit reached, or their own.", nil, nil)
	descCompStarted = prometheus.NewDesc("coppice_shard_compactions_started_total", "Compactions the node's shard stores started through the scheduler.", nil, nil)
	descMemTable    = prometheus.NewDesc("coppice_shard_memtable_size_bytes", "Each shard store's memtable size: its share of --memtable-mib.", nil, nil)
	descBCSize      = prometheus.NewDesc("coppice_shard_block_cache_size_bytes", "Capacity of the Pebble block cache the node's shard stores share (--block-cache-mib).", nil, nil)
	descBCBytes     = prometheus.NewDesc("coppice_shard_block_cache_bytes", "Bytes the shared block cache holds.", nil, nil)
	descScrubPasses = prometheus.NewDesc("coppice_shard_scrub_passes_total", "Scrubs of every shard store of the node ended (--scrub-interval): each reads every table back from the disk and checks its blocks' checksums.", nil, nil)
	descScrubTables = prometheus.NewDesc("coppice_shard_scrub_tables_total", "Tables the scrubs checked.", nil, nil)
	descScrubBytes  = prometheus.NewDesc("coppice_shard_scrub_bytes_total", "Bytes the scrubs read back (at most --scrub-rate-mib a second).", nil, nil)
	descScrubLast   = prometheus.NewDesc("coppice_shard_scrub_last_pass_seconds", "When the last scrub of every shard store ended, in Unix seconds; 0: none yet.", nil, nil)
	descRebuilds    = prometheus.NewDesc("coppice_shard_store_rebuilds_total", "Shard stores this node found damaged (on-disk corruption) and emptied, for their groups to send the data back, since it started.", nil, nil)
	descBCHits      = prometheus.NewDesc("coppice_shard_block_cache_hits_total", "Lookups the shared block cache answered.", nil, nil)
	descBCMisses    = prometheus.NewDesc("coppice_shard_block_cache_misses_total", "Lookups the shared block cache missed (read from the files).", nil, nil)
)

// storesCollector exports what the shards' stores share: the compaction
// scheduler's counters, the memtable size, the block cache's figures.
func storesCollector(read func() (storage.StoresStats, bool)) prometheus.Collector {
	return statsCollector[storage.StoresStats]{
		descs: []*prometheus.Desc{descCompRunning, descCompLimit, descCompWaiting, descCompStarted, descMemTable, descBCSize, descBCBytes, descBCHits, descBCMisses, descRebuilds, descScrubPasses, descScrubTables, descScrubBytes, descScrubLast},
		read:  read,
		emit: func(st storage.StoresStats, ch chan<- prometheus.Metric) {
			ch <- prometheus.MustNewConstMetric(descCompRunning, prometheus.GaugeValue, float64(st.Running))
			ch <- prometheus.MustNewConstMetric(descCompLimit, prometheus.GaugeValue, float64(st.Limit))
			ch <- prometheus.MustNewConstMetric(descCompWaiting, prometheus.GaugeValue, float64(st.Waiting))
			ch <- prometheus.MustNewConstMetric(descCompStarted, prometheus.CounterValue, float64(st.Started))
			ch <- prometheus.MustNewConstMetric(descMemTable, prometheus.GaugeValue, float64(st.MemTableSize))
			ch <- prometheus.MustNewConstMetric(descBCSize, prometheus.GaugeValue, float64(st.BlockCacheSize))
			ch <- prometheus.MustNewConstMetric(descBCBytes, prometheus.GaugeValue, float64(st.BlockCacheBytes))
			ch <- prometheus.MustNewConstMetric(descBCHits, prometheus.CounterValue, float64(st.BlockCacheHits))
			ch <- prometheus.MustNewConstMetric(descBCMisses, prometheus.CounterValue, float64(st.BlockCacheMisses))
			ch <- prometheus.MustNewConstMetric(descRebuilds, prometheus.CounterValue, float64(st.Rebuilds))
			ch <- prometheus.MustNewConstMetric(descScrubPasses, prometheus.CounterValue, float64(st.ScrubPasses))
			ch <- prometheus.MustNewConstMetric(descScrubTables, prometheus.CounterValue, float64(st.ScrubTables))
			ch <- prometheus.MustNewConstMetric(descScrubBytes, prometheus.CounterValue, float64(st.ScrubBytes))
			ch <- prometheus.MustNewConstMetric(descScrubLast, prometheus.GaugeValue, float64(st.ScrubLast))
		},
	}
}

var (
	descBeatBatches = prometheus.NewDesc("coppice_raft_heartbeat_batches_total", "Requests carrying the periodic Raft heartbeats of every group this node leads to one follower node.", nil, nil)
	descBeats       = prometheus.NewDesc("coppice_raft_heartbeats_batched_total", "Raft heartbeats those requests carried.", nil, nil)
	descBeatFailed  = prometheus.NewDesc("coppice_raft_heartbeat_batch_failures_total", "Requests of heartbeats that got no answer: the follower node down or unreachable, or too old to take them together (its heartbeats then go one by one for a minute).", nil, nil)
)

// heartbeatCollector exports the heartbeat batching's counters.
func heartbeatCollector(read func() (actors.HeartbeatStats, bool)) prometheus.Collector {
	return statsCollector[actors.HeartbeatStats]{
		descs: []*prometheus.Desc{descBeatBatches, descBeats, descBeatFailed},
		read:  read,
		emit: func(st actors.HeartbeatStats, ch chan<- prometheus.Metric) {
			ch <- prometheus.MustNewConstMetric(descBeatBatches, prometheus.CounterValue, float64(st.Batches))
			ch <- prometheus.MustNewConstMetric(descBeats, prometheus.CounterValue, float64(st.Beats))
			ch <- prometheus.MustNewConstMetric(descBeatFailed, prometheus.CounterValue, float64(st.Failed))
		},
	}
}

var (
	descThrottleBytes = prometheus.NewDesc("coppice_snapshot_stream_bytes_total", "Bytes of snapshots this node streamed, sent and received, through its throttle (--snapshot-yield, --snapshot-rate-mib).", nil, nil)
	descThrottleSlept = prometheus.NewDesc("coppice_snapshot_throttled_seconds_total", "Time the node's snapshot streams waited on its throttle.", nil, nil)
	descThrottleRate  = prometheus.NewDesc("coppice_snapshot_rate_limit_bytes", "The snapshot streams' limit now, bytes a second, sent and received together (0: none).", nil, nil)
)

// throttleCollector exports the snapshot throttle's counters.
func throttleCollector(read func() (storage.ThrottleStats, bool)) prometheus.Collector {
	return statsCollector[storage.ThrottleStats]{
		descs: []*prometheus.Desc{descThrottleBytes, descThrottleSlept, descThrottleRate},
		read:  read,
		emit: func(st storage.ThrottleStats, ch chan<- prometheus.Metric) {
			ch <- prometheus.MustNewConstMetric(descThrottleBytes, prometheus.CounterValue, float64(st.Bytes))
			ch <- prometheus.MustNewConstMetric(descThrottleSlept, prometheus.CounterValue, st.Slept.Seconds())
			ch <- prometheus.MustNewConstMetric(descThrottleRate, prometheus.GaugeValue, st.Rate)
		},
	}
}

var (
	descClientsOpen     = prometheus.NewDesc("coppice_client_connections", "Client connections open now.", nil, nil)
	descClientsTotal    = prometheus.NewDesc("coppice_client_connections_received_total", "Client connections accepted.", nil, nil)
	descClientsRejected = prometheus.NewDesc("coppice_client_connections_rejected_total", "Client connections refused at the limit of clients (Redis's maxclients).", nil, nil)
	descCommands        = prometheus.NewDesc("coppice_client_commands_total", "Commands clients sent this node.", nil, nil)
	descErrorReplies    = prometheus.NewDesc("coppice_client_error_replies_total", "Error replies sent to clients, by prefix (Redis's errorstats): TRYAGAIN and AMBIGUOUS come with leader changes, see the README.", []string{"prefix"}, nil)
	descCommandSeconds  = prometheus.NewDesc("coppice_client_command_duration_seconds", "Time from reading a key-value command to its reply being ready, reads and writes (those that may change data) apart.", []string{"kind"}, nil)
	descCmdCalls        = prometheus.NewDesc("coppice_client_command_calls_total", "Calls that ran of each command, for this node's clients and their scripts (Redis's commandstats: a subcommand apart, as config|get).", []string{"command"}, nil)
	descCmdFailed       = prometheus.NewDesc("coppice_client_command_failed_total", "Calls of each command that ran and answered an error.", []string{"command"}, nil)
	descCmdRejected     = prometheus.NewDesc("coppice_client_command_rejected_total", "Calls of each command refused before they ran: arity, authentication, ACL rules, a leader change's TRYAGAIN...", []string{"command"}, nil)
	descCmdTime         = prometheus.NewDesc("coppice_client_command_seconds_total", "Time of each command's calls, summed: a key-value command's from its read to its reply.", []string{"command"}, nil)
	descPubMessages     = prometheus.NewDesc("coppice_pubsub_messages_total", "Messages offered to this node's subscribers: published here (PUBLISH, SPUBLISH) or on another node.", nil, nil)
	descPubDeliveries   = prometheus.NewDesc("coppice_pubsub_deliveries_total", "Messages queued to this node's subscribers (one per subscriber reached).", nil, nil)
	descPubSlow         = prometheus.NewDesc("coppice_pubsub_slow_subscribers_total", "Subscribers disconnected for not reading their messages (over 32 MiB queued, or 8 MiB for 60 s).", nil, nil)
	descUnlogged        = prometheus.NewDesc("coppice_writes_unlogged_total", "Writes this node answered as their shard's leader without the shard's log, for changing nothing (an LPOP of an empty list, a SET NX of a key that exists...).", nil, nil)
)

// clientCollector exports the client port's counters.
func clientCollector(read func() (server.StatsSnapshot, bool)) prometheus.Collector {
	return statsCollector[server.StatsSnapshot]{
		descs: []*prometheus.Desc{descClientsOpen, descClientsTotal, descClientsRejected, descCommands, descErrorReplies, descCommandSeconds,
			descCmdCalls, descCmdFailed, descCmdRejected, descCmdTime, descPubMessages, descPubDeliveries, descPubSlow, descUnlogged},
		read: read,
		emit: func(st server.StatsSnapshot, ch chan<- prometheus.Metric) {
			ch <- prometheus.MustNewConstMetric(descClientsOpen, prometheus.GaugeValue, float64(st.Open))
			ch <- prometheus.MustNewConstMetric(descClientsTotal, prometheus.CounterValue, float64(st.Connections))
			ch <- prometheus.MustNewConstMetric(descClientsRejected, prometheus.CounterValue, float64(st.Rejected))
			ch <- prometheus.MustNewConstMetric(descCommands, prometheus.CounterValue, float64(st.Commands))
			ch <- prometheus.MustNewConstMetric(descPubMessages, prometheus.CounterValue, float64(st.Published))
			ch <- prometheus.MustNewConstMetric(descPubDeliveries, prometheus.CounterValue, float64(st.Delivered))
			ch <- prometheus.MustNewConstMetric(descPubSlow, prometheus.CounterValue, float64(st.SlowSubscribers))
			ch <- prometheus.MustNewConstMetric(descUnlogged, prometheus.CounterValue, float64(st.Unlogged))
			for prefix, n := range st.ErrorReplies {
				ch <- prometheus.MustNewConstMetric(descErrorReplies, prometheus.CounterValue, float64(n), prefix)
			}
			for name, cs := range st.ByCommand {
				ch <- prometheus.MustNewConstMetric(descCmdCalls, prometheus.CounterValue, float64(cs.Calls), name)
				ch <- prometheus.MustNewConstMetric(descCmdFailed, prometheus.CounterValue, float64(cs.Failed), name)
				ch <- prometheus.MustNewConstMetric(descCmdRejected, prometheus.CounterValue, float64(cs.Rejected), name)
				ch <- prometheus.MustNewConstMetric(descCmdTime, prometheus.CounterValue, cs.Time.Seconds(), name)
			}
			for kind, l := range map[string]server.LatencySnapshot{"read": st.Reads, "write": st.Writes} {
				buckets := make(map[float64]uint64, len(server.LatencyBuckets))
				for i, le := range server.LatencyBuckets {
					buckets[le] = l.Cumulative[i]
				}
				ch <- prometheus.MustNewConstHistogram(descCommandSeconds, l.Count, l.Sum.Seconds(), buckets, kind)
			}
		},
	}
}

// boolGauge is a yes/no gauge's value: 1 or 0.
func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
