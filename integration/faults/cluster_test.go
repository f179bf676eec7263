package faults

import (
	"crypto/tls"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coppice-kv/coppice/actors"
	"github.com/coppice-kv/coppice/internal/testcerts"
	"github.com/redis/go-redis/v9"
)

// cluster is one test's containers and networks. Nodes talk to each other
// on the cluster network only; the test's clients reach them on the client
// network, so a node cut off from its peers still takes client requests.
type cluster struct {
	t      *testing.T
	rng    *rand.Rand
	seed   uint64
	prefix string
	// netC carries Raft and gossip; netK carries clients and HTTP.
	netC, netK       string
	subnetC, subnetK netip.Prefix
	nodes            []*cnode
	flags            []string // given to every node
	// ca, when set (useTLS), signs every node's certificate: mutual TLS
	// on the cluster port and TLS on the client port.
	ca      *testcerts.CA
	certDir string
	// moves counts the nodes given new addresses (move).
	moves int
}

// useTLS turns on mutual TLS between the nodes added from now on and TLS
// on their client ports; the test's clients verify the node certificates.
func (c *cluster) useTLS() {
	c.ca, c.certDir = testcerts.NewCA(c.t, "cluster"), c.t.TempDir()
}

// cnode is one node's container.
type cnode struct {
	c        *cluster
	name     string
	ctr      string
	ip       string // on the cluster network
	clientIP string // on the client network
	dir      string // the host directory mounted at /data
	args     []string
	// create is the docker create command line, for move.
	create []string
}

// defaultFlags: fast failure detection on one host, and a removal delay
// long enough that no fault below removes a node unless a test asks.
var defaultFlags = []string{"--gossip-fast", "--remove-delay", "5m", "--log-level", "info"}

// newCluster makes the networks; nodes come with add and form.
func newCluster(t *testing.T, flags ...string) *cluster {
	t.Helper()
	needDocker(t)
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("COPPICE_FAULT_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("COPPICE_FAULT_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("seed %d (replay: COPPICE_FAULT_SEED=%d go test -run '^%s$' ./integration/faults)", seed, seed, t.Name())
	c := &cluster{
		t: t, seed: seed, rng: rand.New(rand.NewPCG(seed, 0x5eed)),
		prefix: fmt.Sprintf("cpf%d", os.Getpid()%100000) + "-" + strings.ToLower(strings.TrimPrefix(t.Name(), "Test")),
		flags:  append(slices.Clone(defaultFlags), flags...),
	}
	c.netC, c.subnetC = c.network("c")
	c.netK, c.subnetK = c.network("k")
	t.Cleanup(c.teardown)
	return c
}

// network creates a bridge network on a free /24 of 10.213.0.0/16 (a
// static subnet, so nodes keep their addresses across restarts and
// reconnects).
func (c *cluster) network(kind string) (string, netip.Prefix) {
	name := c.prefix + "-" + kind
	var last error
	for range 20 {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 213, byte(c.rng.IntN(250) + 1), 0}), 24)
		_, err := run(30*time.Second, "docker", "network", "create", "--driver", "bridge", "--subnet", p.String(), name)
		if err == nil {
			return name, p
		}
		if !strings.Contains(err.Error(), "overlap") {
			c.t.Fatal(err)
		}
		last = err
	}
	c.t.Fatalf("no free subnet for %s: %v", name, last)
	return "", netip.Prefix{}
}

// host returns the n-th address of p (p.Addr()+n).
func host(p netip.Prefix, n int) string {
	a := p.Addr().As4()
	a[3] = byte(n)
	return netip.AddrFrom4(a).String()
}

// gateway is the host's address on the cluster network.
func (c *cluster) gateway() string { return host(c.subnetC, 1) }

// add creates and starts a node. join is the gossip address of a node to
// join ("" for the first). extra flags follow the cluster's.
func (c *cluster) add(name string, join *cnode, extra ...string) *cnode {
	c.t.Helper()
	return c.addWith(name, join, nodeOpts{flags: extra})
}

// nodeOpts are a node's settings beyond the cluster's.
type nodeOpts struct {
	flags []string
	// disk, if set, is the size of a tmpfs mounted on the host at the
	// node's data directory: a small disk the test can fill.
	disk string
	// restart is the container's restart policy (docker run --restart).
	restart string
}

func (c *cluster) addWith(name string, join *cnode, o nodeOpts) *cnode {
	c.t.Helper()
	i := len(c.nodes) + 10
	n := &cnode{c: c, name: name, ctr: c.prefix + "-" + name, ip: host(c.subnetC, i), clientIP: host(c.subnetK, i)}
	if keep() { // outlives a failed test, for a post-mortem
		d, err := os.MkdirTemp("", "coppice-fault-"+name+"-")
		if err != nil {
			c.t.Fatal(err)
		}
		n.dir = d
		c.t.Cleanup(func() {
			if !c.t.Failed() {
				os.RemoveAll(d)
			}
		})
	} else {
		n.dir = c.t.TempDir()
	}
	if o.disk != "" {
		if _, err := run(30*time.Second, "mount", "-t", "tmpfs", "-o", "size="+o.disk, "tmpfs", n.dir); err != nil {
			c.t.Fatal(err)
		}
		// Unmounted after the container is gone (cleanups run last in, first out).
		c.t.Cleanup(func() {
			if _, err := run(30*time.Second, "umount", "-l", n.dir); err != nil {
				c.t.Logf("cleanup: %v", err)
			}
		})
	}
	n.args = append([]string{"--name", name, "--cluster-addr", n.ip + ":7380", "--gossip-addr", n.ip + ":7946"}, c.flags...)
	if join != nil {
		n.args = append(n.args, "--join", join.ip+":7946")
	}
	n.args = append(n.args, o.flags...)
	create := []string{"create", "--name", n.ctr, "--hostname", name, "--network", c.netC, "--ip", n.ip, "-v", n.dir + ":/data"}
	if c.ca != nil {
		f := c.ca.Issue(c.t, c.certDir, name)
		in := func(host string) string { return "/certs/" + filepath.Base(host) }
		n.args = append(n.args,
			"--cluster-tls-cert-file", in(f.Cert), "--cluster-tls-key-file", in(f.Key), "--cluster-tls-ca-file", in(f.CA),
			"--tls-cert-file", in(f.Cert), "--tls-key-file", in(f.Key))
		create = append(create, "-v", c.certDir+":/certs:ro")
	}
	if o.restart != "" {
		create = append(create, "--restart", o.restart)
	}
	n.create = append(append(create, image), n.args...)
	n.made()
	c.nodes = append(c.nodes, n)
	c.t.Cleanup(n.remove)
	n.start()
	return n
}

// form starts n nodes: the first alone, the others joining it, and waits
// until every shard has them all as voters.
func (c *cluster) form(names ...string) []*cnode {
	c.t.Helper()
	first := c.add(names[0], nil)
	nodes := []*cnode{first}
	for _, name := range names[1:] {
		nodes = append(nodes, c.add(name, first))
	}
	c.waitVoters(60*time.Second, nodes...)
	return nodes
}

// keep: COPPICE_FAULT_KEEP=1 leaves a failed test's containers, networks
// and data in place.
func keep() bool { return os.Getenv("COPPICE_FAULT_KEEP") == "1" }

// cleanup runs a removal command, logging (not failing on) an error.
func (c *cluster) cleanup(args ...string) {
	if _, err := run(60*time.Second, "docker", args...); err != nil {
		c.t.Logf("cleanup: %v", err)
	}
}

// teardown removes the networks, after the nodes' own cleanups.
func (c *cluster) teardown() {
	if c.t.Failed() && keep() {
		return
	}
	c.cleanup("network", "rm", c.netC)
	c.cleanup("network", "rm", c.netK)
}

// remove removes the container, logging its last lines if the test failed
// (and, with COPPICE_FAULT_LOGS=DIR, writing its whole log to DIR).
func (n *cnode) remove() {
	dir, failed := os.Getenv("COPPICE_FAULT_LOGS"), n.c.t.Failed()
	var logs string
	var logsErr error
	if dir != "" || failed {
		logs, logsErr = runCombined(30*time.Second, "docker", "logs", n.ctr)
	}
	if dir != "" {
		err := logsErr
		if err == nil {
			err = os.MkdirAll(dir, 0o755)
		}
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, n.c.prefix+"-"+n.name+".log"), []byte(logs), 0o644)
		}
		if err != nil {
			n.c.t.Logf("COPPICE_FAULT_LOGS: %s: %v", n.name, err)
		}
	}
	if failed {
		if i := strings.LastIndex(logs, "stop is slow"); i >= 0 && strings.Contains(logs[i:], "goroutines at the stop's timeout") {
			// A hung stop: its report whole (the stacks follow it,
			// hundreds of lines), and what led to it.
			logs = logs[max(0, i-2000):]
		} else {
			lines := strings.SplitAfter(logs, "\n")
			logs = strings.Join(lines[max(0, len(lines)-81):], "")
		}
		n.c.t.Logf("---- %s: last log lines (%v)\n%s", n.name, logsErr, logs)
		if keep() {
			n.c.t.Logf("COPPICE_FAULT_KEEP=1: container %s left in place", n.ctr)
			return
		}
	}
	n.c.cleanup("rm", "-f", "-v", n.ctr)
}

// made creates the container and connects it to the client network.
func (n *cnode) made() {
	docker(n.c.t, n.create...)
	docker(n.c.t, "network", "connect", "--ip", n.clientIP, n.c.netK, n.ctr)
}

// move gives the stopped node another address on the cluster network, as
// a container rescheduled elsewhere gets a new IP: the container is made
// again on the same data, with the new address in its flags. Its client
// address stays.
func (n *cnode) move() {
	old := n.ip
	n.c.moves++
	n.ip = host(n.c.subnetC, 100+n.c.moves)
	for i, a := range n.create {
		if a == old || strings.HasPrefix(a, old+":") {
			n.create[i] = n.ip + strings.TrimPrefix(a, old)
		}
	}
	docker(n.c.t, "rm", "-f", n.ctr)
	n.made()
	n.c.t.Logf("%s moved from %s to %s", n.name, old, n.ip)
}

func (n *cnode) String() string { return n.name }

func (n *cnode) http() string { return "http://" + n.clientIP + ":7381" }

// start starts the (created or stopped) container.
func (n *cnode) start() { docker(n.c.t, "start", n.ctr) }

// signal sends sig (KILL, STOP, CONT, TERM) to the node process.
func (n *cnode) signal(sig string) { docker(n.c.t, "kill", "-s", sig, n.ctr) }

// kill9 kills the node with SIGKILL and waits until the container stopped.
func (n *cnode) kill9() {
	n.signal("KILL")
	n.waitDown()
}

// waitDown waits until the container stopped: longer than the node's own
// --stop-timeout (30 s), so that a stop that hangs ends in the node's
// report of what it waited for (remove logs it).
func (n *cnode) waitDown() {
	eventually(n.c.t, 45*time.Second, n.name+" stopped", func() error {
		if n.running() {
			return fmt.Errorf("still running")
		}
		return nil
	})
}

func (n *cnode) running() bool {
	out, err := run(10*time.Second, "docker", "inspect", "-f", "{{.State.Running}}", n.ctr)
	return err == nil && out == "true"
}

// disconnect cuts the node off from its peers (the cluster network);
// clients still reach it.
func (n *cnode) disconnect() { docker(n.c.t, "network", "disconnect", "-f", n.c.netC, n.ctr) }

// connect puts it back, at the same address.
func (n *cnode) connect() { docker(n.c.t, "network", "connect", "--ip", n.ip, n.c.netC, n.ctr) }

// pid is the node process's pid on the host.
func (n *cnode) pid() string { return docker(n.c.t, "inspect", "-f", "{{.State.Pid}}", n.ctr) }

// nsenter runs a command in the node's network namespace.
func (n *cnode) nsenter(args ...string) string {
	n.c.t.Helper()
	out, err := run(30*time.Second, "nsenter", append([]string{"-t", n.pid(), "-n"}, args...)...)
	if err != nil {
		n.c.t.Fatal(err)
	}
	return out
}

// clusterIface is the name of the node's interface on the cluster network.
func (n *cnode) clusterIface() string {
	for _, line := range strings.Split(n.nsenter("ip", "-o", "-4", "addr", "show"), "\n") {
		f := strings.Fields(line)
		if len(f) >= 4 && strings.HasPrefix(f[3], n.ip+"/") {
			return f[1]
		}
	}
	n.c.t.Fatalf("%s: no interface with %s", n.name, n.ip)
	return ""
}

// The links are degraded inside the node's network namespace, on its
// cluster interface only (clients are not slowed). This kernel has no
// sch_netem, so loss is iptables' statistic match and slowness is a tbf
// rate limit, whose queue adds delay under load.

// lossy drops pct percent of the packets the node sends to or receives
// from its peers.
func (n *cnode) lossy(pct int) {
	dev, p := n.clusterIface(), fmt.Sprintf("%.2f", float64(pct)/100)
	n.nsenter("iptables", "-A", "INPUT", "-i", dev, "-m", "statistic", "--mode", "random", "--probability", p, "-j", "DROP")
	n.nsenter("iptables", "-A", "OUTPUT", "-o", dev, "-m", "statistic", "--mode", "random", "--probability", p, "-j", "DROP")
}

// slow limits what the node sends its peers to rate (tc tbf syntax, e.g.
// "512kbit"), queueing up to latency.
func (n *cnode) slow(rate, latency string) {
	n.nsenter("tc", "qdisc", "replace", "dev", n.clusterIface(), "root", "tbf", "rate", rate, "burst", "32kbit", "latency", latency)
}

// cutClusterPort drops every packet to or from the node's cluster port
// (7380), its Raft and forwarding traffic, in and out; its gossip (7946)
// goes on.
func (n *cnode) cutClusterPort() {
	for _, rule := range [][]string{{"INPUT", "--dport"}, {"INPUT", "--sport"}, {"OUTPUT", "--dport"}, {"OUTPUT", "--sport"}} {
		n.nsenter("iptables", "-A", rule[0], "-p", "tcp", rule[1], "7380", "-j", "DROP")
	}
}

// cleanLinks undoes lossy, slow and cutClusterPort.
func (n *cnode) cleanLinks() {
	n.nsenter("iptables", "-F", "INPUT")
	n.nsenter("iptables", "-F", "OUTPUT")
	out, err := run(30*time.Second, "nsenter", "-t", n.pid(), "-n", "tc", "qdisc", "del", "dev", n.clusterIface(), "root")
	if err != nil && !strings.Contains(err.Error(), "No such file") && !strings.Contains(err.Error(), "Cannot delete qdisc with handle of zero") {
		n.c.t.Fatalf("%s: %v", out, err)
	}
}

// redis is a client of this node that never retries by itself, so the
// history records exactly what the client saw.
func (n *cnode) redis() *redis.Client {
	o := &redis.Options{
		Addr: n.clientIP + ":7379", MaxRetries: -1, PoolSize: 1,
		DialTimeout: time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second,
		ContextTimeoutEnabled: true, Protocol: 2, DisableIdentity: true,
	}
	if n.c.ca != nil {
		// testcerts certificates name localhost.
		o.TLSConfig = &tls.Config{RootCAs: n.c.ca.Pool(), ServerName: "localhost", MinVersion: tls.VersionTLS12}
	}
	return redis.NewClient(o)
}

func (n *cnode) status() (*actors.Status, error) {
	var st actors.Status
	return &st, httpJSON("GET", n.http()+"/v1/status", &st)
}

// waitVoters waits until every shard, as each of nodes sees it, has a
// leader and exactly nodes as voters.
func (c *cluster) waitVoters(timeout time.Duration, nodes ...*cnode) {
	c.t.Helper()
	var want []string
	for _, n := range nodes {
		want = append(want, n.name)
	}
	slices.Sort(want)
	eventually(c.t, timeout, fmt.Sprintf("voters %v with a leader in every shard", want), func() error {
		for _, n := range nodes {
			st, err := n.status()
			if err != nil {
				return err
			}
			if err := votersAre(st, want); err != nil {
				return fmt.Errorf("%s: %w", n.name, err)
			}
		}
		return nil
	})
}

// waitAddressed waits until, as each of nodes sees it, every shard has
// target at its cluster address now, and target answers at the address the
// cluster state has for it (its applied index is known).
func (c *cluster) waitAddressed(timeout time.Duration, target *cnode, nodes ...*cnode) {
	c.t.Helper()
	want := target.ip + ":7380"
	eventually(c.t, timeout, fmt.Sprintf("%s at %s in every shard", target, want), func() error {
		for _, n := range nodes {
			st, err := n.status()
			if err != nil {
				return err
			}
			for _, sh := range st.Shards {
				i := slices.IndexFunc(sh.Members, func(m actors.MemberStatus) bool { return m.Node == target.name })
				switch {
				case i < 0:
					return fmt.Errorf("%s: shard %d has no %s", n, sh.ID, target)
				case sh.Members[i].Address != want:
					return fmt.Errorf("%s: shard %d has %s at %s", n, sh.ID, target, sh.Members[i].Address)
				case sh.Members[i].AppliedIndex == nil:
					return fmt.Errorf("%s: shard %d: %s does not answer at its recorded address", n, sh.ID, target)
				}
			}
		}
		return nil
	})
}

// votersAre checks every shard has a leader and exactly want (sorted) as
// voters.
func votersAre(st *actors.Status, want []string) error {
	for _, sh := range st.Shards {
		if got := sh.WithSuffrage("voter"); !slices.Equal(got, want) {
			return fmt.Errorf("shard %d voters %v", sh.ID, got)
		}
		if sh.Leader == "" {
			return fmt.Errorf("shard %d has no leader", sh.ID)
		}
	}
	return nil
}

// leaderOf is the node leading shard, as n sees it.
func (c *cluster) leaderOf(n *cnode, shard int) *cnode {
	c.t.Helper()
	var name string
	eventually(c.t, 30*time.Second, fmt.Sprintf("a leader of shard %d", shard), func() error {
		st, err := n.status()
		if err != nil {
			return err
		}
		if shard >= len(st.Shards) || st.Shards[shard].Leader == "" {
			return fmt.Errorf("shard %d: no leader", shard)
		}
		name = st.Shards[shard].Leader
		return nil
	})
	for _, m := range c.nodes {
		if m.name == name {
			return m
		}
	}
	c.t.Fatalf("leader %q is not a node of this test", name)
	return nil
}

// others is nodes without n.
func others(nodes []*cnode, n *cnode) []*cnode {
	var out []*cnode
	for _, m := range nodes {
		if m != n {
			out = append(out, m)
		}
	}
	return out
}

// pick chooses one of nodes with the test's seeded generator.
func (c *cluster) pick(nodes []*cnode) *cnode { return nodes[c.rng.IntN(len(nodes))] }

type checksum struct {
	Shard        int    `json:"shard"`
	AppliedIndex uint64 `json:"applied_index"`
	CRC32C       string `json:"crc32c"`
	Keys         uint64 `json:"keys"`
}

// sameData waits until every shard has the same applied index and
// checksum on every one of nodes.
func (c *cluster) sameData(timeout time.Duration, nodes ...*cnode) {
	c.t.Helper()
	eventually(c.t, timeout, "every shard's checksum equal on "+fmt.Sprint(nodes), func() error {
		var first []checksum
		for i, n := range nodes {
			var cs []checksum
			if err := httpJSON("GET", n.http()+"/v1/checksums", &cs); err != nil {
				return err
			}
			if i == 0 {
				first = cs
				continue
			}
			if len(cs) != len(first) {
				return fmt.Errorf("%s has %d shards, %s %d", n.name, len(cs), nodes[0].name, len(first))
			}
			for s := range cs {
				if cs[s] != first[s] {
					return fmt.Errorf("shard %d: %s has %+v, %s has %+v", s, nodes[0].name, first[s], n.name, cs[s])
				}
			}
		}
		return nil
	})
}

func errStill(n *cnode) error { return fmt.Errorf("%s still leads", n.name) }
