package server

// CLUSTER INFO, MYID, KEYSLOT, SLOTS, SHARDS and NODES, as Redis Cluster
// answers them, so that cluster-aware clients (go-redis ClusterClient,
// redis-cli -c, redis-benchmark --cluster, Jedis, Lettuce) send each
// command straight to the node that leads its key's shard. Each shard is
// one contiguous slot range; its Raft leader is the range's master and
// its other members the replicas. A node that leads several shards owns
// several ranges; a node that leads none is shown as a replica.
//
// The map is advice, never a requirement: any node still takes any key and
// forwards it to the shard's leader, so a client with a stale map (a
// leadership change since it asked) gets the right answer one hop later,
// never MOVED.

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/coppice-kv/coppice/kv"
	"github.com/coppice-kv/coppice/messages"
)

// ClusterView is the cluster as the CLUSTER commands show it.
type ClusterView struct {
	// Self is this node's name.
	Self  string
	Nodes []ClusterNode
	// Shards holds, for shard i, its leader and other members.
	Shards []ClusterShard
}

// ClusterNode is a node of the cluster.
type ClusterNode struct {
	Name string
	// ClientAddr is its RESP port, ClusterAddr its cluster port (the
	// "bus" port of CLUSTER NODES), both host:port.
	ClientAddr  string
	ClusterAddr string
	// Failed is set when gossip reports the node failed, left or gone:
	// CLUSTER NODES flags it fail, CLUSTER SHARDS shows its health as
	// failed, and CLUSTER SLOTS leaves it out as a replica (as Redis
	// leaves out failed replicas), so clients stop sending reads to it.
	Failed bool
}

// ClusterShard is one shard's Raft group as this node sees it.
type ClusterShard struct {
	// Leader is the leading node's name, "" while there is none.
	Leader string
	// Members are the group's other members: voters, then non-voters.
	Members []string
	// Term is the group's Raft term.
	Term uint64
}

// NodeID is the 40-hex-digit ID the CLUSTER commands give the node called
// name (Redis Cluster's node IDs have that form; clients parse it).
func NodeID(name string) string {
	sum := sha1.Sum([]byte(name))
	return hex.EncodeToString(sum[:])
}

// ShardSlots is the slot range [first, last] of shard among shards (the
// inverse of ShardOf).
func ShardSlots(shard, shards int) (first, last int) {
	first = (shard*kv.SlotCount + shards - 1) / shards
	last = ((shard+1)*kv.SlotCount+shards-1)/shards - 1
	return first, last
}

// cluster answers CLUSTER <subcommand>.
func (c *conn) cluster(args [][]byte) {
	if r := kv.CheckSubcommand(args); r != nil {
		c.reply(r)
		return
	}
	sub := c.lower(args[1])
	switch sub {
	case "help":
		c.reply(kv.HelpReply("CLUSTER", clusterHelp...))
		return
	case "keyslot":
		c.reply(integer(int64(kv.Slot(args[2]))))
		return
	case "myid":
		c.reply(bulkString(NodeID(c.s.cfg.NodeName)))
		return
	case "saveconfig":
		// The cluster's configuration is in its system Raft group,
		// on every voter's disk, as each change commits.
		c.reply(replyOK)
		return
	case "count-failure-reports":
		c.reply(errorf("ERR CLUSTER COUNT-FAILURE-REPORTS is not served: coppice's nodes find failures by gossip (serf), which keeps no count of reports; CLUSTER NODES flags a failed node fail"))
		return
	case "links":
		c.reply(errorf("ERR CLUSTER LINKS is not served: coppice's nodes are linked by their Raft groups' and gossip's connections; GET /v1/status shows each node and each shard's members"))
		return
	case "addslots", "addslotsrange", "delslots", "delslotsrange", "flushslots", "setslot",
		"meet", "forget", "replicate", "reset", "failover", "bumpepoch", "set-config-epoch":
		c.reply(errorf("ERR CLUSTER " + strings.ToUpper(sub) + " is not served: coppice's nodes place slots in shards, elect each shard's leader by Raft and move leaderships themselves; add, remove or drain a node with its join (--join), `node remove` or `node leave`"))
		return
	}
	if c.s.cfg.Cluster == nil {
		c.reply(errorf("ERR This instance has cluster support disabled"))
		return
	}
	v, err := c.s.cfg.Cluster()
	if err != nil {
		c.reply(errorf("CLUSTERDOWN " + err.Error()))
		return
	}
	localHost, _, _ := net.SplitHostPort(c.nc.LocalAddr().String())
	t := newTopology(v, localHost)
	switch sub {
	case "info":
		c.reply(verbatim(t.info()))
	case "slots":
		c.reply(t.slots())
	case "shards":
		c.reply(t.shards())
	case "nodes":
		c.reply(verbatim(t.nodes()))
	case "countkeysinslot", "getkeysinslot":
		c.keysInSlot(sub, args)
	case "replicas", "slaves":
		c.reply(t.replicasOf(string(args[2])))
	}
}

var clusterHelp = []string{
	"ADDSLOTS <slot> [<slot> ...]",
	"    Assign slots to current node.",
	"ADDSLOTSRANGE <start slot> <end slot> [<start slot> <end slot> ...]",
	"    Assign slots which are between <start-slot> and <end-slot> to current node.",
	"BUMPEPOCH",
	"    Advance the cluster config epoch.",
	"COUNT-FAILURE-REPORTS <node-id>",
	"    Return number of failure reports for <node-id>.",
	"COUNTKEYSINSLOT <slot>",
	"    Return the number of keys in <slot>.",
	"DELSLOTS <slot> [<slot> ...]",
	"    Delete slots information from current node.",
	"DELSLOTSRANGE <start slot> <end slot> [<start slot> <end slot> ...]",
	"    Delete slots information which are between <start-slot> and <end-slot> from current node.",
	"FAILOVER [FORCE|TAKEOVER]",
	"    Promote current replica node to being a master.",
	"FORGET <node-id>",
	"    Remove a node from the cluster.",
	"GETKEYSINSLOT <slot> <count>",
	"    Return key names stored by current node in a slot.",
	"FLUSHSLOTS",
	"    Delete current node own slots information.",
	"INFO",
	"    Return information about the cluster.",
	"KEYSLOT <key>",
	"    Return the hash slot for <key>.",
	"MEET <ip> <port> [<bus-port>]",
	"    Connect nodes into a working cluster.",
	"MYID",
	"    Return the node id.",
	"NODES",
	"    Return cluster configuration seen by node. Output format:",
	"    <id> <ip:port> <flags> <master> <pings> <pongs> <epoch> <link> <slot> ...",
	"REPLICATE <node-id>",
	"    Configure current node as replica to <node-id>.",
	"RESET [HARD|SOFT]",
	"    Reset current node (default: soft).",
	"SET-CONFIG-EPOCH <epoch>",
	"    Set config epoch of current node.",
	"SETSLOT <slot> (IMPORTING <node-id>|MIGRATING <node-id>|STABLE|NODE <node-id>)",
	"    Set slot state.",
	"REPLICAS <node-id>",
	"    Return <node-id> replicas.",
	"SAVECONFIG",
	"    Force saving cluster configuration on disk.",
	"SLOTS",
	"    Return information about slots range mappings. Each range is made of:",
	"    start, end, master and replicas IP addresses, ports and ids",
	"SHARDS",
	"    Return information about slot range mappings and the nodes associated with them.",
	"LINKS",
	"    Return information about all network links between this node and its peers.",
	"    Output format is an array where each array element is a map containing attributes of a link",
}

// keysInSlot answers CLUSTER COUNTKEYSINSLOT slot and GETKEYSINSLOT slot
// count with Redis's checks, from the shard that holds the slot (any node
// reads any shard, through its leader). Keys are stored by name, not by
// slot: COUNTKEYSINSLOT scans the shard's keys, GETKEYSINSLOT until it
// has count of the slot's (kv.SlotKeysName). As DBSIZE here, they count
// no key past its expiry (Redis counts those not deleted yet).
func (c *conn) keysInSlot(sub string, args [][]byte) {
	slot, ok := kv.ParseInt(args[2])
	if !ok {
		c.reply(errorf("ERR value is not an integer or out of range"))
		return
	}
	limit := int64(-1) // the count
	if sub == "getkeysinslot" {
		if limit, ok = kv.ParseInt(args[3]); !ok {
			c.reply(errorf("ERR value is not an integer or out of range"))
			return
		}
		if slot < 0 || slot >= kv.SlotCount || limit < 0 {
			c.reply(errorf("ERR Invalid slot or number of keys"))
			return
		}
	} else if slot < 0 || slot >= kv.SlotCount {
		c.reply(errorf("ERR Invalid slot"))
		return
	}
	shard := kv.ShardOf(int(slot), c.s.backend.Shards())
	c.push(c.issueRead(shard, kv.SlotKeysCommand(int(slot), limit, 0).Args))
}

// topology is a ClusterView with every node's announced addresses
// resolved.
type topology struct {
	view   *ClusterView
	byName map[string]*topoNode
	order  []*topoNode
}

type topoNode struct {
	ClusterNode
	id         string
	host       string
	port, bus  int
	self, lead bool
}

// newTopology resolves v's addresses: a node that listens on every
// interface (0.0.0.0 or ::) is announced at its cluster address's host,
// or, for this node, at localHost (where the client reached it).
func newTopology(v *ClusterView, localHost string) *topology {
	t := &topology{view: v, byName: map[string]*topoNode{}}
	for _, n := range v.Nodes {
		if t.byName[n.Name] != nil {
			continue
		}
		tn := &topoNode{ClusterNode: n, id: NodeID(n.Name), self: n.Name == v.Self}
		host, port := splitAddr(n.ClientAddr)
		chost, bus := splitAddr(n.ClusterAddr)
		if UnspecifiedHost(host) {
			host = chost
		}
		if UnspecifiedHost(host) && tn.self {
			host = localHost
		}
		tn.host, tn.port, tn.bus = host, port, bus
		t.byName[n.Name] = tn
		t.order = append(t.order, tn)
	}
	for _, s := range v.Shards {
		if n := t.byName[s.Leader]; n != nil {
			n.lead = true
		}
	}
	return t
}

func splitAddr(addr string) (string, int) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0
	}
	p, _ := strconv.Atoi(port)
	return host, p
}

// UnspecifiedHost reports whether host names no one address: empty, or
// 0.0.0.0 or :: (a listener on every interface).
func UnspecifiedHost(host string) bool {
	if host == "" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

// serving is shard's leader, nil when it has none (or none this view
// knows the address of).
func (t *topology) serving(shard int) *topoNode {
	return t.byName[t.view.Shards[shard].Leader]
}

// replicas are s's members (all but its leader) whose addresses this view
// knows.
func (t *topology) replicas(s ClusterShard) []*topoNode {
	var out []*topoNode
	for _, m := range s.Members {
		if n := t.byName[m]; n != nil {
			out = append(out, n)
		}
	}
	return out
}

func (t *topology) info() string {
	n := len(t.view.Shards)
	ok, masters, epoch := 0, 0, uint64(0)
	for i, s := range t.view.Shards {
		if t.serving(i) != nil {
			first, last := ShardSlots(i, n)
			ok += last - first + 1
		}
		epoch = max(epoch, s.Term)
	}
	for _, tn := range t.order {
		if tn.lead {
			masters++
		}
	}
	state := "ok"
	if ok < kv.SlotCount {
		state = "fail"
	}
	lines := []string{
		"cluster_enabled:1",
		"cluster_state:" + state,
		fmt.Sprintf("cluster_slots_assigned:%d", kv.SlotCount),
		fmt.Sprintf("cluster_slots_ok:%d", ok),
		"cluster_slots_pfail:0",
		fmt.Sprintf("cluster_slots_fail:%d", kv.SlotCount-ok),
		fmt.Sprintf("cluster_known_nodes:%d", len(t.order)),
		fmt.Sprintf("cluster_size:%d", masters),
		fmt.Sprintf("cluster_current_epoch:%d", epoch),
		"cluster_my_epoch:0",
		fmt.Sprintf("coppice_shards:%d", n),
	}
	return strings.Join(lines, "\r\n") + "\r\n"
}

// endpoint is a node as CLUSTER SLOTS lists it: host, port, ID.
func (n *topoNode) endpoint() *messages.Reply {
	return array(bulkString(n.host), integer(int64(n.port)), bulkString(n.id))
}

// slots answers CLUSTER SLOTS: one entry per shard that has a leader.
func (t *topology) slots() *messages.Reply {
	var out []*messages.Reply
	for i, s := range t.view.Shards {
		leader := t.serving(i)
		if leader == nil {
			continue
		}
		first, last := ShardSlots(i, len(t.view.Shards))
		e := []*messages.Reply{integer(int64(first)), integer(int64(last)), leader.endpoint()}
		for _, n := range t.replicas(s) {
			if !n.Failed {
				e = append(e, n.endpoint())
			}
		}
		out = append(out, array(e...))
	}
	return array(out...)
}

// shards answers CLUSTER SHARDS (Redis 7): every shard with its slots and
// nodes.
func (t *topology) shards() *messages.Reply {
	var out []*messages.Reply
	for i, s := range t.view.Shards {
		first, last := ShardSlots(i, len(t.view.Shards))
		var nodes []*messages.Reply
		describe := func(n *topoNode, role string) {
			nodes = append(nodes, mapReply(
				bulkString("id"), bulkString(n.id),
				bulkString("port"), integer(int64(n.port)),
				bulkString("ip"), bulkString(n.host),
				bulkString("endpoint"), bulkString(n.host),
				bulkString("role"), bulkString(role),
				bulkString("replication-offset"), integer(0),
				bulkString("health"), bulkString(n.health()),
			))
		}
		if leader := t.serving(i); leader != nil {
			describe(leader, "master")
		}
		for _, n := range t.replicas(s) {
			describe(n, "replica")
		}
		out = append(out, mapReply(
			bulkString("slots"), array(integer(int64(first)), integer(int64(last))),
			bulkString("nodes"), array(nodes...),
		))
	}
	return array(out...)
}

// health is a node's health as CLUSTER SHARDS reports it.
func (n *topoNode) health() string {
	if n.Failed {
		return "failed"
	}
	return "online"
}

// nodes answers CLUSTER NODES: a line per node; a node that leads shards
// is a master of their slot ranges, any other a replica of the first
// shard's leader.
// replicasOf is CLUSTER REPLICAS id: the CLUSTER NODES lines of the
// nodes it shows as id's replicas.
func (t *topology) replicasOf(id string) *messages.Reply {
	known := false
	var out []*messages.Reply
	for _, l := range t.nodeLines() {
		if l.id == id {
			known = true
			if !l.lead {
				return errorf("ERR The specified node is not a master")
			}
		}
		if l.master == id {
			out = append(out, bulkString(l.text))
		}
	}
	if !known {
		return errorf("ERR Unknown node " + id)
	}
	return array(out...)
}

// nodeLine is a node's line of CLUSTER NODES, with what CLUSTER
// REPLICAS asks of it.
type nodeLine struct {
	id, master string // master: "-" for a master
	lead       bool
	text       string
}

func (t *topology) nodes() string {
	var b strings.Builder
	for _, l := range t.nodeLines() {
		b.WriteString(l.text)
		b.WriteString("\n")
	}
	return b.String()
}

// nodeLines are CLUSTER NODES' lines: a node that leads a shard is a
// master of its slots; any other, a replica of the first shard's leader.
func (t *topology) nodeLines() []nodeLine {
	var firstLeader string
	for i := range t.view.Shards {
		if n := t.serving(i); n != nil {
			firstLeader = n.id
			break
		}
	}
	var lines []nodeLine
	for _, n := range t.order {
		var flags []string
		if n.self {
			flags = append(flags, "myself")
		}
		master := "-"
		if n.lead {
			flags = append(flags, "master")
		} else {
			flags = append(flags, "slave")
			if firstLeader != "" {
				master = firstLeader
			}
		}
		link := "connected"
		if n.Failed { // after master or slave, as Redis orders its flags
			flags = append(flags, "fail")
			link = "disconnected"
		}
		var b strings.Builder
		fmt.Fprintf(&b, "%s %s:%d@%d %s %s 0 0 0 %s", n.id, n.host, n.port, n.bus, strings.Join(flags, ","), master, link)
		for i, s := range t.view.Shards {
			if n.lead && s.Leader == n.Name {
				first, last := ShardSlots(i, len(t.view.Shards))
				fmt.Fprintf(&b, " %d-%d", first, last)
			}
		}
		lines = append(lines, nodeLine{id: n.id, master: master, lead: n.lead, text: b.String()})
	}
	return lines
}
