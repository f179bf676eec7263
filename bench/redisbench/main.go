// Command redisbench measures a standalone coppice node against
// redis-server with appendfsync always, in one run on one machine, with
// redis-benchmark, and prints the ratios as a markdown table.
//
//	go run ./bench/redisbench                 # needs redis-server and redis-benchmark
//	go run ./bench/redisbench -rounds 3       # every row 3 times, median ratios
//	go run ./bench/redisbench -profile /tmp/node.pprof
//	go tool pprof -top -cum /tmp/node.pprof
//
// Both servers get the same treatment: a fresh data dir, fsync on every
// write (Redis: appendonly yes, appendfsync always; coppice: its Raft log),
// loopback only. The machine is shared and noisy: read the ratio, not the
// absolute figures. Each row also gives each server's CPU time per request
// (user and system, from /proc), which moves far less with the machine's
// load than the request rates do.
//
// A third server runs in every row, the floor (floor.go): coppice's own
// client port and command code on in-memory shards whose writes are
// answered after a group-committed fdatasync, with no Raft, Pebble or
// actors. "coppice / floor" is what the node's storage and replication
// cost; the floor's own distance to Redis is Go's and the client port's.
//
// Each row runs redis-benchmark once against each server; which server
// goes first rotates from row to row (the "first" column), to spread
// drift; with -rounds, the order also rotates from round to round, and
// the program ends with each row's median ratios. A redis-benchmark run
// that fails or reports an error from the server (redis-benchmark 7 exits
// on the first one) stops the program with its output.
//
// -profile writes a CPU profile of the node while redis-benchmark runs
// against it in the row named by -profile-run ("SET -c 50 -P 1" by
// default; "all" for the whole program), in the first round. The node's
// code has no profiling hook: the program builds the profiled binary with
// `go build -overlay`, adding one file to package main that starts and
// stops runtime/pprof's CPU profile on SIGUSR1. The repository is not touched,
// and without -profile the binary is the plain one. Profiling costs the
// node a little CPU: take the ratios from a run without -profile.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/coppice-kv/coppice/bench/internal/benchkit"
	"github.com/coppice-kv/coppice/internal/freeport"
)

type result struct {
	rps      float64
	p50, p99 float64 // ms
	cpuUs    float64 // the server's CPU per request, microseconds
}

// measured runs bench against the server p, adding the server's CPU time
// per request (of count) to its result.
func measured(p *proc, count int, bench func() (result, error)) (result, error) {
	before, err := benchkit.ProcUsage(p.cmd.Process.Pid)
	if err != nil {
		return result{}, err
	}
	r, err := bench()
	if err != nil {
		return r, err
	}
	after, err := benchkit.ProcUsage(p.cmd.Process.Pid)
	if err != nil {
		return r, err
	}
	r.cpuUs = float64(after.Sub(before).CPU.Microseconds()) / float64(count)
	return r, nil
}

type run struct {
	name string
	args []string
	// setup is sent to every server once, before the first round.
	setup [][]string
}

// rangeList is the list the LRANGE rows read: 600 elements of 64 bytes,
// as redis-benchmark's own lrange_600 test has (that test also pushes
// first, and redis-benchmark gives each of its tests a CSV row).
var rangeList = func() [][]string {
	push := []string{"RPUSH", "bench:list"}
	for i := range 600 {
		push = append(push, fmt.Sprintf("%064d", i))
	}
	return [][]string{{"DEL", "bench:list"}, push}
}()

var runs = []run{
	{"SET -c 50 -P 1", []string{"-t", "set", "-c", "50", "-P", "1"}, nil},
	{"GET -c 50 -P 1", []string{"-t", "get", "-c", "50", "-P", "1"}, nil},
	{"SET -c 50 -P 16", []string{"-t", "set", "-c", "50", "-P", "16"}, nil},
	{"GET -c 50 -P 16", []string{"-t", "get", "-c", "50", "-P", "16"}, nil},
	{"SET -c 1 -P 1", []string{"-t", "set", "-c", "1", "-P", "1"}, nil},
	{"GET -c 1 -P 1", []string{"-t", "get", "-c", "1", "-P", "1"}, nil},
	// A script: a counter's INCR through EVAL (Redis runs it once and
	// replicates its effect; coppice runs it on its shard's replica, from
	// the log, in a new Lua VM).
	{"EVAL -c 50 -P 1", []string{"-c", "50", "-P", "1", "EVAL", "return redis.call('incr', KEYS[1])", "1", "counter:__rand_int__"}, nil},
	// Reads of many elements: what building a big reply costs.
	{"LRANGE 100 -c 50 -P 1", []string{"-c", "50", "-P", "1", "LRANGE", "bench:list", "0", "99"}, rangeList},
	{"LRANGE 600 -c 50 -P 1", []string{"-c", "50", "-P", "1", "LRANGE", "bench:list", "0", "599"}, rangeList},
	// Writes that change nothing, which Redis does not write to its AOF:
	// workers polling an empty queue, and a lock taken already.
	{"RPOP empty -c 50 -P 1", []string{"-c", "50", "-P", "1", "RPOP", "bench:queue"}, [][]string{{"DEL", "bench:queue"}}},
	{"SET NX held -c 50 -P 1", []string{"-c", "50", "-P", "1", "SET", "bench:lock", "token", "NX", "PX", "30000"}, [][]string{{"SET", "bench:lock", "holder"}}},
}

// runTimeout bounds one redis-benchmark run: redis-benchmark 7.0 spins
// forever when it cannot connect.
const runTimeout = 10 * time.Minute

func main() {
	n := flag.Int("n", 100000, "requests per redis-benchmark run (one client: n/10)")
	shards := flag.Int("shards", 4, "coppice shards")
	profile := flag.String("profile", "", "write a CPU profile of the node to this file (see -profile-run)")
	rounds := flag.Int("rounds", 1, "run every row this many times, rotating the order, and print the median ratios")
	profileRun := flag.String("profile-run", "SET -c 50 -P 1", `the row whose node half is profiled, or "all" for the whole program`)
	only := flag.String("only", "", "comma-separated rows to run (default: every row)")
	floorAddr := flag.String("serve-floor", "", "(internal) serve the floor on this address, its log in -floor-dir")
	floorDir := flag.String("floor-dir", "", "(internal) the floor's directory")
	flag.Parse()
	if *floorAddr != "" {
		if err := serveFloor(*floorAddr, *floorDir, *shards); err != nil {
			fmt.Fprintln(os.Stderr, "redisbench floor:", err)
			os.Exit(1)
		}
		return
	}
	if *only != "" {
		var keep []run
		for _, name := range strings.Split(*only, ",") {
			name = strings.TrimSpace(name)
			if !knownRun(name) {
				fmt.Fprintf(os.Stderr, "redisbench: -only %q: want rows among %s\n", name, runNames())
				os.Exit(2)
			}
			for _, r := range runs {
				if r.name == name {
					keep = append(keep, r)
				}
			}
		}
		runs = keep
	}
	if *profile != "" && *profileRun != "all" && !knownRun(*profileRun) {
		fmt.Fprintf(os.Stderr, "redisbench: -profile-run %q: want all or one of %s\n", *profileRun, runNames())
		os.Exit(2)
	}
	if *rounds < 1 {
		fmt.Fprintln(os.Stderr, "redisbench: -rounds: want 1 or more")
		os.Exit(2)
	}
	if err := benchmark(*n, *shards, *rounds, *profile, *profileRun); err != nil {
		fmt.Fprintln(os.Stderr, "redisbench:", err)
		os.Exit(1)
	}
}

func knownRun(name string) bool {
	for _, r := range runs {
		if r.name == name {
			return true
		}
	}
	return false
}

func runNames() string {
	var s []string
	for _, r := range runs {
		s = append(s, strconv.Quote(r.name))
	}
	return strings.Join(s, ", ")
}

func benchmark(n, shards, rounds int, profile, profileRun string) error {
	for _, tool := range []string{"redis-server", "redis-benchmark"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found: apt-get install redis-server redis-tools", tool)
		}
	}
	work, err := os.MkdirTemp("", "redisbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if profile != "" {
		if profile, err = filepath.Abs(profile); err != nil {
			return err
		}
		if err := os.Remove(profile); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	bin := filepath.Join(work, "node")
	if err := buildNode(bin, work, profile != ""); err != nil {
		return err
	}

	redisPort, nodePort := freeport.Port(), freeport.Port()
	redisDir := filepath.Join(work, "redis")
	if err := os.MkdirAll(redisDir, 0o755); err != nil {
		return err
	}
	redis := exec.Command("redis-server", "--port", redisPort, "--bind", "127.0.0.1", "--dir", redisDir,
		"--appendonly", "yes", "--appendfsync", "always", "--save", "", "--protected-mode", "no")
	redisProc, err := startAndWait(redis, redisPort, filepath.Join(work, "redis.log"))
	if err != nil {
		return err
	}
	defer redisProc.stop()

	nodeArgs := []string{"--name", "bench", "--data-dir", filepath.Join(work, "node-data"),
		"--shards", strconv.Itoa(shards), "--client-addr", "127.0.0.1:" + nodePort,
		"--cluster-addr", "127.0.0.1:" + freeport.Port(), "--gossip-addr", "127.0.0.1:" + freeport.Port(),
		"--http-addr", "127.0.0.1:" + freeport.Port(), "--log-level", "warn"}
	node := exec.Command(bin, nodeArgs...)
	if profile != "" {
		node.Env = append(os.Environ(), profileEnv+"="+profile)
	}
	nodeProc, err := startAndWait(node, nodePort, filepath.Join(work, "node.log"))
	if err != nil {
		return err
	}
	defer nodeProc.stop()
	prof := &profiler{node: node, path: profile}

	self, err := os.Executable()
	if err != nil {
		return err
	}
	floorPort, floorDir := freeport.Port(), filepath.Join(work, "floor")
	if err := os.MkdirAll(floorDir, 0o755); err != nil {
		return err
	}
	floor := exec.Command(self, "-serve-floor", "127.0.0.1:"+floorPort, "-floor-dir", floorDir, "-shards", strconv.Itoa(shards))
	floorProc, err := startAndWait(floor, floorPort, filepath.Join(work, "floor.log"))
	if err != nil {
		return err
	}
	defer floorProc.stop()

	fmt.Printf("redis-benchmark -d 64 -r 100000 -n %d (one client: -n %d), %s, coppice %d shards, GOMAXPROCS default, %d CPUs\n\n",
		n, n/10, time.Now().Format("2006-01-02 15:04"), shards, runtime.NumCPU())
	fmt.Println("| run | first | redis rps | floor rps | coppice rps | ratio | coppice / floor | redis p50 ms | floor p50 ms | coppice p50 ms | redis p99 ms | coppice p99 ms | CPU us/req: redis, floor, coppice |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	if profile != "" && profileRun == "all" {
		if err := prof.start(); err != nil {
			return err
		}
	}
	for _, r := range runs {
		for _, c := range r.setup {
			for _, port := range []string{redisPort, floorPort, nodePort} {
				if _, err := command(port, c...); err != nil {
					return fmt.Errorf("%s: setup %s on port %s: %w", r.name, c[0], port, err)
				}
			}
		}
	}
	type figures struct{ ratio, ofFloor, cpu []float64 }
	med := make([]figures, len(runs))
	for round := 0; round < rounds; round++ {
		for i, r := range runs {
			count := n
			if strings.Contains(r.name, "-c 1 ") {
				count = n / 10
			}
			profiled := profile != "" && profileRun == r.name && round == 0
			var rr, fr, cr result
			servers := []struct {
				name string
				run  func() error
			}{
				{"redis", func() (err error) {
					rr, err = measured(redisProc, count, func() (result, error) { return redisBenchmark(redisPort, count, r.args) })
					return err
				}},
				{"floor", func() (err error) {
					fr, err = measured(floorProc, count, func() (result, error) { return redisBenchmark(floorPort, count, r.args) })
					return err
				}},
				{"coppice", func() error {
					if profiled {
						if err := prof.start(); err != nil {
							return err
						}
					}
					var err error
					if cr, err = measured(nodeProc, count, func() (result, error) { return redisBenchmark(nodePort, count, r.args) }); err != nil {
						return err
					}
					if profiled {
						return prof.stop()
					}
					return nil
				}},
			}
			// Rotate which server goes first, to spread drift.
			k := (i + round) % len(servers)
			servers = append(servers[k:], servers[:k]...)
			for _, sv := range servers {
				if err := sv.run(); err != nil {
					return fmt.Errorf("%s, %s: %w", r.name, sv.name, err)
				}
			}
			name := r.name
			if rounds > 1 {
				name += fmt.Sprintf(" #%d", round+1)
			}
			m := &med[i]
			m.ratio = append(m.ratio, cr.rps/rr.rps)
			m.ofFloor = append(m.ofFloor, cr.rps/fr.rps)
			m.cpu = append(m.cpu, cr.cpuUs/rr.cpuUs)
			fmt.Printf("| %s | %s | %.0f | %.0f | %.0f | %.2fx | %.2fx | %.3f | %.3f | %.3f | %.3f | %.3f | %.1f, %.1f, %.1f |\n",
				name, servers[0].name, rr.rps, fr.rps, cr.rps, cr.rps/rr.rps, cr.rps/fr.rps,
				rr.p50, fr.p50, cr.p50, rr.p99, cr.p99, rr.cpuUs, fr.cpuUs, cr.cpuUs)
		}
	}
	if rounds > 1 {
		fmt.Printf("\n| run | ratio: median of %d (min-max) | coppice / floor | CPU per request, coppice over redis |\n|---|---|---|---|\n", rounds)
		for i, r := range runs {
			spread := func(v []float64) string {
				m, lo, hi := benchkit.Spread(v)
				return fmt.Sprintf("%.2fx (%.2f-%.2f)", m, lo, hi)
			}
			fmt.Printf("| %s | %s | %s | %s |\n", r.name, spread(med[i].ratio), spread(med[i].ofFloor), spread(med[i].cpu))
		}
	}
	if profile != "" && profileRun == "all" {
		if err := prof.stop(); err != nil {
			return err
		}
	}
	// The SETs really stored something on both: the key counts should be
	// close (both drew from the same 100000 random keys).
	rk, err := command(redisPort, "DBSIZE")
	if err != nil {
		return fmt.Errorf("redis DBSIZE: %w", err)
	}
	ck, err := command(nodePort, "DBSIZE")
	if err != nil {
		return fmt.Errorf("coppice DBSIZE: %w", err)
	}
	fmt.Printf("\nkeys after the run: redis %s, coppice %s\n", strings.TrimPrefix(rk, ":"), strings.TrimPrefix(ck, ":"))
	wrote := slices.ContainsFunc(runs, func(r run) bool { return strings.HasPrefix(r.name, "SET") })
	if ck == ":0" && wrote {
		return errors.New("coppice holds no keys after the SET runs")
	}
	if profile != "" {
		fmt.Printf("CPU profile of the node (%s): %s\n", profileRun, profile)
	}
	return nil
}

// profileEnv names the file the overlay's profiler writes.
const profileEnv = "REDISBENCH_CPUPROFILE"

// profileOverlay is added to package main of ./cmd/node, in the profiled
// build only: each SIGUSR1 starts or stops the CPU profile; stopping
// writes the file (under a temporary name, then renamed into place).
const profileOverlay = `package main

import (
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
)

func init() {
	path := os.Getenv("` + profileEnv + `")
	if path == "" {
		return
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1)
	go func() {
		for range sig {
			f, err := os.Create(path + ".tmp")
			if err != nil {
				panic(err)
			}
			if err := pprof.StartCPUProfile(f); err != nil {
				panic(err)
			}
			<-sig
			pprof.StopCPUProfile()
			if err := f.Close(); err != nil {
				panic(err)
			}
			if err := os.Rename(path+".tmp", path); err != nil {
				panic(err)
			}
		}
	}()
}
`

func buildNode(bin, work string, profiled bool) error {
	args := []string{"build", "-o", bin}
	if profiled {
		dir, err := filepath.Abs("cmd/node")
		if err != nil {
			return err
		}
		src := filepath.Join(work, "zz_redisbench_profile.go")
		if err := os.WriteFile(src, []byte(profileOverlay), 0o644); err != nil {
			return err
		}
		overlay, _ := json.Marshal(map[string]map[string]string{
			"Replace": {filepath.Join(dir, "zz_redisbench_profile.go"): src},
		})
		ov := filepath.Join(work, "overlay.json")
		if err := os.WriteFile(ov, overlay, 0o644); err != nil {
			return err
		}
		args = append(args, "-overlay", ov)
	}
	args = append(args, "./cmd/node")
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("go %s (run from the repository root): %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// profiler toggles the profiled node's CPU profile.
type profiler struct {
	node *exec.Cmd
	path string
}

func (p *profiler) start() error {
	return p.node.Process.Signal(syscall.SIGUSR1)
}

// stop ends the profile and waits until the node has written it.
func (p *profiler) stop() error {
	if err := p.node.Process.Signal(syscall.SIGUSR1); err != nil {
		return err
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(p.path); err == nil {
			return nil
		}
	}
	return fmt.Errorf("the node did not write its CPU profile %s within 30s", p.path)
}

func redisBenchmark(port string, n int, args []string) (result, error) {
	full := append([]string{"-h", "127.0.0.1", "-p", port, "-n", strconv.Itoa(n), "-d", "64", "-r", "100000", "--csv"}, args...)
	r, err := benchkit.RedisBenchmark(full, runTimeout)
	return result{rps: r.RPS, p50: r.P50, p99: r.P99}, err
}

// proc is a server started by startAndWait.
type proc struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd.Wait returned
}

// startAndWait starts cmd and waits until a SET on port answers +OK (a
// node answers TRYAGAIN until its shards have leaders).
func startAndWait(cmd *exec.Cmd, port, logPath string) (*proc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	var last error
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		select {
		case <-exited:
			b, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("%s exited during start:\n%s", cmd.Path, b)
		default:
		}
		var r string
		if r, last = command(port, "SET", "redisbench:probe", "x"); last == nil && r != "+OK" {
			last = fmt.Errorf("SET answered %q", r)
		}
		if last == nil {
			_, last = command(port, "DEL", "redisbench:probe")
		}
		if last == nil {
			return &proc{cmd, exited}, nil
		}
	}
	cmd.Process.Kill()
	<-exited
	b, _ := os.ReadFile(logPath)
	return nil, fmt.Errorf("%s did not serve within 60s (last: %v):\n%s", cmd.Path, last, b)
}

// command sends one command and returns its reply's first line, such as
// "+OK", ":42" or "-ERR ..."; an error reply is an error.
func command(port string, args ...string) (string, error) {
	return benchkit.Command("127.0.0.1:"+port, 5*time.Second, args...)
}

// stop stops a server the way an operator would (SIGINT), then kills it
// if it does not exit in time.
func (p *proc) stop() {
	p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
}
