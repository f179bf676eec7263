package integration

// Cluster scripts: testdata/*.txtar drive real cmd/node processes with the
// commands below (every wait bounded). Each script gets its own nodes, on
// free loopback ports, with data under the script's work dir.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coppice-kv/coppice/internal/freeport"
	"github.com/coppice-kv/coppice/internal/testdamage"
	"github.com/coppice-kv/coppice/internal/testwait"
	"github.com/coppice-kv/coppice/storage"
	"github.com/redis/go-redis/v9"
	"github.com/rogpeppe/go-internal/testscript"
)

// httpClient polls the nodes' HTTP ports.
var httpClient = http.Client{Timeout: time.Second}

func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata",
		Setup: func(env *testscript.Env) error {
			env.Values[scriptNodesKey{}] = map[string]*scriptNode{}
			env.Values[scriptWriterKey{}] = &writerSlot{}
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"start":      cmdStart,
			"signal":     cmdSignal,
			"voters":     cmdWait(voters),
			"sysvoters":  cmdWait(systemVoters),
			"members":    cmdWait(members),
			"removed":    cmdWait(removed),
			"ready":      cmdWait(ready),
			"same":       cmdSame,
			"seen":       cmdWait(seen),
			"redis":      cmdRedis,
			"op":         cmdOp,
			"exited":     cmdExited,
			"clusterid":  cmdWait(hasClusterID),
			"nonvoters":  cmdWait(nonvoters),
			"reads":      cmdWait(reads),
			"sets":       cmdWait(sets),
			"disklow":    cmdWait(diskLowNodes),
			"syncedby":   cmdWait(syncedBy),
			"snapshots":  cmdWait(snapshotCount),
			"load":       cmdLoad,
			"clone":      cmdClone,
			"damage":     cmdDamage,
			"checksums":  cmdChecksums,
			"readback":   cmdWait(readBack),
			"scancount":  cmdWait(scanCount),
			"hashload":   cmdHashLoad,
			"hscancount": cmdWait(hscanCount),
			"sscancount": cmdWait(sscanCount),
			"nolag":      cmdWait(noLag),
			"compacted":  cmdWait(compacted),
			"syncsonce":  cmdWait(syncsAtOnce),
			"writer":     cmdWriter,
			"acked":      cmdAcked,
			"leader":     cmdLeader,
			"syncing":    cmdSyncing,
			"balanced":   cmdWait(balanced),
			"cluster":    cmdWait(clusterClient),
			"nodesflag":  cmdWait(nodesFlag),
			"noops":      cmdWait(noOps),
			"move":       cmdMove,
			"addressed":  cmdAddressed,
			"logged":     cmdLogged,
			"restore":    cmdRestore,
			"holdslogs":  cmdHoldsLogs,
		},
	})
}

type scriptNodesKey struct{}

// scriptShards is every script node's --shards.
const scriptShards = 4

// scriptNode is a node process a script started.
type scriptNode struct {
	*node
	cluster string // --cluster-addr
	proc    *exec.Cmd
	done    chan struct{}
}

// declare returns the script's node called name, giving it free loopback
// ports and a data dir under the script's work dir the first time. Its
// args stay nil until its first start.
func declare(ts *testscript.TestScript, name string) *scriptNode {
	nodes := scriptNodes(ts)
	if n := nodes[name]; n != nil {
		return n
	}
	a, err := freeport.Loopback(4)
	if err != nil {
		ts.Fatalf("%v", err)
	}
	n := &scriptNode{node: &node{name: name, dataDir: filepath.Join(ts.Getenv("WORK"), "data", name),
		client: a[0], http: a[1], gossip: a[2]}, cluster: a[3]}
	nodes[name] = n
	return n
}

func scriptNodes(ts *testscript.TestScript) map[string]*scriptNode {
	return ts.Value(scriptNodesKey{}).(map[string]*scriptNode)
}

func lookup(ts *testscript.TestScript, name string) *scriptNode {
	n := scriptNodes(ts)[name]
	if n == nil {
		ts.Fatalf("no node %s started in this script", name)
	}
	return n
}

// start [--no-wait] NAME [--join PEER[,PEER...]] [flags...]: start a node
// and wait (60s) until /readyz answers (with --no-wait, only start it: a
// joining node is ready once it is synced). --join takes other nodes'
// names; one not started yet gets its addresses then, for its own start
// later (nodes that join each other). The flags given the first time are
// the node's for good; flags given when a stopped node is started again
// are added for that start only. Example:
//
//	start n2 --join n1 --role replica
//	start --no-wait n1 --join n2,n3 --bootstrap-expect 3
//
// ! start NAME [flags...]: the start is refused: the process exits (60s)
// with a failure, and its log is the command's stdout.
func cmdStart(ts *testscript.TestScript, neg bool, args []string) {
	wait := true
	if len(args) > 0 && args[0] == "--no-wait" {
		wait, args = false, args[1:]
	}
	if len(args) < 1 {
		ts.Fatalf("usage: [!] start [--no-wait] NAME [--join PEER] [flags...]")
	}
	name, rest := args[0], args[1:]
	n := declare(ts, name)
	var extra []string
	for i := 0; i < len(rest); i++ {
		if rest[i] == "--join" && i+1 < len(rest) {
			var seeds []string
			for _, peer := range strings.Split(rest[i+1], ",") {
				seeds = append(seeds, declare(ts, peer).gossip)
			}
			extra = append(extra, "--join", strings.Join(seeds, ","))
			i++
			continue
		}
		extra = append(extra, rest[i])
	}
	flags := extra
	if n.args == nil {
		n.args = append([]string{"--name", name, "--data-dir", n.dataDir, "--shards", strconv.Itoa(scriptShards),
			"--client-addr", n.client, "--cluster-addr", n.cluster, "--gossip-addr", n.gossip,
			"--http-addr", n.http, "--gossip-fast", "--remove-delay", "4s"}, extra...)
		flags = nil
	}
	if n.proc != nil {
		ts.Fatalf("%s is running already", name)
	}
	bin, err := buildNode()
	if err != nil {
		ts.Fatalf("%v", err)
	}
	logPath := filepath.Join(ts.Getenv("WORK"), name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		ts.Fatalf("%v", err)
	}
	var logStart int64 // where this start's log begins
	if fi, err := f.Stat(); err == nil {
		logStart = fi.Size()
	}
	n.proc = exec.Command(bin, append(slices.Clone(n.args), flags...)...)
	n.proc.Stdout, n.proc.Stderr = f, f
	if err := n.proc.Start(); err != nil {
		ts.Fatalf("%v", err)
	}
	n.done = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { c.Wait(); f.Close(); close(done) }(n.proc, n.done)
	proc, done := n.proc, n.done
	ts.Defer(func() {
		proc.Process.Kill()
		<-done
	})
	if neg {
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			ts.Fatalf("%s still running 60s after a start that should be refused:\n%s", name, readFile(logPath))
		}
		ok := proc.ProcessState.Success()
		n.proc = nil
		log := readFile(logPath)
		fmt.Fprint(ts.Stdout(), log[min(int(logStart), len(log)):])
		if ok {
			ts.Fatalf("%s exited with success; want a refusal", name)
		}
		return
	}
	if !wait {
		return
	}
	exited := false
	err = testwait.Until(60*time.Second, 50*time.Millisecond, func() error {
		select {
		case <-n.done:
			exited = true
			return nil
		default:
			return n.ready(&httpClient)
		}
	})
	if exited {
		ts.Fatalf("%s exited during start:\n%s", name, readFile(logPath))
	}
	if err != nil {
		ts.Fatalf("%s not ready within 60s: %v\n%s", name, err, clusterView(ts))
	}
}

// signal NAME KILL|TERM: send the node SIGKILL or SIGTERM and wait (30s)
// for it to end. (testscript's own kill is for background commands.)
// signal NAME STOP|CONT: freeze the node or let it go on (it keeps
// running; a frozen node's sockets stay open and answer nothing).
func cmdSignal(ts *testscript.TestScript, neg bool, args []string) {
	sigs := map[string]syscall.Signal{"KILL": syscall.SIGKILL, "TERM": syscall.SIGTERM,
		"STOP": syscall.SIGSTOP, "CONT": syscall.SIGCONT}
	sig, ok := sigs[argAt(args, 1)]
	if neg || len(args) != 2 || !ok {
		ts.Fatalf("usage: signal NAME KILL|TERM|STOP|CONT")
	}
	n := lookup(ts, args[0])
	if n.proc == nil {
		ts.Fatalf("%s is not running", args[0])
	}
	if err := n.proc.Process.Signal(sig); err != nil {
		ts.Fatalf("signal %s %s: %v", args[0], args[1], err)
	}
	if sig == syscall.SIGSTOP || sig == syscall.SIGCONT {
		return
	}
	select {
	case <-n.done:
	case <-time.After(30 * time.Second):
		ts.Fatalf("%s still running 30s after %v", args[0], sig)
	}
	n.proc = nil
}

// exited NAME: the node's process has ended (waits 60s); with !, it ended
// with a failure.
func cmdExited(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: [!] exited NAME")
	}
	n := lookup(ts, args[0])
	if n.proc == nil {
		ts.Fatalf("%s was not running", args[0])
	}
	select {
	case <-n.done:
	case <-time.After(60 * time.Second):
		ts.Fatalf("%s still running after 60s", args[0])
	}
	ok := n.proc.ProcessState.Success()
	n.proc = nil
	if ok == neg {
		ts.Fatalf("%s exited, success %v", args[0], ok)
	}
}

// holdslogs NODE: checks once, without waiting, that every shard of the
// node holds a Raft log reaching its commit index: for right after a
// start on rebuilt or lost stores, whose /readyz waits until the groups
// have caught up and vote again.
func cmdHoldsLogs(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: holdslogs NODE")
	}
	st, err := lookup(ts, args[0]).status()
	if err != nil {
		ts.Fatalf("holdslogs: %v", err)
	}
	for _, sh := range st.Shards {
		if sh.VotesWithheld || sh.LastIndex == 0 || sh.LastIndex < sh.CommitIndex {
			ts.Fatalf("holdslogs: %s's shard %d: last index %d, commit index %d, votes withheld %v",
				args[0], sh.ID, sh.LastIndex, sh.CommitIndex, sh.VotesWithheld)
		}
	}
}

// cmdWait makes a command that polls check(node, args...) for up to 60s:
//
//	voters n1 n1 n2 n3     every shard's voters, as n1 sees them
//	nonvoters n1 r4 ro     every shard's non-voters, as n1 sees them
//	members n1 n1 n2 n3    the cluster's members, as n1 sees them
//	reads ro k v           a GET of k through ro answers v
//	sets n1 k OK           a SET of k through n1 answers OK (or an error
//	                       with the words given, joined by spaces)
//	disklow n1 n3          n1's status marks n3, and no other, disk_low
//	clusterid m1 [m2...]   m1 has recorded its cluster's ID (and m2... the same)
//	syncedby n1 n4 replay  n1 reports every shard of n4 synced by replay
//	snapshots n4 1         every shard of n4 keeps 1 snapshot
func cmdWait(check func(n *node, names ...string) error) func(*testscript.TestScript, bool, []string) {
	return func(ts *testscript.TestScript, neg bool, args []string) {
		if neg || len(args) < 1 {
			ts.Fatalf("usage: CMD NODE [NAMES...]")
		}
		n := lookup(ts, args[0]).node
		var bad usage
		err := waitFor(60*time.Second, func() error {
			err := check(n, args[1:]...)
			if errors.As(err, &bad) {
				return nil // no use waiting: reported below
			}
			return err
		})
		if bad != "" {
			ts.Fatalf("%v", bad)
		}
		if err != nil {
			ts.Fatalf("not within 60s: %v\n%s", err, clusterView(ts))
		}
	}
}

// logged NODE[,NODE...] TEXT...: wait (60s) until a node's log has TEXT
// (the arguments joined by spaces) in it; with several nodes, any one's
// (what the coordinator logs, when the coordinator may have moved).
func cmdLogged(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: logged NODE[,NODE...] TEXT...")
	}
	names, text := strings.Split(args[0], ","), strings.Join(args[1:], " ")
	for _, name := range names {
		lookup(ts, name)
	}
	has := func() error {
		for _, name := range names {
			if strings.Contains(readFile(filepath.Join(ts.Getenv("WORK"), name+".log")), text) {
				return nil
			}
		}
		return fmt.Errorf("%s has not logged %q", args[0], text)
	}
	if err := waitFor(60*time.Second, has); err != nil {
		ts.Fatalf("not within 60s: %v", err)
	}
}

// usage is a check's complaint about its arguments: a waited check fails
// at once with it instead of retrying for a minute.
type usage string

func (u usage) Error() string { return "usage: " + string(u) }

// seen checks that n's gossip sees node with status (alive, failed, left):
//
//	seen n1 n3 failed
func seen(n *node, args ...string) error {
	if len(args) != 2 {
		return usage("seen NODE NAME STATUS")
	}
	st, err := n.status()
	if err != nil {
		return err
	}
	for _, v := range st.Nodes {
		if v.Name == args[0] && v.Status == args[1] {
			return nil
		}
	}
	return fmt.Errorf("%s sees %+v, want %s %s", n.name, st.Nodes, args[0], args[1])
}

// reads checks that a GET of key through n answers value:
//
//	reads ro k v
func reads(n *node, args ...string) error {
	if len(args) != 2 {
		return usage("reads NODE KEY VALUE")
	}
	c := n.redis()
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, err := c.Get(ctx, args[0]).Result()
	if err == nil && v != args[1] {
		err = fmt.Errorf("GET %s through %s = %q, want %q", args[0], n.name, v, args[1])
	}
	return err
}

// sets checks that a SET of key (to "v") through n answers OK, or an
// error that holds the words given after the key, joined by spaces:
//
//	sets n1 k OK
//	sets n1 k disk space low on n3
func sets(n *node, args ...string) error {
	if len(args) < 2 {
		return usage("sets NODE KEY OK|ERROR WORDS...")
	}
	c := n.redis()
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	want := strings.Join(args[1:], " ")
	err := c.Set(ctx, args[0], "v", 0).Err()
	switch {
	case want == "OK" && err != nil:
		return fmt.Errorf("SET %s through %s: %v, want OK", args[0], n.name, err)
	case want != "OK" && (err == nil || !strings.Contains(err.Error(), want)):
		return fmt.Errorf("SET %s through %s: %v, want an error with %q", args[0], n.name, err, want)
	}
	return nil
}

// diskLowNodes checks that n's status marks exactly the named nodes as
// low on disk:
//
//	disklow n1 n3
func diskLowNodes(n *node, names ...string) error {
	st, err := n.status()
	if err != nil {
		return err
	}
	var low []string
	for _, v := range st.Nodes {
		if v.DiskLow {
			low = append(low, v.Name)
		}
	}
	slices.Sort(low)
	if want := slices.Sorted(slices.Values(names)); !slices.Equal(low, want) {
		return fmt.Errorf("%s's status marks %v low on disk, want %v", n.name, low, want)
	}
	return nil
}

// syncedBy checks that, as n reports it, every shard of node was synced
// by method (replay or snapshot):
//
//	syncedby n1 n4 replay
func syncedBy(n *node, args ...string) error {
	if len(args) != 2 {
		return usage("syncedby NODE NAME METHOD")
	}
	methods, err := syncMethods(n, args[0])
	if err != nil {
		return err
	}
	for shard := 0; shard < scriptShards; shard++ {
		if methods[shard] != args[1] {
			return fmt.Errorf("%s's shards synced by %v, want %s for every shard", args[0], methods, args[1])
		}
	}
	return nil
}

// snapshotCount checks that every shard of n's data dir holds count
// snapshots (a disk clone's own marker is one):
//
//	snapshots n4 1
func snapshotCount(n *node, args ...string) error {
	if len(args) != 1 {
		return usage("snapshots NODE COUNT")
	}
	for shard := 0; shard < scriptShards; shard++ {
		ents, err := os.ReadDir(filepath.Join(n.dataDir, "shards", fmt.Sprint(shard), "snapshots"))
		if err != nil {
			return err
		}
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		if fmt.Sprint(len(names)) != args[0] {
			return fmt.Errorf("shard %d of %s has snapshots %v, want %s", shard, n.name, names, args[0])
		}
	}
	return nil
}

// load NODE PREFIX N: N SETs, PREFIX:i to i, one after the other through
// the node (each acknowledged).
func cmdLoad(ts *testscript.TestScript, neg bool, args []string) {
	var count int
	if neg || len(args) != 3 {
		ts.Fatalf("usage: load NODE PREFIX N")
	}
	if _, err := fmt.Sscan(args[2], &count); err != nil || count < 1 {
		ts.Fatalf("load: N must be a positive number, not %q", args[2])
	}
	c := lookup(ts, args[0]).redis()
	defer c.Close()
	// One SET after another, so each is a log entry of its own (scripts
	// count on the entries: snapshots, compacted logs). Each SET is given
	// 10s and all of them 5 minutes: a minute for them all failed in CI
	// (3000 SETs beside a writer, snapshots every 64 entries, the fault
	// suite running beside: about 50 a second).
	all, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for i := 0; i < count; i++ {
		ctx, cancel := context.WithTimeout(all, 10*time.Second)
		err := c.Set(ctx, fmt.Sprintf("%s:%d", args[1], i), i, 0).Err()
		cancel()
		if err != nil {
			ts.Fatalf("load: SET %s:%d: %v", args[1], i, err)
		}
	}
}

// hashload NODE KEY N: through NODE, one HSET gives hash KEY the fields
// f0..f<N-1>, each valued by its number, and the empty field "" (valued
// -1), which sorts first; one SADD gives set KEY.set the same members.
func cmdHashLoad(ts *testscript.TestScript, neg bool, args []string) {
	var count int
	if neg || len(args) != 3 {
		ts.Fatalf("usage: hashload NODE KEY N")
	}
	if _, err := fmt.Sscan(args[2], &count); err != nil || count < 1 {
		ts.Fatalf("hashload: N must be a positive number, not %q", args[2])
	}
	c := lookup(ts, args[0]).redis()
	defer c.Close()
	pairs, members := []any{"", -1}, []any{""}
	for i := range count {
		pairs = append(pairs, fmt.Sprintf("f%d", i), i)
		members = append(members, fmt.Sprintf("f%d", i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.HSet(ctx, args[1], pairs...).Err(); err != nil {
		ts.Fatalf("hashload: HSET %s: %v", args[1], err)
	}
	if err := c.SAdd(ctx, args[1]+".set", members...).Err(); err != nil {
		ts.Fatalf("hashload: SADD %s.set: %v", args[1], err)
	}
}

// damage NODE SHARD|raftlog first|middle: flips one byte of every table
// of the stopped node's shard store, or of its Raft log store (as bit rot
// does), in its first block (which the store's open reads) or at 2/5 of
// the file, in a later data block of a table of a few thousand keys (met
// by the first read of that block: a checksum of the shard reads every
// key, a start reads every group's log); or, with manifest, one byte of
// the first record of the store's MANIFEST, the records after it sound.
func cmdDamage(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 || (args[2] != "first" && args[2] != "middle" && args[2] != "manifest") {
		ts.Fatalf("usage: damage NODE SHARD|raftlog first|middle|manifest")
	}
	n := lookup(ts, args[0])
	if n.proc != nil {
		ts.Fatalf("damage: %s is running; stop it first", args[0])
	}
	l := storage.Layout{Dir: n.dataDir}
	dir, what := filepath.Join(l.RaftLogDir(), "db"), "Raft log store"
	if args[1] != "raftlog" {
		shard, err := strconv.Atoi(args[1])
		if err != nil {
			ts.Fatalf("damage: shard %q: %v", args[1], err)
		}
		dir, what = l.KVDir(shard), "shard "+args[1]
	}
	if args[2] == "manifest" {
		path, err := testdamage.FlipManifest(dir)
		if err != nil {
			ts.Fatalf("damage: %v", err)
		}
		ts.Logf("damaged the first record of %s's %s's MANIFEST %s", args[0], what, path)
		return
	}
	at := func(size int) int { return size * 2 / 5 }
	if args[2] == "first" {
		at = func(int) int { return 8 }
	}
	count, err := testdamage.FlipTables(dir, at)
	if err != nil {
		ts.Fatalf("damage: %v", err)
	}
	if count == 0 {
		ts.Fatalf("damage: %s's %s has no table", args[0], what)
	}
	ts.Logf("damaged %d table(s) of %s's %s", count, args[0], what)
}

// checksums NODE: one GET of the node's /v1/checksums (every shard's
// store read whole), its body to stdout whatever the status: a damaged
// store's shard answers its error.
func cmdChecksums(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: checksums NODE")
	}
	resp, err := (&http.Client{Timeout: 60 * time.Second}).Get("http://" + lookup(ts, args[0]).http + "/v1/checksums")
	if err != nil {
		ts.Fatalf("checksums: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		ts.Fatalf("checksums: %v", err)
	}
	ts.Stdout().Write(body)
}

// clone SRC DST: copy stopped node SRC's data dir to where node DST will
// keep its data (DST must not have been started), as an operator's cp -r
// would.
func cmdClone(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: clone SRC DST")
	}
	src := lookup(ts, args[0])
	if src.proc != nil {
		ts.Fatalf("clone: %s is running; stop it first", args[0])
	}
	if n := scriptNodes(ts)[args[1]]; n != nil && n.args != nil {
		ts.Fatalf("clone: %s was started already", args[1])
	}
	if err := copyDir(src.dataDir, filepath.Join(ts.Getenv("WORK"), "data", args[1])); err != nil {
		ts.Fatalf("clone: %v", err)
	}
}

// hasClusterID checks that n has recorded the ID of its cluster in its
// data dir (node.json), as a standalone node does once its system group
// runs, and that each of the others named has recorded the same:
//
//	clusterid n2
//	clusterid n1 n2 n3
func hasClusterID(n *node, others ...string) error {
	id, err := recordedClusterID(n.dataDir)
	if err != nil {
		return fmt.Errorf("%s: %w", n.name, err)
	}
	for _, o := range others {
		their, err := recordedClusterID(filepath.Join(filepath.Dir(n.dataDir), o))
		if err != nil {
			return fmt.Errorf("%s: %w", o, err)
		}
		if their != id {
			return fmt.Errorf("%s records cluster id %s, %s %s", n.name, id, o, their)
		}
	}
	return nil
}

// recordedClusterID is the cluster ID in dataDir's node.json.
func recordedClusterID(dataDir string) (string, error) {
	id, ok, err := storage.Layout{Dir: dataDir}.ReadIdentity()
	switch {
	case err != nil:
		return "", err
	case !ok:
		return "", errors.New("no node.json yet")
	case id.ClusterID == "":
		return "", errors.New("no cluster id in node.json yet")
	}
	return id.ClusterID, nil
}

// same NODES...: every shard's applied index and checksum agree on the
// nodes (waits 60s).
func cmdSame(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: same NODE NODE [NODES...]")
	}
	var nodes []*node
	for _, a := range args {
		nodes = append(nodes, lookup(ts, a).node)
	}
	cmdWait(func(*node, ...string) error { return sameData(nodes...) })(ts, false, args[:1])
}

// redis NODE ARGS...: one command through the node's client port, answered
// within 10s; the reply goes to stdout, an error reply to stderr (and
// fails unless !). With -tryagain, a TRYAGAIN error reply (the retryable
// error of a leader change) is an answer too; any other error, or no
// answer within 10s, fails.
func cmdRedis(ts *testscript.TestScript, neg bool, args []string) {
	tryAgainOK, protocol := false, 2
	for len(args) > 0 && (args[0] == "-tryagain" || args[0] == "-resp3") {
		if args[0] == "-tryagain" {
			tryAgainOK = true
		} else {
			protocol = 3
		}
		args = args[1:]
	}
	if len(args) < 2 || (neg && tryAgainOK) {
		ts.Fatalf("usage: [!] redis [-resp3] NODE COMMAND [ARGS...] | redis -tryagain [-resp3] NODE COMMAND [ARGS...]")
	}
	c := redis.NewClient(&redis.Options{Addr: lookup(ts, args[0]).client, Protocol: protocol, MaxRetries: -1,
		ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var cmdArgs []any
	for _, a := range args[1:] {
		cmdArgs = append(cmdArgs, a)
	}
	res, err := c.Do(ctx, cmdArgs...).Result()
	if err != nil && err != redis.Nil {
		fmt.Fprintln(ts.Stderr(), err)
		if tryAgainOK && strings.HasPrefix(err.Error(), "TRYAGAIN ") {
			return
		}
		if !neg {
			ts.Fatalf("redis %s: %v", strings.Join(args[1:], " "), err)
		}
		return
	}
	if neg {
		ts.Fatalf("redis %s: want an error, got %v", strings.Join(args[1:], " "), res)
	}
	fmt.Fprintln(ts.Stdout(), res)
}

// restore FILE NAME: run `node restore --from FILE` into the data dir of
// a node NAME not started yet (start NAME runs it there); output to stdout
// and stderr, a failure fails unless !.
func cmdRestore(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: [!] restore FILE NAME")
	}
	if n := scriptNodes(ts)[args[1]]; n != nil && n.args != nil {
		ts.Fatalf("restore: %s was started already", args[1])
	}
	bin, err := buildNode()
	if err != nil {
		ts.Fatalf("%v", err)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, "restore", "--from", ts.MkAbs(args[0]),
		"--data-dir", filepath.Join(ts.Getenv("WORK"), "data", args[1]), "--name", args[1])
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	ts.Stdout().Write(stdout.Bytes())
	ts.Stderr().Write(stderr.Bytes())
	if (err != nil) != neg {
		ts.Fatalf("node restore: %v", err)
	}
}

// op NODE SUBCOMMAND [ARGS...]: run `node SUBCOMMAND ARGS --http` against
// the node's HTTP port (status, add, remove, leave); output to stdout and
// stderr, a failure fails unless !.
func cmdOp(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 {
		ts.Fatalf("usage: [!] op NODE SUBCOMMAND [ARGS...]")
	}
	bin, err := buildNode()
	if err != nil {
		ts.Fatalf("%v", err)
	}
	// An operation the coordinator could not finish because the system
	// group's leadership moved (a slow machine) is tried again, as an
	// operator would: every step of an op is idempotent, and a second
	// removal answers that the first is under way.
	var stdout, stderr bytes.Buffer
	for try := 1; ; try++ {
		stdout.Reset()
		stderr.Reset()
		cmd := exec.Command(bin, append(args[1:], "--http", lookup(ts, args[0]).http)...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err = cmd.Run()
		moved := strings.Contains(stdout.String(), `"leadership_lost"`) || strings.Contains(stdout.String(), "no coordinator")
		if err == nil || neg || !moved || try == 5 {
			break
		}
		ts.Logf("op %s: the coordinator moved (%s); again in 1s", strings.Join(args[1:], " "), strings.TrimSpace(stdout.String()))
		time.Sleep(time.Second)
	}
	ts.Stdout().Write(stdout.Bytes())
	ts.Stderr().Write(stderr.Bytes())
	if (err != nil) != neg {
		ts.Fatalf("node %s: %v", strings.Join(args[1:], " "), err)
	}
}
