package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/coppice-kv/coppice/kv"
	"io/fs"
	"maps"
	"math/rand"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coppice-kv/coppice/actors"
	"github.com/coppice-kv/coppice/internal/httpjson"
	"github.com/coppice-kv/coppice/internal/testwait"
	"github.com/redis/go-redis/v9"
)

// clusterFlags make failure detection and removal fast on loopback.
var clusterFlags = []string{"--gossip-fast", "--remove-delay", "4s"}

// getJSON reads n's HTTP API at path (5s).
func (n *node) getJSON(path string, v any) error {
	return httpjson.Get(&http.Client{Timeout: 5 * time.Second}, "http://"+n.http+path, v)
}

func (n *node) status() (*actors.Status, error) {
	var st actors.Status
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
		if got := sh.WithSuffrage(kind); !slices.Equal(got, want) {
			return fmt.Errorf("%s: shard %d %ss %v, want %v", n.name, sh.ID, kind, got, want)
		}
	}
	return nil
}

// systemVoters checks that the system group's voters, as the coordinator
// reports them through n, are exactly want.
func systemVoters(n *node, want ...string) error {
	st, err := n.status()
	if err != nil {
		return err
	}
	slices.Sort(want)
	if got := st.SystemGroupWith("voter"); !slices.Equal(got, want) {
		return fmt.Errorf("%s: system group voters %v, want %v (group %+v)", n.name, got, want, st.SystemGroup)
	}
	return nil
}

// members checks that n's cluster view lists exactly want as members.
func members(n *node, want ...string) error {
	st, err := n.status()
	if err != nil {
		return err
	}
	slices.Sort(want)
	if got := st.Members(); !slices.Equal(got, want) {
		return fmt.Errorf("%s: members %v, want %v (status %+v)", n.name, got, want, st.Nodes)
	}
	return nil
}

// removed checks n knows the cluster removed it: its status says so and
// shows the coordinator's view, without n among the members; its
// /readyz gives every shard that reason; a write sent to it is refused
// with it, not taken nor left to wait for a leader; its CLUSTER SHARDS
// shows the members as masters.
func removed(n *node, _ ...string) error {
	const why = "this node was removed from the cluster"
	st, err := n.status()
	if err != nil {
		return err
	}
	if !st.Removed || st.ClusterError != "" || len(st.Members()) == 0 || slices.Contains(st.Members(), n.name) {
		return fmt.Errorf("%s: status removed %v, members %v, cluster error %q: want removed, and the coordinator's members without it",
			n.name, st.Removed, st.Members(), st.ClusterError)
	}
	var rz struct {
		Shards []actors.ShardReadiness `json:"shards"`
	}
	// /readyz answers 503 with the shards in its body.
	resp, err := http.Get("http://" + n.http + "/readyz")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&rz); err != nil {
		return fmt.Errorf("%s: readyz: %v", n.name, err)
	}
	if len(rz.Shards) != scriptShards {
		return fmt.Errorf("%s: readyz lists %d shards not ready, want all %d: %+v", n.name, len(rz.Shards), scriptShards, rz.Shards)
	}
	for _, sh := range rz.Shards {
		if !strings.HasPrefix(sh.Reason, why) {
			return fmt.Errorf("%s: readyz: shard %d: %q, want %q...", n.name, sh.ID, sh.Reason, why)
		}
	}
	c := n.redis()
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = c.Set(ctx, "removed-probe", "1", 0).Err()
	if err == nil || !strings.HasPrefix(err.Error(), "TRYAGAIN ") || !strings.Contains(err.Error(), why) {
		return fmt.Errorf("%s: SET: %v, want TRYAGAIN ... %s", n.name, err, why)
	}
	// A Redis Cluster client that asks it for the slots is sent to the
	// members: every shard's slots, a master there, none of them it.
	shards, err := c.ClusterShards(ctx).Result()
	if err != nil {
		return fmt.Errorf("%s: CLUSTER SHARDS: %v", n.name, err)
	}
	if len(shards) != scriptShards {
		return fmt.Errorf("%s: CLUSTER SHARDS: %d shards, want %d: %+v", n.name, len(shards), scriptShards, shards)
	}
	_, port, _ := net.SplitHostPort(n.client)
	for _, sh := range shards {
		master := slices.IndexFunc(sh.Nodes, func(x redis.Node) bool { return x.Role == "master" })
		if len(sh.Slots) == 0 || master < 0 || strconv.FormatInt(sh.Nodes[master].Port, 10) == port {
			return fmt.Errorf("%s: CLUSTER SHARDS: slots %+v served by %+v, want a member as master", n.name, sh.Slots, sh.Nodes)
		}
	}
	return nil
}

// ready checks n's /readyz answers 200: every shard ready, the node not
// removed.
func ready(n *node, _ ...string) error {
	return n.ready(&http.Client{Timeout: 5 * time.Second})
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

// writer keeps writing distinct keys through every node until stopped, and
// records what was acknowledged.
type writer struct {
	mu      sync.Mutex
	acked   map[string]string
	n       atomic.Int64
	stop    chan struct{}
	stopped sync.Once
	done    sync.WaitGroup
	// failed counts the writes not acknowledged, and lastErr is the
	// last one's error by node; failedShards counts them by shard (of
	// scriptShards): what a stalled writer reports.
	failed       map[string]int
	lastErr      map[string]string
	failedShards map[int]int
}

func startWriter(nodes []*node) *writer {
	w := &writer{acked: map[string]string{}, stop: make(chan struct{}),
		failed: map[string]int{}, lastErr: map[string]string{}, failedShards: map[int]int{}}
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
					// Not acknowledged: it may or may not have happened.
					// Pace the retries against a node that is down.
					w.mu.Lock()
					w.failed[n.name]++
					w.failedShards[kv.ShardOf(kv.Slot([]byte(k)), scriptShards)]++
					w.lastErr[n.name] = fmt.Sprintf("SET %s: %v", k, err)
					w.mu.Unlock()
					time.Sleep(20 * time.Millisecond)
					continue
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

// finish stops the writer (once; later calls only return) and returns
// what was acknowledged.
func (w *writer) finish() map[string]string {
	w.stopped.Do(func() { close(w.stop) })
	w.done.Wait()
	return w.acked
}

// failures describes the writes not acknowledged so far, by node.
func (w *writer) failures() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var b strings.Builder
	for _, name := range slices.Sorted(maps.Keys(w.failed)) {
		fmt.Fprintf(&b, "\n  %s: %d failed, the last %s", name, w.failed[name], w.lastErr[name])
	}
	if b.Len() == 0 {
		return " none failed"
	}
	fmt.Fprintf(&b, "\n  by shard (of %d): %v", scriptShards, w.failedShards)
	return b.String()
}

// running reports whether finish has not been called.
func (w *writer) running() bool {
	select {
	case <-w.stop:
		return false
	default:
		return true
	}
}

func readAll(t *testing.T, n *node, acked map[string]string) {
	t.Helper()
	if err := missingAcked(n, acked); err != nil {
		t.Fatal(err)
	}
}

// missingAcked reads every key of acked through n and names the ones
// that do not read back with their value.
func missingAcked(n *node, acked map[string]string) error {
	c := n.redis()
	defer c.Close()
	var missing []string
	for k, v := range acked {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		got, err := c.Get(ctx, k).Result()
		cancel()
		if err != nil || got != v {
			missing = append(missing, fmt.Sprintf("GET %s = %q, %v; want %q", k, got, err, v))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s: %d of %d acknowledged writes missing, first: %s", n.name, len(missing), len(acked), strings.Join(missing[:min(5, len(missing))], "; "))
	}
	return nil
}

// syncMethods returns how each shard was synced to node (replay or
// snapshot), as n's status reports the coordinator's view.
func syncMethods(n *node, node string) (map[int]string, error) {
	st, err := n.status()
	if err != nil {
		return nil, err
	}
	out := map[int]string{}
	for _, s := range st.Syncs {
		if s.Node == node {
			out[int(s.Shard)] = s.Method
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

// gossipTrio starts n1, then n2 and n3 joining it, with fast gossip and
// the extra flags.
func gossipTrio(t *testing.T, extra ...string) (n1, n2, n3 *node) {
	n1 = newNode(t, "n1", t.TempDir(), append([]string{"--gossip-fast"}, extra...)...)
	n1.start()
	n2 = newNode(t, "n2", t.TempDir(), append([]string{"--join", n1.gossip, "--gossip-fast"}, extra...)...)
	n2.start()
	n3 = newNode(t, "n3", t.TempDir(), append([]string{"--join", n1.gossip, "--gossip-fast"}, extra...)...)
	n3.start()
	return n1, n2, n3
}

// tagOnEachShard gives, for each of a 4-shard node's shards, a hash tag
// ({prefix0}, {prefix1}, ...) whose keys are on it.
func tagOnEachShard(prefix string) []string {
	var tags []string
	seen := map[int]bool{}
	for i := 0; len(tags) < 4 && i < 1000; i++ {
		tag := fmt.Sprintf("{%s%d}", prefix, i)
		if sh := kv.ShardOf(kv.Slot([]byte(tag)), 4); !seen[sh] {
			seen[sh] = true
			tags = append(tags, tag)
		}
	}
	return tags
}
