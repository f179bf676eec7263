// Command clusterbench measures a 3-node coppice cluster against a
// 3-member etcd cluster in one run on one machine, and times a node
// joining a cluster that holds about 1 GiB against `cp -r` of the same
// data. It prints markdown tables.
//
//	go run ./bench/clusterbench                    # both parts
//	go run ./bench/clusterbench -only etcd -rounds 3
//	go run ./bench/clusterbench -only join -data-mib 1024
//	go run ./bench/clusterbench -only forward -n 30000 -rounds 4
//	go run ./bench/clusterbench -only backup -data-mib 1024
//	go run ./bench/clusterbench -only pubsub -n 20000 -rounds 3
//
// Part "pubsub" (only with -only): pub/sub fan-out, the 3-node cluster
// against one redis-server (pubsubPart).
// Part "backup" (only with -only): the join part's cluster and load, then
// `cp -r` of n2's shards dir, `node backup` from n2 while writes go on
// (and the writes' rate against none), `node restore` of the file, and a
// node started on the restored dir (backupPart).
// Part "forward" (only with -only): what a forward costs, 50 clients on
// one key through the node that leads its shard and through another, SET
// and GET, with the node processes' CPU time per request (forwardPart).
//
// Part "etcd": a 3-node coppice cluster (n1 standalone, n2 and n3 joining
// n1's gossip address, every shard with 3 voters) and a 3-member etcd 3.4
// cluster (static --initial-cluster, separate data dirs, default fsync),
// both on loopback. Coppice gets redis-benchmark SET -d 64 -r 100000 with
// 50 clients on one node, and with 17 clients on each of the three nodes at
// once (total requests over the wall time of the slowest); etcd gets puts
// of 64-byte values to random keys among 100000 from 50 concurrent clients
// to its leader (found with `etcdctl endpoint status`), each client on its
// own connection, through etcd's native gRPC API (HTTP/2 cleartext, the
// PutRequest encoded by hand; -etcd-api gateway uses the JSON gateway
// /v3/kv/put instead). Then one client each: redis-benchmark -c 1 against
// one etcd client, p50 latency. Which system goes first alternates from
// row to row and round to round; with -rounds the program ends with each
// row's median ratio.
//
// Part "join": a 3-node cluster with -join-shards shards is loaded with
// about -data-mib MiB (SET of -value-kib values, random bytes or with
// -values repeated "xxx...", to distinct keys, spread over the three
// nodes), then: `cp -r` of n1's
// <data>/shards to a temp dir plus `sync` is timed; write throughput (SET
// -c 20 -P 1 -d 64 -r 100000 to n1, from a Go client that retries
// TRYAGAIN: redis-benchmark 7 exits on the first error reply, and a join
// under load can cost a shard an election) is measured for -write-secs
// with no join going on, then while `cp -r` copies the same dirs again
// (what a copy as fast as cp -r leaves the writes); a 4th node is started
// with --join while those writes go on, and timed until n1's /v1/status
// shows it a voter of every shard and a member, the writes' rate over that
// time is the "during the sync" figure, with each node's journal syncs
// (rate, mean time) in each window; finally a 5th node joins with no
// writes, for the sync time alone. -joiner-dir puts the joining nodes'
// data dirs elsewhere (a tmpfs: their writes then leave the disk the
// others sync to); -node-flags adds flags to every node (such as
// "--snapshot-rate-mib 128").
//
// Every process the program starts is stopped (SIGTERM, then SIGKILL after
// 30s) and its temp dirs removed, also on SIGINT; every wait is bounded.
// The machine is shared and noisy: read the ratios.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/coppice-kv/coppice/bench/internal/benchkit"
)

type config struct {
	n          int
	rounds     int
	shards     int
	etcdAPI    string
	dataMiB    int
	valueKiB   int
	values     string
	joinerDir  string
	joinerWork string // under joinerDir: the joining nodes' data dirs
	joinShards int
	writeSecs  int
	joinTO     time.Duration
	secondJoin bool
	logs       string
	subs       int
	idleShards []int
	idleSecs   int
}

func main() {
	var c config
	only := flag.String("only", "", "run one part: etcd, join, forward, backup, pubsub or idle (default: etcd and join)")
	flag.IntVar(&c.n, "n", 100000, "etcd and forward parts: requests per throughput run (one client: n/10)")
	flag.IntVar(&c.rounds, "rounds", 1, "etcd and forward parts: run every row this many times, alternating the order (etcd: and print the median ratios)")
	flag.IntVar(&c.shards, "shards", 4, "etcd and forward parts: coppice shards")
	flag.StringVar(&c.etcdAPI, "etcd-api", "grpc", "etcd part: grpc (native API) or gateway (JSON /v3/kv/put)")
	flag.IntVar(&c.dataMiB, "data-mib", 1024, "join part: MiB of values to load before the join")
	flag.IntVar(&c.valueKiB, "value-kib", 16, "join part: size of each loaded value, KiB")
	flag.StringVar(&c.joinerDir, "joiner-dir", "", "join part: make the joining nodes' data dirs under this dir (default: beside the others). /dev/shm takes their writes off the disk the cluster's Raft logs sync to, as separate machines would")
	flag.StringVar(&c.values, "values", "random", "join part: loaded values' bytes: random (incompressible) or repeated (\"xxx...\", which Pebble compresses ~20x)")
	flag.IntVar(&c.joinShards, "join-shards", 4, "join part: coppice shards")
	flag.IntVar(&c.writeSecs, "write-secs", 15, "join part: seconds of writes with no join, for the baseline rate")
	flag.DurationVar(&c.joinTO, "join-timeout", 20*time.Minute, "join part: longest wait for a joining node")
	flag.BoolVar(&c.secondJoin, "second-join", true, "join part: after the join under writes, time a 5th node joining with no writes")
	flag.Func("node-flags", `more flags for every coppice node, space-separated (such as "--snapshot-rate-mib 64")`, func(v string) error {
		nodeFlags = strings.Fields(v)
		return nil
	})
	flag.StringVar(&c.logs, "logs", "", "copy every process's log into this dir at the end")
	flag.IntVar(&c.subs, "subs", 30, "pubsub part: subscribers of the channel")
	idleShards := flag.String("idle-shards", "4,64,256", "idle part: comma-separated shard counts, a 3-node cluster each")
	flag.IntVar(&c.idleSecs, "idle-secs", 30, "idle part: seconds of CPU time measured per cluster")
	flag.Parse()
	parts := []string{"etcd", "join"}
	switch *only {
	case "":
	case "etcd", "join", "forward", "backup", "pubsub", "idle":
		parts = []string{*only}
	default:
		fmt.Fprintf(os.Stderr, "clusterbench: -only %q: want etcd, join, forward, backup, pubsub or idle\n", *only)
		os.Exit(2)
	}
	if c.rounds < 1 || c.n < 30 || c.subs < 1 || c.idleSecs < 1 || c.dataMiB < 1 || c.valueKiB < 1 || c.writeSecs < 1 ||
		(c.etcdAPI != "grpc" && c.etcdAPI != "gateway") || (c.values != "random" && c.values != "repeated") {
		fmt.Fprintln(os.Stderr, "clusterbench: bad flag value (see -help)")
		os.Exit(2)
	}
	for _, f := range strings.Split(*idleShards, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 1024 {
			fmt.Fprintf(os.Stderr, "clusterbench: -idle-shards: %q is not a shard count (1..1024)\n", f)
			os.Exit(2)
		}
		c.idleShards = append(c.idleShards, n)
	}
	tools := []string{"redis-benchmark", "etcd", "etcdctl"}
	if *only == "pubsub" {
		tools = []string{"redis-server"}
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			fmt.Fprintf(os.Stderr, "clusterbench: %s not found\n", tool)
			os.Exit(1)
		}
	}
	work, err := os.MkdirTemp("", "clusterbench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "clusterbench:", err)
		os.Exit(1)
	}
	if c.joinerDir != "" {
		if c.joinerWork, err = os.MkdirTemp(c.joinerDir, "clusterbench-joiners-"); err != nil {
			fmt.Fprintln(os.Stderr, "clusterbench: -joiner-dir:", err)
			os.RemoveAll(work)
			os.Exit(1)
		}
	}
	cleanup := func() {
		stopAll()
		for _, w := range []string{work, c.joinerWork} {
			if w == "" {
				continue
			}
			if c.logs != "" {
				copyLogs(w, c.logs)
			}
			os.RemoveAll(w)
		}
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		fmt.Fprintf(os.Stderr, "clusterbench: %v: stopping every process\n", s)
		cleanup()
		os.Exit(1)
	}()
	err = run(c, parts, work)
	signal.Stop(sig)
	cleanup()
	if err != nil {
		fmt.Fprintln(os.Stderr, "clusterbench:", err)
		os.Exit(1)
	}
}

func run(c config, parts []string, work string) error {
	bin := filepath.Join(work, "node")
	if err := buildNode(bin); err != nil {
		return err
	}
	fmt.Printf("%s, %d CPUs, GOMAXPROCS default\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"), runtime.NumCPU())
	if len(nodeFlags) > 0 {
		fmt.Printf("every node started with %s\n", strings.Join(nodeFlags, " "))
	}
	for _, part := range parts {
		dir := filepath.Join(work, part)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		var err error
		switch part {
		case "etcd":
			err = etcdPart(c, bin, dir)
		case "forward":
			err = forwardPart(c, bin, dir)
		case "backup":
			err = backupPart(c, bin, dir)
		case "pubsub":
			err = pubsubPart(c, bin, dir)
		case "idle":
			err = idlePart(c, bin, dir)
		default:
			err = joinPart(c, bin, dir)
		}
		stopAll()
		if c.logs != "" {
			copyLogs(work, c.logs)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", part, err)
		}
	}
	return nil
}

type row struct {
	name    string
	coppice func() (result, error)
	etcd    func() (result, error) // nil: compare with the previous row's etcd figure
}

func etcdPart(c config, bin, work string) error {
	nodes, err := startCluster(bin, work, 3, c.shards)
	if err != nil {
		return err
	}
	ec, err := startEtcd(work, 3)
	if err != nil {
		return err
	}
	leader, err := ec.leader()
	if err != nil {
		return err
	}
	addrs := []string{nodes[0].client, nodes[1].client, nodes[2].client}
	fmt.Printf("\n## coppice (3 nodes, %d shards) vs etcd (3 members), same run\n\n", c.shards)
	fmt.Printf("coppice shard leaders: %s; etcd leader %s; etcd API %s; -n %d (one client: -n %d)\n\n", leaders(nodes[0]), leader, c.etcdAPI, c.n, c.n/10)
	fmt.Println("| run | first | etcd rps | coppice rps | rps ratio | etcd p50 ms | coppice p50 ms | p50 ratio | etcd p99 ms | coppice p99 ms |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|")
	set := []string{"-t", "set", "-d", "64", "-r", "100000", "-P", "1"}
	// --cluster: redis-benchmark reads CLUSTER NODES and sends each
	// client's keys to the node that leads their shard (no forwarding).
	rows := []row{
		{"SET 50 clients, one node",
			func() (result, error) { return redisBenchmark(nodes[0].client, c.n, append(set, "-c", "50")...) },
			func() (result, error) { return etcdLoad(c.etcdAPI, leader, 50, c.n, 64) }},
		{"SET 50 clients, --cluster",
			func() (result, error) {
				return redisBenchmark(nodes[0].client, c.n, append(set, "-c", "50", "--cluster")...)
			},
			nil},
		{"SET 3x17 clients, every node",
			func() (result, error) { return spreadBenchmark(addrs, c.n, append(set, "-c", "17")...) },
			nil},
		{"SET 1 client",
			func() (result, error) { return redisBenchmark(nodes[0].client, c.n/10, append(set, "-c", "1")...) },
			func() (result, error) { return etcdLoad(c.etcdAPI, leader, 1, c.n/10, 64) }},
		{"SET 1 client, --cluster",
			func() (result, error) {
				return redisBenchmark(nodes[0].client, c.n/10, append(set, "-c", "1", "--cluster")...)
			},
			nil},
	}
	rpsRatio := make([][]float64, len(rows))
	p50Ratio := make([][]float64, len(rows))
	for round := 0; round < c.rounds; round++ {
		var er result
		for i, r := range rows {
			var cr result
			cRun := func() (err error) { cr, err = r.coppice(); return err }
			eRun := func() (err error) { er, err = r.etcd(); return err }
			first, order := "etcd", []func() error{eRun, cRun}
			if (i/3+round)%2 == 1 { // rows 0 and 3 have an etcd half
				first, order = "coppice", []func() error{cRun, eRun}
			}
			if r.etcd == nil {
				first, order = "(etcd: row above)", []func() error{cRun}
			}
			for _, f := range order {
				if err := f(); err != nil {
					return fmt.Errorf("%s: %w", r.name, err)
				}
			}
			name := r.name
			if c.rounds > 1 {
				name += fmt.Sprintf(" #%d", round+1)
			}
			rpsRatio[i] = append(rpsRatio[i], cr.rps/er.rps)
			p50Ratio[i] = append(p50Ratio[i], cr.p50/er.p50)
			fmt.Printf("| %s | %s | %.0f | %.0f | %.2fx | %.3f | %.3f | %.2fx | %.3f | %.3f |\n",
				name, first, er.rps, cr.rps, cr.rps/er.rps, er.p50, cr.p50, cr.p50/er.p50, er.p99, cr.p99)
		}
	}
	fmt.Printf("\n| run | median rps ratio of %d (min-max) | median p50 ratio (min-max) | goal | met? |\n|---|---|---|---|---|\n", c.rounds)
	for i, r := range rows {
		goal, met := "", ""
		rm, rlo, rhi := benchkit.Spread(rpsRatio[i])
		pm, plo, phi := benchkit.Spread(p50Ratio[i])
		switch i {
		case 0, 1, 2:
			goal, met = "rps ≥ 5x", yesNo(rm >= 5)
		case 3, 4:
			goal, met = "p50 ≤ 0.5x", yesNo(pm <= 0.5)
		}
		fmt.Printf("| %s | %.2fx (%.2f-%.2f) | %.2fx (%.2f-%.2f) | %s | %s |\n", r.name, rm, rlo, rhi, pm, plo, phi, goal, met)
	}
	dbsize, err := command(nodes[0].client, "DBSIZE")
	if err != nil {
		return fmt.Errorf("coppice DBSIZE: %w", err)
	}
	fmt.Printf("\ncoppice keys after the run: %s\n", strings.TrimPrefix(dbsize, ":"))
	ec.stop()
	return nil
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

// copyLogs copies every *.log under work (one level of part dirs) into dir.
func copyLogs(work, dir string) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "clusterbench: -logs:", err)
		return
	}
	logs, _ := filepath.Glob(filepath.Join(work, "*", "*.log"))
	for _, l := range logs {
		b, err := os.ReadFile(l)
		if err != nil {
			continue
		}
		part := filepath.Base(filepath.Dir(l))
		os.WriteFile(filepath.Join(dir, part+"-"+filepath.Base(l)), b, 0o644)
	}
}
