package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/coppice-kv/coppice/internal/testwait"
	"io"
	"io/fs"
	"math/rand"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// clusterFlags make failure detection and removal fast on loopback.
var clusterFlags = []string{"--gossip-fast", "--remove-delay", "4s"}

type nodeView struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	Member bool   `json:"member"`
}

type statusView struct {
	ClusterID  string     `json:"cluster_id"`
	SyncStatus string     `json:"sync_status"`
	Nodes      []nodeView `json:"nodes"`
	Shards     []struct {
		ID      int    `json:"id"`
		Leader  string `json:"leader"`
		Members []struct {
			Node     string `json:"node"`
			Suffrage string `json:"suffrage"`
		} `json:"members"`
	} `json:"shards"`
}

func (n *node) getJSON(path string, v any) error {
	hc := &http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get("http://" + n.http + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s: %s", path, resp.Status, b)
	}
	return json.Unmarshal(b, v)
}

func (n *node) status() (*statusView, error) {
	var st statusView
	return &st, n.getJSON("/v1/status", &st)
}

// eventually polls cond every 100ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	testwait.For(t, timeout, 100*time.Millisecond, what, cond)
}

// voters checks that every shard's configuration, as n sees it, has exactly
// want as voters.
func voters(n *node, want ...string) error { return suffrage(n, "voter", want...) }

// nonvoters checks every shard has exactly want as non-voters, as n sees
// it.
func nonvoters(n *node, want ...string) error { return suffrage(n, "nonvoter", want...) }

func suffrage(n *node, kind string, want ...string) error {
	st, err := n.status()
	if err != nil {
		return err
	}
	slices.Sort(want)
	for _, sh := range st.Shards {
		var got []string
		for _, m := range sh.Members {
			if m.Suffrage == kind {
				got = append(got, m.Node)
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			return fmt.Errorf("%s: shard %d %ss %v, want %v", n.name, sh.ID, kind, got, want)
		}
	}
	return nil
}

// members checks that n's cluster view lists exactly want as members.
func members(n *node, want ...string) error {
	st, err := n.status()
	if err != nil {
		return err
	}
	var got []string
	for _, v := range st.Nodes {
		if v.Member {
			got = append(got, v.Name)
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		return fmt.Errorf("%s: members %v, want %v (status %+v)", n.name, got, want, st.Nodes)
	}
	return nil
}

type checksum struct {
	Shard        int    `json:"shard"`
	AppliedIndex uint64 `json:"applied_index"`
	CRC32C       string `json:"crc32c"`
	Keys         uint64 `json:"keys"`
}

// sameData checks every shard has the same applied index and checksum on
// every node.
func sameData(nodes ...*node) error {
	var first []checksum
	for i, n := range nodes {
		var cs []checksum
		if err := n.getJSON("/v1/checksums", &cs); err != nil {
			return err
		}
		if i == 0 {
			first = cs
			continue
		}
		for s := range cs {
			if cs[s] != first[s] {
				return fmt.Errorf("shard %d: %s has %+v, %s has %+v", s, nodes[0].name, first[s], n.name, cs[s])
			}
		}
	}
	return nil
}

func startCluster(t *testing.T, flags ...string) []*node {
	if flags == nil {
		flags = clusterFlags
	}
	base := t.TempDir()
	n1 := newNode(t, "n1", base+"/n1", flags...)
	n1.start()
	nodes := []*node{n1}
	for _, name := range []string{"n2", "n3"} {
		n := newNode(t, name, base+"/"+name, append([]string{"--join", n1.gossip}, flags...)...)
		n.start()
		nodes = append(nodes, n)
	}
	eventually(t, 60*time.Second, "three voters in every shard", func() error { return voters(n1, "n1", "n2", "n3") })
	eventually(t, 30*time.Second, "three members", func() error { return members(n1, "n1", "n2", "n3") })
	return nodes
}

// writer keeps writing distinct keys through every node until stopped, and
// records what was acknowledged.
type writer struct {
	mu    sync.Mutex
	acked map[string]string
	n     atomic.Int64
	stop  chan struct{}
	done  sync.WaitGroup
}

func startWriter(t *testing.T, nodes []*node) *writer {
	w := &writer{acked: map[string]string{}, stop: make(chan struct{})}
	for i, n := range nodes {
		w.done.Add(1)
		go func() {
			defer w.done.Done()
			c := n.redis()
			defer c.Close()
			for j := 0; ; j++ {
				select {
				case <-w.stop:
					return
				default:
				}
				k, v := fmt.Sprintf("w%d:%d", i, j), fmt.Sprintf("v%d", rand.Int())
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				err := c.Set(ctx, k, v, 0).Err()
				cancel()
				if err != nil {
					continue // not acknowledged: may or may not have happened
				}
				w.mu.Lock()
				w.acked[k] = v
				w.mu.Unlock()
				w.n.Add(1)
			}
		}()
	}
	return w
}

func (w *writer) finish() map[string]string {
	close(w.stop)
	w.done.Wait()
	return w.acked
}

func readAll(t *testing.T, n *node, acked map[string]string) {
	t.Helper()
	c := n.redis()
	defer c.Close()
	missing := 0
	for k, v := range acked {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		got, err := c.Get(ctx, k).Result()
		cancel()
		if err != nil || got != v {
			if missing++; missing <= 5 {
				t.Errorf("%s: GET %s = %q, %v; want %q", n.name, k, got, err, v)
			}
		}
	}
	if missing > 0 {
		t.Fatalf("%s: %d of %d acknowledged writes missing", n.name, missing, len(acked))
	}
}

// TestClusterFormsAndAnyNodeServesAnyKey: three nodes form from --join;
// a write through any node is read through any other.
func TestClusterFormsAndAnyNodeServesAnyKey(t *testing.T) {
	nodes := startCluster(t)
	// Adding a member, or the node itself, changes nothing; an unknown
	// node and a bad role are refused.
	for _, c := range []struct {
		args []string
		ok   bool
		want string
	}{
		{[]string{"add", "n2"}, true, "member already"},
		{[]string{"add", "n1"}, true, "member already"},
		{[]string{"add", "ghost"}, false, "not alive in gossip"},
		{[]string{"add", "n3", "--role", "boss"}, false, "role"},
	} {
		out, err := operator(t, nodes[0], c.args...)
		if (err == nil) != c.ok || !strings.Contains(out, c.want) {
			t.Fatalf("node %v: err %v, output %q; want ok=%v and %q", c.args, err, out, c.ok, c.want)
		}
	}
	if err := members(nodes[0], "n1", "n2", "n3"); err != nil {
		t.Fatal(err)
	}
	var clients []*redis.Client
	for _, n := range nodes {
		c := n.redis()
		defer c.Close()
		clients = append(clients, c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < 60; i++ {
		k := fmt.Sprintf("key:%d", i)
		if err := clients[i%3].Set(ctx, k, i, 0).Err(); err != nil {
			t.Fatalf("SET %s via %s: %v", k, nodes[i%3].name, err)
		}
		got, err := clients[(i+1)%3].Get(ctx, k).Int()
		if err != nil || got != i {
			t.Fatalf("GET %s via %s = %d, %v; want %d", k, nodes[(i+1)%3].name, got, err, i)
		}
	}
	if n, err := clients[2].DBSize(ctx).Result(); err != nil || n < 60 {
		t.Fatalf("DBSIZE via n3 = %d, %v", n, err)
	}
	keys, _, err := clients[1].Scan(ctx, 0, "key:*", 1000).Result()
	if err != nil || len(keys) != 60 {
		t.Fatalf("SCAN via n2: %d keys, %v", len(keys), err)
	}
	eventually(t, 30*time.Second, "same data on every replica", func() error { return sameData(nodes...) })
	// Every member reports its applied index, and once all have applied
	// the same entries none lags.
	eventually(t, 10*time.Second, "every member's applied index, no lag", func() error {
		var st struct {
			Shards []struct {
				ID      int `json:"id"`
				Members []struct {
					Node    string  `json:"node"`
					Applied *uint64 `json:"applied_index"`
					Lag     *uint64 `json:"lag"`
				} `json:"members"`
			} `json:"shards"`
		}
		if err := nodes[1].getJSON("/v1/status", &st); err != nil {
			return err
		}
		for _, sh := range st.Shards {
			for _, m := range sh.Members {
				if m.Applied == nil || m.Lag == nil || *m.Applied == 0 || *m.Lag != 0 {
					return fmt.Errorf("shard %d member %s: applied %v lag %v", sh.ID, m.Node, m.Applied, m.Lag)
				}
			}
		}
		return nil
	})
}

// TestJoinUnderWritesThenRemoveDeadNode: a fourth node joins while writes
// go on through every node; every acknowledged write is readable on it and
// every shard's checksum agrees on all four. Killed and left down past the
// removal delay, it is removed from every shard.
func TestJoinUnderWritesThenRemoveDeadNode(t *testing.T) {
	nodes := startCluster(t)
	w := startWriter(t, nodes)
	eventually(t, 30*time.Second, "writes flowing", func() error {
		if w.n.Load() < 200 {
			return fmt.Errorf("%d writes", w.n.Load())
		}
		return nil
	})
	n4 := newNode(t, "n4", t.TempDir(), append([]string{"--join", nodes[1].gossip}, clusterFlags...)...)
	n4.start()
	eventually(t, 90*time.Second, "n4 a voter in every shard", func() error { return voters(nodes[0], "n1", "n2", "n3", "n4") })
	eventually(t, 30*time.Second, "n4 a member", func() error { return members(nodes[0], "n1", "n2", "n3", "n4") })
	before := w.n.Load()
	eventually(t, 30*time.Second, "writes after the join", func() error {
		if w.n.Load() < before+100 {
			return fmt.Errorf("%d writes since the join", w.n.Load()-before)
		}
		return nil
	})
	acked := w.finish()
	t.Logf("%d writes acknowledged during the join", len(acked))
	all := append(slices.Clone(nodes), n4)
	eventually(t, 30*time.Second, "same data on every replica", func() error { return sameData(all...) })
	readAll(t, n4, acked)

	n4.kill9()
	eventually(t, 60*time.Second, "n4 removed from every shard", func() error { return voters(nodes[0], "n1", "n2", "n3") })
	eventually(t, 30*time.Second, "n4 no longer a member", func() error { return members(nodes[0], "n1", "n2", "n3") })
	readAll(t, nodes[2], acked)
}

// operator runs `node <args...>` against a node's HTTP port.
func operator(t *testing.T, n *node, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(nodeBinary(t), append(args, "--http", n.http)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestRemoveLeaderAndRefuseQuorumLoss: with one of three nodes killed,
// removing another would leave every shard one voter alive of two: refused,
// and nothing changes. The killed node comes back within the removal delay
// and keeps its membership. Then an operator removes the node that leads a
// shard: leadership moves first and writes go on.
func TestRemoveLeaderAndRefuseQuorumLoss(t *testing.T) {
	nodes := startCluster(t, "--gossip-fast", "--remove-delay", "10m")
	all := []string{"n1", "n2", "n3"}
	// Bad input: a node nobody knows, and a missing name.
	if out, err := operator(t, nodes[0], "remove", "nobody"); err == nil || !strings.Contains(out, "no such node") {
		t.Fatalf("remove nobody: %v\n%s", err, out)
	}
	if out, err := operator(t, nodes[0], "remove"); err == nil || !strings.Contains(out, "want 1 node name") {
		t.Fatalf("remove without a name: %v\n%s", err, out)
	}

	nodes[2].kill9()
	eventually(t, 30*time.Second, "n3 seen failed", func() error {
		st, err := nodes[0].status()
		if err != nil {
			return err
		}
		for _, v := range st.Nodes {
			if v.Name == "n3" && v.Status == "failed" {
				return nil
			}
		}
		return fmt.Errorf("nodes %+v", st.Nodes)
	})
	out, err := operator(t, nodes[0], "remove", "n2")
	if err == nil || !strings.Contains(out, "quorum") {
		t.Fatalf("remove n2 with n3 down: want a quorum refusal, got %v\n%s", err, out)
	}
	if err := members(nodes[0], all...); err != nil {
		t.Fatalf("the refused removal changed the members: %v", err)
	}
	if err := voters(nodes[0], all...); err != nil {
		t.Fatalf("the refused removal changed the shards: %v", err)
	}
	nodes[2].start()
	eventually(t, 30*time.Second, "n3 back, still a voter everywhere", func() error { return voters(nodes[2], all...) })

	st, err := nodes[0].status()
	if err != nil {
		t.Fatal(err)
	}
	leader := st.Shards[0].Leader
	var rest []*node
	var restNames []string
	for _, n := range nodes {
		if n.name != leader {
			rest = append(rest, n)
			restNames = append(restNames, n.name)
		}
	}
	if len(rest) != 2 {
		t.Fatalf("shard 0 leader %q is not one of the nodes", leader)
	}
	if out, err := operator(t, rest[0], "remove", leader); err != nil {
		t.Fatalf("remove %s: %v\n%s", leader, err, out)
	}
	eventually(t, 60*time.Second, leader+" removed from every shard", func() error { return voters(rest[0], restNames...) })
	eventually(t, 30*time.Second, leader+" no longer a member", func() error { return members(rest[0], restNames...) })
	c := rest[1].redis()
	defer c.Close()
	eventually(t, 30*time.Second, "writes after the removal", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return c.Set(ctx, "after-removal", "1", 0).Err()
	})

	// leave: rest[0] takes itself out (leadership and the system group
	// move to rest[1]) and its process exits 0; rest[1] serves alone.
	if out, err := operator(t, rest[0], "leave"); err != nil {
		t.Fatalf("leave %s: %v\n%s", rest[0].name, err, out)
	}
	select {
	case <-rest[0].exited:
		if st := rest[0].cmd.ProcessState; !st.Success() {
			t.Fatalf("%s exited with %v after leave", rest[0].name, st)
		}
		rest[0].cmd = nil
	case <-time.After(60 * time.Second):
		t.Fatalf("%s still running 60s after leave", rest[0].name)
	}
	eventually(t, 30*time.Second, rest[1].name+" the only voter", func() error { return voters(rest[1], rest[1].name) })
	eventually(t, 30*time.Second, "writes after the leave", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return c.Set(ctx, "after-leave", "1", 0).Err()
	})
}

type syncView struct {
	Syncs []struct {
		Node  string `json:"node"`
		Shard int    `json:"shard"`
		State string `json:"state"`
	} `json:"syncs"`
	Shards []struct {
		ID     int    `json:"id"`
		Leader string `json:"leader"`
	} `json:"shards"`
}

// TestLeaderKilledDuringSync: while a fourth node syncs under writes, the
// node leading the shard being synced (and coordinating the cluster) is
// killed with SIGKILL. A new coordinator resumes the join from the journal,
// the sync goes on from the shard's new leader, and the new node ends up a
// voter everywhere with the same data as the survivors.
func TestLeaderKilledDuringSync(t *testing.T) {
	nodes := startCluster(t, "--gossip-fast", "--remove-delay", "10m")
	w := startWriter(t, nodes[1:])
	eventually(t, 30*time.Second, "writes flowing", func() error {
		if w.n.Load() < 200 {
			return fmt.Errorf("%d writes", w.n.Load())
		}
		return nil
	})
	n4 := newNode(t, "n4", t.TempDir(), "--join", nodes[1].gossip, "--gossip-fast", "--remove-delay", "10m")
	n4.launch()
	// Find a shard n4 is syncing, and its leader.
	var victim string
	eventually(t, 60*time.Second, "a sync of n4 under way", func() error {
		var st syncView
		if err := nodes[1].getJSON("/v1/status", &st); err != nil {
			return err
		}
		for _, s := range st.Syncs {
			if s.Node == "n4" && (s.State == "copying" || s.State == "catching_up") {
				victim = st.Shards[s.Shard].Leader
				if victim != "" && victim != "n4" {
					return nil
				}
			}
		}
		return fmt.Errorf("syncs %+v", st.Syncs)
	})
	var survivors []*node
	for _, n := range nodes {
		if n.name == victim {
			n.kill9()
		} else {
			survivors = append(survivors, n)
		}
	}
	if len(survivors) != 2 {
		t.Fatalf("victim %q is not one of the nodes", victim)
	}
	t.Logf("killed %s during the sync", victim)
	eventually(t, 90*time.Second, "n4 a voter in every shard", func() error {
		return voters(survivors[0], "n1", "n2", "n3", "n4")
	})
	eventually(t, 30*time.Second, "n4 a member", func() error { return members(survivors[0], "n1", "n2", "n3", "n4") })
	acked := w.finish()
	all := append(survivors, n4)
	eventually(t, 30*time.Second, "same data on the survivors and n4", func() error { return sameData(all...) })
	readAll(t, n4, acked)
}

// syncMethods returns how each shard was synced to node (replay or
// snapshot), as n's status reports the coordinator's view.
func syncMethods(n *node, node string) (map[int]string, error) {
	var st struct {
		Syncs []struct {
			Node   string `json:"node"`
			Shard  int    `json:"shard"`
			Method string `json:"method"`
		} `json:"syncs"`
	}
	if err := n.getJSON("/v1/status", &st); err != nil {
		return nil, err
	}
	out := map[int]string{}
	for _, s := range st.Syncs {
		if s.Node == node {
			out[s.Shard] = s.Method
		}
	}
	return out, nil
}

// copyDir copies a stopped node's data dir, as an operator's cp -r would.
func copyDir(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(to, b, 0o644)
	})
}

// TestJoinCopiesCheckpointWhenLogIsCompacted: when the leaders have
// compacted their logs past what a new node has, it gets each shard as a
// checkpoint copy (method snapshot), then the log from there, and ends with
// the same data.
func TestJoinCopiesCheckpointWhenLogIsCompacted(t *testing.T) {
	flags := []string{"--gossip-fast", "--remove-delay", "10m", "--sync-parallel", "1",
		"--snapshot-threshold", "64", "--snapshot-interval", "100ms", "--trailing-logs", "16"}
	nodes := startCluster(t, flags...)
	c := nodes[0].redis()
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	acked := map[string]string{}
	for i := 0; i < 2000; i++ {
		k := fmt.Sprintf("k:%d", i)
		if err := c.Set(ctx, k, k, 0).Err(); err != nil {
			t.Fatal(err)
		}
		acked[k] = k
	}
	eventually(t, 30*time.Second, "every shard's log compacted", func() error {
		var st struct {
			Shards []struct {
				ID         int    `json:"id"`
				FirstIndex uint64 `json:"first_index"`
			} `json:"shards"`
		}
		if err := nodes[0].getJSON("/v1/status", &st); err != nil {
			return err
		}
		for _, sh := range st.Shards {
			if sh.FirstIndex <= 1 {
				return fmt.Errorf("shard %d: first index %d", sh.ID, sh.FirstIndex)
			}
		}
		return nil
	})
	n4 := newNode(t, "n4", t.TempDir(), append([]string{"--join", nodes[0].gossip}, flags...)...)
	n4.start()
	// --sync-parallel 1: the shards are synced one at a time.
	most := 0
	eventually(t, 60*time.Second, "n4 a voter in every shard", func() error {
		var st struct {
			Syncs []struct {
				Node  string `json:"node"`
				State string `json:"state"`
			} `json:"syncs"`
		}
		if err := nodes[0].getJSON("/v1/status", &st); err == nil {
			active := 0
			for _, s := range st.Syncs {
				if s.Node == "n4" && s.State != "synced" && s.State != "failed" {
					active++
				}
			}
			most = max(most, active)
		}
		return voters(nodes[0], "n1", "n2", "n3", "n4")
	})
	if most > 1 {
		t.Errorf("%d shard syncs ran at once with --sync-parallel 1", most)
	}
	methods, err := syncMethods(nodes[0], "n4")
	if err != nil {
		t.Fatal(err)
	}
	for shard := 0; shard < 4; shard++ {
		if methods[shard] != "snapshot" {
			t.Errorf("shard %d of n4 synced by %q, want snapshot (all: %v)", shard, methods[shard], methods)
		}
	}
	eventually(t, 30*time.Second, "same data on every replica", func() error { return sameData(append(nodes, n4)...) })
	readAll(t, n4, acked)
}
