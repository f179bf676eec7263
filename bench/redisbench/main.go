// Command redisbench measures a standalone coppice node against
// redis-server with appendfsync always, in one run on one machine, with
// redis-benchmark, and prints the ratios as a markdown table.
//
//	go run ./bench/redisbench              # needs redis-server and redis-benchmark
//	go run ./bench/redisbench -n 200000 -profile /tmp/node.pprof
//
// Both servers get the same treatment: a fresh data dir, fsync on every
// write (Redis: appendonly yes, appendfsync always; coppice: its Raft log),
// loopback only. The machine is shared and noisy: read the ratio, not the
// absolute figures.
package main

import (
	"bytes"
	"encoding/csv"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

type result struct {
	rps      float64
	p50, p99 float64 // ms
}

type run struct {
	name string
	args []string
}

func main() {
	n := flag.Int("n", 100000, "requests per redis-benchmark run")
	shards := flag.Int("shards", 4, "coppice shards")
	profile := flag.String("profile", "", "write the node's CPU profile (whole run) to this file")
	flag.Parse()
	if err := benchmark(*n, *shards, *profile); err != nil {
		fmt.Fprintln(os.Stderr, "redisbench:", err)
		os.Exit(1)
	}
}

func benchmark(n, shards int, profile string) error {
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
	bin := filepath.Join(work, "node")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/node").CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/node (run from the repository root): %v\n%s", err, out)
	}

	redisPort, nodePort := freePort(), freePort()
	redisDir := filepath.Join(work, "redis")
	os.MkdirAll(redisDir, 0o755)
	redis := exec.Command("redis-server", "--port", redisPort, "--bind", "127.0.0.1", "--dir", redisDir,
		"--appendonly", "yes", "--appendfsync", "always", "--save", "", "--protected-mode", "no")
	if err := startAndWait(redis, redisPort, filepath.Join(work, "redis.log")); err != nil {
		return err
	}
	defer stop(redis)

	nodeArgs := []string{"--name", "bench", "--data-dir", filepath.Join(work, "node-data"),
		"--shards", strconv.Itoa(shards), "--client-addr", "127.0.0.1:" + nodePort,
		"--cluster-addr", "127.0.0.1:" + freePort(), "--gossip-addr", "127.0.0.1:" + freePort(),
		"--http-addr", "127.0.0.1:" + freePort(), "--log-level", "warn"}
	node := exec.Command(bin, nodeArgs...)
	if profile != "" {
		node.Env = append(os.Environ(), "COPPICE_CPUPROFILE="+profile)
	}
	if err := startAndWait(node, nodePort, filepath.Join(work, "node.log")); err != nil {
		return err
	}
	defer stop(node)

	runs := []run{
		{"SET -c 50 -P 1", []string{"-t", "set", "-c", "50", "-P", "1"}},
		{"GET -c 50 -P 1", []string{"-t", "get", "-c", "50", "-P", "1"}},
		{"SET -c 50 -P 16", []string{"-t", "set", "-c", "50", "-P", "16"}},
		{"GET -c 50 -P 16", []string{"-t", "get", "-c", "50", "-P", "16"}},
		{"SET -c 1 -P 1", []string{"-t", "set", "-c", "1", "-P", "1"}},
		{"GET -c 1 -P 1", []string{"-t", "get", "-c", "1", "-P", "1"}},
	}
	fmt.Printf("redis-benchmark -d 64 -r 100000 -n %d, %s, coppice %d shards\n\n", n, time.Now().Format("2006-01-02"), shards)
	fmt.Println("| run | redis rps | coppice rps | ratio | redis p50 ms | coppice p50 ms | redis p99 ms | coppice p99 ms |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	for _, r := range runs {
		count := n
		if strings.Contains(r.name, "-c 1 ") {
			count = n / 10
		}
		// Alternate which server goes first, to spread drift.
		rr, err := redisBenchmark(redisPort, count, r.args)
		if err != nil {
			return err
		}
		cr, err := redisBenchmark(nodePort, count, r.args)
		if err != nil {
			return err
		}
		fmt.Printf("| %s | %.0f | %.0f | %.2fx | %.3f | %.3f | %.3f | %.3f |\n", r.name, rr.rps, cr.rps, cr.rps/rr.rps, rr.p50, cr.p50, rr.p99, cr.p99)
	}
	return nil
}

func redisBenchmark(port string, n int, args []string) (result, error) {
	full := append([]string{"-h", "127.0.0.1", "-p", port, "-n", strconv.Itoa(n), "-d", "64", "-r", "100000", "--csv"}, args...)
	out, err := exec.Command("redis-benchmark", full...).Output()
	if err != nil {
		return result{}, fmt.Errorf("redis-benchmark %v: %v\n%s", full, err, out)
	}
	recs, err := csv.NewReader(bytes.NewReader(out)).ReadAll()
	if err != nil || len(recs) < 2 {
		return result{}, fmt.Errorf("redis-benchmark output: %v\n%s", err, out)
	}
	// "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
	row := recs[len(recs)-1]
	f := func(i int) float64 { v, _ := strconv.ParseFloat(row[i], 64); return v }
	return result{rps: f(1), p50: f(4), p99: f(6)}, nil
}

func startAndWait(cmd *exec.Cmd, port, logPath string) error {
	f, err := os.Create(logPath)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		return err
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if out, err := exec.Command("redis-benchmark", "-h", "127.0.0.1", "-p", port, "-n", "100", "-t", "set", "-q").CombinedOutput(); err == nil && !bytes.Contains(out, []byte("ERR")) && !bytes.Contains(out, []byte("TRYAGAIN")) {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	stop(cmd)
	b, _ := os.ReadFile(logPath)
	return fmt.Errorf("%s did not serve within 60s:\n%s", cmd.Path, b)
}

func stop(cmd *exec.Cmd) {
	cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

func freePort() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}
