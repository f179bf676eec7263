package integration

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coppice-kv/coppice/internal/promtext"
)

// TestHeartbeatsBatched: each node of a 3-node cluster sends the periodic
// Raft heartbeats of the groups it leads (4 shards and the system group)
// to each follower node together, and the batches alone keep every
// leadership: while the cluster idles, the heartbeats carried outnumber
// the requests that carried them, none fails, and no group changes leader
// or term.
func TestHeartbeatsBatched(t *testing.T) {
	n1, n2, n3 := gossipTrio(t)
	nodes := []*node{n1, n2, n3}
	for _, n := range nodes {
		eventually(t, 60*time.Second, n.name+" sees three voters in every shard", func() error {
			if err := voters(n, "n1", "n2", "n3"); err != nil {
				return err
			}
			return systemVoters(n, "n1", "n2", "n3")
		})
	}
	// The manager spreads the shards' leaders over the nodes once they
	// joined (leadership transfers): wait for that to be done.
	eventually(t, 60*time.Second, "every node leads a shard", func() error {
		st, err := n1.status()
		if err != nil {
			return err
		}
		for _, n := range nodes {
			if !slices.Contains(st.Leaders(), n.name) {
				return fmt.Errorf("leaders %v", st.Leaders())
			}
		}
		return nil
	})
	leaders := func() (string, error) {
		st, err := n1.status()
		if err != nil {
			return "", err
		}
		var b strings.Builder
		for _, sh := range st.Shards {
			fmt.Fprintf(&b, "shard %d: %s in term %d; ", sh.ID, sh.Leader, sh.Term)
		}
		return b.String(), nil
	}
	// counts sums the nodes' batches, heartbeats and failed batches.
	counts := func() (c [3]float64, err error) {
		for _, n := range nodes {
			m, err := n.metrics()
			if err != nil {
				return c, err
			}
			for i, name := range []string{"coppice_raft_heartbeat_batches_total", "coppice_raft_heartbeats_batched_total", "coppice_raft_heartbeat_batch_failures_total"} {
				v, ok := m[name]
				if !ok {
					return c, fmt.Errorf("%s: no %s in /metrics", n.name, name)
				}
				c[i] += v
			}
		}
		return c, nil
	}
	before, err := leaders()
	if err != nil {
		t.Fatal(err)
	}
	c0, err := counts()
	if err != nil {
		t.Fatal(err)
	}
	// At least 3 seconds' worth: a tick every 100 ms, and at least two
	// leading nodes with two followers each.
	var c1 [3]float64
	eventually(t, 30*time.Second, "120 batches of heartbeats", func() error {
		if c1, err = counts(); err != nil {
			return err
		}
		if got := c1[0] - c0[0]; got < 120 {
			return fmt.Errorf("%.0f batches", got)
		}
		return nil
	})
	batches, beats, failed := c1[0]-c0[0], c1[1]-c0[1], c1[2]-c0[2]
	if beats <= batches {
		t.Errorf("%.0f heartbeats in %.0f batches: none went together", beats, batches)
	}
	if failed != 0 {
		t.Errorf("%.0f of %.0f batches failed in a healthy cluster", failed, batches)
	}
	after, err := leaders()
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Errorf("leaders changed while the cluster idled:\nbefore %s\nafter  %s", before, after)
	}
	t.Logf("%.0f heartbeats in %.0f batches", beats, batches)
}

// metrics reads n's /metrics (promtext.Get).
func (n *node) metrics() (map[string]float64, error) {
	return promtext.Get(&http.Client{Timeout: 5 * time.Second}, "http://"+n.http+"/metrics")
}
