package actors_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coppice-kv/coppice/actors"
	"github.com/coppice-kv/coppice/internal/testdamage"
	"github.com/coppice-kv/coppice/internal/testlog"
	"github.com/coppice-kv/coppice/internal/testwait"
	"github.com/coppice-kv/coppice/kv"
	"github.com/coppice-kv/coppice/messages"
	"github.com/coppice-kv/coppice/storage"
)

func setExec(w kv.Writer, c *messages.Command, _ *kv.EventLog) *messages.Reply {
	if err := w.Set(append([]byte{1}, c.Args[1]...), c.Args[2]); err != nil {
		return &messages.Reply{Value: &messages.Reply_Error{Error: err.Error()}}
	}
	return &messages.Reply{Value: &messages.Reply_Status{Status: "OK"}}
}

func startNode(t *testing.T, dir string) *actors.Node {
	t.Helper()
	return startRuntime(t, &actors.Runtime{Name: "n1", DataDir: dir, Shards: 2, ClusterAddr: "127.0.0.1:0", Exec: setExec})
}

// startRuntime starts the node's tree for rt (bounded); the caller stops it.
func startRuntime(t *testing.T, rt *actors.Runtime) *actors.Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := actors.Start(ctx, actors.Config{Runtime: rt}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func request[R any](t *testing.T, n *actors.Node, path string, msg any) R {
	t.Helper()
	res, err := n.System.Root.RequestFuture(actor.NewPID(n.System.Address(), path), msg, 10*time.Second).Result()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	r, ok := res.(R)
	if !ok {
		t.Fatalf("%s answered %T", path, res)
	}
	return r
}

// waitLeader polls the shard's status until it leads (bounded).
func waitLeader(t *testing.T, n *actors.Node, shard int) *messages.ShardStatusReply {
	t.Helper()
	var st *messages.ShardStatusReply
	testwait.For(t, 15*time.Second, 20*time.Millisecond, fmt.Sprintf("shard %d led", shard), func() error {
		if st = request[*messages.ShardStatusReply](t, n, actors.RaftPath(shard), &messages.ShardStatus{}); st.State != "Leader" {
			return fmt.Errorf("%+v", st)
		}
		return nil
	})
	return st
}

func TestShardProposesReadsAndSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, dir)
	st := waitLeader(t, n, 1)
	if len(st.Configuration) != 1 || st.Configuration[0].Id != "n1" || st.Configuration[0].Suffrage != messages.Suffrage_VOTER {
		t.Fatalf("configuration %v", st.Configuration)
	}
	cmd := &messages.Command{Args: [][]byte{[]byte("SET"), []byte("k"), []byte("v")}}
	pr := request[*messages.ProposeReply](t, n, actors.RaftPath(1), &messages.Propose{Command: cmd})
	if pr.Error != "" || pr.Reply.GetStatus() != "OK" {
		t.Fatalf("propose: %+v", pr)
	}
	rb := request[*messages.ReadBarrierReply](t, n, actors.RaftPath(1), &messages.ReadBarrier{})
	if rb.Error != "" {
		t.Fatalf("read barrier: %v", rb.Error)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Stop(ctx); err != nil {
		t.Fatal(err)
	}

	// Restarted on the same dir, the shard keeps its data and applied index.
	n = startNode(t, dir)
	defer n.Stop(ctx)
	st2 := waitLeader(t, n, 1)
	if st2.AppliedIndex < st.AppliedIndex+1 {
		t.Fatalf("applied index went from %d to %d", st.AppliedIndex+1, st2.AppliedIndex)
	}
}

// A busy shard groups proposals: while the entries in flight are not yet
// answered, new proposals wait and go together in the next entry, so
// fifty proposals arriving one by one make a handful of log entries, not
// fifty.
func TestBusyShardGroupsProposals(t *testing.T) {
	gate := make(chan struct{})
	exec := func(w kv.Writer, c *messages.Command, _ *kv.EventLog) *messages.Reply {
		if string(c.Args[1]) == "gate" {
			<-gate // holds the state machine, so entries stay in flight
		}
		return setExec(w, c, nil)
	}
	n := startRuntime(t, &actors.Runtime{Name: "n1", DataDir: t.TempDir(), Shards: 1, ClusterAddr: "127.0.0.1:0", Exec: exec})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	defer n.Stop(ctx)
	before := waitLeader(t, n, 0).LastIndex
	pid := actor.NewPID(n.System.Address(), actors.RaftPath(0))
	propose := func(key string) *actor.Future {
		cmd := &messages.Command{Args: [][]byte{[]byte("SET"), []byte(key), []byte("v")}}
		return n.System.Root.RequestFuture(pid, &messages.Propose{Command: cmd}, 20*time.Second)
	}
	futures := []*actor.Future{propose("gate")}
	const n2 = 50
	for i := 0; i < n2; i++ {
		futures = append(futures, propose(fmt.Sprint("k", i)))
		// One at a time: a status request queued behind the proposal is
		// answered only after the actor took it (and queued its flush),
		// so without the in-flight limit each would be an entry of its own.
		request[*messages.ShardStatusReply](t, n, actors.RaftPath(0), &messages.ShardStatus{})
	}
	close(gate)
	for i, f := range futures {
		res, err := f.Result()
		if err != nil {
			t.Fatalf("proposal %d: %v", i, err)
		}
		if pr, ok := res.(*messages.ProposeReply); !ok || pr.Error != "" || pr.Reply.GetStatus() != "OK" {
			t.Fatalf("proposal %d: %+v", i, res)
		}
	}
	after := request[*messages.ShardStatusReply](t, n, actors.RaftPath(0), &messages.ShardStatus{}).LastIndex
	if entries := after - before; entries > 3 {
		t.Fatalf("%d proposals made %d log entries; want them grouped into a few", n2+1, entries)
	}
}

// A write forwarded to a shard's leader is held to the leader's write
// limit too, not only to the limit of the node the client talks to:
// over it, an error naming the leader and nothing proposed; at it, the
// write goes through.
func TestLeaderHoldsForwardedWritesToItsLimit(t *testing.T) {
	n := startRuntime(t, &actors.Runtime{Name: "n1", DataDir: t.TempDir(), Shards: 1, ClusterAddr: "127.0.0.1:0",
		ClientAddr: "127.0.0.1:0", MaxWriteBytes: 16, Exec: setExec})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	defer n.Stop(ctx)
	before := waitLeader(t, n, 0)
	set := func(value string) *messages.Forward { // SET k value: 4 + len(value) bytes
		return &messages.Forward{Shard: 0, Write: true, Command: &messages.Command{Args: [][]byte{[]byte("SET"), []byte("k"), []byte(value)}}}
	}

	r := request[*messages.ForwardReply](t, n, actors.ClientPath, set("0123456789ab"))
	if r.Reply.GetStatus() != "OK" {
		t.Fatalf("a forwarded write at the leader's limit: %+v", r.Reply)
	}
	// Read after a write went through: a status read as the node became
	// leader could come before its term's first entry.
	at := waitLeader(t, n, 0)
	if at.LastIndex <= before.LastIndex {
		t.Fatalf("the write at the limit is not in the log: last index %d, before %d", at.LastIndex, before.LastIndex)
	}

	r = request[*messages.ForwardReply](t, n, actors.ClientPath, set("0123456789abc"))
	want := "ERR write of 17 bytes is over the limit of 16 bytes of node n1, the shard's leader (--max-write-mib)"
	if r.Reply.GetError() != want {
		t.Fatalf("a forwarded write one byte over the leader's limit: %+v, want %q", r.Reply, want)
	}
	if st := waitLeader(t, n, 0); st.LastIndex != at.LastIndex {
		t.Fatalf("the refused write reached the log: last index %d, before %d", st.LastIndex, at.LastIndex)
	}
}

// A restore cut short leaves the shard's store behind the newest snapshot:
// Raft keeps a snapshot it receives before the store swaps it in, and a
// crash in between leaves the old store, while the log may no longer hold
// the entries the snapshot covers. The shard restores that snapshot when
// it starts, rather than take its index as applied and lack them for good.
func TestShardStartFinishesACutShortRestore(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	set := func(n *actors.Node, key string) {
		t.Helper()
		cmd := &messages.Command{Args: [][]byte{[]byte("SET"), []byte(key), []byte("v")}}
		if pr := request[*messages.ProposeReply](t, n, actors.RaftPath(1), &messages.Propose{Command: cmd}); pr.Error != "" {
			t.Fatalf("set %s: %s", key, pr.Error)
		}
	}
	n := startNode(t, dir)
	waitLeader(t, n, 1)
	set(n, "k1")
	if err := n.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	kvDir := storage.Layout{Dir: dir}.KVDir(1)
	old := filepath.Join(t.TempDir(), "kv")
	if err := os.CopyFS(old, os.DirFS(kvDir)); err != nil {
		t.Fatal(err)
	}

	n = startNode(t, dir)
	waitLeader(t, n, 1)
	set(n, "k2")
	set(n, "k3")
	c := request[*messages.CompactLogReply](t, n, actors.RaftPath(1), &messages.CompactLog{Trailing: 1})
	if c.Error != "" {
		t.Fatalf("compact: %s", c.Error)
	}
	want := request[*messages.ShardChecksumReply](t, n, actors.RaftPath(1), &messages.ShardChecksum{})
	if want.Keys != 3 || c.FirstIndex != want.AppliedIndex {
		t.Fatalf("before the cut: %d keys at %d, log from %d; want 3 keys and only the last entry left", want.Keys, want.AppliedIndex, c.FirstIndex)
	}
	if err := n.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	// The store as it was before k2: what a restore cut short leaves.
	if err := os.RemoveAll(kvDir); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(kvDir, os.DirFS(old)); err != nil {
		t.Fatal(err)
	}

	n = startNode(t, dir)
	defer n.Stop(ctx)
	waitLeader(t, n, 1)
	got := request[*messages.ShardChecksumReply](t, n, actors.RaftPath(1), &messages.ShardChecksum{})
	if got.Keys != 3 || got.AppliedIndex < want.AppliedIndex || got.Crc32C != want.Crc32C {
		t.Fatalf("after the restart: %d keys at %d (crc %x), want 3 at %d (crc %x)", got.Keys, got.AppliedIndex, got.Crc32C, want.AppliedIndex, want.Crc32C)
	}
}

// An entry that stays unanswered (here its command holds the state
// machine) is logged once StallWarnAfter passes, with what the group
// knows: committed (commit index at the last index), the state machine
// behind; then its answer is logged too.
func TestStalledEntryIsLogged(t *testing.T) {
	gate := make(chan struct{})
	exec := func(w kv.Writer, c *messages.Command, _ *kv.EventLog) *messages.Reply {
		if string(c.Args[1]) == "gate" {
			<-gate
		}
		return setExec(w, c, nil)
	}
	logs := &testlog.Buffer{}
	n := startRuntime(t, &actors.Runtime{Name: "n1", DataDir: t.TempDir(), Shards: 1, ClusterAddr: "127.0.0.1:0", Exec: exec,
		StallWarnAfter: 300 * time.Millisecond, Log: slog.New(slog.NewTextHandler(logs, nil))})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	defer n.Stop(ctx)
	waitLeader(t, n, 0)
	cmd := &messages.Command{Args: [][]byte{[]byte("SET"), []byte("gate"), []byte("v")}}
	f := n.System.Root.RequestFuture(actor.NewPID(n.System.Address(), actors.RaftPath(0)), &messages.Propose{Command: cmd}, 20*time.Second)
	var warning string
	testwait.For(t, 10*time.Second, 20*time.Millisecond, "the stall logged", func() error {
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, "proposed entry is not answered yet") {
				warning = line
				return nil
			}
		}
		return errors.New("no warning yet")
	})
	st := request[*messages.ShardStatusReply](t, n, actors.RaftPath(0), &messages.ShardStatus{})
	for _, want := range []string{"shard=0", "commands=1", "state=Leader", "leader=n1", fmt.Sprintf("commit_index=%d", st.LastIndex), fmt.Sprintf("last_index=%d", st.LastIndex)} {
		if !strings.Contains(warning, want) {
			t.Fatalf("the stall's warning has no %q: %s", want, warning)
		}
	}
	if strings.Contains(logs.String(), "stalled entry answered") {
		t.Fatal("the entry logged as answered while the state machine still holds it")
	}
	close(gate)
	if res, err := f.Result(); err != nil || res.(*messages.ProposeReply).Error != "" {
		t.Fatalf("the held proposal: %v, %+v", err, res)
	}
	testwait.For(t, 10*time.Second, 20*time.Millisecond, "the answer logged", func() error {
		if !strings.Contains(logs.String(), "stalled entry answered") {
			return errors.New("not yet")
		}
		return nil
	})
}

// When the node's Raft log store fails (here its directory is removed, and
// the journal cannot make its next file 64 MiB in), every Raft group of
// the node shuts down at once: a group that cannot write its log can
// neither lead nor vote, and hashicorp/raft panics when an election cannot
// save its term. Runtime.OnFault hears of the failure.
func TestRaftLogFailureShutsEveryGroupDown(t *testing.T) {
	dir := t.TempDir()
	faults := make(chan error, 1)
	n := startRuntime(t, &actors.Runtime{Name: "n1", DataDir: dir, Shards: 2, ClusterAddr: "127.0.0.1:0", Exec: setExec,
		OnFault: func(err error) { faults <- err }})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	defer n.Stop(ctx)
	waitLeader(t, n, 0)
	waitLeader(t, n, 1)
	if err := os.RemoveAll(filepath.Join(dir, "raftlog")); err != nil {
		t.Fatal(err)
	}
	value := make([]byte, 64<<10)
	for i := 0; i < 2000; i++ {
		cmd := &messages.Command{Args: [][]byte{[]byte("SET"), []byte(fmt.Sprint(i)), value}}
		if pr := request[*messages.ProposeReply](t, n, actors.RaftPath(0), &messages.Propose{Command: cmd}); pr.Error != "" {
			break
		}
	}
	select {
	case err := <-faults:
		if !errors.Is(err, storage.ErrStoreFailed) {
			t.Fatalf("OnFault(%v), want a store failure", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no store failure reported within 10s")
	}
	testwait.For(t, 10*time.Second, 20*time.Millisecond, "every group shut down", func() error {
		for _, path := range []string{actors.RaftPath(0), actors.RaftPath(1), actors.SystemPath} {
			if st := request[*messages.ShardStatusReply](t, n, path, &messages.ShardStatus{}); st.State != "Shutdown" {
				return fmt.Errorf("%s: %s", path, st.State)
			}
		}
		return nil
	})
}

// A Raft log store whose table is damaged (a flipped byte, as bit rot
// does) opens cleanly and fails the first read of a group's log, as the
// node starts. The start fails having reported the failure to
// Runtime.OnFault and recorded the damage in node.json, for the next
// start to rebuild the store: the report is made before the start
// returns, not left to the store's fault watch, which the failed start
// stops, maybe first.
func TestDamagedRaftLogMetAtStartIsRecorded(t *testing.T) {
	dir := t.TempDir()
	n := startRuntime(t, &actors.Runtime{Name: "n1", DataDir: dir, Shards: 1, ClusterAddr: "127.0.0.1:0", Exec: setExec})
	waitLeader(t, n, 0)
	for i := range 200 {
		cmd := &messages.Command{Args: [][]byte{[]byte("SET"), []byte(fmt.Sprint(i)), []byte("v")}}
		if pr := request[*messages.ProposeReply](t, n, actors.RaftPath(0), &messages.Propose{Command: cmd}); pr.Error != "" {
			t.Fatal(pr.Error)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	l := storage.Layout{Dir: dir}
	// A byte of a data block, met by a read of the log.
	if n, err := testdamage.FlipTables(filepath.Join(l.RaftLogDir(), "db"), func(size int) int { return size * 2 / 5 }); err != nil || n == 0 {
		t.Fatalf("damaged %d table(s) of the Raft log store (%v), want some: a clean stop writes one", n, err)
	}
	faults := make(chan error, 1)
	rt := &actors.Runtime{Name: "n1", DataDir: dir, Shards: 1, ClusterAddr: "127.0.0.1:0", Exec: setExec,
		OnFault: func(err error) { faults <- err }}
	n, err := actors.Start(ctx, actors.Config{Runtime: rt}, nil)
	if err == nil {
		_ = n.Stop(ctx)
		t.Fatal("the node started on a damaged Raft log store")
	}
	if !strings.Contains(err.Error(), "shutdown: failed to start child raft-0") || strings.Contains(err.Error(), "crash") {
		t.Fatalf("start: %v, want the groups shut down, none crashed", err)
	}
	select {
	case err := <-faults:
		if !errors.Is(err, storage.ErrCorrupt) {
			t.Fatalf("OnFault(%v), want on-disk corruption", err)
		}
	default:
		t.Fatal("the start failed without reporting the store's failure")
	}
	id, ok, err := l.ReadIdentity()
	if err != nil || !ok || !strings.Contains(id.RaftLogDamaged, "on-disk corruption") || !rt.RaftLogDamaged() {
		t.Fatalf("node.json raft_log_damaged %q (%v, %v), Runtime.RaftLogDamaged %v: want the damage recorded",
			id.RaftLogDamaged, ok, err, rt.RaftLogDamaged())
	}
}

// TestFounderRestartBootstraps: a node started with --join that recorded
// in node.json that it founds its cluster (--bootstrap-expect), and was
// stopped before its groups bootstrapped, makes itself their voter when
// it starts again; the same node.json without the mark waits to be
// added, as any node with --join does.
func TestFounderRestartBootstraps(t *testing.T) {
	for _, founder := range []bool{true, false} {
		dir := t.TempDir()
		id := storage.Identity{Name: "n1", ClusterID: "c0ffee", Shards: 2, Founder: founder}
		if err := (storage.Layout{Dir: dir}).WriteIdentity(id); err != nil {
			t.Fatal(err)
		}
		n := startRuntime(t, &actors.Runtime{Name: "n1", DataDir: dir, Shards: 2, ClusterAddr: "127.0.0.1:0", Exec: setExec,
			Join: []string{"127.0.0.1:1"}, BootstrapExpect: 3})
		for shard := range 2 {
			st := request[*messages.ShardStatusReply](t, n, actors.RaftPath(shard), &messages.ShardStatus{})
			if got := len(st.Configuration); (got == 1) != founder {
				t.Errorf("founder %v: shard %d has %d servers in its configuration", founder, shard, got)
			}
		}
		if founder {
			waitLeader(t, n, 0)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := n.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
		cancel()
	}
}

// TestDataDirID: node.json gets the data dir's ID with the dir, keeps it
// across restarts, and a data dir from before the IDs gets one at its
// next start.
func TestDataDirID(t *testing.T) {
	dir := t.TempDir()
	l := storage.Layout{Dir: dir}
	restart := func() string {
		t.Helper()
		n := startNode(t, dir)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := n.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		id, ok, err := l.ReadIdentity()
		if err != nil || !ok {
			t.Fatalf("node.json: %v %v", ok, err)
		}
		return id.DataDirID
	}
	first := restart()
	if len(first) != 16 {
		t.Fatalf("data dir ID %q, want 16 hex digits", first)
	}
	if again := restart(); again != first {
		t.Fatalf("the ID changed across a restart: %q, then %q", first, again)
	}
	id, _, _ := l.ReadIdentity()
	id.DataDirID = ""
	if err := l.WriteIdentity(id); err != nil {
		t.Fatal(err)
	}
	if older := restart(); len(older) != 16 || older == first {
		t.Fatalf("a data dir from before the IDs got %q (had %q)", older, first)
	}
}
