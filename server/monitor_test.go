package server

import (
	"regexp"
	"strings"
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
		"MULTI", "INCR n", "exec", "PING", "NOSUCH x", "GET", "SUBSCRIBE ch",
	} {
		c.send(cmd)
		c.read()
	}
	want := []string{
		`"SET" "k" "a b\n\x01\t"`, `"SET" "k" "\x00\xff\""`, `"GET" "k"`,
		`"AUTH" "(redacted)"`, `"HELLO" "2" "AUTH" "(redacted)" "(redacted)"`, `"CLIENT" "ID"`,
		`"MULTI"`, `"INCR" "n"`, `"exec"`, `"PING"`, `"SUBSCRIBE" "ch"`,
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

// A script's calls, and a function's, show to the monitors after it as
// the client "lua", as Redis shows them; in a transaction, at its EXEC's
// end, after the queued commands as the client sent them. They count in their commands' statistics (Redis's "command stats
// for scripts" test), the failed ones as failed.
func TestScriptCallsMonitoredAndCounted(t *testing.T) {
	srv := trackingServer(t)
	m, c := dial(t, srv), dial(t, srv)
	if got := c.doArgs("FUNCTION", "LOAD", "#!lua name=lib\nredis.register_function('f', function(keys) return redis.call('set', keys[1], 'bar') end)"); got != "lib" {
		t.Fatalf("FUNCTION LOAD: %s", got)
	}
	script(t, c,
		"CONFIG RESETSTAT", "+OK",
		"SET {k}x myval", "+OK",
	)
	script(t, m, "MONITOR", "+OK")
	// The LPUSH runs and fails (WRONGTYPE); the INCR, of the wrong
	// arity, is refused before it runs: not shown, counted as rejected.
	script(t, c,
		`EVAL "redis.call('set', KEYS[1], 0) redis.pcall('lpush', KEYS[1], 'a') redis.call('expire', KEYS[1], 0) redis.pcall('incr', KEYS[1], 'extra') redis.call('geoadd', KEYS[1], 0, 0, 'bar')" 1 {k}x`, "$-1",
		"FCALL f 1 {k}y", "+OK",
		"MULTI", "+OK",
		"PING", "+QUEUED",
		`EVAL "return redis.call('get', KEYS[1])" 1 {k}y`, "+QUEUED",
		"EXEC", "[+PONG bar]",
	)
	want := []string{
		`127\.0\.0\.1:\d+\] "EVAL" .*`,
		`lua\] "set" "\{k\}x" "0"`,
		`lua\] "lpush" "\{k\}x" "a"`,
		`lua\] "expire" "\{k\}x" "0"`,
		`lua\] "geoadd" "\{k\}x" "0" "0" "bar"`,
		`127\.0\.0\.1:\d+\] "FCALL" "f" "1" "\{k\}y"`,
		`lua\] "set" "\{k\}y" "bar"`,
		`127\.0\.0\.1:\d+\] "MULTI"`,
		`127\.0\.0\.1:\d+\] "PING"`,
		`127\.0\.0\.1:\d+\] "EVAL" .*`,
		`127\.0\.0\.1:\d+\] "EXEC"`,
		`lua\] "get" "\{k\}y"`,
	}
	for _, w := range want {
		got := m.read()
		if !regexp.MustCompile(`^\+\d+\.\d{6} \[0 ` + w + `$`).MatchString(got) {
			t.Fatalf("monitor line %q, want %s", got, w)
		}
	}
	info := c.do("INFO commandstats")
	for _, w := range []string{"cmdstat_eval:calls=2,", "cmdstat_set:calls=3,", "cmdstat_expire:calls=1,", "cmdstat_geoadd:calls=1,",
		"cmdstat_fcall:calls=1,", "cmdstat_get:calls=1,"} {
		if !strings.Contains(info, w) {
			t.Errorf("INFO commandstats lacks %s:\n%s", w, info)
		}
	}
	if !regexp.MustCompile(`cmdstat_lpush:calls=1,.*failed_calls=1`).MatchString(info) ||
		!strings.Contains(info, "cmdstat_incr:calls=0,usec=0,usec_per_call=0.00,rejected_calls=1,failed_calls=0\r\n") {
		t.Errorf("the script's failed LPUSH is not counted failed, or its refused INCR not counted rejected:\n%s", info)
	}
}
