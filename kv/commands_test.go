package kv

import (
	"strings"
	"testing"

	"github.com/coppice-kv/coppice/messages"
)

func bs(s ...string) [][]byte {
	out := make([][]byte, len(s))
	for i, x := range s {
		out[i] = []byte(x)
	}
	return out
}

func TestLookupAndKeys(t *testing.T) {
	for _, c := range []struct {
		args  []string
		keys  string
		write bool
	}{
		{[]string{"GET", "a"}, "a", false},
		{[]string{"set", "a", "b", "EX", "1"}, "a", true},
		{[]string{"MSET", "a", "1", "b", "2"}, "a b", true},
		{[]string{"mget", "a", "b", "c"}, "a b c", false},
		{[]string{"Del", "a", "b"}, "a b", true},
		{[]string{"HSET", "h", "f", "v"}, "h", true},
		{[]string{"KEYS", "*"}, "", false},
		{[]string{"FLUSHALL"}, "", true},
		{[]string{"PING"}, "", false},
	} {
		s, ok := Lookup([]byte(c.args[0]))
		if !ok {
			t.Fatalf("%s: not found", c.args[0])
		}
		var keys []string
		for _, k := range s.Keys(bs(c.args...)) {
			keys = append(keys, string(k))
		}
		if strings.Join(keys, " ") != c.keys || s.Write != c.write {
			t.Errorf("%v: keys %q write %v", c.args, keys, s.Write)
		}
	}
	if _, ok := Lookup([]byte("nosuchcommand")); ok {
		t.Error("found nosuchcommand")
	}
	if _, ok := Lookup([]byte("averyveryverylongcommandname")); ok {
		t.Error("found a long name")
	}
	if s, _ := Lookup([]byte("ping")); !s.Node {
		t.Error("PING is not a node command")
	}
}

func TestCheckArity(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"GET", "a"}, ""},
		{[]string{"get"}, "ERR wrong number of arguments for 'get' command"},
		{[]string{"SET", "a"}, "ERR wrong number of arguments for 'set' command"},
		{[]string{"MGET"}, "ERR wrong number of arguments for 'mget' command"},
		{[]string{"DBSIZE", "x"}, "ERR wrong number of arguments for 'dbsize' command"},
		{[]string{"foo"}, "ERR unknown command 'foo', with args beginning with: "},
		{[]string{"foo", "a", "b"}, "ERR unknown command 'foo', with args beginning with: 'a' 'b' "},
		{[]string{"foo", "a\r\nb"}, "ERR unknown command 'foo', with args beginning with: 'a  b' "},
		{[]string{"fo\x00o", "a\x00b"}, "ERR unknown command 'fo', with args beginning with: 'a' "},
		{[]string{"x", strings.Repeat("a", 200), "b"}, "ERR unknown command 'x', with args beginning with: '" + strings.Repeat("a", 128) + "' "},
		{[]string{"x", strings.Repeat("a", 100), strings.Repeat("b", 100), "c"}, "ERR unknown command 'x', with args beginning with: '" + strings.Repeat("a", 100) + "' '" + strings.Repeat("b", 25) + "' "},
	} {
		r := CheckArity(bs(c.args...))
		if got := r.GetError(); got != c.want {
			t.Errorf("%q: got %q, want %q", c.args, got, c.want)
		}
	}
}

func TestCheckSubcommand(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"CLUSTER", "info"}, ""},
		{[]string{"cluster", "KEYSLOT", "k"}, ""},
		{[]string{"cluster", "keyslot"}, "ERR wrong number of arguments for 'cluster|keyslot' command"},
		{[]string{"cluster", "slots", "x"}, "ERR wrong number of arguments for 'cluster|slots' command"},
		{[]string{"cluster", "Bogus"}, "ERR unknown subcommand 'Bogus'. Try CLUSTER HELP."},
		{[]string{"config", "get"}, "ERR wrong number of arguments for 'config|get' command"},
		{[]string{"cluster"}, "ERR wrong number of arguments for 'cluster' command"},
		{[]string{"nosuch", "x"}, "ERR unknown command 'nosuch', with args beginning with: 'x' "},
	} {
		if got := CheckSubcommand(bs(c.args...)).GetError(); got != c.want {
			t.Errorf("%q: got %q, want %q", c.args, got, c.want)
		}
	}
}

func TestReadRefusesWrites(t *testing.T) {
	r := Read(newMemStore(), bs("SET", "a", "b"), 0)
	if r.GetError() == "" {
		t.Errorf("SET on the read path: %v", r)
	}
	r = Read(newMemStore(), bs("PING"), 0)
	if !strings.Contains(r.GetError(), "served by the node") {
		t.Errorf("PING: %v", r)
	}
}

// The table and Redis's metadata (commands_redis.go) agree.
func TestTableMatchesRedisMeta(t *testing.T) {
	loadMeta()
	var check func(s *Spec)
	check = func(s *Spec) {
		items := meta[s.Name].info.GetArray().GetItems()
		if len(items) < 10 {
			t.Errorf("%s: no metadata", s.Name)
			return
		}
		var flags []string
		for _, f := range items[2].GetSet().GetItems() {
			flags = append(flags, f.GetStatus())
		}
		got := []int64{items[1].GetInteger(), items[3].GetInteger(), items[4].GetInteger(), items[5].GetInteger()}
		want := []int64{int64(s.Arity), int64(s.FirstKey), int64(s.LastKey), int64(s.Step)}
		if string(items[0].GetBulk()) != s.Name || strings.Join(flags, " ") != strings.Join(s.Flags, " ") || !equalInts(got, want) {
			t.Errorf("%s: redis says %s %v %v; table says %v %v", s.Name, items[0].GetBulk(), got, flags, want, s.Flags)
		}
		if subs := items[9].GetArray().GetItems(); len(subs) != len(s.Subcommands) {
			t.Errorf("%s: %d subcommands in the metadata, %d in the table", s.Name, len(subs), len(s.Subcommands))
		}
		for _, sub := range s.Subcommands {
			check(sub)
		}
	}
	for _, s := range Commands() {
		check(s)
	}
}

func equalInts(a, b []int64) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return len(a) == len(b)
}

func TestCommand(t *testing.T) {
	do := func(args ...string) string { return render(Command(bs(args...))) }
	if got := do("COMMAND", "COUNT"); got != ":"+itoa(len(table)) {
		t.Errorf("COUNT: %s", got)
	}
	all := Command(bs("COMMAND")).GetArray().GetItems()
	if len(all) != len(table) {
		t.Errorf("COMMAND: %d entries", len(all))
	}
	info := do("COMMAND", "INFO", "GET", "nosuch")
	if !strings.HasPrefix(info, `[["get" :2 ~[+readonly +fast] :1 :1 :1 ~[+@read +@string +@fast]`) || !strings.HasSuffix(info, " nil]") {
		t.Errorf("INFO: %s", info)
	}
	if got := do("COMMAND", "INFO", "config|get"); !strings.HasPrefix(got, `[["config|get" :-3`) {
		t.Errorf("INFO config|get: %s", got)
	}
	if got := do("COMMAND", "DOCS", "get", "nosuch"); !strings.HasPrefix(got, `{"get" {"summary" "Get the value of a key"`) {
		t.Errorf("DOCS: %s", got)
	}
	for _, c := range [][2]string{
		{"COMMAND GETKEYS MSET a 1 b 2", `["a" "b"]`},
		{"COMMAND GETKEYS GET", "-ERR wrong number of arguments for 'command|getkeys' command"},
		{"COMMAND GETKEYS foo a", "-ERR Invalid command specified"},
		{"COMMAND GETKEYS SET a", "-ERR Invalid number of arguments specified for command"},
		{"COMMAND GETKEYS DBSIZE x", "-ERR Invalid number of arguments specified for command"},
		{"COMMAND GETKEYS KEYS x", "-ERR The command has no key arguments"},
		{"COMMAND COUNT x", "-ERR wrong number of arguments for 'command|count' command"},
		{"COMMAND foo", "-ERR unknown subcommand 'foo'. Try COMMAND HELP."},
		{"COMMAND LIST FILTERBY PATTERN hinc*", `["hincrby" "hincrbyfloat"]`},
		{"COMMAND LIST FILTERBY PATTERN command|c*", `["command|count"]`},
		{"COMMAND LIST FILTERBY ACLCAT HASH", `["hdel" "hexists" "hget" "hgetall" "hincrby" "hincrbyfloat" "hkeys" "hlen" "hmget" "hmset" "hrandfield" "hscan" "hset" "hsetnx" "hstrlen" "hvals"]`},
		{"COMMAND LIST FILTERBY MODULE x", `[]`},
		{"COMMAND LIST FILTERBY x y", "-ERR syntax error"},
		{"COMMAND LIST x", "-ERR syntax error"},
	} {
		if got := do(strings.Fields(c[0])...); got != c[1] {
			t.Errorf("%s: got %s, want %s", c[0], got, c[1])
		}
	}
	if got := len(Command(bs("COMMAND", "LIST")).GetArray().GetItems()); got <= len(table) {
		t.Errorf("LIST: %d names, want the subcommands too", got)
	}
	// Read serves COMMAND too.
	if got := render(Read(newMemStore(), bs("command", "count"), 0)); got != ":"+itoa(len(table)) {
		t.Errorf("Read COMMAND COUNT: %s", got)
	}
	var _ *messages.Reply
}

func itoa(n int) string { return string(appendInt(nil, int64(n))) }
