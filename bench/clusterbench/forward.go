package main

import (
	"fmt"
	"github.com/coppice-kv/coppice/kv"
	"time"
)

// forwardKey is the key every request of the forward part names:
// redis-benchmark without -r sends "key:__rand_int__" as it is.
const forwardKey = "key:__rand_int__"

// forwardPart measures what a forward costs: a 3-node cluster, 50 clients
// SET and GET one key, through the node that leads its shard (direct) and
// through another (forwarded), -rounds times, alternating. Besides the
// requests per second it reports the three node processes' CPU time per
// request (usageOf), which moves far less with the machine's load.
func forwardPart(c config, bin, work string) error {
	nodes, err := startCluster(bin, work, 3, c.shards)
	if err != nil {
		return err
	}
	st, err := nodes[0].status()
	if err != nil {
		return err
	}
	shard := kv.ShardOf(kv.Slot([]byte(forwardKey)), c.shards)
	var direct, forwarded *node
	for _, n := range nodes {
		if n.name == st.Shards[shard].Leader {
			direct = n
		} else if forwarded == nil {
			forwarded = n
		}
	}
	if direct == nil || forwarded == nil {
		return fmt.Errorf("shard %d's leader %q is not one of the nodes", shard, st.Shards[shard].Leader)
	}
	fmt.Printf("\n## forwarding: 50 clients on one key (shard %d, led by %s), direct and through %s\n\n", shard, direct.name, forwarded.name)
	fmt.Println("| run | direct rps | forwarded rps | rps ratio | direct CPU us/request | forwarded CPU us/request |")
	fmt.Println("|---|---|---|---|---|---|")
	measure := func(n *node, cmd string) (rps float64, cpuPer time.Duration, err error) {
		before := usageOf(nodes)
		r, err := redisBenchmark(n.client, c.n, "-t", cmd, "-d", "64", "-c", "50", "-P", "1")
		if err != nil {
			return 0, 0, err
		}
		after := usageOf(nodes)
		var cpu time.Duration
		for name, u := range after {
			cpu += u.Sub(before[name]).CPU
		}
		return r.rps, cpu / time.Duration(c.n), nil
	}
	for round := 1; round <= c.rounds; round++ {
		for _, cmd := range []string{"set", "get"} {
			var rps [2]float64
			var cpu [2]time.Duration
			order := []int{0, 1}
			if round%2 == 0 {
				order = []int{1, 0}
			}
			for _, i := range order {
				if rps[i], cpu[i], err = measure([]*node{direct, forwarded}[i], cmd); err != nil {
					return err
				}
			}
			fmt.Printf("| %s #%d | %.0f | %.0f | %.2fx | %.0f | %.0f |\n", cmd, round, rps[0], rps[1], rps[1]/rps[0],
				float64(cpu[0].Microseconds()), float64(cpu[1].Microseconds()))
		}
	}
	return nil
}
