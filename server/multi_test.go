package server

import (
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/coppice-kv/coppice/kv"
	"github.com/coppice-kv/coppice/kv/kvmem"
	"github.com/coppice-kv/coppice/messages"
)

// engineBackend runs commands with the engine on four in-memory shards,
// one command at a time: what the node's shards do, without Raft. It
// records each proposal's command name.
type engineBackend struct {
	mu       sync.Mutex
	shards   []*kvmem.Store
	proposed []string
	watches  map[chan struct{}][][]byte // each watch's record keys
	tryAgain int                        // proposals to answer TRYAGAIN, running nothing
	// notify is the server's notify-keyspace-events (Config.Notify), and
	// fire its Notify: the events of each write go there, as a shard's.
	notify   *kv.NotifyConfig
	fire     func([]kv.Event)
	modified func([]kv.Modification) // the server's Modified, once set
}

// written is a shard's store that records the keys a command writes,
// and what it changed for CLIENT TRACKING.
type written struct {
	*kvmem.Store
	keys map[string]bool
	mod  kv.Modification
}

func (w *written) Set(k, v []byte) error { w.touch(k); return w.Store.Set(k, v) }
func (w *written) Delete(k []byte) error { w.touch(k); return w.Store.Delete(k) }
func (w *written) DeleteRange(lower, upper []byte) error {
	if k, ok := kv.RangeKey(lower, upper); ok {
		w.mod.Keys = append(w.mod.Keys, k)
	} else {
		w.mod.All = true
	}
	return w.Store.DeleteRange(lower, upper)
}

func (w *written) touch(k []byte) {
	w.keys[string(k)] = true
	if key, ok := kv.UserKey(string(k)); ok {
		w.mod.Keys = append(w.mod.Keys, key)
	}
}

func newEngineBackend() *engineBackend {
	b := &engineBackend{notify: &kv.NotifyConfig{}}
	for range 4 {
		b.shards = append(b.shards, kvmem.New())
	}
	return b
}

func (b *engineBackend) Shards() int { return len(b.shards) }
func (b *engineBackend) Propose(shard int, cmd *messages.Command) Pending {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.proposed = append(b.proposed, strings.ToLower(string(cmd.Args[0])))
	if b.tryAgain > 0 {
		b.tryAgain--
		return done{errorf("TRYAGAIN shard is electing")}
	}
	w := &written{Store: b.shards[shard], keys: map[string]bool{}}
	ev := &kv.EventLog{Want: b.notify.Load()}
	r := kv.ExecEvents(w, cmd, ev)
	if b.fire != nil && len(ev.Events) > 0 {
		b.fire(ev.Events)
	}
	if b.modified != nil && (len(w.mod.Keys) > 0 || w.mod.All) {
		w.mod.Origin = cmd.Origin
		b.modified([]kv.Modification{w.mod})
	}
	for ch, keys := range b.watches {
		for _, k := range keys {
			if w.keys[string(k)] || w.mod.All { // FLUSHALL: every key
				close(ch)
				delete(b.watches, ch)
				break
			}
		}
	}
	return done{r}
}
func (b *engineBackend) Read(shard int, cmd *messages.Command) Pending {
	b.mu.Lock()
	defer b.mu.Unlock()
	return done{kv.ReadCommand(b.shards[shard], cmd)}
}
func (b *engineBackend) Scan(int, *messages.ScanShard) Pending {
	return done{errorf("ERR no SCAN in this test")}
}

func (b *engineBackend) takeProposed() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.proposed
	b.proposed = nil
	return p
}

func txServer(t *testing.T) (*engineBackend, *client, *client) {
	t.Helper()
	b := newEngineBackend()
	srv, err := Listen(Config{Addr: "127.0.0.1:0"}, b)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return b, dial(t, srv), dial(t, srv)
}

// script sends each command and checks each answer.
func script(t *testing.T, c *client, steps ...string) {
	t.Helper()
	for i := 0; i+1 < len(steps); i += 2 {
		if got := c.do(steps[i]); got != steps[i+1] {
			t.Fatalf("%s: %q, want %q", steps[i], got, steps[i+1])
		}
	}
}

// A transaction's commands are proposed as one command to their shard
// (one Raft entry), and EXEC answers each one's reply; a command that
// fails when it runs answers its error, and the others run.
func TestMultiExecIsOneProposal(t *testing.T) {
	b, c, _ := txServer(t)
	script(t, c,
		"MULTI", "+OK",
		"SET {a}x 1", "+QUEUED",
		"INCR {a}x", "+QUEUED",
		"LPUSH {a}x v", "+QUEUED", // WRONGTYPE when it runs
		"GET {a}x", "+QUEUED",
		"MGET {a}x {a}y", "+QUEUED",
		"EXEC", "[+OK :2 -WRONGTYPE Operation against a key holding the wrong kind of value 2 [2 $-1]]",
	)
	if p := b.takeProposed(); len(p) != 1 || p[0] != kv.ExecName {
		t.Fatalf("proposed %q, want one transaction", p)
	}
	script(t, c,
		"MULTI", "+OK",
		"EXEC", "[]",
		"GET {a}x", "2",
	)
	if p := b.takeProposed(); len(p) != 0 {
		t.Fatalf("an empty transaction proposed %q", p)
	}
}

// Refusals, as Redis's: the control commands out of place, and a command
// refused while queueing, which discards the transaction: nothing runs.
func TestMultiRefusals(t *testing.T) {
	b, c, _ := txServer(t)
	script(t, c,
		"EXEC", "-ERR EXEC without MULTI",
		"DISCARD", "-ERR DISCARD without MULTI",
		"MULTI x", "-ERR wrong number of arguments for 'multi' command",
		"MULTI", "+OK",
		"MULTI", "-ERR MULTI calls can not be nested", // the transaction goes on
		"WATCH k", "-ERR WATCH inside MULTI is not allowed",
		"SET k 1", "+QUEUED",
		"EXEC", "[+OK]",
	)
	refused := []struct{ cmd, want string }{
		{"NOSUCH a", "-ERR unknown command 'NOSUCH', with args beginning with: 'a' "},
		{"GET", "-ERR wrong number of arguments for 'get' command"},
		{"SET b 1", "-CROSSSLOT Keys in request don't hash to the same shard: give them one {hash tag}"},
		{"CLIENT TRACKING on", "-ERR 'client|tracking' inside MULTI: coppice does not queue it (it changes how the node writes to the connection)"},
		{"CLIENT REPLY off", "-ERR 'client|reply' inside MULTI: coppice does not queue it (it changes how the node writes to the connection)"},
		{"FLUSHALL", "-ERR 'flushall' inside MULTI: it writes every shard, which one shard's transaction cannot"},
		{"SUBSCRIBE ch", "-ERR 'subscribe' inside MULTI: coppice does not queue this command (it subscribes, authenticates, or acts on the node's persistence, replication or cluster)"},
		{"CLIENT", "-ERR wrong number of arguments for 'client' command"},
	}
	for _, r := range refused {
		script(t, c,
			"MULTI", "+OK",
			"SET a 2", "+QUEUED",
			r.cmd, r.want,
			"SET a 3", "+QUEUED",
			"EXEC", "-EXECABORT Transaction discarded because of previous errors.",
		)
	}
	script(t, c,
		"MULTI", "+OK",
		"SET a 4", "+QUEUED",
		"DISCARD", "+OK",
		"EXEC", "-ERR EXEC without MULTI",
		"GET a", "$-1",
		"GET k", "1",
	)
	if p := b.takeProposed(); len(p) != 1 {
		t.Fatalf("proposed %q: only the first transaction should have run", p)
	}
}

// The node's own commands queue too, and run at EXEC in their places, once
// the shard has run the transaction's commands: DBSIZE and KEYS see its
// writes, CLIENT SETNAME names the connection then, not before.
func TestMultiNodeCommands(t *testing.T) {
	b, c, _ := txServer(t)
	script(t, c,
		"SET {a}old 1", "+OK",
		"MULTI", "+OK",
		"SET {a}x 1", "+QUEUED",
		"DBSIZE", "+QUEUED",
		"CLIENT SETNAME tx", "+QUEUED",
		"CLIENT GETNAME", "+QUEUED",
		"KEYS {a}*", "+QUEUED",
		"SELECT 0", "+QUEUED",
		"SELECT 1", "+QUEUED",
		"CONFIG GET databases", "+QUEUED",
		"ECHO hi", "+QUEUED",
		"UNWATCH", "+QUEUED",
		"INCR {a}x", "+QUEUED",
		"EXEC", "[+OK :2 +OK tx [{a}old {a}x] +OK -ERR DB index is out of range [databases 1] hi +OK :2]",
		"CLIENT GETNAME", "tx",
	)
	if p := b.takeProposed(); len(p) != 2 || p[1] != kv.ExecName {
		t.Fatalf("proposed %q, want a SET and one transaction", p)
	}
	// Before EXEC the name is not set; DISCARD runs nothing.
	script(t, c,
		"MULTI", "+OK",
		"CLIENT SETNAME other", "+QUEUED",
		"CLIENT GETNAME", "+QUEUED",
		"DISCARD", "+OK",
		"CLIENT GETNAME", "tx",
		"MULTI", "+OK",
		"TIME", "+QUEUED",
		"INFO keyspace", "+QUEUED",
	)
	if got := c.do("EXEC"); !regexp.MustCompile(`^\[\[\d{10} \d+\] # Keyspace\r\ndb0:keys=2,`).MatchString(got) {
		t.Fatalf("EXEC of TIME and INFO: %q", got)
	}
}

// WATCH: EXEC runs nothing and answers nil when a watched key changed
// (written, deleted, created, a field of a hash changed) since, through
// any connection; EXEC and DISCARD forget the watched keys; WATCH wants
// one shard.
func TestWatch(t *testing.T) {
	_, c, other := txServer(t)
	script(t, other, "SET {k}1 a", "+OK", "HSET {k}h f 1 g 2", ":2")
	changes := []string{"SET {k}1 b", "DEL {k}1", "SET {k}new x", "HSET {k}h f 3", "HDEL {k}h g"}
	for _, change := range changes {
		script(t, c,
			"WATCH {k}1 {k}new", "+OK",
			"WATCH {k}h", "+OK",
		)
		if got := other.do(change); strings.HasPrefix(got, "-") {
			t.Fatalf("%s: %s", change, got)
		}
		script(t, c,
			"MULTI", "+OK",
			"SET {k}mine 1", "+QUEUED",
			"EXEC", "*-1",
			"EXISTS {k}mine", ":0",
		)
		other.do("SET {k}1 a")
		other.do("DEL {k}new")
		other.do("HSET {k}h f 1 g 2")
	}
	// Untouched (a write that leaves the bytes as they were included):
	// it runs.
	script(t, c,
		"WATCH {k}1 {k}h", "+OK",
	)
	other.do("SET {k}1 a")
	script(t, c,
		"MULTI", "+OK",
		"SET {k}1 mine", "+QUEUED",
		"EXEC", "[+OK]",
		"GET {k}1", "mine",
	)
	// EXEC forgot them: a change now does not matter.
	other.do("SET {k}1 theirs")
	script(t, c,
		"MULTI", "+OK",
		"SET {k}2 x", "+QUEUED",
		"EXEC", "[+OK]",
	)
	// DISCARD and UNWATCH forget them too.
	script(t, c, "WATCH {k}1", "+OK", "MULTI", "+OK", "DISCARD", "+OK")
	other.do("SET {k}1 again")
	script(t, c, "MULTI", "+OK", "SET {k}3 x", "+QUEUED", "EXEC", "[+OK]")
	script(t, c, "WATCH {k}1", "+OK", "UNWATCH", "+OK")
	other.do("SET {k}1 more")
	script(t, c, "MULTI", "+OK", "SET {k}4 x", "+QUEUED", "EXEC", "[+OK]")
	// One shard: keys of two refused, and a transaction on another
	// shard than the watched keys' is refused while queueing.
	cross := "-CROSSSLOT Keys in request don't hash to the same shard: give them one {hash tag}"
	script(t, c,
		"WATCH a b", cross,
		"WATCH a", "+OK",
		"WATCH b", cross,
		"MULTI", "+OK",
		"SET b 1", cross,
		"EXEC", "-EXECABORT Transaction discarded because of previous errors.",
		"WATCH", "-ERR wrong number of arguments for 'watch' command",
	)
}

// Watch wakes when a proposal writes one of keys' records, as a shard
// does (server.Watcher); the test's shards are not told apart.
func (b *engineBackend) Watch(shard int, keys [][]byte) (<-chan struct{}, func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ch := make(chan struct{})
	if b.watches == nil {
		b.watches = map[chan struct{}][][]byte{}
	}
	for _, k := range keys {
		b.watches[ch] = append(b.watches[ch], kv.RecordKey(k))
	}
	return ch, func() {
		b.mu.Lock()
		delete(b.watches, ch)
		b.mu.Unlock()
	}
}

// doArgs sends a command as a RESP array (big arguments too) and reads
// its answer.
func (c *client) doArgs(args ...string) string {
	c.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(c.nc, b.String()); err != nil {
		c.t.Fatal(err)
	}
	return c.read()
}

// WATCH keeps its keys past the commands read after it, a big key among
// them (the reader gives a big argument memory of its own, and reuses its
// buffers for the others).
func TestWatchWithABigKey(t *testing.T) {
	_, c, other := txServer(t)
	big := "{k}" + strings.Repeat("b", 40<<10)
	if got := c.doArgs("WATCH", big, "{k}small"); got != "+OK" {
		t.Fatalf("WATCH: %q", got)
	}
	// Commands read after it reuse the reader's buffers.
	script(t, c, "GET {k}zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", "$-1", "PING", "+PONG")
	script(t, other, "SET {k}small changed", "+OK")
	script(t, c, "MULTI", "+OK", "SET {k}x 1", "+QUEUED", "EXEC", "*-1")
}

// A transaction is bounded as one write is (--max-write-mib): the command
// that takes it past the limit is refused, and EXEC discards it.
func TestMultiOverTheWriteLimit(t *testing.T) {
	srv, err := Listen(Config{Addr: "127.0.0.1:0", MaxWriteBytes: 100}, newEngineBackend())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c := dial(t, srv)
	v := strings.Repeat("v", 50)
	script(t, c,
		"MULTI", "+OK",
		"SET a "+v, "+QUEUED",
		"SET a "+v, "-ERR transaction of 108 bytes is over this node's limit of 100 bytes (--max-write-mib)",
		"EXEC", "-EXECABORT Transaction discarded because of previous errors.",
		"GET a", "$-1",
	)
}

// Inside MULTI, PING and ECHO are answered in their places in EXEC's
// array, and a blocking pop runs as its non-blocking form (nil when
// there is nothing to pop, as in Redis), its bad timeout answered in the
// array too.
func TestMultiWithPingEchoAndBlockingPops(t *testing.T) {
	b, c, _ := txServer(t)
	script(t, c,
		"RPUSH {q}l a b", ":2",
		"ZADD {q}z 1 m", ":1",
		"MULTI", "+OK",
		"PING", "+QUEUED",
		"BLPOP {q}l 0", "+QUEUED",
		"ECHO hi", "+QUEUED",
		"BRPOP {q}empty 0", "+QUEUED",
		"BZPOPMIN {q}z 0", "+QUEUED",
		"BLMOVE {q}l {q}m LEFT LEFT 0", "+QUEUED",
		"BLPOP {q}l x", "+QUEUED",
		"PING a b", "+QUEUED",
		"PING hello", "+QUEUED",
		"EXEC", "[+PONG [{q}l a] hi *-1 [{q}z m 1] b -ERR timeout is not a float or out of range -ERR wrong number of arguments for 'ping' command hello]",
		"LRANGE {q}m 0 -1", "[b]",
	)
	if p := b.takeProposed(); len(p) != 3 || p[2] != kv.ExecName {
		t.Fatalf("proposed %q: want the RPUSH, the ZADD and one transaction", p)
	}
	script(t, c, "MULTI", "+OK", "PING", "+QUEUED", "EXEC", "[+PONG]")
	if p := b.takeProposed(); len(p) != 0 {
		t.Fatalf("a transaction of PING alone proposed %q", p)
	}
}
