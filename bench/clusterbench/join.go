package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/coppice-kv/coppice/bench/internal/benchkit"
	"github.com/coppice-kv/coppice/internal/httpjson"
	"github.com/coppice-kv/coppice/internal/promtext"
)

// joinWatch starts a node joining n1 and polls n1's /v1/status every
// 200ms until it shows the node a voter of every shard and a member. It
// returns the time from the start of the process, the sync states seen on
// the way, with when they were first seen, and what the join cost the
// members and the new node (usage).
func joinWatch(bin, work, name string, shards int, n1 *node, members []*node, timeout time.Duration) (time.Duration, []string, string, *node, error) {
	t0 := time.Now()
	before := usageOf(members)
	n, err := startNode(bin, work, name, shards, n1.gossip)
	if err != nil {
		return 0, nil, "", nil, err
	}
	var events []string
	seen := map[string]bool{}
	err = waitFor(timeout, 200*time.Millisecond, name+" a voter of every shard and a member", n.p, func() error {
		if st, err := n1.status(); err == nil {
			for _, s := range st.Syncs {
				if s.Node != name {
					continue
				}
				ev := fmt.Sprintf("shard %d %s %s", s.Shard, s.State, s.Method)
				if s.Error != "" {
					ev += " error: " + s.Error
				}
				if !seen[ev] {
					seen[ev] = true
					events = append(events, fmt.Sprintf("+%.1fs %s", time.Since(t0).Seconds(), ev))
				}
			}
		}
		return clusterHas(n1, name)
	})
	took := time.Since(t0)
	return took, events, usageSince(before, usageOf(append(slices.Clone(members), n))), n, err
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// usageOf reads the usage of each node's process, by name; a process it
// cannot read is left out.
func usageOf(nodes []*node) map[string]benchkit.Usage {
	out := map[string]benchkit.Usage{}
	for _, n := range nodes {
		if u, err := benchkit.ProcUsage(n.p.cmd.Process.Pid); err == nil {
			out[n.name] = u
		}
	}
	return out
}

// usageSince formats, node by node, what was used between two readings (a
// node missing from before started in between).
func usageSince(before, after map[string]benchkit.Usage) string {
	names := slices.Sorted(maps.Keys(after))
	var parts []string
	var cpu time.Duration
	var read int64
	for _, name := range names {
		d := after[name].Sub(before[name])
		cpu, read = cpu+d.CPU, read+d.Read
		parts = append(parts, fmt.Sprintf("%s %.2fs CPU, %.0f MiB read", name, d.CPU.Seconds(), mib(d.Read)))
	}
	return fmt.Sprintf("%s; in all %.2fs CPU, %.0f MiB read", strings.Join(parts, ", "), cpu.Seconds(), mib(read))
}

// sameData waits (bounded) until every shard's applied index and checksum
// agree on the nodes.
func sameData(timeout time.Duration, nodes ...*node) error {
	type checksum struct {
		Shard        int    `json:"shard"`
		AppliedIndex uint64 `json:"applied_index"`
		CRC32C       string `json:"crc32c"`
		Keys         uint64 `json:"keys"`
		Error        string `json:"error"`
	}
	get := func(n *node) ([]checksum, error) {
		var cs []checksum
		return cs, httpjson.Get(&httpClientLong, "http://"+n.http+"/v1/checksums", &cs)
	}
	return waitFor(timeout, 500*time.Millisecond, "same checksums on every node", nil, func() error {
		first, err := get(nodes[0])
		if err != nil {
			return err
		}
		for _, n := range nodes[1:] {
			cs, err := get(n)
			if err != nil {
				return err
			}
			if !slices.Equal(cs, first) {
				return fmt.Errorf("%s %+v, %s %+v", nodes[0].name, first, n.name, cs)
			}
		}
		return nil
	})
}

func joinPart(c config, bin, work string) error {
	nodes, err := startCluster(bin, work, 3, c.joinShards)
	if err != nil {
		return err
	}
	n1 := nodes[0]
	joinWork := work
	if c.joinerWork != "" {
		joinWork = filepath.Join(c.joinerWork, filepath.Base(work))
		if err := os.MkdirAll(joinWork, 0o755); err != nil {
			return err
		}
	}
	fmt.Printf("\n## a node joins a 3-node cluster holding %d MiB, vs cp -r\n\n", c.dataMiB)
	if c.joinerWork != "" {
		fmt.Printf("joining nodes' data dirs under %s\n\n", c.joinerDir)
	}

	ld, err := loadCluster(c, nodes)
	if err != nil {
		return err
	}
	size := ld.size
	shardsDir := filepath.Join(n1.dataDir, "shards")

	// (a) cp -r of n1's shard dirs, plus sync.
	dst := filepath.Join(work, "copy")
	copyTime, copied, err := copyShards(shardsDir, dst)
	if err != nil {
		return err
	}

	// Writes with no join going on: -write-secs.
	measure := func(l *setLoad, syncs *string, during func() error) (n int64, secs float64, per []int64, err error) {
		return measureWrites(nodes, l, syncs, during)
	}
	bl := startSetLoad([]string{n1.client}, 20, 64, false, 0)
	var bsyncs, dsyncs string
	bn, bs, bper, _ := measure(bl, &bsyncs, func() error { time.Sleep(time.Duration(c.writeSecs) * time.Second); return nil })
	bl.finish()

	// The same writes while cp -r copies the same bytes onto the same
	// disk, with no network and no Raft: how much of the disk a copy at
	// cp -r's speed leaves to the Raft logs' syncs, the most a join as
	// fast can leave them.
	var csyncs string
	var copy2 time.Duration
	cl := startSetLoad([]string{n1.client}, 20, 64, false, 0)
	cn, cs, cper, err := measure(cl, &csyncs, func() (err error) {
		copy2, _, err = copyShards(shardsDir, dst)
		return err
	})
	cl.finish()
	if err != nil {
		return err
	}

	// (b)+(c) n4 joins while the same writes go on.
	var joinTime time.Duration
	var events []string
	var use4 string
	var n4 *node
	dl := startSetLoad([]string{n1.client}, 20, 64, false, 0)
	dn, ds, dper, err := measure(dl, &dsyncs, func() (err error) {
		joinTime, events, use4, n4, err = joinWatch(bin, joinWork, "n4", c.joinShards, n1, nodes, c.joinTO)
		return err
	})
	dl.finish()
	if err != nil {
		return err
	}
	check := "same checksums on n1..n4"
	if err := sameData(2*time.Minute, append(slices.Clone(nodes), n4)...); err != nil {
		check = "**checksums differ**: " + err.Error()
	}

	// A 5th node joins with no writes: the sync alone.
	var join5 time.Duration
	var events5 []string
	var use5 string
	if c.secondJoin {
		if join5, events5, use5, _, err = joinWatch(bin, joinWork, "n5", c.joinShards, n1, append(slices.Clone(nodes), n4), c.joinTO); err != nil {
			return err
		}
	}

	fmt.Println("| step | seconds | MiB | MiB/s | vs cp -r | goal | met? |")
	fmt.Println("|---|---|---|---|---|---|---|")
	fmt.Printf("| load (24 clients, 3 nodes) | %.1f | %d | %.1f | | | |\n", ld.took.Seconds(), ld.mib, float64(ld.mib)/ld.took.Seconds())
	fmt.Printf("| cp -r n1/shards + sync | %.1f | %.0f | %.1f | 1.00x | | |\n", copyTime.Seconds(), mib(copied), mib(copied)/copyTime.Seconds())
	fmt.Printf("| n4 joins under writes: start to voter everywhere + member | %.1f | %.0f | %.1f | %.2fx | ≤ 1.5x | %s |\n",
		joinTime.Seconds(), mib(size), mib(size)/joinTime.Seconds(), joinTime.Seconds()/copyTime.Seconds(), yesNo(joinTime.Seconds() <= 1.5*copyTime.Seconds()))
	if c.secondJoin {
		fmt.Printf("| n5 joins, no writes | %.1f | %.0f | %.1f | %.2fx | ≤ 1.5x | %s |\n",
			join5.Seconds(), mib(size), mib(size)/join5.Seconds(), join5.Seconds()/copyTime.Seconds(), yesNo(join5.Seconds() <= 1.5*copyTime.Seconds()))
	}
	brps, drps := float64(bn)/bs, float64(dn)/ds
	fmt.Println("\n| writes: SET -c 20 -P 1 -d 64 -r 100000 to n1 | acknowledged | seconds | rps | vs no join | goal | met? |")
	fmt.Println("|---|---|---|---|---|---|---|")
	fmt.Printf("| no join | %d | %.1f | %.0f | 1.00x | | |\n", bn, bs, brps)
	fmt.Printf("| while n4 syncs (start to voter everywhere + member) | %d | %.1f | %.0f | %.2fx | ≥ 0.5x | %s |\n", dn, ds, drps, drps/brps, yesNo(drps >= 0.5*brps))
	crps := float64(cn) / cs
	fmt.Printf("| while cp -r n1/shards + sync runs again (%.1fs: the same bytes onto the same disk, no join) | %d | %.1f | %.0f | %.2fx | | |\n", copy2.Seconds(), cn, cs, crps, crps/brps)
	fmt.Printf("\nerrors, no join: %s\nerrors, during n4's join: %s\nerrors, during cp -r: %s\n", bl.errors(), dl.errors(), cl.errors())
	fmt.Printf("acknowledged writes per second, no join: %v\nacknowledged writes per second, during n4's join: %v\nacknowledged writes per second, during cp -r: %v\n", bper, dper, cper)
	fmt.Printf("journal syncs (each a write and an fdatasync), no join: %s\njournal syncs during n4's join: %s\njournal syncs during cp -r: %s\n", bsyncs, dsyncs, csyncs)
	fmt.Printf("\nn4's syncs as n1's /v1/status showed them (first seen):\n")
	for _, e := range events {
		fmt.Println("    " + e)
	}
	if c.secondJoin {
		fmt.Printf("n5's syncs:\n")
		for _, e := range events5 {
			fmt.Println("    " + e)
		}
	}
	// Less noisy than the times: what each process used during the join
	// (the writes' share included for n4's).
	fmt.Printf("\nn4's join (with the writes) used: %s\n", use4)
	if c.secondJoin {
		fmt.Printf("n5's join used: %s\n", use5)
	}
	fmt.Printf("data check after n4's join: %s\n", check)
	return nil
}

// loaded is what loadCluster did.
type loaded struct {
	size      int64 // the first node's shards dir
	keys, mib int
	took      time.Duration
}

// loadCluster loads about -data-mib MiB into the cluster: distinct random
// keys (1e9 of them) with -value-kib values, 24 clients over the nodes;
// it waits until every node has applied it, prints what it did, and
// returns the size of the first node's shards dir.
func loadCluster(c config, nodes []*node) (loaded, error) {
	n1 := nodes[0]
	var addrs []string
	for _, n := range nodes {
		addrs = append(addrs, n.client)
	}
	// Load: distinct random keys (1e9 of them) with -value-kib values,
	// through every node at once.
	valueBytes := c.valueKiB * 1024
	keys := c.dataMiB * 1024 / c.valueKiB
	keys -= keys % len(nodes)
	t0 := time.Now()
	ld := startSetLoad(addrs, 24, valueBytes, c.values == "random", int64(keys))
	lerr := waitFor(30*time.Minute, 100*time.Millisecond, "load", nil, func() error {
		if n := ld.ok.Load(); n < int64(keys) {
			return fmt.Errorf("%d of %d keys written", n, keys)
		}
		return nil
	})
	ld.finish()
	if lerr != nil {
		return loaded{}, lerr
	}
	loadTime := time.Since(t0)
	dbsize, err := command(n1.client, "DBSIZE")
	if err != nil {
		return loaded{}, fmt.Errorf("DBSIZE: %w", err)
	}
	for _, n := range nodes {
		if err := waitFor(120*time.Second, 100*time.Millisecond, n.name+" applied everything", n.p, n.ready); err != nil {
			return loaded{}, err
		}
	}
	size := dirSize(filepath.Join(n1.dataDir, "shards"))
	fmt.Printf("load: SET of %d distinct keys, %d-byte %s values, 24 clients over %d nodes, one SET at a time each (%d MiB of values): %.1fs, %.1f MiB/s of values (%s); DBSIZE %s; n1's shards dir %.0f MiB\n\n",
		keys, valueBytes, c.values, len(nodes), keys*c.valueKiB/1024, loadTime.Seconds(),
		float64(keys*c.valueKiB/1024)/loadTime.Seconds(), ld.errors(), strings.TrimPrefix(dbsize, ":"), mib(size))
	return loaded{size: size, keys: keys, mib: keys * c.valueKiB / 1024, took: loadTime}, nil
}

// measureWrites measures load l's acknowledged writes while during runs,
// after a 1s warm-up: how many, over how long, and per second; syncs gets
// each node's journal syncs (rate, mean time) over that time.
func measureWrites(nodes []*node, l *setLoad, syncs *string, during func() error) (n int64, secs float64, per []int64, err error) {
	time.Sleep(time.Second)
	sm := sample(l)
	js0 := journalSyncs(nodes)
	n0, t0 := l.ok.Load(), time.Now()
	err = during()
	n, secs = l.ok.Load()-n0, time.Since(t0).Seconds()
	*syncs = syncsSince(js0, journalSyncs(nodes), secs)
	return n, secs, sm.finish(), err
}

// journalSync is a node's journal syncs so far and their total time, from
// its coppice_raftlog_sync_seconds histogram.
type journalSync struct {
	count float64
	secs  float64
}

// journalSyncs reads each node's journal sync counters; a node it cannot
// read is left out.
func journalSyncs(nodes []*node) map[string]journalSync {
	out := map[string]journalSync{}
	for _, n := range nodes {
		m, err := promtext.Get(hc, "http://"+n.http+"/metrics")
		if err != nil {
			continue
		}
		out[n.name] = journalSync{count: m["coppice_raftlog_sync_seconds_count"], secs: m["coppice_raftlog_sync_seconds_sum"]}
	}
	return out
}

// syncsSince formats, node by node, the journal syncs per second and their
// mean time between two readings secs apart: what every write waited for.
func syncsSince(before, after map[string]journalSync, secs float64) string {
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(after)) {
		b, ok := before[name]
		if d := after[name].count - b.count; ok && d > 0 {
			parts = append(parts, fmt.Sprintf("%s %.0f/s of %.2f ms", name, d/secs, 1000*(after[name].secs-b.secs)/d))
		}
	}
	return strings.Join(parts, ", ")
}

// copyShards times `cp -r src dst` plus sync, and removes dst.
func copyShards(src, dst string) (took time.Duration, bytes int64, err error) {
	// A live store's compactions may delete a file between cp's listing
	// and its read: then the copy is made again (3 tries).
	for try := 1; ; try++ {
		took, bytes, err = copyShardsOnce(src, dst)
		if rerr := removeAll(dst); err == nil {
			err = rerr
		}
		if err == nil || try == 3 || !strings.Contains(err.Error(), "No such file") {
			return took, bytes, err
		}
	}
}

func copyShardsOnce(src, dst string) (took time.Duration, bytes int64, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	t0 := time.Now()
	out, err := exec.CommandContext(ctx, "sh", "-c", `cp -r "$1" "$2" && sync`, "sh", src, dst).CombinedOutput()
	took = time.Since(t0)
	if err != nil {
		return 0, 0, fmt.Errorf("cp -r: %v: %s", err, out)
	}
	return took, dirSize(dst), nil
}
