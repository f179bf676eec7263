package faults

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coppice-kv/coppice/actors"
	ccluster "github.com/coppice-kv/coppice/cluster"
	"github.com/coppice-kv/coppice/internal/promtext"
	"github.com/redis/go-redis/v9"
)

// Every scenario: a 3-node cluster from --join, a workload through every
// node, the fault, the healing, then cluster.check (linearizable history,
// every acknowledged write present, equal checksums).

// Progress between steps is counted in successful operations, never slept.
const (
	warmOps  = 300
	faultOps = 300
	opsWait  = 60 * time.Second
)

// scenario is the frame of the 3-node scenarios: the cluster forms, a
// workload runs through every node and warms up, fault injects the fault
// and heals it, and the check follows.
func scenario(t *testing.T, fault func(c *cluster, nodes []*cnode, w *workload), flags ...string) {
	scenarioOn(newCluster(t, flags...), fault)
}

// scenarioOn is scenario on a cluster the test has set up (useTLS).
func scenarioOn(c *cluster, fault func(c *cluster, nodes []*cnode, w *workload)) {
	start := time.Now()
	nodes := c.form("n1", "n2", "n3")
	formed := time.Now()
	w := c.startWorkload(2, nodes...)
	w.waitOps(warmOps, opsWait)
	warm := time.Now()
	fault(c, nodes, w)
	faulted := time.Now()
	c.check(w, nodes...)
	c.t.Logf("phases: formed in %v, warmed up in %v, fault and healing %v, check %v",
		formed.Sub(start).Round(time.Millisecond), warm.Sub(formed).Round(time.Millisecond),
		faulted.Sub(warm).Round(time.Millisecond), time.Since(faulted).Round(time.Millisecond))
}

// during injects a fault, lets the clients make progress, heals it, and
// lets them make progress again.
func (w *workload) during(inject, heal func()) {
	w.t.Helper()
	inject()
	w.waitOps(faultOps, opsWait)
	heal()
	w.waitOps(faultOps, opsWait)
}

// TestKillLeader: kill -9 of shard 0's leader under load; the others elect
// a new leader and keep serving; the node restarts and catches up.
func TestKillLeader(t *testing.T) {
	scenario(t, func(c *cluster, nodes []*cnode, w *workload) {
		victim := c.leaderOf(nodes[0], 0)
		t.Logf("kill -9 %s, the leader of shard 0", victim)
		w.during(victim.kill9, victim.start)
	})
}

// TestRollingRestart: every node in turn is stopped with SIGTERM under
// load (it hands the leadership of every group it leads over first) and
// started again on its data; the next one stops once every node sees all
// three as voters with a leader in every shard.
func TestRollingRestart(t *testing.T) {
	scenario(t, func(c *cluster, nodes []*cnode, w *workload) {
		for _, n := range nodes {
			t.Logf("SIGTERM %s", n)
			w.during(func() {
				n.signal("TERM")
				n.waitDown()
			}, func() {
				n.start()
				c.waitVoters(opsWait, nodes...)
			})
		}
	})
}

// TestMovedNode: kill -9 of shard 0's leader under load, and its container
// made again with a new IP on the cluster network (a node rescheduled
// elsewhere) on its data: the cluster re-addresses it in every group, it
// catches up and is a voter everywhere again.
func TestMovedNode(t *testing.T) {
	scenario(t, func(c *cluster, nodes []*cnode, w *workload) {
		victim := c.leaderOf(nodes[0], 0)
		t.Logf("kill -9 %s, the leader of shard 0, and move it", victim)
		w.during(func() {
			victim.kill9()
			victim.move()
		}, func() {
			victim.start()
			c.waitVoters(opsWait, nodes...)
			c.waitAddressed(opsWait, victim, nodes...)
		})
	})
}

// TestKillFollower: kill -9 of a follower of shard 0 (it may lead other
// shards) under load; it restarts and catches up.
func TestKillFollower(t *testing.T) {
	scenario(t, func(c *cluster, nodes []*cnode, w *workload) {
		victim := c.pick(others(nodes, c.leaderOf(nodes[0], 0)))
		t.Logf("kill -9 %s, a follower of shard 0", victim)
		w.during(victim.kill9, victim.start)
	})
}

// TestPauseLeader: SIGSTOP of shard 0's leader until the others have
// elected a new one (past the election timeout), then SIGCONT. Clients of
// the paused node keep sending it requests; when it wakes it must not
// serve a read from its stale state (porcupine would see it).
func TestPauseLeader(t *testing.T) {
	scenario(t, func(c *cluster, nodes []*cnode, w *workload) {
		victim := c.leaderOf(nodes[0], 0)
		t.Logf("SIGSTOP %s, the leader of shard 0", victim)
		w.during(func() {
			victim.signal("STOP")
			rest := others(nodes, victim)
			eventually(t, 30*time.Second, "a new leader of shard 0", func() error {
				if l := c.leaderOf(rest[0], 0); l == victim {
					return errStill(victim)
				}
				return nil
			})
		}, func() { victim.signal("CONT") })
	})
}

// TestPartitionMinority: shard 0's leader is cut off from its peers
// (docker network disconnect) while its clients keep talking to it. The
// majority elects a new leader and goes on; the old leader must neither
// acknowledge a write nor serve a stale read. Then the partition heals.
func TestPartitionMinority(t *testing.T) { scenario(t, partitionLeader) }

// partitionLeader cuts shard 0's leader off its peers, then heals.
func partitionLeader(c *cluster, nodes []*cnode, w *workload) {
	victim := c.leaderOf(nodes[0], 0)
	c.t.Logf("partition: %s (leader of shard 0) | the other two", victim)
	w.during(victim.disconnect, victim.connect)
}

// TestPartitionWithTLS: TestPartitionMinority with mutual TLS between the
// nodes and TLS on the client port: the links come back (new handshakes)
// after healing, and nothing is lost or stale.
func TestPartitionWithTLS(t *testing.T) {
	c := newCluster(t)
	c.useTLS()
	scenarioOn(c, func(c *cluster, nodes []*cnode, w *workload) {
		// The client port speaks TLS only.
		plain := redis.NewClient(&redis.Options{Addr: nodes[0].clientIP + ":7379", MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: 2 * time.Second})
		defer plain.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := plain.Ping(ctx).Err(); err == nil {
			t.Fatal("a plaintext client got an answer from a TLS client port")
		}
		partitionLeader(c, nodes, w)
	})
}

// TestPartitionMajority: two of the three nodes are cut off, so no side
// holds a quorum of any shard: every write fails or times out, and none
// may be acknowledged and then lost. Then the partition heals and the
// cluster serves again.
func TestPartitionMajority(t *testing.T) {
	scenario(t, func(c *cluster, nodes []*cnode, w *workload) {
		kept := c.pick(nodes)
		cut := others(nodes, kept)
		t.Logf("partition: %s | %s | %s, no quorum anywhere", cut[0], cut[1], kept)
		cut[0].disconnect()
		cut[1].disconnect()
		w.waitFailures(30, opsWait)
		cut[0].connect()
		cut[1].connect()
		w.waitOps(faultOps, opsWait)
	})
}

// TestLossyAndSlowLinks: every node's links to its peers drop packets,
// then one node's link turns slow (a narrow, queueing link); then the
// links are clean again. (tc netem is the usual tool; this kernel lacks
// it, so loss is iptables' statistic match and slowness tc tbf.)
func TestLossyAndSlowLinks(t *testing.T) {
	scenario(t, func(c *cluster, nodes []*cnode, w *workload) {
		loss := 3 + c.rng.IntN(8)
		t.Logf("every node drops %d%% of its cluster packets, each way", loss)
		for _, n := range nodes {
			n.lossy(loss)
		}
		w.waitOps(faultOps/2, 2*opsWait) // slow going: half the usual progress
		slow := c.pick(nodes)
		t.Logf("%s's link to its peers: 256kbit, up to 400ms queued", slow)
		slow.slow("256kbit", "400ms")
		w.waitOps(faultOps/2, 2*opsWait)
		for _, n := range nodes {
			n.cleanLinks()
		}
		w.waitOps(faultOps, opsWait)
	})
}

// TestKillAll: every node killed with kill -9 under load, then all
// restarted: acknowledged writes survive, the shards elect leaders again.
func TestKillAll(t *testing.T) {
	scenario(t, func(c *cluster, nodes []*cnode, w *workload) {
		t.Log("kill -9 every node")
		for _, n := range nodes {
			n.signal("KILL")
		}
		for _, n := range nodes {
			n.waitDown()
		}
		for _, n := range nodes {
			n.start()
		}
		w.waitOps(faultOps, opsWait)
	})
}

// threeWithoutN3Clients forms n1, n2, n3 and warms up a workload through
// n1 and n2 only: n3 is the one the test will remove.
func threeWithoutN3Clients(t *testing.T) (c *cluster, n1, n2, n3 *cnode, w *workload) {
	c = newCluster(t)
	nodes := c.form("n1", "n2", "n3")
	n1, n2, n3 = nodes[0], nodes[1], nodes[2]
	w = c.startWorkload(2, n1, n2)
	w.waitOps(warmOps, opsWait)
	return c, n1, n2, n3, w
}

// removeNode asks via's HTTP port to remove name, until it is accepted.
func removeNode(t *testing.T, via *cnode, name string) {
	t.Helper()
	eventually(t, 60*time.Second, "DELETE /v1/nodes/"+name+" accepted", func() error {
		return httpJSON("DELETE", via.http()+"/v1/nodes/"+name, nil)
	})
}

// TestJoinAndRemoveDuringPartition: with n3 cut off, a new node n4 joins
// and n3 is removed; both complete on the majority side. When the
// partition heals n3 stays out.
func TestJoinAndRemoveDuringPartition(t *testing.T) {
	c, n1, n2, n3, w := threeWithoutN3Clients(t)

	t.Log("partition n3 away; n4 joins; n3 is removed")
	n3.disconnect()
	n4 := c.add("n4", n1)
	removeNode(t, n1, "n3")
	c.waitVoters(120*time.Second, n1, n2, n4)
	w.waitOps(faultOps, opsWait)
	n3.connect()
	w.waitOps(faultOps, opsWait)
	c.waitVoters(30*time.Second, n1, n2, n4)
	c.check(w, n1, n2, n4)
}

// TestRemovedNodeReturns: n3 is killed and removed; it comes back with its
// old data and its old idea of every shard's configuration. It must not
// disrupt the leaders: no shard changes leader or term while it runs.
func TestRemovedNodeReturns(t *testing.T) {
	c, n1, n2, n3, w := threeWithoutN3Clients(t)

	n3.kill9()
	removeNode(t, n1, "n3")
	c.waitVoters(60*time.Second, n1, n2)
	w.waitOps(faultOps, opsWait)
	// The coordinator evens out the leaders of the two that are left
	// (one move every 5 s): let it finish, so that any change seen
	// below is n3's doing.
	eventually(t, 60*time.Second, "the leaders spread over n1 and n2", func() error {
		st, err := n1.status()
		if err != nil {
			return err
		}
		return ccluster.EvenLeaders(st.Leaders(), []string{"n1", "n2"})
	})
	before := leadership(t, n1)
	t.Logf("leaders and terms before n3 returns: %v", before)

	n3.start()
	eventually(t, 30*time.Second, "n3 serving its status again", func() error {
		_, err := n3.status()
		return err
	})
	// Long enough for n3 to time out and campaign many times over (its
	// election timeout is about a second): counted in operations.
	w.waitOps(3*faultOps, opsWait)
	if after := leadership(t, n1); !maps.Equal(before, after) {
		t.Errorf("n3's return changed leadership: before %v, after %v", before, after)
	}
	c.waitVoters(10*time.Second, n1, n2)
	c.check(w, n1, n2)
}

// TestRemovalNeedsAnsweringVoters: n3's Raft traffic is cut (its cluster
// port, both ways) while its gossip goes on, so gossip sees it alive and
// the groups' leaders hear nothing from it. Removing n2 then would leave
// every shard with n1 and n3, one of which does not answer, and the
// shards' writes would stall: the removal is refused, naming n3, and
// nothing changes. Healed, the same removal goes through.
func TestRemovalNeedsAnsweringVoters(t *testing.T) {
	c := newCluster(t)
	nodes := c.form("n1", "n2", "n3")
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	w := c.startWorkload(2, n1)
	w.waitOps(warmOps, opsWait)

	t.Log("cut n3's cluster port; its gossip goes on")
	n3.cutClusterPort()
	eventually(t, 60*time.Second, "every group's leader silent about n3 for 2s, n3 alive in gossip", func() error {
		return silentAbout(n1, "n3", 2000, n1, n2)
	})
	// The metric is the leader's own reading, taken when scraped, of a
	// silence status saw a moment before on another node: it reaches 2 s
	// too (CI once read 1.999 right after status said 2000 ms).
	eventually(t, 10*time.Second, "the leader's metric of n3's silence at 2 s", func() error {
		return silentMetric(c.leaderOf(n1, 0), 0, "n3", 2)
	})
	err := httpJSON("DELETE", n1.http()+"/v1/nodes/n2", nil)
	if err == nil || !strings.Contains(err.Error(), "without quorum") || !strings.Contains(err.Error(), "n3 has not answered") {
		t.Fatalf("removing n2 with n3 cut off: got %v, want a refusal naming n3's silence", err)
	}
	w.waitOps(faultOps, opsWait)
	for _, n := range []*cnode{n1, n2} {
		// The voters are as they were. A shard may be between leaders for
		// a moment (CI once saw shard 1 without one, at 9f07110): a leader
		// is a liveness fact, waited for; the voters must not change.
		eventually(t, 30*time.Second, fmt.Sprintf("after the refusal, as %s sees it, the same voters and a leader for each shard", n), func() error {
			st, err := n.status()
			if err != nil {
				return err
			}
			return votersAre(st, []string{"n1", "n2", "n3"})
		})
		st, err := n.status()
		if err != nil {
			t.Fatal(err)
		}
		if err := votersAre(st, []string{"n1", "n2", "n3"}); err != nil && !strings.Contains(err.Error(), "no leader") {
			t.Fatalf("after the refusal, as %s sees it: %v", n, err)
		}
		if len(st.Operations) != 0 {
			t.Fatalf("after the refusal, as %s sees it: operations %+v", n, st.Operations)
		}
	}

	t.Log("heal n3; the removal of n2 goes through")
	n3.cleanLinks()
	removeNode(t, n1, "n2")
	c.waitVoters(120*time.Second, n1, n3)
	w.waitOps(faultOps, opsWait)
	c.check(w, n1, n3)
}

// silentMetric checks that leader's /metrics has node silent in shard for
// at least secs.
func silentMetric(leader *cnode, shard int, node string, secs float64) error {
	m, err := promtext.Get(http.DefaultClient, leader.http()+"/metrics")
	if err != nil {
		return err
	}
	series := fmt.Sprintf(`coppice_shard_member_silent_seconds{node=%q,shard="%d"}`, node, shard)
	got, ok := m[series]
	switch {
	case !ok:
		return fmt.Errorf("%s/metrics has no %s", leader, series)
	case got < secs:
		return fmt.Errorf("%s/metrics: %s %g, want at least %g", leader, series, got, secs)
	}
	return nil
}

// silentAbout checks, as via's status shows each group's leader (one of
// leaders), that it has not heard from node for at least ms, while gossip
// sees node alive.
func silentAbout(via *cnode, node string, ms uint64, leaders ...*cnode) error {
	st, err := via.status()
	if err != nil {
		return err
	}
	byName := map[string]*cnode{}
	for _, l := range leaders {
		byName[l.name] = l
	}
	if i := slices.IndexFunc(st.Nodes, func(n actors.NodeStatus) bool { return n.Name == node }); i < 0 || st.Nodes[i].Status != "alive" {
		return fmt.Errorf("%s is not alive in %s's gossip: %+v", node, via, st.Nodes)
	}
	silent := func(what string, members []actors.MemberStatus) error {
		i := slices.IndexFunc(members, func(m actors.MemberStatus) bool { return m.Node == node })
		switch {
		case i < 0:
			return fmt.Errorf("%s has no %s", what, node)
		case members[i].SilentMs == nil:
			return fmt.Errorf("%s: no silence told for %s", what, node)
		case *members[i].SilentMs < ms:
			return fmt.Errorf("%s: %s silent for %d ms", what, node, *members[i].SilentMs)
		}
		return nil
	}
	if err := silent("the system group (coordinator "+st.Coordinator+")", st.SystemGroup); err != nil {
		return err
	}
	for _, sh := range st.Shards {
		l := byName[sh.Leader]
		if l == nil {
			return fmt.Errorf("shard %d led by %q, not one of %v", sh.ID, sh.Leader, leaders)
		}
		lst, err := l.status()
		if err != nil {
			return err
		}
		j := slices.IndexFunc(lst.Shards, func(s actors.ShardStatus) bool { return s.ID == sh.ID })
		if j < 0 {
			return fmt.Errorf("%s shows no shard %d", l, sh.ID)
		}
		if err := silent(fmt.Sprintf("shard %d's leader %s", sh.ID, l), lst.Shards[j].Members); err != nil {
			return err
		}
	}
	return nil
}

// leadership is every shard's leader and term, as n sees them.
func leadership(t *testing.T, n *cnode) map[int]string {
	t.Helper()
	st, err := n.status()
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]string{}
	for _, sh := range st.Shards {
		out[sh.ID] = fmt.Sprintf("%s@%d", sh.Leader, sh.Term)
	}
	return out
}

// TestDiskFull: n3's data directory is a small disk; the test fills it
// with a ballast file under load. The other two keep serving; n3 cannot
// write its log or its data (it may exit, and then its restart policy
// restarts it). When the ballast is deleted, n3 catches up.
func TestDiskFull(t *testing.T) {
	c := newCluster(t)
	n1 := c.add("n1", nil)
	n2 := c.add("n2", n1)
	// No disk floor on n3 (--min-free-disk-mib 0): with one, the cluster
	// refuses the writes before its disk fills (disk_low.txtar), and this
	// test is about a disk that fills all the same.
	n3 := c.addWith("n3", n1, nodeOpts{disk: "512m", restart: "on-failure", flags: []string{"--min-free-disk-mib", "0"}})
	nodes := []*cnode{n1, n2, n3}
	c.waitVoters(60*time.Second, nodes...)
	w := c.startWorkload(2, nodes...)
	w.waitOps(warmOps, opsWait)

	ballast := filepath.Join(n3.dir, "ballast")
	filled := fill(t, ballast)
	t.Logf("n3's disk full: a %d MiB ballast file", filled>>20)
	// Small writes go into space the node holds already (preallocated log
	// segments, a 32 MiB memtable): large ones into one shard make it
	// flush and roll its log, which needs new space.
	bulk := n1.redis()
	defer bulk.Close()
	value := make([]byte, 64<<10)
	i := 0
	eventually(t, 2*opsWait, "n3 hitting the full disk", func() error {
		for range 32 {
			for j := range value {
				value[j] = byte(c.rng.IntN(256))
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			bulk.Set(ctx, fmt.Sprintf("{bulk}:%d", i), value, 0) // may fail: only the load matters
			cancel()
			i++
		}
		logs, err := runCombined(30*time.Second, "docker", "logs", n3.ctr)
		if err != nil {
			return err
		}
		if !strings.Contains(logs, "no space left on device") {
			return fmt.Errorf("no ENOSPC in n3's log yet")
		}
		return nil
	})
	t.Logf("n3 hit the full disk after %d MiB of bulk writes; restarted %s times since", i>>4, docker(t, "inspect", "-f", "{{.RestartCount}}", n3.ctr))
	w.waitOps(faultOps, opsWait)
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	t.Log("ballast deleted")
	w.waitOps(faultOps, opsWait)
	c.check(w, nodes...)
}

// fill writes path until the disk is full and returns its size.
func fill(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	var n int64
	for {
		m, err := f.Write(buf)
		n += int64(m)
		if errors.Is(err, syscall.ENOSPC) {
			return n
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestCorruptSnapshot: a new node joins when the shards' logs no longer
// bridge the gap, so each shard's leader streams it a checkpoint. A proxy
// in front of the new node flips one byte of the first snapshot stream:
// the new node must reject it (checksum), the leader retry, and the node
// end with the same data as everyone else.
func TestCorruptSnapshot(t *testing.T) {
	c := newCluster(t, "--snapshot-threshold", "100", "--trailing-logs", "20", "--snapshot-interval", "200ms")
	nodes := c.form("n1", "n2", "n3")
	n1 := nodes[0]
	w := c.startWorkload(2, nodes...)
	w.waitOps(warmOps, opsWait)

	// Enough data that a checkpoint is well over flipAt bytes, and enough
	// entries that every shard snapshots and trims its log.
	bulk := n1.redis()
	defer bulk.Close()
	for batch := range 16 {
		pipe := bulk.Pipeline()
		for i := range 50 {
			value := make([]byte, 4<<10)
			for j := range value {
				value[j] = byte(c.rng.IntN(256))
			}
			pipe.Set(context.Background(), fmt.Sprintf("bulk:%d:%d", batch, i), value, 0)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := pipe.Exec(ctx)
		cancel()
		if err != nil {
			t.Fatalf("bulk writes: %v", err)
		}
	}

	// Every leader has trimmed its log: a new node cannot replay it.
	eventually(t, opsWait, "every shard's log trimmed by a snapshot", func() error {
		for shard := range 4 {
			st, err := c.leaderOf(n1, shard).status()
			if err != nil {
				return err
			}
			if first := st.Shards[shard].FirstIndex; first <= 1 {
				return fmt.Errorf("shard %d: the leader's log starts at %d", shard, first)
			}
		}
		return nil
	})

	// n4's peers dial it through the proxy: its advertised address.
	const flipAt = 64 << 10
	i := len(c.nodes) + 10
	proxy := newCorruptor(t, c.gateway()+":0", host(c.subnetC, i)+":7380", flipAt)
	n4 := c.addWith("n4", n1, nodeOpts{flags: []string{"--advertise-addr", proxy.addr()}})
	if n4.ip != host(c.subnetC, i) {
		t.Fatalf("n4 at %s, the proxy forwards to %s", n4.ip, host(c.subnetC, i))
	}
	all := append(nodes, n4)
	c.waitVoters(120*time.Second, all...)
	if proxy.flipped.Load() != 1 {
		t.Fatal("the proxy saw no snapshot stream to corrupt: the join took the replay path")
	}
	t.Logf("the proxy flipped a byte in the %s", proxy.where.Load())
	logs, err := runCombined(30*time.Second, "docker", "logs", n4.ctr)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs, "storage: bad snapshot") {
		t.Fatal("n4's log shows no rejected snapshot")
	}
	t.Log("n4 rejected the corrupted snapshot, took a retried one, and is a voter")
	w.waitOps(faultOps, opsWait)
	c.check(w, all...)
}
