package server

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coppice-kv/coppice/internal/testwait"
)

// CLIENT REPLY OFF silences every reply (errors too) until ON; SKIP the
// next command's only (and a SKIP under OFF nothing more; ON right after
// a SKIP answers OK): the bytes
// redis-server 7.0.15 sent for the same pipeline.
func TestClientReplyOffAndSkip(t *testing.T) {
	srv := trackingServer(t)
	c := dial(t, srv)
	c.send("CLIENT REPLY OFF\r\nSET k v\r\nGET k\r\nCLIENT REPLY ON\r\nGET k\r\nCLIENT REPLY SKIP\r\nSET k s\r\nGET k\r\n" +
		"CLIENT REPLY SKIP\r\nCLIENT REPLY SKIP\r\nGET k\r\nPING\r\nCLIENT REPLY OFF\r\nCLIENT REPLY SKIP\r\nGET k\r\n" +
		"CLIENT REPLY ON\r\nBLAH\r\nCLIENT REPLY SKIP\r\nBLAH\r\nPING\r\nCLIENT REPLY SKIP\r\nCLIENT REPLY ON\r\nPING")
	want := "+OK\r\n$1\r\nv\r\n$1\r\ns\r\n+PONG\r\n+OK\r\n-ERR unknown command 'BLAH', with args beginning with: \r\n+PONG\r\n+OK\r\n+PONG\r\n"
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c.rd, got); err != nil || string(got) != want {
		t.Fatalf("got %q, %v\nwant %q", got, err, want)
	}
}

// CLIENT UNBLOCK ends a blocked command as its timeout would (nil), or
// with an UNBLOCKED error; a client not blocked is not touched.
func TestClientUnblock(t *testing.T) {
	srv := trackingServer(t)
	c, other := dial(t, srv), dial(t, srv)
	id := strings.TrimPrefix(c.do("CLIENT ID"), ":")
	script(t, other, "CLIENT UNBLOCK "+id, ":0")
	for _, tc := range []struct{ how, want string }{{"", "*-1"}, {" TIMEOUT", "*-1"}, {" ERROR", "-UNBLOCKED client unblocked via CLIENT UNBLOCK"}} {
		c.send("BLPOP {q}nothing 0")
		waitBlockedClient(t, other)
		script(t, other, "CLIENT UNBLOCK "+id+tc.how, ":1")
		if got := c.read(); got != tc.want {
			t.Fatalf("unblocked%s: %s, want %s", tc.how, got, tc.want)
		}
	}
	script(t, c, "PING", "+PONG") // the connection goes on
}

// CLIENT PAUSE WRITE holds writes, not reads, until it ends (UNPAUSE
// here); the held write then runs.
func TestClientPauseHoldsWrites(t *testing.T) {
	srv := trackingServer(t)
	c, reader, admin := dial(t, srv), dial(t, srv), dial(t, srv)
	script(t, admin, "CLIENT PAUSE 100000 WRITE", "+OK")
	c.send("SET k held")
	script(t, reader, "GET k", "$-1", "PING", "+PONG")
	script(t, admin, "CLIENT UNPAUSE", "+OK")
	testwait.For(t, 5*time.Second, 5*time.Millisecond, "the held SET to run", func() error {
		if got := reader.do("GET k"); got != "held" {
			return fmt.Errorf("GET k: %s", got)
		}
		return nil
	})
	if got := c.read(); got != "+OK" {
		t.Fatalf("the held SET: %s", got)
	}
}

// What a WRITE pause holds, as Redis decides: a write script (EVAL, a
// shebang without no-writes), a transaction with a write, PUBLISH and
// PFCOUNT (which may replicate); not a
// no-writes script, EVAL_RO, nor a transaction of reads. A held client
// counts in blocked_clients and shows 'b' in CLIENT LIST, and CLIENT
// UNBLOCK does not end its wait.
func TestClientPauseHoldsWhatMayWrite(t *testing.T) {
	srv := trackingServer(t)
	admin, rd := dial(t, srv), dial(t, srv)
	script(t, admin, "SET k v", "+OK",
		`FUNCTION LOAD "#!lua name=lib\nredis.register_function{function_name='ro', callback=function() return 'r' end, flags={'no-writes'}}\nredis.register_function('rw', function() return 'w' end)"`, "lib",
		"CLIENT PAUSE 100000 WRITE", "+OK")
	script(t, rd,
		"SET k", "-ERR wrong number of arguments for 'set' command", // at once
		`EVAL "#!lua flags=no-writes\nreturn redis.call('get', KEYS[1])" 1 k`, "v",
		`EVAL_RO "return redis.call('get', KEYS[1])" 1 k`, "v",
		"FCALL ro 0", "r",
		"MULTI", "+OK", "GET k", "+QUEUED", `EVAL_RO "return 1" 0`, "+QUEUED", "FCALL ro 0", "+QUEUED", "EXEC", "[v :1 r]",
	)
	held := []struct {
		setup     []string
		cmd, want string
	}{
		{nil, `EVAL "return 1" 0`, ":1"},
		{nil, `EVAL "#!lua\nreturn 2" 0`, ":2"},
		{nil, "PUBLISH ch m", ":0"},
		{nil, "PFCOUNT hll", ":0"},
		{nil, "FCALL rw 0", "w"},
		{[]string{"MULTI", "+OK", "FCALL ro 0", "+QUEUED", "FCALL rw 0", "+QUEUED"}, "EXEC", "[r w]"},
		{[]string{"MULTI", "+OK", "GET k", "+QUEUED", "SET k w", "+QUEUED"}, "EXEC", "[v +OK]"},
	}
	var clients []*client
	for i, h := range held {
		c := dial(t, srv)
		script(t, c, h.setup...)
		if i == 0 {
			id := strings.TrimPrefix(c.do("CLIENT ID"), ":")
			c.send(h.cmd)
			waitBlockedClients(t, admin, 1)
			script(t, admin, "CLIENT UNBLOCK "+id, ":0") // a pause is not a blocking command
		} else {
			c.send(h.cmd)
			waitBlockedClients(t, admin, i+1)
		}
		clients = append(clients, c)
	}
	list := admin.do("CLIENT LIST")
	if n := strings.Count(list, "flags=b"); n != len(held) {
		t.Fatalf("%d clients with flags=b, want %d:\n%s", n, len(held), list)
	}
	script(t, rd, "GET k", "v") // nothing held ran
	script(t, admin, "CLIENT UNPAUSE", "+OK")
	for i, h := range held {
		if got := clients[i].read(); got != h.want {
			t.Errorf("%s: %s, want %s", h.cmd, got, h.want)
		}
	}
	waitBlockedClients(t, admin, 0)
	script(t, rd, "GET k", "w")
}

// SHUTDOWN stops the node through its hook and closes the connection with
// no answer; Redis's refusals change nothing.
func TestShutdown(t *testing.T) {
	stopped := make(chan struct{})
	srv, err := Listen(Config{Addr: "127.0.0.1:0", Shutdown: func() { close(stopped) }}, newEngineBackend())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c := dial(t, srv)
	script(t, c,
		"SHUTDOWN BOGUS", "-ERR syntax error",
		"SHUTDOWN SAVE NOSAVE", "-ERR syntax error",
		"SHUTDOWN ABORT NOW", "-ERR syntax error",
		"SHUTDOWN ABORT", "-ERR No shutdown in progress.",
	)
	select {
	case <-stopped:
		t.Fatal("a refused SHUTDOWN stopped the node")
	default:
	}
	c.send("SHUTDOWN NOSAVE NOW")
	if b, err := c.rd.ReadByte(); err != io.EOF {
		t.Fatalf("SHUTDOWN answered %q, %v: want the connection closed", b, err)
	}
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("SHUTDOWN did not stop the node")
	}
	// A port with no way to stop its node refuses it.
	bare := trackingServer(t)
	script(t, dial(t, bare), "SHUTDOWN", "-ERR Errors trying to SHUTDOWN. Check logs.")
}

// clientFields is a CLIENT LIST or CLIENT INFO line's fields, in order,
// and their values.
func clientFields(line string) (names []string, values map[string]string) {
	values = map[string]string{}
	for _, f := range strings.Fields(line) {
		k, v, _ := strings.Cut(f, "=")
		names = append(names, k)
		values[k] = v
	}
	return names, values
}

// CLIENT INFO and CLIENT LIST give Redis 7.0's fields in its order, with
// the connection's subscriptions, queued commands, last command, idle
// time and tracking redirect.
func TestClientListFields(t *testing.T) {
	redis := dialRedis(t)
	want, _ := clientFields(redis.do("CLIENT INFO"))
	srv := trackingServer(t)
	c := dial(t, srv)
	got, v := clientFields(c.do("CLIENT INFO"))
	if !slices.Equal(got, want) {
		t.Fatalf("CLIENT INFO's fields\n%v\nwant Redis's\n%v", got, want)
	}
	if v["cmd"] != "client|info" || v["multi"] != "-1" || v["redir"] != "-1" || v["idle"] != "0" || v["fd"] == "-1" || v["sub"] != "0" {
		t.Fatalf("CLIENT INFO: %v", v)
	}
	sub := dial(t, srv)
	script(t, sub, "CLIENT ID", ":2")
	fmt.Fprintf(sub.nc, "SUBSCRIBE a b\r\nPSUBSCRIBE p*\r\n")
	for range 3 {
		sub.read()
	}
	tx := dial(t, srv)
	script(t, tx, "CLIENT TRACKING on REDIRECT 2", "+OK", "MULTI", "+OK", "SET k 1", "+QUEUED", "GET k", "+QUEUED")
	lines := map[string]map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(c.do("CLIENT LIST")), "\n") {
		_, v := clientFields(line)
		lines[v["id"]] = v
	}
	if s := lines["2"]; s["sub"] != "2" || s["psub"] != "1" || s["ssub"] != "0" || s["cmd"] != "psubscribe" || s["flags"] != "P" {
		t.Errorf("the subscriber's line: %v", s)
	}
	if x := lines["3"]; x["multi"] != "2" || x["redir"] != "2" || x["cmd"] != "get" || x["flags"] != "xt" {
		t.Errorf("the transaction's line: %v", x)
	}
	// idle counts the seconds since the connection's last command.
	testwait.For(t, 5*time.Second, 50*time.Millisecond, "the subscriber idle for a second", func() error {
		_, v := clientFields(c.do("CLIENT LIST ID 2"))
		if v["idle"] == "0" {
			return fmt.Errorf("idle=0")
		}
		if v["idle"] != "1" || v["age"] == "0" {
			t.Fatalf("the subscriber's idle time: %v", v)
		}
		return nil
	})
}

// RESET turns CLIENT REPLY OFF's replies on again, its own first.
func TestResetTurnsRepliesOn(t *testing.T) {
	c := dial(t, trackingServer(t))
	fmt.Fprintf(c.nc, "CLIENT REPLY OFF\r\nSET k 2\r\nRESET\r\nGET k\r\n")
	for _, want := range []string{"+RESET", "2"} {
		if got := c.read(); got != want {
			t.Fatalf("after CLIENT REPLY OFF and RESET: %q, want %q", got, want)
		}
	}
}
