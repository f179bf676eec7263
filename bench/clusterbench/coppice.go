package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coppice-kv/coppice/actors"
	"github.com/coppice-kv/coppice/cluster"
	"github.com/coppice-kv/coppice/internal/httpjson"
)

// nodeFlags are given to every node the program starts (-node-flags).
var nodeFlags []string

// node is one cmd/node process.
type node struct {
	name    string
	dataDir string
	client  string
	http    string
	gossip  string
	p       *proc
}

// startNode starts a node with a fresh data dir under work and waits
// (bounded) until its /readyz answers 200: every shard has a leader and
// has applied its log. A joining node is ready only once it has been
// added, so join is not waited for here.
func startNode(bin, work, name string, shards int, join string) (*node, error) {
	n := &node{name: name, dataDir: filepath.Join(work, name), client: freePort(), http: freePort(), gossip: freePort()}
	args := []string{"--name", name, "--data-dir", n.dataDir, "--shards", strconv.Itoa(shards),
		"--client-addr", n.client, "--cluster-addr", freePort(), "--gossip-addr", n.gossip,
		"--http-addr", n.http, "--gossip-fast"}
	if join != "" {
		args = append(args, "--join", join)
	}
	args = append(args, nodeFlags...)
	p, err := start(name, exec.Command(bin, args...), filepath.Join(work, name+".log"))
	if err != nil {
		return nil, err
	}
	n.p = p
	if join != "" {
		// Serving HTTP is enough; the join is waited for by the caller.
		return n, waitFor(60*time.Second, 50*time.Millisecond, name+" serving HTTP", p, func() error {
			_, err := n.status()
			return err
		})
	}
	return n, waitFor(60*time.Second, 50*time.Millisecond, name+" ready", p, n.ready)
}

var hc = &http.Client{Timeout: 5 * time.Second}

func (n *node) ready() error {
	resp, err := hc.Get("http://" + n.http + "/readyz")
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("readyz: %s: %s", resp.Status, body)
	}
	return nil
}

func (n *node) status() (*actors.Status, error) {
	var st actors.Status
	return &st, httpjson.Get(hc, "http://"+n.http+"/v1/status", &st)
}

// clusterHas checks that n's status shows every name in want as a voter of
// every shard and as a member of the cluster.
func clusterHas(n *node, want ...string) error {
	st, err := n.status()
	if err != nil {
		return err
	}
	if len(st.Shards) == 0 {
		return fmt.Errorf("%s: no shards in /v1/status", n.name)
	}
	for _, sh := range st.Shards {
		got := sh.WithSuffrage("voter")
		for _, w := range want {
			if !slices.Contains(got, w) {
				return fmt.Errorf("%s: shard %d voters %v, want %v among them", n.name, sh.ID, got, want)
			}
		}
	}
	members := st.Members()
	for _, w := range want {
		if !slices.Contains(members, w) {
			return fmt.Errorf("%s: members %v, want %v among them", n.name, members, want)
		}
	}
	return nil
}

// startCluster starts n1 standalone and the others joining n1's gossip
// address, and waits until n1 shows all of them as voters of every shard
// and members.
func startCluster(bin, work string, size, shards int) ([]*node, error) {
	n1, err := startNode(bin, work, "n1", shards, "")
	if err != nil {
		return nil, err
	}
	nodes := []*node{n1}
	var names = []string{"n1"}
	for i := 2; i <= size; i++ {
		name := fmt.Sprintf("n%d", i)
		n, err := startNode(bin, work, name, shards, n1.gossip)
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, n)
		names = append(names, name)
	}
	if err := waitFor(120*time.Second, 100*time.Millisecond, "every node a voter of every shard", nil,
		func() error { return clusterHas(n1, names...) }); err != nil {
		return nil, err
	}
	for _, n := range nodes {
		if err := waitFor(60*time.Second, 50*time.Millisecond, n.name+" ready", n.p, n.ready); err != nil {
			return nil, err
		}
	}
	// The coordinator spreads the shards' leaders over the nodes, one
	// move every few seconds: measure the cluster once it has.
	if err := waitFor(120*time.Second, 200*time.Millisecond, "shard leaders spread over the nodes", nil,
		func() error {
			st, err := n1.status()
			if err != nil {
				return err
			}
			return cluster.EvenLeaders(st.Leaders(), names)
		}); err != nil {
		return nil, err
	}
	return nodes, nil
}

// leaders returns, per node name, how many shards it leads (as n1 sees it).
func leaders(n *node) string {
	st, err := n.status()
	if err != nil {
		return "?"
	}
	count := map[string]int{}
	for _, sh := range st.Shards {
		count[sh.Leader]++
	}
	var s []string
	for k, v := range count {
		s = append(s, fmt.Sprintf("%s:%d", k, v))
	}
	slices.Sort(s)
	return strings.Join(s, " ")
}

// dirSize is the apparent size of every file under dir.
func dirSize(dir string) int64 {
	var total int64
	filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			total += info.Size()
		}
		return nil
	})
	return total
}

func buildNode(bin string) error {
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/node").CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/node (run from the repository root): %v\n%s", err, out)
	}
	return nil
}

// httpClientLong is for /v1/checksums, which reads every key.
var httpClientLong = http.Client{Timeout: 2 * time.Minute}

func removeAll(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	return nil
}
