package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/coppice-kv/coppice/bench/internal/benchkit"
)

// idlePart measures what an idle cluster costs: for each shard count of
// -idle-shards, a 3-node cluster (formed, its shards' leaders spread, then
// left alone for idleSettle) and the CPU time its three processes use over
// -idle-secs; and a 3-member etcd cluster beside them, one Raft group, as
// the reference. With many shards the Raft groups' timers are most of it:
// each leader heartbeats each follower ten times a second.
func idlePart(c config, bin, work string) error {
	secs := time.Duration(c.idleSecs) * time.Second
	fmt.Printf("\n## Idle clusters: CPU of the three processes over %v, in %% of one core\n\n", secs)
	fmt.Println("| cluster | CPU | per process |")
	fmt.Println("|---|---|---|")
	for _, shards := range c.idleShards {
		dir := filepath.Join(work, fmt.Sprintf("shards%d", shards))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		nodes, err := startCluster(bin, dir, 3, shards)
		if err != nil {
			return fmt.Errorf("%d shards: %w", shards, err)
		}
		pids := make([]int, len(nodes))
		for i, n := range nodes {
			pids[i] = n.p.cmd.Process.Pid
		}
		line, err := idleUsage(pids, secs)
		if err != nil {
			return err
		}
		fmt.Printf("| coppice, 3 nodes, --shards %d | %s |\n", shards, line)
		stopAll()
	}
	ec, err := startEtcd(work, 3)
	if err != nil {
		return err
	}
	defer ec.stop()
	pids := make([]int, len(ec.procs))
	for i, p := range ec.procs {
		pids[i] = p.cmd.Process.Pid
	}
	line, err := idleUsage(pids, secs)
	if err != nil {
		return err
	}
	fmt.Printf("| etcd, 3 members | %s |\n", line)
	return nil
}

// idleSettle is how long a cluster is left alone before its idle CPU is
// measured: the last membership and leadership moves, and the first
// compactions, are behind it.
const idleSettle = 10 * time.Second

// idleUsage waits idleSettle, then returns the table cells of what the
// processes used over secs.
func idleUsage(pids []int, secs time.Duration) (string, error) {
	time.Sleep(idleSettle) // the measured cluster's quiet time: nothing to wait for
	read := func() ([]benchkit.Usage, error) {
		out := make([]benchkit.Usage, len(pids))
		for i, pid := range pids {
			u, err := benchkit.ProcUsage(pid)
			if err != nil {
				return nil, err
			}
			out[i] = u
		}
		return out, nil
	}
	before, err := read()
	if err != nil {
		return "", err
	}
	time.Sleep(secs) // the measured window
	after, err := read()
	if err != nil {
		return "", err
	}
	var total time.Duration
	var per []string
	for i := range pids {
		d := after[i].Sub(before[i]).CPU
		total += d
		per = append(per, fmt.Sprintf("%.0f%%", 100*d.Seconds()/secs.Seconds()))
	}
	return fmt.Sprintf("%.0f%% | %s", 100*total.Seconds()/secs.Seconds(), strings.Join(per, ", ")), nil
}
