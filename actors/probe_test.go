package actors_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/coppice-kv/coppice/actors"
	"github.com/coppice-kv/coppice/internal/testwait"
	"github.com/coppice-kv/coppice/kv"
	"github.com/coppice-kv/coppice/messages"
)

// respConn sends inline commands to a client port and reads the first
// line of each reply.
type respConn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialPort(t *testing.T, addr string) *respConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(60 * time.Second))
	return &respConn{t: t, c: c, r: bufio.NewReader(c)}
}

// send writes the commands in one write (a pipeline) and returns each
// reply: its first line, and a bulk string's value after it.
func (rc *respConn) send(cmds ...string) []string {
	rc.t.Helper()
	if _, err := fmt.Fprint(rc.c, strings.Join(cmds, "\r\n")+"\r\n"); err != nil {
		rc.t.Fatal(err)
	}
	out := make([]string, len(cmds))
	for i := range cmds {
		line, err := rc.r.ReadString('\n')
		if err != nil {
			rc.t.Fatalf("%s: %v", cmds[i], err)
		}
		out[i] = strings.TrimSuffix(line, "\r\n")
		if strings.HasPrefix(out[i], "$") && out[i] != "$-1" {
			v, err := rc.r.ReadString('\n')
			if err != nil {
				rc.t.Fatal(err)
			}
			out[i] += " " + strings.TrimSuffix(v, "\r\n")
		}
	}
	return out
}

// A standalone node answers a write that would change nothing (an RPOP
// of an empty list, an SADD of a member already there, a SET NX of a key
// that exists, a write refused for a key's type...) without its shard's
// log, with the reply the write gets through it; a write that changes
// something still goes through the log. The connection's own writes are
// seen: a pipelined RPUSH and RPOP pop what the RPUSH pushed, and a SET NX
// right behind a SET of its key finds it.
func TestStandaloneAnswersWritesThatChangeNothingWithoutTheLog(t *testing.T) {
	rt := &actors.Runtime{Name: "n1", DataDir: t.TempDir(), Shards: 1, ClusterAddr: "127.0.0.1:0",
		ClientAddr: "127.0.0.1:0", Exec: kv.ExecEvents}
	n := startRuntime(t, rt)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		n.Stop(ctx)
	}()
	waitLeader(t, n, 0)
	last := func() uint64 {
		return request[*messages.ShardStatusReply](t, n, actors.RaftPath(0), &messages.ShardStatus{}).LastIndex
	}
	c := dialPort(t, rt.BoundClientAddr())
	if got := c.send("SET k v", "SADD s a", "RPUSH l x", "ZADD z 1 m", "HSET h f v"); strings.Join(got, ",") != "+OK,:1,:1,:1,:1" {
		t.Fatalf("setting up: %q", got)
	}
	// The node marks itself the shard's only voter once its state machine
	// has caught up in its term; until then writes go through the log.
	testwait.For(t, 10*time.Second, 10*time.Millisecond, "a DEL of a missing key answered without the log", func() error {
		before := last()
		if got := c.send("DEL missing")[0]; got != ":0" {
			t.Fatalf("DEL missing: %s", got)
		}
		if after := last(); after != before {
			return fmt.Errorf("last index %d -> %d", before, after)
		}
		return nil
	})

	before := last()
	for _, tc := range []struct{ cmd, want string }{
		{"RPOP missing", "$-1"},
		{"LPOP missing 2", "*-1"},
		{"SADD s a", ":0"},
		{"SREM s b", ":0"},
		{"SET k w NX", "$-1"},
		{"SETNX k w", ":0"},
		{"SET missing w XX", "$-1"},
		{"ZADD z 1 m", ":0"},
		{"ZPOPMIN missing", "*0"},
		{"HDEL h g", ":0"},
		{"HSETNX h f w", ":0"},
		{"EXPIRE missing 10", ":0"},
		{"PERSIST k", ":0"},
		{"UNLINK missing other", ":0"},
		{"SADD k a", "-WRONGTYPE Operation against a key holding the wrong kind of value"},
		{"LPOP l notanumber", "-ERR value is out of range, must be positive"},
	} {
		for range 20 {
			if got := c.send(tc.cmd)[0]; got != tc.want {
				t.Fatalf("%s: %q, want %q", tc.cmd, got, tc.want)
			}
		}
	}
	if after := last(); after != before {
		t.Fatalf("writes that change nothing reached the log: last index %d -> %d", before, after)
	}
	// Each counted (coppice_writes_unlogged_total), the DELs of the wait
	// above too.
	if st, _ := rt.ClientStats(); st.Unlogged < 16*20 {
		t.Fatalf("%d writes counted as answered without the log, want at least %d", st.Unlogged, 16*20)
	}

	// Writes that change something, each probed first.
	for _, tc := range []struct{ cmd, want string }{
		{"SADD s b", ":1"},
		{"SET k2 v NX", "+OK"},
		{"RPOP l", "$1 x"},
		{"ZADD z 2 m", ":0"}, // a new score: no member added, one changed
		{"DEL k", ":1"},
	} {
		at := last()
		if got := c.send(tc.cmd)[0]; got != tc.want {
			t.Fatalf("%s: %q, want %q", tc.cmd, got, tc.want)
		}
		if after := last(); after == at {
			t.Fatalf("%s changed the store without the log", tc.cmd)
		}
	}
	if got := c.send("SCARD s")[0]; got != ":2" {
		t.Fatalf("SCARD s: %s, want 2", got)
	}
	// The connection's writes in flight are seen by the probe's place in
	// the pipeline: it is not probed while one is.
	want := []string{":1", "$1 y", "+OK", "$-1", "$2 v1"}
	if got := c.send("RPUSH q y", "RPOP q", "SET n v1", "SET n v2 NX", "GET n"); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("a pipeline: %q, want %q", got, want)
	}
}
