package kv

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestCRC64IsRedis(t *testing.T) {
	if got := crc64Redis([]byte("123456789")); got != 0xe9c6d914c4b8d9ca {
		t.Fatalf("crc64(123456789) = %#x, want Redis's 0xe9c6d914c4b8d9ca", got)
	}
}

// dumpCases make values of every type in every encoding Redis 7.0 gives
// them: small (listpack, intset), big (hashtable, skiplist, quicklists of
// several nodes), integers of every width, long compressible strings
// (LZF), big elements (plain quicklist nodes).
func dumpCases(r *rand.Rand) [][][]string {
	word := func() string {
		switch r.IntN(6) {
		case 0:
			return strconv.FormatInt(r.Int64N(200)-100, 10)
		case 1:
			return strconv.FormatInt(r.Int64()-r.Int64(), 10)
		case 2:
			return strings.Repeat("ab", 20+r.IntN(200)) // LZF
		case 3:
			return strconv.FormatInt(int64(r.IntN(1<<24))-1<<23, 10)
		}
		return fmt.Sprintf("w%d", r.IntN(100000))
	}
	var cases [][][]string
	for i, n := range []int{1, 3, 20, 200, 700} {
		k := fmt.Sprintf("k%d", i)
		str := [][]string{{"SET", k + "s", word()}}
		hash := [][]string{{"DEL", k + "h"}}
		set := [][]string{{"DEL", k + "set"}}
		intset := [][]string{{"DEL", k + "is"}}
		zset := [][]string{{"DEL", k + "z"}}
		list := [][]string{{"DEL", k + "l"}}
		for j := range n {
			hash = append(hash, []string{"HSET", k + "h", fmt.Sprint("f", j), word()})
			set = append(set, []string{"SADD", k + "set", word()})
			intset = append(intset, []string{"SADD", k + "is", strconv.FormatInt(r.Int64N(1<<40)-1<<39, 10)})
			score := strconv.FormatFloat(r.NormFloat64()*1000, 'g', -1, 64)
			if j == 0 {
				score = "-inf"
			}
			zset = append(zset, []string{"ZADD", k + "z", score, word()})
			list = append(list, []string{"RPUSH", k + "l", word()})
		}
		list = append(list, []string{"RPUSH", k + "l", strings.Repeat("x", 9000)}) // a plain node
		cases = append(cases, str, hash, set, intset, zset, list)
	}
	cases = append(cases, [][]string{{"SET", "int", "12345"}}, [][]string{{"SET", "neg", "-7"}}, [][]string{{"SET", "empty", ""}})
	return append(cases, streamCases(r, word)...)
}

// streamCases make streams: entries sharing their node's first fields and
// not, several nodes, deleted entries, consumer groups with pending
// entries, consumers owning none, a read count Redis does not know, and a
// stream whose every entry was deleted.
func streamCases(r *rand.Rand, word func() string) [][][]string {
	var cases [][][]string
	for i, n := range []int{1, 30, 250} {
		k := fmt.Sprintf("x%d", i)
		c := [][]string{{"DEL", k}}
		for j := range n {
			id := fmt.Sprintf("%d-%d", 1000+j/3, j%3)
			if r.IntN(3) == 0 {
				c = append(c, []string{"XADD", k, id, "a", word(), "other", word()})
			} else {
				c = append(c, []string{"XADD", k, id, "a", word(), "b", word()})
			}
		}
		c = append(c,
			[]string{"XGROUP", "CREATE", k, "g1", "0"},
			[]string{"XREADGROUP", "GROUP", "g1", "alice", "COUNT", "7", "STREAMS", k, ">"},
			[]string{"XREADGROUP", "GROUP", "g1", "bob", "COUNT", "3", "STREAMS", k, ">"},
			[]string{"XACK", k, "g1", "1000-1", "1001-0"},
			[]string{"XGROUP", "CREATECONSUMER", k, "g1", "carol"},
			[]string{"XGROUP", "CREATE", k, "g2", "$"},
			[]string{"XGROUP", "CREATE", k, "g3", "1000-2"},
		)
		if n > 3 {
			c = append(c, []string{"XDEL", k, "1000-2", "1001-1"})
		}
		cases = append(cases, c)
	}
	cases = append(cases, [][]string{
		{"DEL", "xe"}, {"XADD", "xe", "5-1", "f", "v"}, {"XGROUP", "CREATE", "xe", "g", "0"},
		{"XREADGROUP", "GROUP", "g", "c", "STREAMS", "xe", ">"}, {"XDEL", "xe", "5-1"},
	})
	return cases
}

// Every value redis-server 7.0 DUMPs, RESTORE takes here and reads back
// alike; every value the engine DUMPs, Redis RESTOREs and reads back
// alike; and the engine's own round trip keeps the value and its TTL.
func TestDumpRestoreWithRedis(t *testing.T) {
	rc := startRedis(t)
	ps := newPebbleStore(t)
	rc.do(t, bs("FLUSHALL"))
	now := time.Now().UnixMilli()
	r := rand.New(rand.NewPCG(7, 9))
	for _, c := range dumpCases(r) {
		for _, cmd := range c {
			rc.do(t, bs(cmd...))
		}
		key := c[0][1]
		payload := rc.do(t, bs("DUMP", key))
		if payload.null {
			t.Fatalf("Redis has no %s", key)
		}
		if got := engineDo(t, ps, bs("RESTORE", key, "0", string(payload.str), "REPLACE"), now); render(got) != "+OK" {
			t.Fatalf("RESTORE of Redis's %s (%d bytes): %s", key, len(payload.str), render(got))
		}
		want := readBack(t, func(args ...string) string { return rc.do(t, bs(args...)).wire() }, key)
		got := readBack(t, func(args ...string) string { return toResp2(engineDo(t, ps, bs(args...), now)).wire() }, key)
		if got != want {
			t.Fatalf("%s restored from Redis's DUMP:\n got  %.300q\n want %.300q", key, got, want)
		}
		// And back: the engine's DUMP into Redis, under another name.
		ours := toResp2(engineDo(t, ps, bs("DUMP", key), now))
		if r := rc.do(t, bs("RESTORE", key+":back", "0", string(ours.str))); r.wire() != "+OK\r\n" {
			t.Fatalf("Redis refuses the engine's DUMP of %s: %q", key, r.wire())
		}
		if back := readBack(t, func(args ...string) string { return rc.do(t, bs(args...)).wire() }, key+":back"); back != want {
			t.Fatalf("%s restored by Redis from the engine's DUMP:\n got  %.300q\n want %.300q", key, back, want)
		}
	}
}

// readBack is a key's whole value, in an order that does not depend on
// the encoding.
func readBack(t *testing.T, do func(args ...string) string, key string) string {
	t.Helper()
	typ := do("TYPE", key)
	switch {
	case strings.Contains(typ, "string"):
		return typ + do("GET", key)
	case strings.Contains(typ, "hash"):
		return typ + sortedLines(do("HGETALL", key))
	case strings.Contains(typ, "set") && !strings.Contains(typ, "zset"):
		return typ + sortedLines(do("SMEMBERS", key))
	case strings.Contains(typ, "zset"):
		return typ + do("ZRANGE", key, "0", "-1", "WITHSCORES")
	case strings.Contains(typ, "list"):
		return typ + do("LRANGE", key, "0", "-1")
	case strings.Contains(typ, "stream"):
		// What does not depend on the time it is read at.
		out := typ + do("XLEN", key) + do("XRANGE", key, "-", "+") + do("XINFO", "GROUPS", key)
		for _, g := range []string{"g", "g1", "g2", "g3"} {
			out += do("XPENDING", key, g)
		}
		return strings.ReplaceAll(out, "'"+key+"'", "'<key>'") // in NOGROUP's error
	}
	return typ
}

func sortedLines(s string) string {
	l := strings.Split(s, "\r\n")
	slices.Sort(l)
	return strings.Join(l, "\n")
}

// RESTORE's refusals and options answer as Redis's, for the same payload
// (Redis's own DUMP), and change nothing when refused; DUMP of a missing
// key is nil; a TTL restores as Redis's does.
func TestRestoreAnswersAsRedis(t *testing.T) {
	rc := startRedis(t)
	ps := newPebbleStore(t)
	rc.do(t, bs("FLUSHALL"))
	now := time.Now().UnixMilli()
	both := func(args ...string) {
		t.Helper()
		want := rc.do(t, bs(args...)).wire()
		if got := toResp2(engineDo(t, ps, bs(args...), now)).wire(); got != want {
			t.Fatalf("%.80q:\n  redis:  %q\n  engine: %q", args, want, got)
		}
	}
	rc.do(t, bs("RPUSH", "src", "a", "b", "1", "-2"))
	p := string(rc.do(t, bs("DUMP", "src")).str)
	corrupt := []byte(p)
	corrupt[3] ^= 1
	newer := []byte(p)
	newer[len(newer)-10] = 11 // RDB 11: a later Redis's
	truncated := p[:len(p)-11] + p[len(p)-10:]
	for _, args := range [][]string{
		{"SET", "busy", "x"}, {"RESTORE", "busy", "0", p}, {"GET", "busy"},
		{"RESTORE", "busy", "0", p, "REPLACE"}, {"LRANGE", "busy", "0", "-1"}, {"TYPE", "busy"},
		{"RESTORE", "k", "x", p}, {"RESTORE", "k", "-1", p}, {"RESTORE", "k", "0", "short"},
		{"RESTORE", "k", "0", string(corrupt)}, {"RESTORE", "k", "0", string(newer)}, {"RESTORE", "k", "0", truncated},
		{"RESTORE", "k", "0", p, "BOGUS"}, {"RESTORE", "k", "0", p, "IDLETIME", "-1"}, {"RESTORE", "k", "0", p, "IDLETIME", "x"},
		{"RESTORE", "k", "0", p, "FREQ", "256"}, {"RESTORE", "k", "0", p, "FREQ", "-1"}, {"RESTORE", "k", "0", p, "IDLETIME", "5", "FREQ", "5"},
		{"RESTORE", "k", "0", p, "FREQ", "5", "IDLETIME", "5"}, {"RESTORE", "k", "0", p, "IDLETIME"},
		{"EXISTS", "k"},
		{"RESTORE", "k", "0", p, "IDLETIME", "100"}, {"LRANGE", "k", "0", "-1"}, {"TTL", "k"},
		{"RESTORE", "k2", "1", p, "ABSTTL"}, {"EXISTS", "k2"},
		{"RESTORE", "k", "1", p, "ABSTTL", "REPLACE"}, {"EXISTS", "k"},
		{"RESTORE", "k3", "100000", p, "FREQ", "0"}, {"PTTL", "k3"},
		{"DUMP", "nope"}, {"RESTORE"}, {"DUMP"},
	} {
		if args[0] == "PTTL" {
			if got := render(engineDo(t, ps, bs(args...), now)); got != ":100000" {
				t.Fatalf("PTTL after RESTORE k3 100000: %s", got)
			}
			continue
		}
		both(args...)
	}
}

// A payload cut, flipped or made up is refused, never a crash and never
// a big allocation from a length alone.
func FuzzDecodeDump(f *testing.F) {
	for _, v := range []dumpValue{
		{typ: typeString, str: []byte("hello")},
		{typ: typeList, elems: [][]byte{[]byte("a"), []byte("12"), make([]byte, 300)}},
		{typ: typeHash, elems: [][]byte{[]byte("f"), []byte("v")}},
		{typ: typeZSet, elems: [][]byte{[]byte("m")}, scores: []float64{1.5}},
		{typ: typeSet, elems: [][]byte{[]byte("m"), []byte("n")}},
		{typ: typeStream, stream: &dumpStream{entries: []streamEntry{
			{id: streamID{5, 1}, fields: [][]byte{[]byte("f"), []byte("12")}},
			{id: streamID{6, 0}, fields: [][]byte{[]byte("f"), []byte("v")}},
			{id: streamID{6, 1}, fields: [][]byte{[]byte("g"), []byte("v")}}},
			last: streamID{7, 0}, added: 4, groups: []dumpGroup{{name: []byte("g"), last: streamID{6, 0}, read: 2,
				pel:       []pending{{id: streamID{5, 1}, consumer: []byte("c"), time: 99, count: 2}},
				consumers: []dumpConsumer{{name: []byte("c"), seen: 98, owned: []streamID{{5, 1}}}, {name: []byte("d")}}}}}},
	} {
		f.Add(encodeDump(v))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		body, ok := checkDump(p)
		if !ok {
			body = p // the value's reader, without the footer's protection
		}
		decodeDump(body)
	})
}

// Ziplists (Redis before 7.0 dumped small lists, hashes and sorted sets
// as them) read as Redis reads them, every entry encoding.
func TestZiplistEntries(t *testing.T) {
	entry := func(prev int, enc ...byte) []byte { return append([]byte{byte(prev)}, enc...) }
	var body []byte
	for _, e := range [][]byte{
		entry(0, 0x03, 'a', 'b', 'c'),          // 6-bit string
		entry(5, 0xf1),                         // 0 (4-bit immediate)
		entry(2, 0xfd),                         // 12
		entry(2, 0xfe, 0x80),                   // int8 -128
		entry(3, 0xc0, 0x00, 0x80),             // int16 -32768
		entry(4, 0xf0, 0xff, 0xff, 0x7f),       // int24 8388607
		entry(5, 0xd0, 0x01, 0x00, 0x00, 0x80), // int32
		entry(6, 0xe0, 1, 0, 0, 0, 0, 0, 0, 0), // int64 1
		entry(10, 0x40, 0x02, 'x', 'y'),        // 14-bit string
	} {
		body = append(body, e...)
	}
	zl := make([]byte, 10)
	zl = append(zl, body...)
	zl = append(zl, 0xff)
	binary.LittleEndian.PutUint32(zl, uint32(len(zl)))
	got, err := ziplistElems(zl)
	want := []string{"abc", "0", "12", "-128", "-32768", "8388607", "-2147483647", "1", "xy"}
	if err != nil || len(got) != len(want) {
		t.Fatalf("%q, %v", got, err)
	}
	for i := range want {
		if string(got[i]) != want[i] {
			t.Fatalf("entry %d: %q, want %q", i, got[i], want[i])
		}
	}
	if _, err := ziplistElems(zl[:len(zl)-3]); err == nil {
		t.Fatal("a cut ziplist read")
	}
}

// A stream's DUMP restored here is the same stream, times too: every
// entry, group, pending entry (delivery time and count) and consumer
// (seen time), as XRANGE, XINFO and XPENDING show them at one time.
func TestStreamDumpRoundTrip(t *testing.T) {
	ps := newPebbleStore(t)
	now := int64(1_700_000_000_000)
	r := rand.New(rand.NewPCG(3, 4))
	word := func() string { return fmt.Sprintf("w%d", r.IntN(1000)) }
	for _, c := range streamCases(r, word) {
		for i, cmd := range c {
			engineDo(t, ps, bs(cmd...), now+int64(i))
		}
		key := c[0][1]
		p := toResp2(engineDo(t, ps, bs("DUMP", key), now))
		if got := render(engineDo(t, ps, bs("RESTORE", key+":copy", "0", string(p.str)), now)); got != "+OK" {
			t.Fatalf("RESTORE of the engine's DUMP of %s: %s", key, got)
		}
		read := func(k string) string {
			var out []string
			for _, args := range [][]string{{"XRANGE", k, "-", "+"}, {"XINFO", "STREAM", k}, {"XINFO", "GROUPS", k},
				{"XINFO", "CONSUMERS", k, "g1"}, {"XINFO", "CONSUMERS", k, "g"},
				{"XPENDING", k, "g1", "-", "+", "100"}, {"XPENDING", k, "g", "-", "+", "100"}} {
				out = append(out, render(engineDo(t, ps, bs(args...), now+1000)))
			}
			return strings.ReplaceAll(strings.Join(out, "\n"), k, "<key>")
		}
		got, want := read(key+":copy"), read(key)
		if got != want {
			t.Fatalf("%s restored:\n got  %.600s\n want %.600s", key, got, want)
		}
		if !strings.Contains(want, "idle") || (key != "xe" && !strings.Contains(want, "alice")) {
			t.Fatalf("%s shows no consumer: %.600s", key, want)
		}
	}
}
