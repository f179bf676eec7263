package server

import (
	"github.com/coppice-kv/coppice/kv"
	"strconv"
	"strings"
	"testing"

	"github.com/coppice-kv/coppice/messages"
)

// ShardSlots is ShardOf's inverse: the ranges cover every slot once, in
// order, each slot in the range of the shard ShardOf gives it.
func TestShardSlots(t *testing.T) {
	for shards := 1; shards <= 64; shards++ {
		next := 0
		for sh := range shards {
			first, last := ShardSlots(sh, shards)
			if first != next || last < first {
				t.Fatalf("%d shards: shard %d has [%d, %d], want it to start at %d", shards, sh, first, last, next)
			}
			for _, slot := range []int{first, last} {
				if got := kv.ShardOf(slot, shards); got != sh {
					t.Fatalf("%d shards: slot %d in shard %d's range, ShardOf says %d", shards, slot, sh, got)
				}
			}
			next = last + 1
		}
		if next != kv.SlotCount {
			t.Fatalf("%d shards: ranges end at %d", shards, next)
		}
	}
}

func testView() *ClusterView {
	return &ClusterView{
		Self: "n2",
		Nodes: []ClusterNode{
			{Name: "n2", ClientAddr: "0.0.0.0:7002", ClusterAddr: "0.0.0.0:8002"},
			{Name: "n1", ClientAddr: "10.0.0.1:7001", ClusterAddr: "10.0.0.1:8001"},
			{Name: "n3", ClientAddr: "[::]:7003", ClusterAddr: "10.0.0.3:8003"},
			{Name: "n4", ClientAddr: "10.0.0.4:7004", ClusterAddr: "10.0.0.4:8004"},
		},
		Shards: []ClusterShard{
			{Leader: "n1", Members: []string{"n2", "n3", "n4"}, Term: 3},
			{Leader: "n2", Members: []string{"n1", "n3"}, Term: 7},
			{Leader: "n1", Members: []string{"n2", "n3"}, Term: 2},
			{Leader: "", Members: []string{"n1", "n2", "n3"}, Term: 5},
		},
	}
}

func TestClusterSlots(t *testing.T) {
	tp := newTopology(testView(), "127.0.0.1")
	var got []string
	for _, r := range tp.slots().GetArray().GetItems() {
		var parts []string
		for _, it := range r.GetArray().GetItems() {
			if n := it.GetArray(); n != nil {
				ep := n.GetItems()
				parts = append(parts, string(ep[0].GetBulk())+":"+strconv.FormatInt(ep[1].GetInteger(), 10)+"/"+string(ep[2].GetBulk())[:6])
			} else {
				parts = append(parts, strconv.FormatInt(it.GetInteger(), 10))
			}
		}
		got = append(got, strings.Join(parts, " "))
	}
	id := func(n string) string { return NodeID(n)[:6] }
	want := []string{
		// n2 listens on 0.0.0.0 everywhere: announced where the client
		// reached it; n3's client port on [::]: at its cluster host.
		"0 4095 10.0.0.1:7001/" + id("n1") + " 127.0.0.1:7002/" + id("n2") + " 10.0.0.3:7003/" + id("n3") + " 10.0.0.4:7004/" + id("n4"),
		"4096 8191 127.0.0.1:7002/" + id("n2") + " 10.0.0.1:7001/" + id("n1") + " 10.0.0.3:7003/" + id("n3"),
		"8192 12287 10.0.0.1:7001/" + id("n1") + " 127.0.0.1:7002/" + id("n2") + " 10.0.0.3:7003/" + id("n3"),
		// shard 3 has no leader: no entry
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("CLUSTER SLOTS:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestClusterNodesAndInfo(t *testing.T) {
	tp := newTopology(testView(), "127.0.0.1")
	nodes := tp.nodes()
	want := strings.Join([]string{
		NodeID("n2") + " 127.0.0.1:7002@8002 myself,master - 0 0 0 connected 4096-8191",
		NodeID("n1") + " 10.0.0.1:7001@8001 master - 0 0 0 connected 0-4095 8192-12287",
		NodeID("n3") + " 10.0.0.3:7003@8003 slave " + NodeID("n1") + " 0 0 0 connected",
		NodeID("n4") + " 10.0.0.4:7004@8004 slave " + NodeID("n1") + " 0 0 0 connected",
	}, "\n") + "\n"
	if nodes != want {
		t.Fatalf("CLUSTER NODES:\n%s\nwant\n%s", nodes, want)
	}
	info := tp.info()
	for _, line := range []string{"cluster_state:fail", "cluster_slots_ok:12288", "cluster_slots_fail:4096",
		"cluster_known_nodes:4", "cluster_size:2", "cluster_current_epoch:7"} {
		if !strings.Contains(info, line+"\r\n") {
			t.Errorf("CLUSTER INFO lacks %q:\n%s", line, info)
		}
	}
	shards := tp.shards().GetArray().GetItems()
	if len(shards) != 4 {
		t.Fatalf("CLUSTER SHARDS: %d shards", len(shards))
	}
	// Shard 3 has no leader: its nodes are all replicas.
	last := shards[3].GetMap().GetItems()
	if nodes := last[3].GetArray().GetItems(); len(nodes) != 3 || roleOf(nodes[0]) != "replica" {
		t.Fatalf("CLUSTER SHARDS, shard 3: %v", last)
	}
	if first := shards[0].GetMap().GetItems()[3].GetArray().GetItems(); roleOf(first[0]) != "master" || len(first) != 4 {
		t.Fatalf("CLUSTER SHARDS, shard 0: %v", first)
	}
}

func roleOf(node *messages.Reply) string {
	items := node.GetMap().GetItems()
	for i := 0; i+1 < len(items); i += 2 {
		if string(items[i].GetBulk()) == "role" {
			return string(items[i+1].GetBulk())
		}
	}
	return ""
}

// A node gossip reports failed is flagged fail and disconnected in CLUSTER
// NODES, failed in CLUSTER SHARDS, and left out of CLUSTER SLOTS as a
// replica, so cluster clients stop sending it reads.
func TestClusterFailedNode(t *testing.T) {
	v := testView()
	v.Nodes[3].Failed = true // n4, a replica of shard 0 only
	tp := newTopology(v, "127.0.0.1")
	if want := NodeID("n4") + " 10.0.0.4:7004@8004 slave,fail " + NodeID("n1") + " 0 0 0 disconnected\n"; !strings.HasSuffix(tp.nodes(), want) {
		t.Fatalf("CLUSTER NODES:\n%s\nwant it to end with\n%s", tp.nodes(), want)
	}
	first := tp.slots().GetArray().GetItems()[0].GetArray().GetItems()
	for _, it := range first[2:] {
		if id := string(it.GetArray().GetItems()[2].GetBulk()); id == NodeID("n4") {
			t.Fatalf("CLUSTER SLOTS lists failed n4 for shard 0: %v", first)
		}
	}
	if len(first) != 2+3 {
		t.Fatalf("CLUSTER SLOTS shard 0 has %d endpoints, want leader and 2 live replicas", len(first)-2)
	}
	health := map[string]string{}
	for _, n := range tp.shards().GetArray().GetItems()[0].GetMap().GetItems()[3].GetArray().GetItems() {
		items := n.GetMap().GetItems()
		health[string(items[1].GetBulk())] = string(items[13].GetBulk())
	}
	if health[NodeID("n4")] != "failed" || health[NodeID("n3")] != "online" {
		t.Fatalf("CLUSTER SHARDS health: %v", health)
	}
}

// The CLUSTER subcommands of Redis Cluster's own management answer with
// why coppice does not serve them; HELP, REPLICAS (SLAVES) and
// SAVECONFIG answer as Redis's. REPLICAOF, FAILOVER and a replica's
// handshake get Redis Cluster's refusals, or coppice's reason.
func TestClusterAndReplicationRefusals(t *testing.T) {
	srv, _ := engineServer(t, Config{Cluster: func() (*ClusterView, error) { return testView(), nil }})
	c := dial(t, srv)
	help := c.do("CLUSTER HELP")
	if !strings.HasPrefix(help, "[+CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are: +ADDSLOTS <slot>") ||
		!strings.HasSuffix(help, "+HELP +    Prints this help.]") || strings.Count(help, " +") != 55 {
		t.Errorf("CLUSTER HELP: %s", help)
	}
	n1, n3, n4 := NodeID("n1"), NodeID("n3"), NodeID("n4")
	for _, sub := range []string{"REPLICAS", "SLAVES"} {
		want := "[" + n3 + " 10.0.0.3:7003@8003 slave " + n1 + " 0 0 0 connected " +
			n4 + " 10.0.0.4:7004@8004 slave " + n1 + " 0 0 0 connected]"
		script(t, c,
			"CLUSTER "+sub+" "+n1, want,
			"CLUSTER "+sub+" "+NodeID("n2"), "[]",
			"CLUSTER "+sub+" "+n3, "-ERR The specified node is not a master",
			"CLUSTER "+sub+" nope", "-ERR Unknown node nope",
			"CLUSTER "+sub, "-ERR wrong number of arguments for 'cluster|"+strings.ToLower(sub)+"' command",
		)
	}
	script(t, c, "CLUSTER SAVECONFIG", "+OK")
	for _, cmd := range []string{"CLUSTER MEET 10.0.0.9 7000", "CLUSTER ADDSLOTS 1", "CLUSTER ADDSLOTSRANGE 1 2", "CLUSTER DELSLOTS 1",
		"CLUSTER DELSLOTSRANGE 1 2", "CLUSTER FLUSHSLOTS", "CLUSTER SETSLOT 1 STABLE", "CLUSTER FORGET " + n3,
		"CLUSTER REPLICATE " + n1, "CLUSTER RESET", "CLUSTER FAILOVER", "CLUSTER BUMPEPOCH", "CLUSTER SET-CONFIG-EPOCH 1"} {
		sub := strings.Fields(cmd)[1]
		if got := c.do(cmd); !strings.HasPrefix(got, "-ERR CLUSTER "+sub+" is not served: coppice's nodes place slots in shards") {
			t.Errorf("%s: %s", cmd, got)
		}
	}
	for cmd, want := range map[string]string{
		"CLUSTER COUNT-FAILURE-REPORTS " + n3: "-ERR CLUSTER COUNT-FAILURE-REPORTS is not served",
		"CLUSTER LINKS":                       "-ERR CLUSTER LINKS is not served",
		"CLUSTER MEET 10.0.0.9":               "-ERR wrong number of arguments for 'cluster|meet' command",
		"REPLICAOF 10.0.0.9 6379":             "-ERR REPLICAOF not allowed in cluster mode.",
		"SLAVEOF NO ONE":                      "-ERR REPLICAOF not allowed in cluster mode.",
		"REPLICAOF NO":                        "-ERR wrong number of arguments for 'replicaof' command",
		"FAILOVER":                            "-ERR FAILOVER not allowed in cluster mode. Use CLUSTER FAILOVER command instead.",
		"SYNC":                                "-ERR SYNC is not served: coppice replicates each shard through its own Raft group",
		"PSYNC ? -1":                          "-ERR PSYNC is not served",
		"PSYNC ?":                             "-ERR wrong number of arguments for 'psync' command",
		"REPLCONF listening-port 7000":        "-ERR REPLCONF is not served",
	} {
		if got := c.do(cmd); !strings.HasPrefix(got, want) {
			t.Errorf("%s: %s, want %s...", cmd, got, want)
		}
	}
}
