package server

import (
	"regexp"
	"testing"
)

// MONITOR shows what redis-server 7.0.15 showed for the same commands
// (its lines, their times and addresses aside): quoted as sdscatrepr
// quotes, secrets redacted, admin commands and refused ones left out, a
// transaction's commands at its EXEC; a monitor may not touch keys.
func TestMonitorShowsWhatRedisShows(t *testing.T) {
	srv := trackingServer(t)
	m, c := dial(t, srv), dial(t, srv)
	script(t, m, "MONITOR", "+OK")
	for _, cmd := range []string{
		"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$6\r\na b\n\x01\t", "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\n\x00\xff\"", "GET k",
		"AUTH foo", "HELLO 2 AUTH default pw", "CONFIG GET port", "CLIENT ID", "CLIENT LIST",
		"MULTI", "INCR n", "EXEC", "PING", "NOSUCH x", "GET", "SUBSCRIBE ch",
	} {
		c.send(cmd)
		c.read()
	}
	want := []string{
		`"SET" "k" "a b\n\x01\t"`, `"SET" "k" "\x00\xff\""`, `"GET" "k"`,
		`"AUTH" "(redacted)"`, `"HELLO" "2" "AUTH" "(redacted)" "(redacted)"`, `"CLIENT" "ID"`,
		`"MULTI"`, `"INCR" "n"`, `"EXEC"`, `"PING"`, `"SUBSCRIBE" "ch"`,
	}
	line := regexp.MustCompile(`^\+\d+\.\d{6} \[0 127\.0\.0\.1:\d+\] (.*)$`)
	for _, w := range want {
		got := m.read()
		if g := line.FindStringSubmatch(got); g == nil || g[1] != w {
			t.Fatalf("monitor line %q, want %s", got, w)
		}
	}
	script(t, m, "GET k", "-ERR Replica can't interact with the keyspace")
}
