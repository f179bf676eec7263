package server

import (
	"strings"
	"testing"

	"github.com/coppice-kv/coppice/kv"
	"github.com/coppice-kv/coppice/kv/luascript"
)

// Scripts through the node (four shards): EVALSHA from the node's cache,
// a script's keys on one shard and its calls kept there, the read path
// for scripts that may not write, nothing run for a refused script.
func TestScriptsThroughTheNode(t *testing.T) {
	b, c, _ := txServer(t)
	incr := "return redis.call('incr', KEYS[1])"
	sha := luascript.SHA1([]byte(incr))
	script(t, c,
		`SCRIPT LOAD "`+incr+`"`, sha,
		"EVALSHA "+sha+" 1 {a}k", ":1",
		"EVALSHA "+strings.ToUpper(sha)+" 1 {a}k", ":2",
		"GET {a}k", "2",
		"SCRIPT EXISTS "+sha+" "+strings.Repeat("0", 40), "[:1 :0]",
	)
	if p := b.takeProposed(); len(p) != 2 || p[0] != kv.EvalName || p[1] != kv.EvalName {
		t.Fatalf("proposed %q, want two scripts", p)
	}

	// A script's keys on different shards, or a call of a key on another
	// shard than its keys': refused, nothing written.
	a, other := "{a}x", "b"
	shardOf := func(k string) int { return kv.ShardOf(kv.Slot([]byte(k)), 4) }
	for i := 0; shardOf(other) == shardOf(a); i++ {
		other = "b" + strings.Repeat("b", i)
	}
	script(t, c,
		"EVAL \""+incr+"\" 2 "+a+" "+other, "-"+kv.ErrCrossShard.GetError(),
	)
	if p := b.takeProposed(); len(p) != 0 {
		t.Fatalf("a refused script proposed %q", p)
	}
	got := c.do("EVAL \"redis.call('set', KEYS[1], 1) return redis.call('set', ARGV[1], 1)\" 1 " + a + " " + other)
	if !strings.HasPrefix(got, "-ERR Script attempted to access a non local key in a cluster node script: ") {
		t.Fatalf("non-local key: %q", got)
	}
	script(t, c,
		"GET "+a, "1", // the script's writes before its error stay, as in Redis
		"EXISTS "+other, ":0",
		"EVAL \"return redis.call('keys', '*')\" 0", "-ERR 'keys' from a script sees one shard of 4 here: run it outside the script script: "+luascript.SHA1([]byte("return redis.call('keys', '*')"))+", on @user_script:1.",
	)
	b.takeProposed()

	// Scripts that may not write run as reads.
	script(t, c,
		"EVAL_RO \"return redis.call('get', KEYS[1])\" 1 {a}k", "2",
		"EVAL \"#!lua flags=no-writes\\nreturn redis.call('get', KEYS[1])\" 1 {a}k", "2",
		"EVALSHA_RO "+sha+" 1 {a}k", "-ERR Write commands are not allowed from read-only scripts. script: "+sha+", on @user_script:1.",
		"EVAL_RO \"#!lua\\nreturn 1\" 0", "-ERR Can not execute a script with write flag using *_ro command.",
	)
	if p := b.takeProposed(); len(p) != 0 {
		t.Fatalf("read-only scripts proposed %q", p)
	}

	script(t, c,
		"SCRIPT FLUSH", "+OK",
		"EVALSHA "+sha+" 1 {a}k", "-NOSCRIPT No matching script. Please use EVAL.",
		"EVAL \""+incr+"\" 1 {a}k", ":3",
		"EVALSHA "+sha+" 1 {a}k", ":4", // EVAL's scripts join the cache
		"SCRIPT FLUSH ASYNC", "+OK",
		"SCRIPT FLUSH LATER", "-ERR SCRIPT FLUSH only support SYNC|ASYNC option",
		"SCRIPT KILL", "-NOTBUSY No scripts in execution right now.",
		"SCRIPT LOAD \"return +\"", "-ERR Error compiling script (new function): user_script:1: syntax error near '+'",
		"SCRIPT NOPE", "-ERR unknown subcommand 'NOPE'. Try SCRIPT HELP.",
		"SCRIPT", "-ERR wrong number of arguments for 'script' command",
	)
}

// EVAL in a transaction: one proposal with the other commands; a script
// without keys runs on the transaction's shard; its errors (NOSCRIPT, a
// write under EVAL_RO) are its answers in EXEC's array.
func TestScriptsInMulti(t *testing.T) {
	b, c, _ := txServer(t)
	script(t, c,
		"MULTI", "+OK",
		"SET {a}x 1", "+QUEUED",
		"EVAL \"return redis.call('incr', KEYS[1])\" 1 {a}x", "+QUEUED",
		"EVAL \"return redis.call('get', '{a}x')\" 0", "+QUEUED",
		"EVALSHA "+strings.Repeat("a", 40)+" 0", "+QUEUED",
		"EVAL_RO \"return redis.call('set', KEYS[1], 'y')\" 1 {a}y", "+QUEUED",
		"EXEC", "[+OK :2 2 -NOSCRIPT No matching script. Please use EVAL. -ERR Write commands are not allowed from read-only scripts. script: "+luascript.SHA1([]byte("return redis.call('set', KEYS[1], 'y')"))+", on @user_script:1.]",
		"EXISTS {a}y", ":0",
	)
	if p := b.takeProposed(); len(p) != 1 || p[0] != kv.ExecName {
		t.Fatalf("proposed %q, want one transaction", p)
	}
	// A function in a transaction, and one without keys on its shard.
	script(t, c,
		"FUNCTION LOAD \"#!lua name=l\\nredis.register_function('get', function(keys) return redis.call('get', keys[1] or '{a}x') end)\"", "l",
		"MULTI", "+OK",
		"SET {a}x 5", "+QUEUED",
		"FCALL get 1 {a}x", "+QUEUED",
		"FCALL_RO get 0", "+QUEUED",
		"FCALL nope 0", "+QUEUED",
		"EXEC", "[+OK 5 -ERR Can not execute a script with write flag using *_ro command. -ERR Function not found]",
	)
	script(t, c,
		"MULTI", "+OK",
		"SET {a}x 1", "+QUEUED",
		"EVAL \"return 1\" 1 b", "-"+kv.ErrCrossShard.GetError(),
		"EXEC", "-EXECABORT Transaction discarded because of previous errors.",
		"MULTI", "+OK",
		"EVAL \"return 1\" 2 {a}x b", "-"+kv.ErrCrossShard.GetError(),
		"EXEC", "-EXECABORT Transaction discarded because of previous errors.",
	)
}

// A refused script command goes into the slow log as the client sent it
// (an EVALSHA's refusal may take time: its script is asked of the peers).
// The port once panicked here, the refusal having no arguments kept.
func TestSlowScriptRefusalLogged(t *testing.T) {
	_, c, _ := txServer(t)
	sha := strings.Repeat("ab", 20)
	script(t, c,
		"CONFIG SET slowlog-log-slower-than 0", "+OK",
		"CONFIG SET slowlog-max-len 10", "+OK",
		"EVALSHA "+sha+" 0", "-NOSCRIPT No matching script. Please use EVAL.",
	)
	if got := c.do("SLOWLOG GET 1"); !strings.Contains(got, "[EVALSHA "+sha+" 0]") {
		t.Fatalf("SLOWLOG GET 1: %s", got)
	}
}
