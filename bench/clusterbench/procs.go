package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coppice-kv/coppice/bench/internal/benchkit"
	"github.com/coppice-kv/coppice/internal/freeport"
)

// proc is one process this program started. Every proc is registered so
// that an interrupt or a failure stops them all.
type proc struct {
	name   string
	cmd    *exec.Cmd
	log    string
	exited chan struct{} // closed when cmd.Wait returned
	once   sync.Once
}

var (
	procsMu sync.Mutex
	procs   []*proc
)

// start starts cmd with its output in logPath and registers it.
func start(name string, cmd *exec.Cmd, logPath string) (*proc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{name: name, cmd: cmd, log: logPath, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(p.exited) }()
	procsMu.Lock()
	procs = append(procs, p)
	procsMu.Unlock()
	return p, nil
}

// alive reports whether the process is still running.
func (p *proc) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM, then SIGKILL after 30s; bounded.
func (p *proc) stop() {
	p.once.Do(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(30 * time.Second):
			fmt.Fprintf(os.Stderr, "clusterbench: %s did not stop within 30s of SIGTERM: killing it\n", p.name)
			p.cmd.Process.Kill()
			select {
			case <-p.exited:
			case <-time.After(10 * time.Second):
				fmt.Fprintf(os.Stderr, "clusterbench: %s (pid %d) did not die after SIGKILL\n", p.name, p.cmd.Process.Pid)
			}
		}
	})
}

// stopAll stops every registered process that is still running, in
// parallel, and forgets them.
func stopAll() {
	procsMu.Lock()
	ps := procs
	procs = nil
	procsMu.Unlock()
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Add(1)
		go func() { defer wg.Done(); p.stop() }()
	}
	wg.Wait()
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// freePort is a loopback address on a port no other process of the run
// got (freeport.Port).
func freePort() string { return "127.0.0.1:" + freeport.Port() }

// waitFor polls cond every interval until it returns nil, p (if not nil)
// exits, or timeout passes.
func waitFor(timeout, interval time.Duration, what string, p *proc, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if p != nil && !p.alive() {
			return fmt.Errorf("%s: %s exited: %v\n%s", what, p.name, err, tail(p.log, 30))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(interval)
	}
}

// command sends one RESP command to addr and returns its reply's first
// line, such as "+OK" or ":42"; an error reply is an error.
func command(addr string, args ...string) (string, error) {
	return benchkit.Command(addr, 10*time.Second, args...)
}

type result struct {
	rps      float64
	p50, p99 float64 // ms
	wall     time.Duration
	n        int
}

// runTimeout bounds one redis-benchmark run: redis-benchmark 7.0 spins
// forever when it cannot connect.
const runTimeout = 10 * time.Minute

// redisBenchmark runs redis-benchmark against addr with -n n and the extra
// arguments, and parses its CSV line. A run that fails or reports an error
// from the server is an error with its output.
func redisBenchmark(addr string, n int, args ...string) (result, error) {
	host, port, _ := net.SplitHostPort(addr)
	full := append([]string{"-h", host, "-p", port, "-n", strconv.Itoa(n), "--csv"}, args...)
	r, err := benchkit.RedisBenchmark(full, runTimeout)
	return result{rps: r.RPS, p50: r.P50, p99: r.P99, wall: r.Wall, n: n}, err
}

// spreadBenchmark runs one redis-benchmark per address at once, each with
// n/len(addrs) requests and the same arguments, and returns the total
// requests over the wall time of the slowest (so never more than the sum
// of their rps), and the worst p50 and p99.
func spreadBenchmark(addrs []string, n int, args ...string) (result, error) {
	per := n / len(addrs)
	res := make([]result, len(addrs))
	errs := make([]error, len(addrs))
	var wg sync.WaitGroup
	t0 := time.Now()
	for i, a := range addrs {
		wg.Add(1)
		go func() { defer wg.Done(); res[i], errs[i] = redisBenchmark(a, per, args...) }()
	}
	wg.Wait()
	wall := time.Since(t0)
	if err := errors.Join(errs...); err != nil {
		return result{}, err
	}
	out := result{wall: wall, n: per * len(addrs)}
	out.rps = float64(out.n) / wall.Seconds()
	for _, r := range res {
		out.p50 = max(out.p50, r.p50)
		out.p99 = max(out.p99, r.p99)
	}
	return out, nil
}
