package kv

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/coppice-kv/coppice/messages"
)

// countingWriter counts the writes a command makes.
type countingWriter struct {
	Writer
	writes int
}

func (c *countingWriter) Set(k, v []byte) error {
	c.writes++
	return c.Writer.Set(k, v)
}

func (c *countingWriter) Delete(k []byte) error {
	c.writes++
	return c.Writer.Delete(k)
}

func (c *countingWriter) DeleteRange(lo, hi []byte) error {
	c.writes++
	return c.Writer.DeleteRange(lo, hi)
}

// copyStore is a new in-memory store holding what r holds.
func copyStore(t *testing.T, r Reader) *memStore {
	t.Helper()
	s := newMemStore()
	if err := r.Scan([]byte{1}, []byte{0xff}, func(k, v []byte) bool {
		if err := s.Set(k, v); err != nil {
			t.Fatal(err)
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	return s
}

// Probe answers exactly the commands that write nothing and fire no
// event, with Exec's reply, and writes nothing itself: random probed
// commands over random keys of every type (some past their expiry) are
// each probed on the state, then run with Exec on a copy of it.
func TestProbeAnswersExactlyTheWritesThatChangeNothing(t *testing.T) {
	seed := uint64(rand.Int64())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	keys := []string{"a", "b", "c", "d"}
	key := func() string { return keys[rng.IntN(len(keys))] }
	member := func() string { return "m" + strconv.Itoa(rng.IntN(3)) }
	// A state: each key absent, or a string, list, set, sorted set, hash
	// or stream of a few members, with or without an expiry, passed or
	// not.
	fill := func(h *harness) {
		for _, k := range keys {
			switch rng.IntN(7) {
			case 1:
				h.do("SET", k, member())
			case 2:
				h.do("RPUSH", k, member(), member())
			case 3:
				h.do("SADD", k, member(), member())
			case 4:
				h.do("ZADD", k, "1", member(), "2", member())
			case 5:
				h.do("HSET", k, member(), "v", member(), "w")
			case 6:
				h.do("XADD", k, "1-1", "f", "v")
				h.do("XADD", k, "2-1", "f", "v")
			}
			switch rng.IntN(4) {
			case 0:
				h.do("PEXPIRE", k, "10") // past at the commands' time
			case 1:
				h.do("PEXPIRE", k, "100000")
			}
		}
	}
	// Each command, and whether Probe runs it.
	commands := []struct {
		probed bool
		args   func() []string
	}{
		{true, func() []string { return []string{"LPOP", key()} }},
		{true, func() []string { return []string{"RPOP", key(), "2"} }},
		{true, func() []string { return []string{"LMPOP", "2", key(), key(), "LEFT"} }},
		{true, func() []string { return []string{"LMOVE", key(), key(), "LEFT", "RIGHT"} }},
		{true, func() []string { return []string{"RPOPLPUSH", key(), key()} }},
		{true, func() []string { return []string{"LREM", key(), "0", member()} }},
		{true, func() []string { return []string{"LPUSHX", key(), member()} }},
		{true, func() []string { return []string{"LTRIM", key(), "0", strconv.Itoa(rng.IntN(3))} }},
		{true, func() []string { return []string{"LINSERT", key(), "BEFORE", member(), "v"} }},
		{true, func() []string { return []string{"GETEX", key()} }},
		{true, func() []string { return []string{"GETEX", key(), "PERSIST"} }},
		{true, func() []string { return []string{"RENAMENX", key(), key()} }},
		{true, func() []string { return []string{"COPY", key(), key()} }},
		{true, func() []string { return []string{"XTRIM", key(), "MAXLEN", strconv.Itoa(1 + rng.IntN(3))} }},
		{true, func() []string { return []string{"SADD", key(), member()} }},
		{true, func() []string { return []string{"SREM", key(), member(), member()} }},
		{true, func() []string { return []string{"SPOP", key()} }},
		{true, func() []string { return []string{"SMOVE", key(), key(), member()} }},
		{true, func() []string { return []string{"ZADD", key(), strconv.Itoa(1 + rng.IntN(2)), member()} }},
		{true, func() []string { return []string{"ZADD", key(), "NX", "1", member()} }},
		{true, func() []string { return []string{"ZREM", key(), member()} }},
		{true, func() []string { return []string{"ZPOPMIN", key()} }},
		{true, func() []string { return []string{"ZREMRANGEBYSCORE", key(), "5", "9"} }},
		{true, func() []string { return []string{"HDEL", key(), member()} }},
		{true, func() []string { return []string{"HSETNX", key(), member(), "v"} }},
		{true, func() []string { return []string{"SETNX", key(), "v"} }},
		{true, func() []string { return []string{"SET", key(), "v", "NX", "PX", "100"} }},
		{true, func() []string { return []string{"SET", key(), "v", "XX"} }},
		{true, func() []string { return []string{"MSETNX", key(), "v", key(), "w"} }},
		{true, func() []string { return []string{"GETDEL", key()} }},
		{true, func() []string { return []string{"DEL", key(), key()} }},
		{true, func() []string { return []string{"UNLINK", key()} }},
		{true, func() []string { return []string{"EXPIRE", key(), "100"} }},
		{true, func() []string { return []string{"PEXPIREAT", key(), "1", "NX"} }},
		{true, func() []string { return []string{"PERSIST", key()} }},
		{true, func() []string { return []string{"PFADD", key()} }},
		{true, func() []string { return []string{"XDEL", key(), strconv.Itoa(1+rng.IntN(3)) + "-1"} }},
		{true, func() []string { return []string{"LPOP", key(), "notanumber"} }},
		{false, func() []string { return []string{"SET", key(), "v"} }},
		{false, func() []string { return []string{"INCR", key()} }},
		{false, func() []string { return []string{"SETRANGE", key(), "0", ""} }},
		{false, func() []string { return []string{"HINCRBY", key(), member(), "x"} }},
	}
	answered, declined := 0, 0
	for round := range 300 {
		h := &harness{t: t, w: newMemStore(), now: 1_000_000}
		fill(h)
		for range 10 {
			c := commands[rng.IntN(len(commands))]
			args := c.args()
			cmd := &messages.Command{NowMs: h.now + 1000}
			for _, a := range args {
				cmd.Args = append(cmd.Args, []byte(a))
			}
			what := fmt.Sprintf("round %d: %s", round, strings.Join(args, " "))
			before := dump(t, h.w)
			reply, ok := Probe(h.w, cmd)
			if after := dump(t, h.w); after != before {
				t.Fatalf("%s: the probe changed the store", what)
			}
			w := &countingWriter{Writer: copyStore(t, h.w)}
			ev := &EventLog{Want: ^Classes(0)}
			want := ExecEvents(w, cmd, ev)
			switch changes := w.writes > 0 || len(ev.Events) > 0; {
			case !c.probed:
				if ok {
					t.Fatalf("%s: answered, though not a probed command", what)
				}
			case ok && changes:
				t.Fatalf("%s: answered %s, but Exec writes %d keys and fires %v", what, render(reply), w.writes, ev.Events)
			case ok && render(reply) != render(want):
				t.Fatalf("%s: answered %s, Exec's reply is %s", what, render(reply), render(want))
			case !ok && !changes:
				t.Fatalf("%s: declined, though Exec writes nothing (its reply %s)", what, render(want))
			case ok:
				answered++
			default:
				declined++
			}
			// The state moves on as the command leaves it.
			h.do(args...)
		}
	}
	if answered < 100 || declined < 100 {
		t.Fatalf("%d answered and %d declined: the states and commands do not exercise both", answered, declined)
	}
}

// Probe declines what it does not run, even where it would write
// nothing: commands outside its list (an INCR refused, a SETRANGE of
// nothing), a SET without NX or XX, reads, the engine's internal
// commands, an unknown command.
func TestProbeDeclinesTheOthers(t *testing.T) {
	h := &harness{t: t, w: newMemStore(), now: 1}
	h.is("+OK", "SET", "k", "abc")
	s := h.w
	for _, args := range [][]string{
		{"SET", "k", "v"}, {"SET", "k", "v", "EX", "10"}, {"INCR", "k"}, {"SETRANGE", "missing", "0", ""}, {"HINCRBY", "h", "f", "x"},
		{"HSET", "h", "f", "v"},
		{"GET", "k"}, {"EXISTS", "k"}, {ExecName}, {ExpireDueName, "10"}, {"NOSUCH", "k"}, {},
	} {
		cmd := &messages.Command{NowMs: 1}
		for _, a := range args {
			cmd.Args = append(cmd.Args, []byte(a))
		}
		if r, ok := Probe(s, cmd); ok {
			t.Errorf("%q: answered %s", args, render(r))
		}
	}
}
