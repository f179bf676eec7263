package main

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coppice-kv/coppice/internal/tlsfiles"
	"github.com/coppice-kv/coppice/kv"
	"github.com/coppice-kv/coppice/server"
	"github.com/coppice-kv/coppice/storage"
	"github.com/coppice-kv/coppice/transport"
)

// Config is the node binary's configuration, validated.
type Config struct {
	Name        string
	DataDir     string
	Shards      int
	ClientAddr  string
	ClusterAddr string
	// TLS on the client port (files, and the client certificate policy)
	// and mutual TLS on the cluster port.
	TLSCertFile        string
	TLSKeyFile         string
	TLSCAFile          string
	TLSAuthClients     string
	ClusterTLSCertFile string
	ClusterTLSKeyFile  string
	ClusterTLSCAFile   string
	ClusterTLSNames    bool
	AdvertiseAddr      string
	GossipAddr         string
	HTTPAddr           string
	HTTPToken          string
	HTTPReadToken      string
	HTTPTLSCertFile    string
	HTTPTLSKeyFile     string
	Join               []string
	BootstrapExpect    int
	Role               string
	RequirePass        string
	LogFormat          string
	LogLevel           slog.Level
	StopTimeout        time.Duration
	PrintTree          bool
	RemoveDelay        time.Duration
	SyncRetries        int
	SyncParallel       int
	GossipKey          []byte
	KeyringFile        string
	GossipFast         bool
	Pprof              bool
	// Snapshot policy of the shards (0: the defaults).
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	TrailingLogs      uint64
	CacheMiB          uint64
	// Compactions bounds the Pebble compactions the node's shard stores
	// run at once (0: max(4, GOMAXPROCS)).
	Compactions uint64
	// MemTableMiB and BlockCacheMiB size the shard stores' memtables and
	// their shared block cache, all shards together.
	MemTableMiB, BlockCacheMiB uint64
	// LogCacheMiB bounds the recent Raft log entries kept in memory.
	LogCacheMiB uint64
	// GCMinHeapMiB is the heap the Go collector lets grow before it runs
	// while the live heap is small (0: Go's rule alone).
	GCMinHeapMiB uint64
	// ScrubInterval is how often the node reads its stores back
	// and checks their checksums (0: never); ScrubRateMiB bounds the
	// read (0: no limit).
	ScrubInterval time.Duration
	ScrubRateMiB  uint64
	// SnapshotRateMiB bounds the snapshot bytes a node streams per
	// second, sent and received together (0: no limit).
	SnapshotRateMiB uint64
	// SnapshotYield makes that rate follow the Raft log syncs.
	SnapshotYield bool
	// MaxBulkLen is the longest argument a client may send (Redis's
	// proto-max-bulk-len).
	MaxBulkLen uint64
	// MaxWriteMiB bounds a write command's bytes.
	MaxWriteMiB uint64
	// MinFreeDiskMiB is the data dir's free space below which the
	// cluster refuses writes that may add data (0: no floor).
	MinFreeDiskMiB uint64
	// SlowlogSlowerThanUs and SlowlogMaxLen are Redis's
	// slowlog-log-slower-than (microseconds, -1: off) and slowlog-max-len.
	SlowlogSlowerThanUs int64
	SlowlogMaxLen       uint64
	// NotifyKeyspaceEvents is Redis's notify-keyspace-events (CONFIG SET
	// changes it at run time, on one node).
	NotifyKeyspaceEvents kv.Classes
	// ConfigFile is the file the configuration was read from, if any.
	ConfigFile string

	// Loaded by check from the files above (nil: no TLS).
	clientTLS  *tls.Config
	clusterTLS *transport.MutualTLS
	httpTLS    *tls.Config
}

// text sets a plain string setting: field picks it in the Config.
func text(field func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error { *field(c) = v; return nil }
}

// token is the setter of a bearer token (checkToken).
func token(field func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error {
		if err := checkToken(v); err != nil {
			return err
		}
		*field(c) = v
		return nil
	}
}

// boolean is the setter of a true/false setting.
func boolean(field func(*Config) *bool) func(*Config, string) error {
	return func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errors.New("want true or false")
		}
		*field(c) = b
		return nil
	}
}

// Limits and choices of the options.
const (
	maxShards  = 1024
	envPrefix  = "COPPICE_"
	configFlag = "config"
)

var roles = []string{"voter", "replica", "readonly"}

// kind is how an option's value is written in the config file.
type kind int

const (
	kindString kind = iota
	kindInt
	kindBool
	kindList
	kindDuration
)

// option is one setting: a flag --name, its environment twin
// COPPICE_NAME, and the config file key "name". set parses and checks a
// value; its error says what is wanted ("want 1..1024"), and the loader
// names the value and where it came from.
type option struct {
	name  string
	kind  kind
	def   func() string
	usage string
	set   func(c *Config, v string) error
	// secret: an error about the value does not show it.
	secret bool
}

func (o *option) env() string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(o.name, "-", "_"))
}

var options = []*option{
	{name: "name", def: defaultName, usage: "node name: 1-63 of [A-Za-z0-9._-], starting with a letter or digit",
		set: func(c *Config, v string) error {
			if storage.ValidName(v) != nil {
				return errors.New("want 1-63 of [A-Za-z0-9._-], starting with a letter or digit")
			}
			c.Name = v
			return nil
		}},
	{name: "data-dir", def: constant("./data"), usage: "data directory",
		set: func(c *Config, v string) error {
			if v == "" {
				return errors.New("want a directory")
			}
			c.DataDir = v
			return nil
		}},
	{name: "shards", kind: kindInt, def: constant("4"), usage: "number of shards, 1..1024; fixed when the data directory is made",
		set: func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > maxShards {
				return fmt.Errorf("want 1..%d", maxShards)
			}
			c.Shards = n
			return nil
		}},
	{name: "client-addr", def: constant("127.0.0.1:7379"), usage: "RESP client listen address",
		set: func(c *Config, v string) error { return listenAddr(&c.ClientAddr, v) }},
	{name: "cluster-addr", def: constant("127.0.0.1:7380"), usage: "cluster (Raft) listen address",
		set: func(c *Config, v string) error { return listenAddr(&c.ClusterAddr, v) }},
	{name: "tls-cert-file", def: constant(""), usage: "PEM certificate of the client port: with --tls-key-file, clients must use TLS",
		set: text(func(c *Config) *string { return &c.TLSCertFile })},
	{name: "tls-key-file", def: constant(""), usage: "PEM private key of --tls-cert-file",
		set: text(func(c *Config) *string { return &c.TLSKeyFile })},
	{name: "tls-ca-file", def: constant(""), usage: "PEM CA certificates that client certificates must chain to (empty: clients need none)",
		set: text(func(c *Config) *string { return &c.TLSCAFile })},
	{name: "tls-auth-clients", def: constant(server.AuthClientsYes), usage: "with --tls-ca-file, whether clients must present a certificate: yes, optional or no",
		set: func(c *Config, v string) error {
			if v != server.AuthClientsYes && v != server.AuthClientsOptional && v != server.AuthClientsNo {
				return errors.New("want yes, optional or no")
			}
			c.TLSAuthClients = v
			return nil
		}},
	{name: "cluster-tls-cert-file", def: constant(""), usage: "PEM certificate this node presents on the cluster port (mutual TLS: with the key and CA files)",
		set: text(func(c *Config) *string { return &c.ClusterTLSCertFile })},
	{name: "cluster-tls-key-file", def: constant(""), usage: "PEM private key of --cluster-tls-cert-file",
		set: text(func(c *Config) *string { return &c.ClusterTLSKeyFile })},
	{name: "cluster-tls-ca-file", def: constant(""), usage: "PEM certificate of the cluster CA: a peer is a member if the CA signed its certificate",
		set: text(func(c *Config) *string { return &c.ClusterTLSCAFile })},
	{name: "cluster-tls-names", kind: kindBool, def: constant("false"), usage: "with cluster TLS, a peer's certificate must carry its node name as a DNS name (else any the CA signed will do)",
		set: boolean(func(c *Config) *bool { return &c.ClusterTLSNames })},
	{name: "advertise-addr", def: constant(""), usage: "cluster address peers dial (default: the cluster listener's)",
		set: func(c *Config, v string) error {
			if v == "" {
				c.AdvertiseAddr = ""
				return nil
			}
			return dialAddr(&c.AdvertiseAddr, v)
		}},
	{name: "gossip-addr", def: constant("127.0.0.1:7946"), usage: "gossip (serf) listen address",
		set: func(c *Config, v string) error { return listenAddr(&c.GossipAddr, v) }},
	{name: "http-addr", def: constant("127.0.0.1:7381"), usage: "HTTP listen address: /metrics, /healthz, /readyz, /v1/status and the operations (see --http-token)",
		set: func(c *Config, v string) error { return listenAddr(&c.HTTPAddr, v) }},
	{name: "http-token", def: constant(""), usage: "bearer token every HTTP request but /healthz and /readyz must carry (Authorization: Bearer TOKEN): the operations, status, metrics and profiler; 16 to 4096 of A-Z a-z 0-9 - . _ ~ + / = (empty: none); prefer the environment or the file to a flag",
		set: token(func(c *Config) *string { return &c.HTTPToken }), secret: true},
	{name: "http-read-token", def: constant(""), usage: "with --http-token, a second bearer token that may only read: GET of the status, nodes, checksums and metrics (for a scraper), not the operations or the profiler; same form; prefer the environment or the file to a flag",
		set: token(func(c *Config) *string { return &c.HTTPReadToken }), secret: true},
	{name: "http-tls-cert-file", def: constant(""), usage: "PEM certificate of the HTTP port: with --http-tls-key-file, it serves HTTPS only",
		set: text(func(c *Config) *string { return &c.HTTPTLSCertFile })},
	{name: "http-tls-key-file", def: constant(""), usage: "PEM private key of --http-tls-cert-file",
		set: text(func(c *Config) *string { return &c.HTTPTLSKeyFile })},
	{name: "join", kind: kindList, def: constant(""), usage: "comma-separated host:port gossip addresses of nodes to join (none: standalone)",
		set: func(c *Config, v string) error {
			c.Join = nil
			if v == "" {
				return nil
			}
			for _, a := range strings.Split(v, ",") {
				var addr string
				if err := dialAddr(&addr, strings.TrimSpace(a)); err != nil {
					return fmt.Errorf("%q: %w", a, err)
				}
				c.Join = append(c.Join, addr)
			}
			return nil
		}},
	{name: "bootstrap-expect", kind: kindInt, def: constant("0"), usage: "with --join, on a new data dir: found the cluster together with this many nodes, 2..1000, all given the same count and each other's gossip addresses (the first of them by name founds it, the others join it); a node that finds a cluster among them joins it instead, so a node whose data dir is lost never founds a second cluster when started again; 0: a node with --join only joins",
		set: func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || (n != 0 && (n < 2 || n > 1000)) {
				return errors.New("want 0 (none) or 2..1000: a node that founds alone is started without --join")
			}
			c.BootstrapExpect = n
			return nil
		}},
	{name: "role", def: constant("voter"), usage: "role when joining: voter, replica or readonly",
		set: func(c *Config, v string) error {
			if !slices.Contains(roles, v) {
				return fmt.Errorf("want %s", strings.Join(roles, ", "))
			}
			c.Role = v
			return nil
		}},
	{name: "remove-delay", kind: kindDuration, def: constant("60s"), usage: "how long a failed node stays a member before it is removed",
		set: func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return errors.New("want a positive duration such as 60s")
			}
			c.RemoveDelay = d
			return nil
		}},
	{name: "sync-retries", kind: kindInt, def: constant("3"), usage: "attempts at syncing one shard to a joining node, 1..100",
		set: func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 100 {
				return errors.New("want 1..100")
			}
			c.SyncRetries = n
			return nil
		}},
	{name: "sync-parallel", kind: kindInt, def: constant("4"), usage: "shard syncs the coordinator runs at once, 1..64",
		set: func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 64 {
				return errors.New("want 1..64")
			}
			c.SyncParallel = n
			return nil
		}},
	{name: "gossip-key", def: constant(""), usage: "gossip encryption key: base64 of 16, 24 or 32 bytes (empty: none); prefer the environment or the file",
		set: func(c *Config, v string) error {
			c.GossipKey = nil
			if v == "" {
				return nil
			}
			k, err := base64.StdEncoding.DecodeString(v)
			if err != nil || (len(k) != 16 && len(k) != 24 && len(k) != 32) {
				return errors.New("want base64 of 16, 24 or 32 bytes")
			}
			c.GossipKey = k
			return nil
		}, secret: true},
	{name: "keyring-file", def: constant(""), usage: "serf keyring file (JSON array of base64 keys, the first primary) for gossip encryption",
		set: text(func(c *Config) *string { return &c.KeyringFile })},
	{name: "gossip-fast", kind: kindBool, def: constant("false"), usage: "tight gossip timers, for tests on one host only",
		set: boolean(func(c *Config) *bool { return &c.GossipFast })},
	{name: "pprof", kind: kindBool, def: constant("false"), usage: "serve Go's profiler under /debug/pprof/ on the HTTP port (a trusted network only, or with --http-token)",
		set: boolean(func(c *Config) *bool { return &c.Pprof })},
	{name: "snapshot-threshold", kind: kindInt, def: constant("16384"), usage: "new log entries after which a shard snapshots and compacts its log, 1..10^9",
		set: func(c *Config, v string) error { return uintIn(&c.SnapshotThreshold, v, 1, 1e9) }},
	{name: "snapshot-interval", kind: kindDuration, def: constant("2m"), usage: "how often a shard checks whether to snapshot",
		set: func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil || d < 10*time.Millisecond {
				return errors.New("want a duration of at least 10ms such as 2m")
			}
			c.SnapshotInterval = d
			return nil
		}},
	{name: "trailing-logs", kind: kindInt, def: constant("10240"), usage: "log entries a shard keeps after a snapshot, so a follower that far behind catches up by replay, 1..10^9",
		set: func(c *Config, v string) error { return uintIn(&c.TrailingLogs, v, 1, 1e9) }},
	{name: "snapshot-rate-mib", kind: kindInt, def: constant("0"), usage: "MiB per second of snapshot data the node streams, sent and received together, over all its shards (a joining node's copy, a lagging follower's snapshot): a copy onto the disk the Raft logs sync to slows every write while it runs, and a limit trades the copy's time for the writes; 0: no limit, 0..100000",
		set: func(c *Config, v string) error { return uintIn(&c.SnapshotRateMiB, v, 0, 100000) }},
	{name: "snapshot-yield", kind: kindBool, def: constant("true"), usage: "snapshot streams (a joining node's copy) yield to writes: their rate follows the node's Raft log syncs, falling while they take more than 1.8 times their time with no copy and rising to no limit (or --snapshot-rate-mib) while they do not; false: only --snapshot-rate-mib limits them",
		set: boolean(func(c *Config) *bool { return &c.SnapshotYield })},
	{name: "scrub-interval", kind: kindDuration, def: constant("24h"), usage: "how often the node reads every table of its shard stores and Raft log store back from the disk and checks each block's checksum (the first time one interval after it starts), so damage to data nobody reads is found, and the shard rebuilt from its group (or the Raft log store rebuilt), while the other replicas hold good copies; 0: never, else 1s..8760h",
		set: func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 || (d > 0 && d < time.Second) || d > 8760*time.Hour {
				return errors.New("want 0 or a duration from 1s to 8760h, such as 24h")
			}
			c.ScrubInterval = d
			return nil
		}},
	{name: "scrub-rate-mib", kind: kindInt, def: constant("8"), usage: "MiB per second a scrub reads, so it takes little of the disk from writes; 0: no limit, 0..100000",
		set: func(c *Config, v string) error { return uintIn(&c.ScrubRateMiB, v, 0, 100000) }},
	{name: "cache-mib", kind: kindInt, def: constant("64"), usage: "MiB of recently read and written values the node keeps in memory in front of its shards' stores, split evenly between them, and at most as much again for the indexes SRANDMEMBER and HRANDFIELD build of big sets and hashes; 0: none, 0..65536",
		set: func(c *Config, v string) error { return uintIn(&c.CacheMiB, v, 0, 65536) }},
	{name: "compactions", kind: kindInt, def: constant("0"), usage: "Pebble compactions the node's shard stores run at once, all shards together (each store also within its own allowance); fewer leave more of the CPU and disk to writes while a burst is compacted, more clear a backlog sooner; 0: max(4, cores), 0..1024",
		set: func(c *Config, v string) error { return uintIn(&c.Compactions, v, 0, 1024) }},
	{name: "memtable-mib", kind: kindInt, def: constant("256"), usage: "MiB of Pebble memtables the node's shard stores fill before they flush, all shards together, split evenly (each at least 1 and at most 32; a store holds up to twice its share while one flushes): the shards' writes not yet flushed are held there, and a crash replays them from the Raft log, 1..65536",
		set: func(c *Config, v string) error { return uintIn(&c.MemTableMiB, v, 1, 65536) }},
	{name: "block-cache-mib", kind: kindInt, def: constant("32"), usage: "MiB of Pebble block cache the node's shard stores share (what --cache-mib does not hold is read through it), beside their memtables, which Pebble counts in the same cache: blocks may also use what memtables smaller than --memtable-mib leave, 1..65536",
		set: func(c *Config, v string) error { return uintIn(&c.BlockCacheMiB, v, 1, 65536) }},
	{name: "log-cache-mib", kind: kindInt, def: constant("64"), usage: "MiB of recent Raft log entries the node keeps in memory for its followers' replication and its own apply, all groups together, split evenly (each at least 0.25 and at most 16): a follower further behind is sent entries read from disk, 1..65536",
		set: func(c *Config, v string) error { return uintIn(&c.LogCacheMiB, v, 1, 65536) }},
	{name: "gc-min-heap-mib", kind: kindInt, def: constant("0"), usage: "MiB the Go heap may grow to before the collector runs while the node's live heap is small (such as 256); Go's own rule (GOGC=100) runs it each time the heap doubles, which on a node with tens of MiB live is tens of collections a second under load (big replies, scans, scripts), but keeps the process smaller; above half this, Go's rule applies. Not used when GOGC is set in the environment; GOMEMLIMIT still caps the heap. 0: Go's rule alone, 0..65536",
		set: func(c *Config, v string) error { return uintIn(&c.GCMinHeapMiB, v, 0, 65536) }},
	{name: "proto-max-bulk-len", kind: kindInt, def: constant("536870912"), usage: "longest argument a client may send, in bytes, as Redis's proto-max-bulk-len (a longer one closes the connection), 1048576..536870912",
		set: func(c *Config, v string) error { return uintIn(&c.MaxBulkLen, v, 1<<20, 512<<20) }},
	{name: "max-write-mib", kind: kindInt, def: constant("16"), usage: "MiB a write command may carry; a bigger one gets an error and is not applied (a Raft entry is copied to every replica and held in memory several times over, and tens of MB stall a node long enough for its shards to lose their leaders), 1..512",
		set: func(c *Config, v string) error { return uintIn(&c.MaxWriteMiB, v, 1, 512) }},
	{name: "min-free-disk-mib", kind: kindInt, def: constant("256"), usage: "MiB of free space on the data dir's file system below which the whole cluster refuses writes that may add data, those Redis refuses at maxmemory (DEL, EXPIRE, FLUSHDB and the other writes still run) until this node has a tenth more than that free: a node whose disk fills stops, and its replicas fill theirs at the same pace; 0: no floor, 0..10^9",
		set: func(c *Config, v string) error { return uintIn(&c.MinFreeDiskMiB, v, 0, 1e9) }},
	{name: "slowlog-log-slower-than", kind: kindInt, def: constant(fmt.Sprint(server.DefaultSlowlogSlowerThan.Microseconds())), usage: "microseconds a key-value command may take, from its read to its reply (a write's Raft round included), before SLOWLOG keeps it, as Redis's slowlog-log-slower-than; 0: every one; -1: none",
		set: func(c *Config, v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < -1 || n > 1e9 {
				return errors.New("want -1..1000000000")
			}
			c.SlowlogSlowerThanUs = n
			return nil
		}},
	{name: "slowlog-max-len", kind: kindInt, def: constant(fmt.Sprint(server.DefaultSlowlogMaxLen)), usage: "commands SLOWLOG keeps, the newest, as Redis's slowlog-max-len; 0..1000000",
		set: func(c *Config, v string) error { return uintIn(&c.SlowlogMaxLen, v, 0, 1e6) }},
	{name: "notify-keyspace-events", def: constant(""), usage: "keyspace events the node publishes to its own subscribers, as Redis's notify-keyspace-events: letters of KEg$lshzxetdmnA (K: on __keyspace@0__:<key>, E: on __keyevent@0__:<event>, and the classes; \"KEA\": every event both ways); empty: none. CONFIG SET changes it on one node",
		set: func(c *Config, v string) error {
			classes, ok := kv.ParseClasses(v)
			if !ok {
				return errors.New("want letters of KEg$lshzxetdmnA, such as KEA or Ex")
			}
			c.NotifyKeyspaceEvents = classes
			return nil
		}},
	{name: "requirepass", def: constant(""), usage: "password clients must AUTH with (empty: none); prefer the environment or the file to a flag",
		set: text(func(c *Config) *string { return &c.RequirePass })},
	{name: "log-format", def: constant("text"), usage: "log format: text or json",
		set: func(c *Config, v string) error {
			if v != "text" && v != "json" {
				return errors.New("want text or json")
			}
			c.LogFormat = v
			return nil
		}},
	{name: "log-level", def: constant("info"), usage: "log level: debug, info, warn or error",
		set: func(c *Config, v string) error {
			switch strings.ToLower(v) {
			case "debug":
				c.LogLevel = slog.LevelDebug
			case "info":
				c.LogLevel = slog.LevelInfo
			case "warn":
				c.LogLevel = slog.LevelWarn
			case "error":
				c.LogLevel = slog.LevelError
			default:
				return errors.New("want debug, info, warn or error")
			}
			return nil
		}},
	{name: "stop-timeout", kind: kindDuration, def: constant("30s"), usage: "how long an orderly stop may take",
		set: func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return errors.New("want a positive duration such as 30s")
			}
			c.StopTimeout = d
			return nil
		}},
	{name: "print-tree", kind: kindBool, def: constant("false"), usage: "print the supervision tree and exit",
		set: boolean(func(c *Config) *bool { return &c.PrintTree })},
}

// uintIn parses v into *dst, within lo..hi.
func uintIn(dst *uint64, v string, lo, hi uint64) error {
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n < lo || n > hi {
		return fmt.Errorf("want %d..%d", lo, hi)
	}
	*dst = n
	return nil
}

func constant(s string) func() string { return func() string { return s } }

// errHelp is returned for --help: the usage was printed, exit 0.
var errHelp = flag.ErrHelp

// source is where a value came from, as errors name it: "--shards",
// "COPPICE_SHARDS", "node.json: shards" or "default shards".
type source struct {
	what string
	raw  string
}

// loadConfig reads the configuration from args (flags), env (the
// environment, os.Getenv in main) and the JSON file named by --config or
// COPPICE_CONFIG. Precedence: flag > environment > file > default. Every
// value, whichever its source, is checked once; an error names the value
// and its source. Usage goes to usage (nil: io.Discard).
func loadConfig(args []string, env func(string) string, usage io.Writer) (Config, error) {
	if usage == nil {
		usage = io.Discard
	}
	fs := flag.NewFlagSet("node", flag.ContinueOnError)
	fs.SetOutput(usage)
	fs.Usage = func() { printUsage(usage) }
	flagVals := map[string]*rawValue{}
	for _, o := range options {
		v := &rawValue{bool: o.kind == kindBool}
		flagVals[o.name] = v
		fs.Var(v, o.name, o.usage)
	}
	configPath := &rawValue{}
	fs.Var(configPath, configFlag, "JSON config file")
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q (every setting is a flag)", fs.Arg(0))
	}

	// Where the file is named: flag, then environment.
	var cfg Config
	var file map[string]string
	switch {
	case configPath.set:
		cfg.ConfigFile = configPath.value
	case env(envPrefix+"CONFIG") != "":
		cfg.ConfigFile = env(envPrefix + "CONFIG")
	}
	if cfg.ConfigFile != "" {
		var err error
		if file, err = readConfigFile(cfg.ConfigFile); err != nil {
			return Config{}, err
		}
	}

	sources := map[string]source{}
	for _, o := range options {
		var src source
		if v := flagVals[o.name]; v.set {
			src = source{"--" + o.name, v.value}
		} else if v := env(o.env()); v != "" {
			src = source{o.env(), v}
		} else if v, ok := file[o.name]; ok {
			src = source{cfg.ConfigFile + ": " + o.name, v}
		} else {
			src = source{"default " + o.name, o.def()}
		}
		if err := o.set(&cfg, src.raw); err != nil {
			shown := quote(src.raw)
			if o.secret {
				shown = "(a secret, not shown)"
			}
			return Config{}, fmt.Errorf("%s %s: %w", src.what, shown, err)
		}
		sources[o.name] = src
	}
	if err := cfg.check(sources); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// check validates what no single option can: how they go together.
func (c *Config) check(src map[string]source) error {
	listen := []struct {
		name string
		addr string
	}{{"client-addr", c.ClientAddr}, {"cluster-addr", c.ClusterAddr}, {"gossip-addr", c.GossipAddr}, {"http-addr", c.HTTPAddr}}
	for i, a := range listen {
		for _, b := range listen[i+1:] {
			if sameListener(a.addr, b.addr) {
				return fmt.Errorf("%s %q and %s %q: want different ports", src[a.name].what, a.addr, src[b.name].what, b.addr)
			}
		}
	}
	if host, _, _ := net.SplitHostPort(c.ClusterAddr); server.UnspecifiedHost(host) && c.AdvertiseAddr == "" {
		return fmt.Errorf("%s %q listens on every interface: set --advertise-addr to the address peers dial", src["cluster-addr"].what, c.ClusterAddr)
	}
	if c.BootstrapExpect > 0 && len(c.Join) == 0 {
		return fmt.Errorf("%s %s: want --join with it: the gossip addresses of the nodes to found the cluster with", src["bootstrap-expect"].what, quote(src["bootstrap-expect"].raw))
	}
	if c.BootstrapExpect > 0 && c.Role != "voter" {
		return fmt.Errorf("%s %s: want --role voter with it, not %s: the node that founds the cluster is its first voter", src["bootstrap-expect"].what, quote(src["bootstrap-expect"].raw), c.Role)
	}
	if c.HTTPReadToken != "" && c.HTTPToken == "" {
		return fmt.Errorf("%s (a secret, not shown): want --http-token with it: else the operations would be open and the reads closed", src["http-read-token"].what)
	}
	if c.HTTPReadToken != "" && c.HTTPReadToken == c.HTTPToken {
		return fmt.Errorf("%s (a secret, not shown): want another token than --http-token", src["http-read-token"].what)
	}
	return c.loadTLS(src)
}

// loadTLS checks that the TLS files come in their sets and loads them
// once; an error names the setting at fault.
func (c *Config) loadTLS(src map[string]source) error {
	named := func(name string) string { return src[name].what + " " + quote(src[name].raw) }
	// wantWith names the settings of set that are empty, if any is set.
	wantWith := func(set ...string) error {
		var given, missing []string
		for _, name := range set {
			if src[name].raw == "" {
				missing = append(missing, "--"+name)
			} else {
				given = append(given, name)
			}
		}
		if len(given) > 0 && len(missing) > 0 {
			return fmt.Errorf("%s: want %s with it", named(given[0]), strings.Join(missing, " and "))
		}
		return nil
	}
	// fileErr names the setting that holds the file a load failed on.
	fileErr := func(err error, byFile map[string]string) error {
		var fe *tlsfiles.Error
		if errors.As(err, &fe) {
			return fmt.Errorf("%s: %v", named(byFile[fe.File]), fe.Err)
		}
		return err
	}

	if err := wantWith("tls-cert-file", "tls-key-file"); err != nil {
		return err
	}
	if c.TLSCAFile != "" && c.TLSCertFile == "" {
		return fmt.Errorf("%s: want --tls-cert-file and --tls-key-file with it", named("tls-ca-file"))
	}
	if c.TLSCAFile == "" && c.TLSAuthClients != server.AuthClientsNo && !strings.HasPrefix(src["tls-auth-clients"].what, "default") {
		return fmt.Errorf("%s: want --tls-ca-file to verify client certificates against", named("tls-auth-clients"))
	}
	if c.TLSCertFile != "" {
		auth := c.TLSAuthClients
		if c.TLSCAFile == "" {
			auth = server.AuthClientsNo
		}
		cfg, err := server.LoadTLS(c.TLSCertFile, c.TLSKeyFile, c.TLSCAFile, auth)
		if err != nil {
			return fileErr(err, map[string]string{tlsfiles.Cert: "tls-cert-file", tlsfiles.Key: "tls-key-file", tlsfiles.CA: "tls-ca-file"})
		}
		c.clientTLS = cfg
	}

	if err := wantWith("http-tls-cert-file", "http-tls-key-file"); err != nil {
		return err
	}
	if c.HTTPTLSCertFile != "" {
		pair, err := tlsfiles.KeyPair(c.HTTPTLSCertFile, c.HTTPTLSKeyFile)
		if err != nil {
			return fileErr(err, map[string]string{tlsfiles.Cert: "http-tls-cert-file", tlsfiles.Key: "http-tls-key-file"})
		}
		c.httpTLS = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	}

	if err := wantWith("cluster-tls-cert-file", "cluster-tls-key-file", "cluster-tls-ca-file"); err != nil {
		return err
	}
	if c.ClusterTLSNames && c.ClusterTLSCertFile == "" {
		return fmt.Errorf("%s: want --cluster-tls-cert-file, --cluster-tls-key-file and --cluster-tls-ca-file with it", named("cluster-tls-names"))
	}
	if c.ClusterTLSCertFile != "" {
		m, err := transport.LoadMutualTLS(c.ClusterTLSCertFile, c.ClusterTLSKeyFile, c.ClusterTLSCAFile)
		if err != nil {
			return fileErr(err, map[string]string{tlsfiles.Cert: "cluster-tls-cert-file", tlsfiles.Key: "cluster-tls-key-file", tlsfiles.CA: "cluster-tls-ca-file"})
		}
		if c.ClusterTLSNames {
			// Checked here, not by the first peer to refuse it.
			if names := m.CertNames(); !slices.Contains(names, c.Name) {
				return fmt.Errorf("%s: with --cluster-tls-names the certificate must carry this node's name %q as a DNS name; it carries %q",
					named("cluster-tls-cert-file"), c.Name, names)
			}
			m.WithNames()
		}
		c.clusterTLS = m
	}
	return nil
}

// checkToken refuses an HTTP token that is not empty (none) and not 16
// to 4096 characters a Bearer token may hold (RFC 6750's b64token):
// short ones are guessed, and others do not survive a header.
func checkToken(v string) error {
	if v == "" {
		return nil
	}
	if len(v) < 16 || len(v) > 4096 {
		return fmt.Errorf("want 16 to 4096 characters, got %d", len(v))
	}
	for _, r := range v {
		if !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune("-._~+/=", r)) {
			return fmt.Errorf("want only A-Z a-z 0-9 - . _ ~ + / =, got %q", r)
		}
	}
	return nil
}

// readConfigFile reads a JSON object whose keys are the flags' names. Its
// values are JSON strings, numbers (shards), booleans (print-tree), and a
// string or an array of strings (join). Unknown keys are an error.
func readConfigFile(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("config file %s: want a JSON object: %v", path, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("config file %s: want one JSON object, found more after it", path)
	}
	out := map[string]string{}
	for key, val := range raw {
		i := slices.IndexFunc(options, func(o *option) bool { return o.name == key })
		if i < 0 {
			return nil, fmt.Errorf("config file %s: unknown key %q; known: %s", path, key, knownKeys())
		}
		o := options[i]
		s, err := fileValue(o.kind, val)
		if err != nil {
			return nil, fmt.Errorf("%s: %s %s: %w", path, key, val, err)
		}
		out[key] = s
	}
	return out, nil
}

// fileValue turns a config file value into the text a flag would carry.
func fileValue(k kind, val json.RawMessage) (string, error) {
	switch k {
	case kindInt:
		var n json.Number
		if err := json.Unmarshal(val, &n); err != nil || bytes.HasPrefix(bytes.TrimSpace(val), []byte(`"`)) {
			return "", errors.New("want a JSON number")
		}
		return n.String(), nil
	case kindBool:
		var b bool
		if err := json.Unmarshal(val, &b); err != nil {
			return "", errors.New("want true or false")
		}
		return strconv.FormatBool(b), nil
	case kindList:
		var list []string
		if err := json.Unmarshal(val, &list); err == nil {
			return strings.Join(list, ","), nil
		}
	}
	var s string
	if err := json.Unmarshal(val, &s); err != nil {
		if k == kindList {
			return "", errors.New("want an array of strings or a comma-separated string")
		}
		return "", errors.New("want a JSON string")
	}
	return s, nil
}

func knownKeys() string {
	names := make([]string, len(options))
	for i, o := range options {
		names[i] = o.name
	}
	return strings.Join(names, ", ")
}

// listenAddr checks a listen address: host:port, the host may be empty
// (every interface), the port 0..65535 (0: any free port).
func listenAddr(dst *string, v string) error {
	host, port, err := net.SplitHostPort(v)
	if err != nil || !validPort(port, 0) || strings.ContainsAny(host, " /") {
		return errors.New("want host:port with a port 0..65535")
	}
	*dst = v
	return nil
}

// dialAddr checks an address others dial: a host and a port 1..65535.
func dialAddr(dst *string, v string) error {
	host, port, err := net.SplitHostPort(v)
	if err != nil || host == "" || server.UnspecifiedHost(host) || !validPort(port, 1) || strings.ContainsAny(host, " /") {
		return errors.New("want host:port with a host others can dial and a port 1..65535")
	}
	*dst = v
	return nil
}

func validPort(port string, min int) bool {
	n, err := strconv.Atoi(port)
	return err == nil && n >= min && n <= 65535 && port == strconv.Itoa(n)
}

// sameListener reports whether two listen addresses would collide: the
// same non-zero port on the same host, or on every interface.
func sameListener(a, b string) bool {
	ha, pa, _ := net.SplitHostPort(a)
	hb, pb, _ := net.SplitHostPort(b)
	if pa != pb || pa == "0" {
		return false
	}
	return ha == hb || server.UnspecifiedHost(ha) || server.UnspecifiedHost(hb)
}

// defaultName is this host's name made a valid node name: characters
// outside [A-Za-z0-9._-] become '-', it starts with a letter or digit and
// is at most 63 long; "node" if nothing is left.
func defaultName() string {
	h, _ := os.Hostname()
	return sanitizeName(h)
}

func sanitizeName(h string) string {
	b := []byte(h)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '-'
		}
	}
	s := strings.TrimLeft(string(b), "._-")
	if len(s) > 63 {
		s = s[:63]
	}
	if s == "" {
		return "node"
	}
	return s
}

// quote shows a value in an error: numbers bare, anything else quoted.
func quote(s string) string {
	if _, err := strconv.ParseFloat(s, 64); err == nil && strings.IndexAny(s[:1], "+-.0123456789") == 0 {
		return s
	}
	return strconv.Quote(s)
}

// rawValue is a flag that keeps its text and whether it was given; the
// loader parses it, so every source is checked the same way.
type rawValue struct {
	value string
	set   bool
	bool  bool
}

func (v *rawValue) String() string     { return v.value }
func (v *rawValue) Set(s string) error { v.value, v.set = s, true; return nil }
func (v *rawValue) IsBoolFlag() bool   { return v.bool }

func printUsage(w io.Writer) {
	fmt.Fprintf(w, `Usage: node [flags]

Runs a coppice node. Every setting is a flag, an environment variable, or a
key of the JSON file named by --config (or %sCONFIG). Precedence:
flag > environment > file > default. An empty environment variable is unset.

`, envPrefix)
	for _, o := range append(options, &option{name: configFlag, def: constant(""), usage: "JSON config file: an object whose keys are the flag names"}) {
		def := o.def()
		if o.name == "name" {
			def = "this host's name, sanitized"
		}
		if def != "" {
			def = " (default " + def + ")"
		}
		fmt.Fprintf(w, "  --%-21s %-30s %s%s\n", o.name, o.env(), o.usage, def)
	}
}
