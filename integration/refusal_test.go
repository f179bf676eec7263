package integration

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var errNoClusterID = errors.New("no cluster id yet")

// TestJoinRefusals: a node of another cluster, a node with another shard
// count, and a node whose name a live member uses at another address are
// each refused with a clear error, and the cluster's members and shards do
// not change.
func TestJoinRefusals(t *testing.T) {
	nodes := startCluster(t)
	n1 := nodes[0]
	all := []string{"n1", "n2", "n3"}
	unchanged := func(after string) {
		t.Helper()
		if err := members(n1, all...); err != nil {
			t.Fatalf("after %s: %v", after, err)
		}
		if err := voters(n1, all...); err != nil {
			t.Fatalf("after %s: %v", after, err)
		}
	}

	// Another cluster: a standalone node, which made its own cluster ID,
	// restarted with --join.
	dir := t.TempDir()
	m1 := newNode(t, "m1", dir, clusterFlags...)
	m1.start()
	eventually(t, 30*time.Second, "m1 has recorded its cluster id", func() error {
		var id struct {
			ClusterID string `json:"cluster_id"`
		}
		b, err := os.ReadFile(filepath.Join(dir, "node.json"))
		if err == nil {
			err = json.Unmarshal(b, &id)
		}
		if err == nil && id.ClusterID == "" {
			return errNoClusterID
		}
		return err
	})
	if err := m1.stop(); err != nil {
		t.Fatal(err)
	}
	other := newNode(t, "m1", dir, append([]string{"--join", n1.gossip}, clusterFlags...)...)
	other.refused("cluster id mismatch")
	unchanged("a node of another cluster")

	// Another shard count.
	s8 := newNode(t, "s8", t.TempDir(), append([]string{"--join", n1.gossip, "--shards", "8"}, clusterFlags...)...)
	s8.refused("shard count mismatch")
	unchanged("a node with 8 shards")

	// A name in use by a live node at another address.
	dup := newNode(t, "n2", t.TempDir(), append([]string{"--join", n1.gossip}, clusterFlags...)...)
	dup.refused("name conflict")
	unchanged("a second n2")
}
