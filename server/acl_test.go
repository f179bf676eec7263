package server

import (
	"bufio"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coppice-kv/coppice/internal/redistest"
)

// TestACLAgainstRedis runs testdata/acl/*.txt each on a redis-server of
// its own (ACL users outlive a file there) and on a Server over the
// engine.
func TestACLAgainstRedis(t *testing.T) { compareScripts(t, "testdata/acl/*.txt", true) }

// TestACLLogAsRedis: the same refusals on redis-server and on a Server
// leave the same ACL LOG (but for the entries' ages and client lines):
// reasons, contexts, objects, users, and repeats counted in one entry.
func TestACLLogAsRedis(t *testing.T) {
	sock := redistest.Start(t)
	srv, err := Listen(Config{Addr: "127.0.0.1:0"}, newEngineBackend())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	redisConn := func() *client {
		nc, err := net.DialTimeout("unix", sock, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		return &client{t: t, nc: nc, rd: bufio.NewReader(nc)}
	}
	age := regexp.MustCompile(`age-seconds [^ ]+ client-info [^\]]*`)
	var logs [2][]string
	for side, connect := range []func() *client{redisConn, func() *client { return dial(t, srv) }} {
		admin, user := connect(), connect()
		for _, cmd := range []string{
			"ACL SETUSER app on >pw ~app:* +get +set +multi +exec +auth +eval",
			"AUTH app nope",
			"AUTH nobody pw",
			"AUTH app pw",
			"GET other",
			"SET app:1 v",
			"INCR app:1",
			"INCR app:1",
			"GET other",
			"MULTI",
			"SET other v",
			"DISCARD",
			"INCR app:1",
			"EXEC",
			// A script's refused calls: context lua.
			`EVAL "return redis.pcall('incr', KEYS[1])" 1 app:1`,
			`EVAL "return redis.pcall('get', 'other')" 0`,
			`EVAL "return redis.pcall('get', 'other')" 0`,
		} {
			c := user
			if strings.HasPrefix(cmd, "ACL") {
				c = admin
			}
			c.do(cmd)
		}
		for _, cmd := range []string{"ACL LOG", "ACL LOG 2", "ACL LOG -1", "ACL LOG RESET", "ACL LOG"} {
			logs[side] = append(logs[side], age.ReplaceAllString(admin.do(cmd), "age-seconds client-info"))
		}
	}
	for i := range logs[0] {
		if logs[0][i] != logs[1][i] {
			t.Errorf("ACL LOG, step %d:\n  redis:   %s\n  coppice: %s", i, logs[0][i], logs[1][i])
		}
	}
	// The two INCRs at the top level are one entry; the third, in the
	// transaction DISCARD (not allowed) left open, another.
	if !strings.Contains(logs[1][0], "[count :2 reason command context toplevel object incr username app") {
		t.Errorf("ACL LOG: the two INCRs are not one entry: %s", logs[1][0])
	}
	// A script's refused calls are logged in context lua, the two alike
	// as one entry.
	for _, want := range []string{"[count :1 reason command context lua object incr username app",
		"[count :2 reason key context lua object other username app"} {
		if !strings.Contains(logs[1][0], want) {
			t.Errorf("ACL LOG lacks %q: %s", want, logs[1][0])
		}
	}
}
