package server

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/coppice-kv/coppice/internal/freeport"
	"github.com/coppice-kv/coppice/internal/redistest"
)

// MIGRATE moves keys of every type, TTL included, to a redis-server,
// and RESTORE takes what redis-server's MIGRATE sends: keys move either
// way. COPY leaves them here, a refused RESTORE (BUSYKEY) keeps them here,
// missing keys answer NOKEY, and bad arguments or an unreachable target
// get Redis's errors.
func TestMigrateWithRedis(t *testing.T) {
	port := freeport.Port()
	redistest.Start(t, "--port", port, "--bind", "127.0.0.1")
	srv, err := Listen(Config{Addr: "127.0.0.1:0"}, newEngineBackend())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	nc, err := net.DialTimeout("tcp", "127.0.0.1:"+port, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	redis := &client{t: t, nc: nc, rd: bufio.NewReader(nc)}
	ours := dial(t, srv)
	ours.nc.SetDeadline(time.Now().Add(30 * time.Second))
	to := "127.0.0.1 " + port

	for _, cmd := range []string{"SET k1 v1", "PEXPIRE k1 100000", "RPUSH l a b 3", "XADD s 1-1 f v", "HSET h f v", "SET keep x"} {
		ours.do(cmd)
	}
	checks := []struct {
		c         *client
		cmd, want string
	}{
		{ours, "MIGRATE " + to + " \"\" 0 5000 KEYS k1 l s h nosuch", "+OK"},
		{ours, "EXISTS k1 l s h", ":0"},
		{redis, "GET k1", "v1"},
		{redis, "LRANGE l 0 -1", "[a b 3]"},
		{redis, "XRANGE s - +", "[[1-1 [f v]]]"},
		{redis, "HGETALL h", "[f v]"},
		{ours, "MIGRATE " + to + " keep 0 5000 COPY", "+OK"},
		{ours, "GET keep", "x"},
		{redis, "GET keep", "x"},
		{ours, "MIGRATE " + to + " keep 0 5000", "-ERR Target instance replied with error: BUSYKEY Target key name already exists."},
		{ours, "GET keep", "x"},
		{ours, "SET keep y", "+OK"},
		{ours, "MIGRATE " + to + " keep 0 5000 REPLACE", "+OK"},
		{redis, "GET keep", "y"},
		{ours, "MIGRATE " + to + " nosuch 0 5000", "+NOKEY"},
		{ours, "MIGRATE " + to + " k 0 5000 KEYS a", "-ERR When using MIGRATE KEYS option, the key argument must be set to the empty string"},
		{ours, "MIGRATE " + to + " k 0 x", "-ERR value is not an integer or out of range"},
		{ours, "MIGRATE " + to + " k 0 5000 AUTH", "-ERR syntax error"},
		{ours, "MIGRATE " + to + " k 0 5000 BOGUS", "-ERR syntax error"},
		{ours, "MIGRATE " + to + " k 0", "-ERR wrong number of arguments for 'migrate' command"},
		{ours, "ASKING", "+OK"},
	}
	for _, ch := range checks {
		if got := ch.c.do(ch.cmd); got != ch.want {
			t.Fatalf("%s: %q, want %q", ch.cmd, got, ch.want)
		}
	}
	if got := ours.do("SET gone 1"); got != "+OK" {
		t.Fatal(got)
	}
	refused, err := freeport.Loopback(1)
	if err != nil {
		t.Fatal(err)
	}
	host, p, _ := net.SplitHostPort(refused[0])
	if got := ours.do("MIGRATE " + host + " " + p + " gone 0 500"); got != "-IOERR error or timeout connecting to the client" {
		t.Fatalf("MIGRATE to a closed port: %q", got)
	}
	if got := ours.do("GET gone"); got != "1" {
		t.Fatalf("GET gone after a failed MIGRATE: %q", got)
	}
	// The same argument errors from Redis.
	for _, cmd := range []string{"MIGRATE " + to + " k 0 5000 KEYS a", "MIGRATE " + to + " k 0 x", "MIGRATE " + to + " k 0 5000 AUTH", "MIGRATE " + to + " nosuch 0 5000"} {
		if want, got := redis.do(cmd), ours.do(cmd); got != want {
			t.Fatalf("%s: coppice %q, redis %q", cmd, got, want)
		}
	}

	// redis-server's MIGRATE into this port.
	ourHost, ourPort, _ := net.SplitHostPort(srv.Addr().String())
	redis.do("RPUSH rl x y")
	redis.do("SET rs v EX 1000")
	if got := redis.do("MIGRATE " + ourHost + " " + ourPort + " \"\" 0 5000 KEYS rl rs"); got != "+OK" {
		t.Fatalf("Redis's MIGRATE to coppice: %q", got)
	}
	if got := ours.do("LRANGE rl 0 -1"); got != "[x y]" {
		t.Fatalf("LRANGE rl after Redis's MIGRATE: %q", got)
	}
	if got := ours.do("TTL rs"); got != ":1000" && !strings.HasPrefix(got, ":99") {
		t.Fatalf("TTL rs after Redis's MIGRATE: %q, want about 1000", got)
	}
}
