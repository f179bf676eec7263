package integration

// Script commands for cluster operations under load: a background writer,
// read-back checks, and commands that pick a node by what the cluster
// reports (a shard's leader, the leader of a shard being synced).

import (
	"context"
	"fmt"
	"github.com/coppice-kv/coppice/kv"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coppice-kv/coppice/actors"
	"github.com/coppice-kv/coppice/cluster"
	"github.com/coppice-kv/coppice/internal/freeport"
	"github.com/coppice-kv/coppice/internal/testwait"
	"github.com/coppice-kv/coppice/server"
	"github.com/redis/go-redis/v9"
	"github.com/rogpeppe/go-internal/testscript"
)

type scriptWriterKey struct{}

// writerSlot holds a script's background writer, running or stopped.
type writerSlot struct{ w *writer }

func (s *writerSlot) running() bool { return s.w != nil && s.w.running() }

// writer start NODE...: write distinct keys through each node, one client
// per node, until stopped; only acknowledged writes are recorded.
// writer wait N: wait (60s) until N more writes are acknowledged.
// writer stop: stop writing (acked then reads every acknowledged write back).
func cmdWriter(ts *testscript.TestScript, neg bool, args []string) {
	slot := ts.Value(scriptWriterKey{}).(*writerSlot)
	if neg || len(args) < 1 {
		ts.Fatalf("usage: writer start NODE... | writer wait N | writer stop")
	}
	switch args[0] {
	case "start":
		if slot.running() || len(args) < 2 {
			ts.Fatalf("writer start: want node names and no writer running")
		}
		var nodes []*node
		for _, name := range args[1:] {
			nodes = append(nodes, lookup(ts, name).node)
		}
		w := startWriter(nodes)
		slot.w = w
		ts.Defer(func() { w.finish() })
	case "wait":
		n, err := strconv.ParseInt(argAt(args, 1), 10, 64)
		if !slot.running() || err != nil || n < 1 {
			ts.Fatalf("writer wait: want a positive count and a running writer")
		}
		from := slot.w.n.Load()
		err = waitFor(60*time.Second, func() error {
			if done := slot.w.n.Load() - from; done < n {
				return fmt.Errorf("%d of %d writes acknowledged", done, n)
			}
			return nil
		})
		if err != nil {
			ts.Fatalf("writer wait %d: %v; writes not acknowledged:%s\n%s", n, err, slot.w.failures(), clusterView(ts))
		}
	case "stop":
		if !slot.running() {
			ts.Fatalf("writer stop: no writer running")
		}
		slot.w.finish()
		ts.Logf("%d writes acknowledged", len(slot.w.acked))
	default:
		ts.Fatalf("writer: unknown subcommand %q", args[0])
	}
}

// noOps checks that n's view of the cluster has no membership operation
// under way:
//
//	noops n1
func noOps(n *node, args ...string) error {
	if len(args) != 0 {
		return usage("noops NODE")
	}
	st, err := n.status()
	if err != nil {
		return err
	}
	if st.ClusterError != "" || len(st.Operations) != 0 {
		return fmt.Errorf("%s: operations %+v (cluster error %q)", n.name, st.Operations, st.ClusterError)
	}
	return nil
}

// clusterView describes, for a failed wait, every running node's shards as it
// sees them and the last lines of its log.
func clusterView(ts *testscript.TestScript) string {
	var b strings.Builder
	nodes := scriptNodes(ts)
	for _, name := range slices.Sorted(maps.Keys(nodes)) {
		n := nodes[name]
		if n.proc == nil {
			continue
		}
		fmt.Fprintf(&b, "%s:\n", name)
		if st, err := n.status(); err != nil {
			fmt.Fprintf(&b, "  status: %v\n", err)
		} else {
			for _, sh := range st.Shards {
				fmt.Fprintf(&b, "  shard %d: %s, leader %q, term %d, last %d, commit %d, applied %d, voters %v, nonvoters %v %s\n",
					sh.ID, sh.State, sh.Leader, sh.Term, sh.LastIndex, sh.CommitIndex, sh.AppliedIndex,
					sh.WithSuffrage("voter"), sh.WithSuffrage("nonvoter"), sh.Error)
			}
		}
		lines := strings.Split(strings.TrimSpace(readFile(filepath.Join(ts.Getenv("WORK"), name+".log"))), "\n")
		for _, l := range lines[max(0, len(lines)-15):] {
			fmt.Fprintf(&b, "  | %s\n", l)
		}
	}
	return b.String()
}

func argAt(args []string, i int) string {
	if i < len(args) {
		return args[i]
	}
	return ""
}

// waitFor polls cond every 100ms until it holds or timeout passes, and
// returns its last error.
func waitFor(timeout time.Duration, cond func() error) error {
	return testwait.Until(timeout, 100*time.Millisecond, cond)
}

// acked NODE: every write the stopped writer had acknowledged reads back
// through NODE with its value.
func cmdAcked(ts *testscript.TestScript, neg bool, args []string) {
	slot := ts.Value(scriptWriterKey{}).(*writerSlot)
	if neg || len(args) != 1 || slot.w == nil || slot.running() {
		ts.Fatalf("usage: acked NODE (after writer stop)")
	}
	if len(slot.w.acked) == 0 {
		ts.Fatalf("acked: the writer had no write acknowledged")
	}
	if err := missingAcked(lookup(ts, args[0]).node, slot.w.acked); err != nil {
		ts.Fatalf("%v", err)
	}
}

// readBack checks that GET PREFIX:i through n answers i for every i < N
// (what load wrote):
//
//	readback n3 key 60
func readBack(n *node, args ...string) error {
	count, err := strconv.Atoi(argAt(args, 1))
	if len(args) != 2 || err != nil {
		return usage("readback NODE PREFIX N")
	}
	want := map[string]string{}
	for i := 0; i < count; i++ {
		want[fmt.Sprintf("%s:%d", args[0], i)] = strconv.Itoa(i)
	}
	return missingAcked(n, want)
}

// scanThrough runs a scan through n to its end (bounded): step is one
// call from cursor. It returns every call's items, and how many calls.
func scanThrough(n *node, what string, step func(ctx context.Context, c *redis.Client, cursor uint64) ([]string, uint64, error)) ([]string, int, error) {
	c := n.redis()
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var all []string
	var cursor uint64
	for calls := 1; ; calls++ {
		if calls > 10000 {
			return nil, calls, fmt.Errorf("%s through %s did not end after %d calls", what, n.name, calls)
		}
		items, next, err := step(ctx, c, cursor)
		if err != nil {
			return nil, calls, err
		}
		all = append(all, items...)
		if cursor = next; cursor == 0 {
			return all, calls, nil
		}
	}
}

// scanCount checks that a full SCAN through n with MATCH pattern returns
// exactly N distinct keys:
//
//	scancount n2 key:* 60
func scanCount(n *node, args ...string) error {
	want, err := strconv.Atoi(argAt(args, 1))
	if len(args) != 2 || err != nil {
		return usage("scancount NODE PATTERN N")
	}
	keys, _, err := scanThrough(n, "SCAN", func(ctx context.Context, c *redis.Client, cursor uint64) ([]string, uint64, error) {
		return c.Scan(ctx, cursor, args[0], 100).Result()
	})
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, k := range keys {
		seen[k] = true
	}
	if len(seen) != want {
		return fmt.Errorf("SCAN %s through %s: %d keys, want %d", args[0], n.name, len(seen), want)
	}
	return nil
}

// hscanCount checks that HSCAN through n, COUNT 25 a call, pages through
// hash KEY's N fields (hashload's: f<i> valued i, "" valued -1) and
// returns each once at least, with its value:
//
//	hscancount n3 big 301
func hscanCount(n *node, args ...string) error {
	want, err := strconv.Atoi(argAt(args, 1))
	if len(args) != 2 || err != nil {
		return usage("hscancount NODE KEY N")
	}
	pairs, calls, err := scanThrough(n, "HSCAN", func(ctx context.Context, c *redis.Client, cursor uint64) ([]string, uint64, error) {
		return c.HScan(ctx, args[0], cursor, "", 25).Result()
	})
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(pairs); i += 2 {
		f, v := pairs[i], pairs[i+1]
		if wantV := strings.TrimPrefix(f, "f"); (f == "" && v != "-1") || (f != "" && v != wantV) {
			return fmt.Errorf("HSCAN %s through %s: field %q valued %q", args[0], n.name, f, v)
		}
		seen[f] = true
	}
	if len(seen) != want || !seen[""] {
		return fmt.Errorf("HSCAN %s through %s: %d fields (the empty one: %v), want %d", args[0], n.name, len(seen), seen[""], want)
	}
	if calls <= want/25 {
		return fmt.Errorf("HSCAN %s through %s: %d calls for %d fields at COUNT 25: it did not page", args[0], n.name, calls, want)
	}
	return nil
}

// sscanCount checks that SSCAN through n, COUNT 25 a call, pages through
// set KEY.set's N members (hashload's: f<i> and "") and returns each once
// at least:
//
//	sscancount n3 big 301
func sscanCount(n *node, args ...string) error {
	want, err := strconv.Atoi(argAt(args, 1))
	if len(args) != 2 || err != nil {
		return usage("sscancount NODE KEY N")
	}
	key := args[0] + ".set"
	members, calls, err := scanThrough(n, "SSCAN", func(ctx context.Context, c *redis.Client, cursor uint64) ([]string, uint64, error) {
		return c.SScan(ctx, key, cursor, "", 25).Result()
	})
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, m := range members {
		if m != "" && !strings.HasPrefix(m, "f") {
			return fmt.Errorf("SSCAN %s through %s: member %q", key, n.name, m)
		}
		seen[m] = true
	}
	if len(seen) != want || !seen[""] {
		return fmt.Errorf("SSCAN %s through %s: %d members (the empty one: %v), want %d", key, n.name, len(seen), seen[""], want)
	}
	if calls <= want/25 {
		return fmt.Errorf("SSCAN %s through %s: %d calls for %d members at COUNT 25: it did not page", key, n.name, calls, want)
	}
	return nil
}

// noLag checks that n reports an applied index for every member of every
// shard, and no lag:
//
//	nolag n2
func noLag(n *node, args ...string) error {
	if len(args) != 0 {
		return usage("nolag NODE")
	}
	st, err := n.status()
	if err != nil {
		return err
	}
	for _, sh := range st.Shards {
		for _, m := range sh.Members {
			if m.AppliedIndex == nil || m.Lag == nil || *m.AppliedIndex == 0 || *m.Lag != 0 {
				return fmt.Errorf("shard %d member %s: applied %v lag %v", sh.ID, m.Node, m.AppliedIndex, m.Lag)
			}
		}
	}
	return nil
}

// compacted checks that every shard's log, as n reports it, starts after
// index 1 (a snapshot has truncated it):
//
//	compacted n1
func compacted(n *node, args ...string) error {
	if len(args) != 0 {
		return usage("compacted NODE")
	}
	st, err := n.status()
	if err != nil {
		return err
	}
	for _, sh := range st.Shards {
		if sh.FirstIndex <= 1 {
			return fmt.Errorf("shard %d: first index %d", sh.ID, sh.FirstIndex)
		}
	}
	return nil
}

// syncsAtOnce checks, once every shard of target is synced as n reports
// it, that no more than max of its shard syncs ran at the same time (by
// their start and end times):
//
//	syncsonce n1 n4 1
func syncsAtOnce(n *node, args ...string) error {
	most, err := strconv.Atoi(argAt(args, 1))
	if len(args) != 2 || err != nil {
		return usage("syncsonce NODE TARGET MAX")
	}
	st, err := n.status()
	if err != nil {
		return err
	}
	type span struct{ from, to int64 }
	var spans []span
	for _, s := range st.Syncs {
		if s.Node != args[0] {
			continue
		}
		if s.State != "synced" || s.StartedMs == 0 || s.FinishedMs < s.StartedMs {
			return fmt.Errorf("shard %d of %s: %s, started %d, finished %d", s.Shard, s.Node, s.State, s.StartedMs, s.FinishedMs)
		}
		spans = append(spans, span{s.StartedMs, s.FinishedMs})
	}
	if len(spans) != scriptShards {
		return fmt.Errorf("%d syncs of %s, want one per shard (%d)", len(spans), args[0], scriptShards)
	}
	for _, a := range spans {
		at := 0 // syncs running when a started
		for _, b := range spans {
			if b.from <= a.from && a.from < b.to {
				at++
			}
		}
		if at > most {
			return fmt.Errorf("%d syncs of %s ran at once (spans %v), want at most %d", at, args[0], spans, most)
		}
	}
	return nil
}

// leader [-not NAME] NODE SHARD VAR [OTHER...]: wait (60s) until NODE
// reports a leader for SHARD (other than NAME, with -not: a new leader
// once NODE has heard of it); set $VAR to its name and each $OTHER to one
// of the other running nodes, in name order (there must be exactly as
// many):
//
//	leader n1 0 L A B
//	leader -not $L $B 0 M
func cmdLeader(ts *testscript.TestScript, neg bool, args []string) {
	var not string
	if len(args) >= 2 && args[0] == "-not" {
		not, args = args[1], args[2:]
	}
	if neg || len(args) < 3 {
		ts.Fatalf("usage: leader [-not NAME] NODE SHARD VAR [OTHER...]")
	}
	shard, err := strconv.Atoi(args[1])
	if err != nil {
		ts.Fatalf("leader: shard %q is not a number", args[1])
	}
	n := lookup(ts, args[0]).node
	var name string
	err = waitFor(60*time.Second, func() error {
		st, err := n.status()
		if err != nil {
			return err
		}
		for _, sh := range st.Shards {
			if sh.ID == shard && sh.Leader != "" && sh.Leader != not {
				name = sh.Leader
				return nil
			}
		}
		if not != "" {
			return fmt.Errorf("%s reports no leader for shard %d other than %s", n.name, shard, not)
		}
		return fmt.Errorf("%s reports no leader for shard %d", n.name, shard)
	})
	if err != nil {
		ts.Fatalf("leader: %v", err)
	}
	setPicked(ts, name, args[2], args[3:], name)
}

// syncing NODE TARGET VAR [OTHER...]: wait (60s) until NODE reports a sync
// of TARGET under way (copying or catching up) in a shard led by another
// node; set $VAR to that leader and each $OTHER to one of the running
// nodes other than it and TARGET, in name order:
//
//	syncing n2 n4 VICTIM A B
func cmdSyncing(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 3 {
		ts.Fatalf("usage: syncing NODE TARGET VAR [OTHER...]")
	}
	n, target := lookup(ts, args[0]).node, args[1]
	var name string
	err := waitFor(60*time.Second, func() error {
		st, err := n.status()
		if err != nil {
			return err
		}
		for _, s := range st.Syncs {
			if s.Node != target || (s.State != "copying" && s.State != "catching_up") {
				continue
			}
			for _, sh := range st.Shards {
				if sh.ID == int(s.Shard) && sh.Leader != "" && sh.Leader != target {
					name = sh.Leader
					return nil
				}
			}
		}
		return fmt.Errorf("syncs %+v", st.Syncs)
	})
	if err != nil {
		ts.Fatalf("syncing: no sync of %s under way: %v", target, err)
	}
	setPicked(ts, name, args[2], args[3:], name, target)
}

// setPicked sets $varName to name and otherVars to the running nodes not
// in exclude, in name order.
func setPicked(ts *testscript.TestScript, name, varName string, otherVars []string, exclude ...string) {
	lookup(ts, name) // a node this script started
	var others []string
	for nm, sn := range scriptNodes(ts) {
		if sn.proc != nil && !slices.Contains(exclude, nm) {
			others = append(others, nm)
		}
	}
	slices.Sort(others)
	if len(otherVars) > 0 && len(others) != len(otherVars) {
		ts.Fatalf("%d other running nodes %v for %d variables %v", len(others), others, len(otherVars), otherVars)
	}
	ts.Setenv(varName, name)
	for i, v := range otherVars {
		ts.Setenv(v, others[i])
	}
	ts.Logf("%s=%s, others %v", varName, name, others)
}

// balanced checks that, as n reports, every shard has a leader among
// names and each of names leads as many shards as any other, give or
// take one:
//
//	balanced n1 n1 n2 n3
func balanced(n *node, names ...string) error {
	if len(names) == 0 {
		return usage("balanced NODE NAME...")
	}
	st, err := n.status()
	if err != nil {
		return err
	}
	return cluster.EvenLeaders(st.Leaders(), names)
}

// nodesFlag checks that n's CLUSTER NODES flags NAME fail, or, with
// !fail, does not:
//
//	nodesflag n1 n3 fail
func nodesFlag(n *node, args ...string) error {
	if len(args) != 2 || (args[1] != "fail" && args[1] != "!fail") {
		return usage("nodesflag NODE NAME fail|!fail")
	}
	c := n.redis()
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := c.ClusterNodes(ctx).Result()
	if err != nil {
		return err
	}
	id := server.NodeID(args[0])
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 8 || f[0] != id {
			continue
		}
		failed := slices.Contains(strings.Split(f[2], ","), "fail")
		if failed != (args[1] == "fail") {
			return fmt.Errorf("%s's CLUSTER NODES line for %s: %q, want %s", n.name, args[0], line, args[1])
		}
		return nil
	}
	return fmt.Errorf("%s's CLUSTER NODES has no line for %s:\n%s", n.name, args[0], out)
}

// clusterClient writes and reads back COUNT keys PREFIX:<i> with a Redis
// Cluster client (go-redis ClusterClient) that learns the cluster from
// n's CLUSTER SLOTS, and checks that it sends each key to the node that
// leads the key's shard as n's status reports it:
//
//	cluster n2 ckey 40
func clusterClient(n *node, args ...string) error {
	if len(args) != 2 {
		return usage("cluster NODE PREFIX COUNT")
	}
	count, err := strconv.Atoi(args[1])
	if err != nil {
		return usage("cluster NODE PREFIX COUNT (a number)")
	}
	st, err := n.status()
	if err != nil {
		return err
	}
	addr := map[string]string{}
	for _, v := range st.Nodes {
		addr[v.Name] = v.ClientAddr
	}
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{n.client}, MaxRedirects: -1,
		ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range count {
		key := fmt.Sprintf("%s:%d", args[0], i)
		shard := kv.ShardOf(kv.Slot([]byte(key)), len(st.Shards))
		want := addr[st.Shards[shard].Leader]
		master, err := c.MasterForKey(ctx, key)
		if err != nil {
			return fmt.Errorf("%s: master: %v", key, err)
		}
		if got := master.Options().Addr; got != want {
			return fmt.Errorf("%s (shard %d, led by %s at %s) goes to %s", key, shard, st.Shards[shard].Leader, want, got)
		}
		if err := c.Set(ctx, key, "v"+key, 0).Err(); err != nil {
			return fmt.Errorf("SET %s: %v", key, err)
		}
		if v, err := c.Get(ctx, key).Result(); err != nil || v != "v"+key {
			return fmt.Errorf("GET %s = %q, %v", key, v, err)
		}
	}
	return nil
}

// move NAME [VAR]: give the stopped node NAME new addresses (client,
// cluster, gossip and HTTP ports) for its next start, on the data it has: a
// node restarted elsewhere, as a container given a new IP is. With VAR,
// $VAR is set to its old cluster address (for another node to take).
func cmdMove(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 1 || len(args) > 2 {
		ts.Fatalf("usage: move NAME [VAR]")
	}
	n := lookup(ts, args[0])
	if n.proc != nil {
		ts.Fatalf("move: %s is running; stop it first", args[0])
	}
	a, err := freeport.Loopback(4)
	if err != nil {
		ts.Fatalf("%v", err)
	}
	n.client, n.http, n.gossip, n.cluster = a[0], a[1], a[2], a[3]
	for flag, addr := range map[string]string{"--client-addr": a[0], "--http-addr": a[1], "--gossip-addr": a[2], "--cluster-addr": a[3]} {
		i := slices.Index(n.args, flag)
		if i < 0 || i+1 >= len(n.args) {
			ts.Fatalf("move: %s has no %s", args[0], flag)
		}
		if flag == "--cluster-addr" && len(args) == 2 {
			ts.Setenv(args[1], n.args[i+1])
		}
		n.args[i+1] = addr
	}
}

// addressed NODE TARGET: as NODE sees them (waits 60s), every shard's
// configuration has TARGET at the cluster address it runs with now, gossip
// gives that address, and TARGET answers with its applied index at the
// address the cluster state records for it.
func cmdAddressed(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: addressed NODE TARGET")
	}
	n, target := lookup(ts, args[0]).node, lookup(ts, args[1]).node
	want := target.args[slices.Index(target.args, "--cluster-addr")+1]
	err := waitFor(60*time.Second, func() error {
		st, err := n.status()
		if err != nil {
			return err
		}
		for _, nd := range st.Nodes {
			if nd.Name == target.name && nd.ClusterAddr != want {
				return fmt.Errorf("gossip gives %s at %s, want %s", target.name, nd.ClusterAddr, want)
			}
		}
		for _, sh := range st.Shards {
			i := slices.IndexFunc(sh.Members, func(m actors.MemberStatus) bool { return m.Node == target.name })
			switch {
			case i < 0:
				return fmt.Errorf("shard %d has no %s", sh.ID, target.name)
			case sh.Members[i].Address != want:
				return fmt.Errorf("shard %d has %s at %s, want %s", sh.ID, target.name, sh.Members[i].Address, want)
			case sh.Members[i].AppliedIndex == nil:
				return fmt.Errorf("shard %d: %s does not answer at the address the cluster state has", sh.ID, target.name)
			}
		}
		return nil
	})
	if err != nil {
		ts.Fatalf("addressed: %v\n%s", err, clusterView(ts))
	}
}
