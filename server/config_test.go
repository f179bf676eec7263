package server

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// configMap sends CONFIG GET pattern (RESP2) and reads its answer, an
// array of names and values, as a map.
func configMap(t *testing.T, c *client, pattern string) map[string]string {
	t.Helper()
	if _, err := fmt.Fprintf(c.nc, "*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$%d\r\n%s\r\n", len(pattern), pattern); err != nil {
		t.Fatal(err)
	}
	head, err := c.rd.ReadString('\n')
	if err != nil || head[0] != '*' {
		t.Fatalf("CONFIG GET %s: %q %v", pattern, head, err)
	}
	n, _ := strconv.Atoi(strings.TrimSpace(head[1:]))
	items := make([]string, n)
	for i := range items {
		line, err := c.rd.ReadString('\n')
		if err != nil || line[0] != '$' {
			t.Fatalf("CONFIG GET %s: item %q %v", pattern, line, err)
		}
		size, _ := strconv.Atoi(strings.TrimSpace(line[1:]))
		buf := make([]byte, size+2)
		if _, err := io.ReadFull(c.rd, buf); err != nil {
			t.Fatal(err)
		}
		items[i] = string(buf[:size])
	}
	m := map[string]string{}
	for i := 0; i+1 < len(items); i += 2 {
		m[items[i]] = items[i+1]
	}
	return m
}

// CONFIG GET * names every parameter redis-server 7.0 names: nothing a
// tool asks for is missing, and nothing is made up.
func TestConfigGetNamesRedisParameters(t *testing.T) {
	redis := dialRedis(t)
	want := slices.Sorted(maps.Keys(configMap(t, redis, "*")))
	if len(want) < 180 {
		t.Fatalf("redis-server named %d parameters", len(want))
	}
	ours := configMap(t, dial(t, trackingServer(t)), "*")
	if got := slices.Sorted(maps.Keys(ours)); !slices.Equal(got, want) {
		t.Fatalf("CONFIG GET * names\n%v\nwant\n%v", got, want)
	}
	// What the node does, where Redis's setting picks a behaviour.
	for name, v := range map[string]string{"appendonly": "yes", "appendfsync": "always", "save": "", "maxmemory": "0",
		"maxmemory-policy": "noeviction", "databases": "1", "bind": "127.0.0.1", "acllog-max-len": "128", "daemonize": "no"} {
		if ours[name] != v {
			t.Errorf("CONFIG GET %s: %q, want %q", name, ours[name], v)
		}
	}
}

// A parameter the node does not act on may be set to the value it has,
// which changes nothing; another value is refused with the reason, and
// then nothing of the command is applied.
func TestConfigSetFixedParameters(t *testing.T) {
	c := dial(t, trackingServer(t))
	fixed := func(name, value, reason string) string {
		return fmt.Sprintf("-ERR CONFIG SET failed (possibly related to argument '%s') - not changeable on coppice, where it is %q: %s", name, value, reason)
	}
	script(t, c,
		"CONFIG SET appendfsync ALWAYS appendonly YES save \"\" maxmemory 0kb maxmemory-policy noeviction", "+OK",
		"CONFIG SET appendfsync everysec", fixed("appendfsync", "always", "every write is in its shard's Raft log, on disk, before it is acknowledged; there is no RDB or AOF file to configure"),
		"CONFIG SET save \"3600 1\"", fixed("save", "", "every write is in its shard's Raft log, on disk, before it is acknowledged; there is no RDB or AOF file to configure"),
		"CONFIG SET hash-max-listpack-entries 512", "+OK",
		"CONFIG SET hash-max-listpack-entries 1024", fixed("hash-max-listpack-entries", "512", "values are stored as Pebble records, not in Redis's encodings"),
		"CONFIG SET replica-read-only no", fixed("replica-read-only", "yes", "replication is each shard's Raft group's"),
		"CONFIG SET slowlog-max-len 5 acllog-max-len 7 maxmemory 1gb", fixed("maxmemory", "0", "coppice keeps its data on disk and never evicts a key (--min-free-disk-mib refuses writes when the disk is low)"),
		"CONFIG GET slowlog-max-len", "[slowlog-max-len 0]",
		"CONFIG GET acllog-max-len", "[acllog-max-len 128]",
	)
}

// CONFIG SET maxclients and acllog-max-len act at once: a client past the
// new limit is turned away; the ACL log keeps the newest entries only.
func TestConfigSetMaxclientsAndACLLogLength(t *testing.T) {
	srv := trackingServer(t)
	c := dial(t, srv)
	script(t, c,
		"CONFIG SET maxclients 1", "+OK",
		"CONFIG GET maxclients", "[maxclients 1]",
	)
	turnedAway(t, srv)
	script(t, c,
		"CONFIG SET maxclients 10000", "+OK",
		"ACL SETUSER u on nopass +get ~*", "+OK",
		"AUTH u x", "+OK",
		"SET a 1", "-NOPERM this user has no permissions to run the 'set' command",
		"DEL a", "-NOPERM this user has no permissions to run the 'del' command",
		"AUTH default x", "+OK",
		"CONFIG SET acllog-max-len 1", "+OK",
		"AUTH u x", "+OK",
		"INCR a", "-NOPERM this user has no permissions to run the 'incr' command",
		"AUTH default x", "+OK",
	)
	// As in Redis, the log is cut to its new length at its next entry.
	if log := c.do("ACL LOG"); strings.Count(log, "[count ") != 1 || !strings.HasPrefix(log, "[[count :1 reason command context toplevel object incr ") {
		t.Fatalf("ACL LOG with acllog-max-len 1: %q", log)
	}
}

// CONFIG SET requirepass sets the default user's password, as Redis's
// (an ACL change: the cluster's, on a node), and an empty one takes it
// away; the slow log shows neither it nor ACL SETUSER's rules.
func TestConfigSetRequirepass(t *testing.T) {
	srv := trackingServer(t)
	c := dial(t, srv)
	script(t, c,
		"CONFIG SET slowlog-log-slower-than 0 slowlog-max-len 128", "+OK",
		"CONFIG SET requirepass s3cret", "+OK",
		"CONFIG GET requirepass", "[requirepass s3cret]",
		"ACL SETUSER bob on >bobpass ~* +@all", "+OK",
	)
	other := dial(t, srv)
	script(t, other,
		"PING", "-NOAUTH Authentication required.",
		"AUTH wrong", "-WRONGPASS invalid username-password pair or user is disabled.",
		"AUTH s3cret", "+OK",
		"PING", "+PONG",
	)
	if users := c.do("ACL LIST"); !strings.Contains(users, "user default on #") || strings.Contains(users, "nopass") {
		t.Fatalf("ACL LIST after CONFIG SET requirepass: %q", users)
	}
	slow := c.do("SLOWLOG GET 100")
	if strings.Contains(slow, "s3cret") || strings.Contains(slow, "bobpass") || strings.Count(slow, "(redacted)") < 5 {
		t.Fatalf("SLOWLOG shows secrets: %q", slow)
	}
	script(t, c, "CONFIG SET requirepass \"\"", "+OK")
	script(t, dial(t, srv), "PING", "+PONG")
	if users := c.do("ACL LIST"); !strings.Contains(users, "user default on nopass") {
		t.Fatalf("ACL LIST after CONFIG SET requirepass \"\": %q", users)
	}
}

// The arguments Redis redacts from MONITOR and SLOWLOG.
func TestRedactedArguments(t *testing.T) {
	for _, tc := range []struct {
		cmd  string
		want []int
	}{
		{"AUTH pw", []int{1}},
		{"AUTH user pw", []int{1, 2}},
		{"HELLO 3 AUTH user pw SETNAME x", []int{3, 4}},
		{"ACL SETUSER u on >pw", []int{2, 3, 4}},
		{"ACL GETUSER u", nil},
		{"CONFIG SET requirepass pw hz 10 masterauth x", []int{3, 7}},
		{"CONFIG GET requirepass", nil},
		{"MIGRATE h 1 k 0 10 COPY AUTH pw", []int{8}},
		{"MIGRATE h 1 \"\" 0 10 AUTH2 u pw KEYS auth x", []int{7, 8}},
		{"MIGRATE h 1 \"\" 0 10 KEYS auth x", nil},
		{"SET auth pw", nil},
	} {
		fields := strings.Fields(tc.cmd)
		args := make([][]byte, len(fields))
		for i, f := range fields {
			args[i] = []byte(f)
		}
		redact := redacted(args)
		var got []int
		for i := range args {
			if redact(i) {
				got = append(got, i)
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: redacts %v, want %v", tc.cmd, got, tc.want)
		}
	}
}
