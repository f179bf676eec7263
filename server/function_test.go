package server

import (
	"strings"
	"testing"
)

// FUNCTION DUMP and RESTORE move libraries between redis-server and
// coppice either way, and RESTORE's policies and errors are Redis's: each
// step runs on both, with the same payloads.
func TestFunctionDumpRestoreWithRedis(t *testing.T) {
	redis := dialRedis(t)
	ours := dial(t, trackingServer(t))
	lib := func(name, fn, ret string) string {
		return "#!lua name=" + name + "\nredis.register_function('" + fn + "', function() return '" + ret + "' end)"
	}
	both := func(args ...string) string {
		t.Helper()
		want, got := redis.doArgs(args...), ours.doArgs(args...)
		if got != want {
			t.Fatalf("%.60q: coppice %q, redis %q", args, got, want)
		}
		return got
	}

	// Redis's payload into coppice, and coppice's into Redis.
	redis.doArgs("FUNCTION", "LOAD", lib("la", "fa", "from redis"))
	fromRedis := redis.doArgs("FUNCTION", "DUMP")
	if got := ours.doArgs("FUNCTION", "RESTORE", fromRedis); got != "+OK" {
		t.Fatalf("RESTORE of redis-server's payload: %q", got)
	}
	if got := ours.doArgs("FCALL", "fa", "0"); got != "from redis" {
		t.Fatalf("FCALL after RESTORE: %q", got)
	}
	ours.doArgs("FUNCTION", "LOAD", lib("lb", "fb", "from coppice"))
	fromUs := ours.doArgs("FUNCTION", "DUMP")
	if got := redis.doArgs("FUNCTION", "RESTORE", fromUs, "FLUSH"); got != "+OK" {
		t.Fatalf("redis-server's RESTORE of coppice's payload: %q", got)
	}
	if got := redis.doArgs("FCALL", "fb", "0"); got != "from coppice" {
		t.Fatalf("redis-server's FCALL after RESTORE: %q", got)
	}
	// Both have la and lb now. The policies, on the same state.
	// APPEND (the default): la and lb exist; Redis names the first its
	// hash table gives, coppice the first by name.
	for _, args := range [][]string{{"FUNCTION", "RESTORE", fromUs}, {"FUNCTION", "RESTORE", fromUs, "append"}} {
		for _, c := range []*client{redis, ours} {
			if got := c.doArgs(args...); got != "-ERR Library la already exists" && got != "-ERR Library lb already exists" {
				t.Fatalf("%.40q: %q", args, got)
			}
		}
	}
	both("FUNCTION", "RESTORE", fromUs, "REPLACE")      // replaced
	both("FUNCTION", "RESTORE", fromUs, "sometimes")    // no such policy
	both("FUNCTION", "RESTORE", fromUs, "FLUSH", "x")   // too many
	both("FUNCTION", "RESTORE", fromUs[:len(fromUs)-1]) // checksum
	both("FUNCTION", "RESTORE", "")
	both("FUNCTION", "DELETE", "lb")
	// lc's function fa collides with la's: refused, nothing changed.
	both("FUNCTION", "LOAD", lib("lc", "fc", "c"))
	withFa := ours.doArgs("FUNCTION", "DUMP")
	both("FUNCTION", "DELETE", "lc")
	both("FUNCTION", "LOAD", "REPLACE", lib("la", "other", "x"))
	both("FUNCTION", "LOAD", lib("lx", "fa", "y"))
	both("FUNCTION", "RESTORE", withFa, "REPLACE") // fa is lx's now
	both("FCALL", "fc", "0")
	both("FUNCTION", "RESTORE", withFa, "FLUSH")
	both("FCALL", "fa", "0")
	both("FCALL", "fc", "0")
	both("FCALL", "other", "0")
	// A payload that is not a function's (a key's DUMP) is refused.
	both("SET", "k", "v")
	keyDump := both("DUMP", "k")
	both("FUNCTION", "RESTORE", keyDump)
	for _, c := range []*client{redis, ours} { // in hash order on Redis
		if l := c.doArgs("FUNCTION", "LIST"); !strings.Contains(l, "library_name la ") || !strings.Contains(l, "library_name lc ") || strings.Count(l, "library_name") != 2 {
			t.Fatalf("FUNCTION LIST after the refusals: %q", l)
		}
	}
}
