// Command node runs a coppice node.
//
//	go run ./cmd/node                          # standalone, on the defaults
//	go run ./cmd/node --name n1 --data-dir /var/lib/coppice --shards 8
//	go run ./cmd/node --config node.json       # settings from a JSON file
//	go run ./cmd/node --print-tree             # print the supervision tree and exit
//	go run ./cmd/node --help                   # every setting, its variable and default
//	go run ./cmd/node --join 127.0.0.1:7946 ...  # join the cluster a node at that gossip address is in
//	go run ./cmd/node status|add NAME|remove NAME|leave|trust-stores|scrub [--http addr]   # operate a running node
//
// # Settings
//
// Every setting is a flag, an environment variable COPPICE_<NAME> (the
// flag's name in upper case, dashes as underscores: --data-dir is
// COPPICE_DATA_DIR), and a key of the JSON config file named by --config
// or COPPICE_CONFIG. Precedence: flag > environment > file > default. An
// empty environment variable counts as unset. Every value is checked once,
// whatever its source, and an error names it and where it came from:
//
//	node: --shards 0: want 1..1024
//	node: COPPICE_CLIENT_ADDR "foo": want host:port with a port 0..65535
//	node: node.json: shards "4": want a JSON number
//
// The config file is one JSON object whose keys are the flags' names;
// unknown keys are an error. Values are strings, except shards (a number),
// print-tree (a boolean) and join (an array of strings, or one
// comma-separated string):
//
//	{
//	  "name": "n1",
//	  "data-dir": "/var/lib/coppice",
//	  "shards": 8,
//	  "client-addr": "10.0.0.1:7379",
//	  "cluster-addr": "10.0.0.1:7380",
//	  "gossip-addr": "10.0.0.1:7946",
//	  "http-addr": "127.0.0.1:7381",
//	  "join": ["10.0.0.2:7946", "10.0.0.3:7946"],
//	  "role": "voter",
//	  "requirepass": "secret",
//	  "log-format": "json",
//	  "log-level": "info",
//	  "stop-timeout": "30s"
//	}
//
// TLS: --tls-cert-file and --tls-key-file (with --tls-ca-file and
// --tls-auth-clients for client certificates) put the client port on TLS;
// --cluster-tls-cert-file, --cluster-tls-key-file and --cluster-tls-ca-file
// (all three or none) put the cluster port on mutual TLS;
// --http-tls-cert-file and --http-tls-key-file put the HTTP port on TLS,
// and --http-token makes every HTTP request but the probes carry it. The
// files are read once at start; a missing or unusable one exits 2 naming
// its setting.
//
// Every listen address defaults to loopback (127.0.0.1), so a node on the
// defaults is reachable from its own host only; give 0.0.0.0:<port> (or
// :<port>) to listen on every interface. A cluster address on every
// interface needs --advertise-addr, the address peers dial.
//
// # Running
//
// Logs are key/value (log/slog), text or JSON, on stderr. SIGTERM or
// SIGINT stops the node in order (the tree in reverse start order, within
// --stop-timeout) and exits 0; a second signal during the stop kills it.
// A stop past 10 s logs the actors it waits for; one past --stop-timeout
// logs them in its error, writes every goroutine's stack to stderr and
// exits 1.
// If the tree's root supervisor gives up, the node logs why and exits 1.
// If one of its stores fails in a way retrying does not mend (a Pebble
// flush or compaction, or a Raft log journal write, failed: a data dir
// removed, a disk full, failing or remounted read-only; or a journal
// sync, or a write or sync of Pebble's, has not returned in 20 s), the
// node logs it, stops in order
// (bounded by --stop-timeout) and exits 1. A bad setting exits 2.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/coppice-kv/coppice/actors"
	"github.com/coppice-kv/coppice/httpapi"
	"github.com/coppice-kv/coppice/internal/gcfloor"
	"github.com/coppice-kv/coppice/kv"
	"github.com/coppice-kv/coppice/storage"
	"github.com/coppice-kv/coppice/supervisor"
)

// startTimeout bounds the tree's start: opening storage and starting
// every shard.
const startTimeout = time.Minute

func main() {
	extraProc(os.Getenv)
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// extraProc runs Go code on one more thread than the runtime would choose
// (the CPUs it may use), unless GOMAXPROCS is set. Under write load one of
// the node's goroutines is nearly always in the Raft log journal's
// fdatasync (docs/storage.md), and goroutines made runnable meanwhile
// waited 140-200 us to run (a scheduler trace of SET -c 50). Measured on a
// 2-CPU VM: SET -c 50 8% faster, GET -c 50 and one client unchanged
// (docs/node-benchmarks.md).
func extraProc(env func(string) string) {
	if env("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) + 1)
	}
}

// gcFloor keeps the heap goal at --gc-min-heap-mib or above, unless it is
// 0 (the default) or GOGC is set (the user's choice). On the 2-CPU VM,
// LRANGE of 600 elements took 30% less of the node's CPU with a floor of
// 256 MiB; but the process grew to 350 MB where it stayed at 140, and
// faulting that memory in cost a node about a second of system CPU, which
// made the integration scripts, with their many short-lived nodes, 10-20%
// slower (docs/node-benchmarks.md).
func gcFloor(cfg Config, env func(string) string) *gcfloor.Floor {
	if cfg.GCMinHeapMiB == 0 || env("GOGC") != "" {
		return nil
	}
	return gcfloor.Start(cfg.GCMinHeapMiB<<20, 100)
}

func run(args []string, env func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch {
		case args[0] == "backup":
			return backupCmd(args[1:], stdout, stderr)
		case args[0] == "restore":
			return restoreCmd(args[1:], stdout, stderr)
		case isSubcommand(args[0]):
			return operate(args[0], args[1:], stdout, stderr)
		}
	}
	cfg, err := loadConfig(args, env, stdout)
	if errors.Is(err, errHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "node:", err)
		return 2
	}
	log := newLogger(cfg, stderr)
	if f := gcFloor(cfg, env); f != nil {
		defer f.Stop()
	}
	for {
		code, again := serve(cfg, log, stdout)
		if !again {
			return code
		}
		log.Warn("starting again, to rebuild the damaged Raft log store")
	}
}

// serve runs the node until it stops, and returns its exit code; again
// is true when it stopped because its Raft log store is damaged, which
// the next start rebuilds when another node can catch it up (the store
// worker's openRaftLogs): run starts it again at once rather than wait
// for a restart policy. That start fails when it cannot rebuild the
// store, or when the store was rebuilt minutes before, so this ends.
func serve(cfg Config, log *slog.Logger, stdout io.Writer) (code int, again bool) {
	tree, rt, info := nodeConfig(cfg, log)
	if cfg.PrintTree {
		fmt.Fprint(stdout, supervisor.FormatSpec(actors.RootName, actors.Tree(tree)))
		return 0, false
	}

	sigCtx, stopSignals := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stopSignals()
	ctx := sigCtx
	// leave() stops the node once it is out of the cluster.
	ctx, left := context.WithCancel(ctx)
	defer left()
	rt.OnLeave = left
	// SHUTDOWN from a client stops it as SIGTERM does.
	ctx, shutdown := context.WithCancel(ctx)
	defer shutdown()
	rt.OnShutdown = func() {
		log.Info("SHUTDOWN from a client")
		shutdown()
	}
	// A store that failed stops the node too, which then exits 1.
	ctx, failed := context.WithCancelCause(ctx)
	defer failed(nil)
	rt.OnFault = failed
	startCtx, cancel := context.WithTimeout(ctx, startTimeout)
	node, err := actors.Start(startCtx, tree, log)
	cancel()
	if err != nil {
		if cause := context.Cause(ctx); errors.Is(cause, storage.ErrStoreFailed) {
			// A store failed while the node started (corruption met by
			// the first reads, say): a failure, not a stop.
			log.Error("node failed to start", "err", cause)
			return 1, rt.RaftLogDamaged() && sigCtx.Err() == nil
		}
		if ctx.Err() != nil {
			log.Info("stopped during start")
			return 0, false
		}
		log.Error("node failed to start", "err", err)
		return 1, false
	}
	log.Info("node started", "node", rt.Name, "data_dir", rt.DataDir, "shards", rt.Shards,
		"mode", modeOf(info), "role", info.Role, "version", rt.Version)

	select {
	case <-ctx.Done():
		// Stopped by a signal too: no start again, whatever failed.
		signalled := sigCtx.Err() != nil
		stopSignals() // a second signal kills the process
		fault := context.Cause(ctx)
		if !errors.Is(fault, storage.ErrStoreFailed) {
			fault = nil
		}
		log.Info("stopping", "timeout", cfg.StopTimeout)
		stopCtx, cancel := context.WithTimeout(context.Background(), cfg.StopTimeout)
		defer cancel()
		if err := node.Stop(stopCtx); err != nil {
			log.Error("stop", "err", err)
			// Where it hangs: every goroutine's stack, alike ones once.
			fmt.Fprintln(os.Stderr, "goroutines at the stop's timeout:")
			_ = pprof.Lookup("goroutine").WriteTo(os.Stderr, 1)
			return 1, false
		}
		if fault != nil {
			log.Error("stopped: a store failed", "err", fault)
			return 1, rt.RaftLogDamaged() && !signalled
		}
		log.Info("stopped")
		return 0, false
	case <-node.Tree.Done():
		node.System.Shutdown()
		log.Error("supervision tree gave up", "err", node.Tree.Err())
		return 1, false
	}
}

// nodeConfig builds the tree's configuration: the Runtime the node's
// actors share, and the HTTP worker under the user supervisor.
func nodeConfig(cfg Config, log *slog.Logger) (actors.Config, *actors.Runtime, actors.StatusInfo) {
	rt := &actors.Runtime{
		Name:            cfg.Name,
		DataDir:         cfg.DataDir,
		Shards:          cfg.Shards,
		ClusterAddr:     cfg.ClusterAddr,
		Advertise:       cfg.AdvertiseAddr,
		ClientAddr:      cfg.ClientAddr,
		RequirePass:     cfg.RequirePass,
		ClientTLS:       cfg.clientTLS,
		ClusterTLS:      cfg.clusterTLS,
		Version:         version(),
		Log:             log,
		Exec:            executor(),
		GossipAddr:      cfg.GossipAddr,
		HTTPAddr:        cfg.HTTPAddr,
		Join:            cfg.Join,
		BootstrapExpect: cfg.BootstrapExpect,
		Role:            actors.RoleOf(cfg.Role),
		GossipKey:       cfg.GossipKey,
		KeyringFile:     cfg.KeyringFile,
		RemoveDelay:     cfg.RemoveDelay,
		SyncRetries:     cfg.SyncRetries,
		SyncParallel:    cfg.SyncParallel,
		SnapshotRate:    int64(cfg.SnapshotRateMiB) << 20,
		ScrubInterval:   cfg.ScrubInterval,
		ScrubRate:       int64(cfg.ScrubRateMiB) << 20,
		SnapshotYield:   cfg.SnapshotYield,
		GossipFast:      cfg.GossipFast,
		Snapshots: actors.SnapshotPolicy{Threshold: cfg.SnapshotThreshold, Interval: cfg.SnapshotInterval,
			TrailingLogs: cfg.TrailingLogs},
		ReadCache:         int64(cfg.CacheMiB) << 20,
		Compactions:       int(cfg.Compactions),
		MemTables:         int64(cfg.MemTableMiB) << 20,
		BlockCache:        int64(cfg.BlockCacheMiB) << 20,
		LogCache:          int64(cfg.LogCacheMiB) << 20,
		MaxBulkLen:        int64(cfg.MaxBulkLen),
		MaxWriteBytes:     int64(cfg.MaxWriteMiB) << 20,
		SlowlogSlowerThan: time.Duration(cfg.SlowlogSlowerThanUs) * time.Microsecond,
		SlowlogMaxLen:     int(cfg.SlowlogMaxLen),
		Notify:            notifyConfig(cfg.NotifyKeyspaceEvents),
		MinFreeDisk:       cfg.MinFreeDiskMiB << 20,
	}
	if cfg.CacheMiB == 0 {
		rt.ReadCache = -1 // none (zero is the default size)
	}
	info := actors.StatusInfo{Name: cfg.Name, Shards: cfg.Shards, Role: cfg.Role, Join: cfg.Join}
	web := httpapi.New(httpapi.Config{Addr: cfg.HTTPAddr, Info: info, Log: log, Pprof: cfg.Pprof, RaftLog: rt.RaftLogStats, Scrub: rt.ScrubNow,
		SnapshotThrottle: rt.SnapshotThrottleStats, Heartbeats: rt.HeartbeatStats, Stores: rt.StoresStats, DataDir: cfg.DataDir, Clients: rt.ClientStats, Token: cfg.HTTPToken, ReadToken: cfg.HTTPReadToken, TLS: cfg.httpTLS,
		Backup: func(ctx context.Context) (httpapi.Backup, error) {
			b, err := rt.Backup(ctx)
			if err != nil {
				return nil, err
			}
			return b, nil
		}})
	return actors.Config{Runtime: rt, User: []supervisor.ChildSpec{web.Spec()}}, rt, info
}

// notifyConfig is the node's notify-keyspace-events, starting at classes.
func notifyConfig(classes kv.Classes) *kv.NotifyConfig {
	n := &kv.NotifyConfig{}
	n.Store(classes)
	return n
}

// executor runs a shard's write commands.
func executor() storage.Executor { return kv.ExecEvents }

func modeOf(info actors.StatusInfo) string {
	if len(info.Join) > 0 {
		return actors.ModeCluster
	}
	return actors.ModeStandalone
}

// version is the main module's version from the build info ("(devel)" in
// a work tree).
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

func newLogger(cfg Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
