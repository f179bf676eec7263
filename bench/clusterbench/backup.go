package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// backupPart: a 3-node cluster loaded as for the join part; then `cp -r`
// of n2's shards dir plus sync (the floor: the same bytes, no checksums),
// writes with no backup for -write-secs, `node backup` from n2 (a follower
// of most shards) while the same writes go on, `node restore` of the file
// into a new data dir, and a node started on it, whose DBSIZE must be at
// least the loaded keys'.
func backupPart(c config, bin, work string) error {
	nodes, err := startCluster(bin, work, 3, c.joinShards)
	if err != nil {
		return err
	}
	n1, n2 := nodes[0], nodes[1]
	fmt.Printf("\n## backup and restore of a 3-node cluster holding %d MiB, vs cp -r\n\n", c.dataMiB)
	ld, err := loadCluster(c, nodes)
	if err != nil {
		return err
	}
	shardsDir := filepath.Join(n2.dataDir, "shards")
	copyTime, copied, err := copyShards(shardsDir, filepath.Join(work, "copy"))
	if err != nil {
		return err
	}

	bl := startSetLoad([]string{n1.client}, 20, 64, false, 0)
	var bsyncs, dsyncs string
	bn, bs, _, _ := measureWrites(nodes, bl, &bsyncs, func() error { time.Sleep(time.Duration(c.writeSecs) * time.Second); return nil })
	bl.finish()

	file := filepath.Join(work, "cluster.backup")
	var backupTime time.Duration
	dl := startSetLoad([]string{n1.client}, 20, 64, false, 0)
	dn, ds, dper, err := measureWrites(nodes, dl, &dsyncs, func() (err error) {
		backupTime, err = timed(bin, "backup", "--out", file, "--http", n2.http)
		return err
	})
	dl.finish()
	if err != nil {
		return err
	}
	fi, err := os.Stat(file)
	if err != nil {
		return err
	}
	restored := filepath.Join(work, "r1")
	restoreTime, err := timed(bin, "restore", "--from", file, "--data-dir", restored, "--name", "r1")
	if err != nil {
		return err
	}
	r1, err := startNode(bin, work, "r1", c.joinShards, "")
	if err != nil {
		return err
	}
	dbsize, err := command(r1.client, "DBSIZE")
	check := fmt.Sprintf("DBSIZE %s on the restored node (%d keys loaded, plus the writes')", strings.TrimPrefix(dbsize, ":"), ld.keys)
	var keys int
	if _, serr := fmt.Sscanf(strings.TrimPrefix(dbsize, ":"), "%d", &keys); err != nil || serr != nil || keys < ld.keys {
		check = fmt.Sprintf("**the restored node lacks keys**: DBSIZE %q (%v), %d loaded", dbsize, err, ld.keys)
	}

	size := fi.Size()
	fmt.Println("| step | seconds | MiB | MiB/s | vs cp -r |")
	fmt.Println("|---|---|---|---|---|")
	fmt.Printf("| cp -r n2/shards + sync | %.1f | %.0f | %.1f | 1.00x |\n", copyTime.Seconds(), mib(copied), mib(copied)/copyTime.Seconds())
	fmt.Printf("| node backup from n2, under writes (checked, synced) | %.1f | %.0f | %.1f | %.2fx |\n",
		backupTime.Seconds(), mib(size), mib(size)/backupTime.Seconds(), backupTime.Seconds()/copyTime.Seconds())
	fmt.Printf("| node restore (checked, synced; no node running) | %.1f | %.0f | %.1f | %.2fx |\n",
		restoreTime.Seconds(), mib(size), mib(size)/restoreTime.Seconds(), restoreTime.Seconds()/copyTime.Seconds())
	brps, drps := float64(bn)/bs, float64(dn)/ds
	fmt.Println("\n| writes: SET -c 20 -P 1 -d 64 -r 100000 to n1 | acknowledged | seconds | rps | vs no backup |")
	fmt.Println("|---|---|---|---|---|")
	fmt.Printf("| no backup | %d | %.1f | %.0f | 1.00x |\n", bn, bs, brps)
	fmt.Printf("| while n2 sends a backup | %d | %.1f | %.0f | %.2fx |\n", dn, ds, drps, drps/brps)
	fmt.Printf("\nerrors, no backup: %s\nerrors, during the backup: %s\n", bl.errors(), dl.errors())
	fmt.Printf("acknowledged writes per second during the backup: %v\n", dper)
	fmt.Printf("journal syncs, no backup: %s\njournal syncs during the backup: %s\n", bsyncs, dsyncs)
	fmt.Printf("data check: %s\n", check)
	return nil
}

// timed runs the node binary with args (bounded: 30 minutes) and returns
// how long it took.
func timed(bin string, args ...string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	t0 := time.Now()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("node %s: %v: %s", args[0], err, out)
	}
	return time.Since(t0), nil
}
