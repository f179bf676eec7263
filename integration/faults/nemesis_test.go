package faults

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"
)

// TestNemesis runs faults drawn from the test's seed one after another on
// a 3-node cluster under the workload: single faults, two at once (some of
// which leave no shard a quorum), a node killed again while it catches up,
// a node started again on a lost (empty) data dir, a stop that hands
// leaderships over to a node cut off from the rest, and
// now and then a replacement: a new node joins and an old one is removed
// while it runs on, its clients still sending it requests. Half the time
// the next fault comes before the cluster has healed from the last (a node
// still catching up; every process is up, though). At the end, the
// scenarios' checks (linearizable history, every acknowledged write on
// every member, equal checksums), and no node's log may show a Go runtime
// panic that an actor's supervisor recovered from.
//
// COPPICE_NEMESIS_STEPS sets the number of steps (default 8); with
// COPPICE_FAULT_SEED a run repeats the faults and their targets, not
// their timing.
func TestNemesis(t *testing.T) {
	steps := 8
	if s := os.Getenv("COPPICE_NEMESIS_STEPS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			t.Fatalf("COPPICE_NEMESIS_STEPS=%q: want a whole number of at least 1", s)
		}
		steps = v
	}
	c := newCluster(t)
	nodes := c.form("n1", "n2", "n3")
	w := c.startWorkload(2, nodes...)
	w.waitOps(warmOps, opsWait)
	replaced := 0
	for i := range steps {
		// Every process up, its listeners bound (a node cut off while
		// it binds its cluster address exits: "cannot assign requested
		// address"), though maybe still catching up.
		for _, n := range c.nodes {
			eventually(t, opsWait, n.name+" answering /healthz", n.healthz)
		}
		w.newRegisters()
		if replaced < maxReplaced && c.rng.IntN(6) == 0 {
			replaced++
			t.Logf("nemesis %d/%d: a replacement", i+1, steps)
			nodes = c.replace(nodes, w)
		} else {
			f := c.drawFault(nodes)
			t.Logf("nemesis %d/%d: %s", i+1, steps, f.name)
			f.inject()
			if f.quorum {
				w.waitOps(faultOps/2, opsWait)
			} else {
				w.waitFailures(30, opsWait)
			}
			f.heal()
		}
		w.waitOps(faultOps/2, opsWait)
		if c.rng.IntN(2) == 0 {
			c.waitVoters(opsWait, nodes...)
		}
	}
	c.check(w, nodes...)
	for _, n := range c.nodes {
		n.noRecoveredPanic()
	}
}

// maxReplaced bounds the replacements of one run: each leaves a removed
// node running.
const maxReplaced = 2

// replace adds a node (joining through a random member) and, once it is a
// voter of every shard, removes a random old member, which goes on running
// with its clients: it must neither serve them stale reads nor lose their
// writes. It returns the members after the removal.
func (c *cluster) replace(nodes []*cnode, w *workload) []*cnode {
	via, victim := c.pick(nodes), c.pick(nodes)
	fresh := c.add(fmt.Sprintf("n%d", len(c.nodes)+1), via)
	c.t.Logf("%s joins through %s", fresh, via)
	grown := append(slices.Clone(nodes), fresh)
	c.waitVoters(2*opsWait, grown...)
	w.addClients(c, 2, fresh)
	rest := others(grown, victim)
	c.t.Logf("%s is removed; it runs on, and so do its clients", victim)
	removeNode(c.t, c.pick(rest), victim.name)
	c.waitVoters(opsWait, rest...)
	return rest
}

// fault is one step of the nemesis: inject starts it, heal ends it.
// quorum: every shard keeps a majority of its voters up and connected
// while it lasts, so the clients can make progress.
type fault struct {
	name         string
	quorum       bool
	inject, heal func()
}

// drawFault picks the next fault and its targets with the test's seeded
// generator.
func (c *cluster) drawFault(nodes []*cnode) fault {
	x := c.target(nodes)
	y := c.pick(others(nodes, x))
	switch c.rng.IntN(12) {
	case 0:
		return fault{"kill -9 " + x.name, true, x.kill9, x.start}
	case 1:
		return fault{"SIGTERM " + x.name + " (it hands its leaderships over)", true,
			func() { x.signal("TERM"); x.waitDown() }, x.start}
	case 2:
		return fault{"SIGSTOP " + x.name, true, func() { x.signal("STOP") }, func() { x.signal("CONT") }}
	case 3:
		return fault{x.name + " cut off from its peers", true, x.disconnect, x.connect}
	case 4:
		return fault{x.name + "'s Raft port cut, its gossip up", true, x.cutClusterPort, x.cleanLinks}
	case 5:
		loss := 3 + c.rng.IntN(8)
		return fault{fmt.Sprintf("every node drops %d%% of its cluster packets", loss), true,
			func() {
				for _, n := range nodes {
					n.lossy(loss)
				}
			}, func() {
				for _, n := range nodes {
					n.cleanLinks()
				}
			}}
	case 6:
		return fault{"SIGSTOP " + x.name + ", then kill -9 while it is stopped", true,
			func() {
				x.signal("STOP")
				c.waitLeaderMoves(x, others(nodes, x)[0])
				x.kill9()
			}, x.start}
	case 7:
		return fault{"kill -9 " + x.name + ", and again as soon as it answers HTTP after its start", true,
			func() {
				x.kill9()
				x.start()
				eventually(c.t, 30*time.Second, x.name+" answering /healthz", x.healthz)
				x.kill9()
			}, x.start}
	case 8:
		return fault{x.name + " cut off and " + y.name + " killed: no quorum", false,
			func() { x.disconnect(); y.kill9() }, func() { x.connect(); y.start() }}
	case 9:
		return fault{"SIGSTOP " + x.name + " and " + y.name + ": no quorum", false,
			func() { x.signal("STOP"); y.signal("STOP") }, func() { x.signal("CONT"); y.signal("CONT") }}
	case 11:
		// Only a node started with --join: one without cannot tell a
		// lost data dir from its first start, and founds a new cluster
		// (README, "a lost data dir").
		z := c.pick(slices.DeleteFunc(slices.Clone(nodes), func(n *cnode) bool { return !slices.Contains(n.args, "--join") }))
		return fault{"kill -9 " + z.name + ", its data dir lost, started again empty", true,
			func() {
				// No earlier loss still healing: two nodes waiting to
				// catch up (voting for no one) would leave no quorum
				// for good.
				for _, n := range nodes {
					eventually(c.t, opsWait, n.name+" ready", n.readyz)
				}
				z.kill9()
				z.wipe()
			}, func() {
				// Healed once it has caught up: until then it votes
				// for no one, and any other fault would leave the
				// shards it has not caught up in without a quorum.
				z.start()
				eventually(c.t, opsWait, z.name+" ready", z.readyz)
			}}
	default:
		return fault{x.name + " cut off, then SIGTERM " + y.name + " (its hand-over cannot reach " + x.name + "): no quorum", false,
			func() { x.disconnect(); y.signal("TERM"); y.waitDown() }, func() { x.connect(); y.start() }}
	}
}

// target is a node to hurt: half the time the leader of a random shard
// (as a random node sees it), else any node.
func (c *cluster) target(nodes []*cnode) *cnode {
	if c.rng.IntN(2) == 0 {
		via := c.pick(nodes)
		return c.leaderOf(via, c.rng.IntN(c.shardCount(via)))
	}
	return c.pick(nodes)
}

// shardCount is the cluster's number of shards, as via's status has it.
func (c *cluster) shardCount(via *cnode) int {
	c.t.Helper()
	var n int
	eventually(c.t, 30*time.Second, via.name+"'s status", func() error {
		st, err := via.status()
		if err != nil {
			return err
		}
		if n = len(st.Shards); n == 0 {
			return errors.New("no shards")
		}
		return nil
	})
	return n
}

// waitLeaderMoves waits until, as via sees it, x leads no shard (x is
// stopped or cut off: the others elect leaders of its shards).
func (c *cluster) waitLeaderMoves(x, via *cnode) {
	eventually(c.t, 30*time.Second, x.name+" leading no shard as "+via.name+" sees it", func() error {
		st, err := via.status()
		if err != nil {
			return err
		}
		for _, sh := range st.Shards {
			if sh.Leader == x.name {
				return errStill(x)
			}
		}
		return nil
	})
}

// healthz is nil once the node's HTTP port answers /healthz with 200:
// its process is up, its listeners bound.
func (n *cnode) healthz() error { return n.probe("/healthz") }

// readyz is nil once the node's /readyz answers 200: every shard has a
// leader and is applied up to its commit index here, and none withholds
// its votes.
func (n *cnode) readyz() error { return n.probe("/readyz") }

func (n *cnode) probe(path string) error {
	resp, err := (&http.Client{Timeout: time.Second}).Get(n.http() + path)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s: %s", path, resp.Status, body)
	}
	return nil
}

// wipe empties the stopped node's data dir: a lost disk.
func (n *cnode) wipe() {
	entries, err := os.ReadDir(n.dir)
	if err != nil {
		n.c.t.Fatal(err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(n.dir, e.Name())); err != nil {
			n.c.t.Fatal(err)
		}
	}
}

// recoveredPanic matches a supervisor's log line for an actor that died
// of a Go runtime error (a nil pointer, an index out of range...): a bug,
// even though its supervisor restarted it and the node went on.
var recoveredPanic = regexp.MustCompile(`reason"?[=:]"?crash: runtime panic[^\n]*`)

// noRecoveredPanic fails the test if the node's log (all of it, across
// its restarts) has an actor's runtime panic.
func (n *cnode) noRecoveredPanic() {
	logs, err := runCombined(30*time.Second, "docker", "logs", n.ctr)
	if err != nil {
		n.c.t.Errorf("%s: docker logs: %v", n.name, err)
		return
	}
	if m := recoveredPanic.FindString(logs); m != "" {
		n.c.t.Errorf("%s: an actor died of a runtime panic: %s", n.name, m)
	}
}
