package kv

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Automatic IDs come from the command's time (the Raft log's, the same on
// every replica), and never go back when it does; "ms-*" numbers within
// a millisecond. (Replies are Redis's: testdata/diff/streams.txt.)
func TestStreamIDsFromTheCommandsTime(t *testing.T) {
	stores(t, func(t *testing.T, h *harness) {
		h.now = 1000
		h.is(`"1000-0"`, "XADD", "s", "*", "f", "1")
		h.is(`"1000-1"`, "XADD", "s", "*", "f", "2")
		h.now = 999 // a clock that went back
		h.is(`"1000-2"`, "XADD", "s", "*", "f", "3")
		h.now = 2000
		h.is(`"2000-0"`, "XADD", "s", "*", "f", "4")
		h.is(`"2000-1"`, "XADD", "s", "2000-*", "f", "5")
		h.is(`"3000-0"`, "XADD", "s", "3000-*", "f", "6")
		h.is(`"0-1"`, "XADD", "t", "0-*", "f", "1")
		h.is(`"18446744073709551615-18446744073709551615"`, "XADD", "u", "18446744073709551615-18446744073709551615", "f", "1")
		h.fails("ERR The stream has exhausted the last possible ID, unable to add more items", "XADD", "u", "*", "f", "1")
		h.is(`[["1000-2" ["f" "3"]]]`, "XRANGE", "s", "1000-2", "1000")
		h.is(":6", "XLEN", "s")
	})
}

// A stream past the range-deletion threshold: ranges both ways (a reverse
// range with COUNT reads from the end), trimming, XREAD after an ID, and
// every way of removing it leaves nothing behind.
func TestStreamsLeaveNothingBehind(t *testing.T) {
	stores(t, func(t *testing.T, h *harness) {
		n := 3 * smallHash
		var ids []string
		for i := 1; i <= n; i++ {
			id := fmt.Sprintf("%d-%d", i/4, i%4)
			ids = append(ids, id)
			h.is(strconv.Quote(id), "XADD", "s", id, "i", strconv.Itoa(i))
		}
		entry := func(i int) string { return fmt.Sprintf(`[%q ["i" "%d"]]`, ids[i], i+1) }
		var all, last3 []string
		for i := range ids {
			all = append(all, entry(i))
		}
		for i := n - 1; i >= n-3; i-- {
			last3 = append(last3, entry(i))
		}
		h.is("["+strings.Join(all, " ")+"]", "XRANGE", "s", "-", "+")
		h.is("["+strings.Join(last3, " ")+"]", "XREVRANGE", "s", "+", "-", "COUNT", "3")
		h.is(`k{"s" [`+entry(n-1)+`]}`, "XREAD", "STREAMS", "s", ids[n-2])
		h.is("nil", "XREAD", "STREAMS", "s", "$")
		if got := render(Read(h.w, [][]byte{[]byte(StreamLastIDsName), []byte("s"), []byte("nope")}, h.now)); got != `["`+ids[n-1]+`" "0-0"]` {
			t.Errorf("the last IDs: %s", got)
		}
		h.is(":"+strconv.Itoa(smallHash+1), "XTRIM", "s", "MAXLEN", strconv.Itoa(n-smallHash-1))
		h.is("["+strings.Join(all[smallHash+1:smallHash+3], " ")+"]", "XRANGE", "s", "-", "+", "COUNT", "2")
		h.is(":1", "COPY", "s", "s2")
		h.is("+OK", "RENAME", "s2", "s3")
		h.is(":"+strconv.Itoa(n-smallHash-1), "XLEN", "s3")
		h.is("+stream", "TYPE", "s3")
		h.is(`["0" ["s" "s3"]]`, "SCAN", "0", "TYPE", "stream")
		h.is(":1", "DEL", "s3")
		h.is("+OK", "SET", "s", "a string now") // over a stream
		h.is(":1", "DEL", "s")
		if d := dump(t, h.w); d != "" {
			t.Fatalf("left behind: %s", d)
		}
	})
}

// Refused input changes nothing.
func TestStreamRefusals(t *testing.T) {
	stores(t, func(t *testing.T, h *harness) {
		h.is(`"5-0"`, "XADD", "s", "5-0", "f", "v")
		h.fails("ERR The ID specified in XADD is equal or smaller than the target stream top item", "XADD", "s", "5-0", "f", "v")
		h.fails("ERR Invalid stream ID specified as stream command argument", "XADD", "s", "MAXLEN", "1", "x-1", "f", "v")
		h.fails("ERR Invalid stream ID specified as stream command argument", "XDEL", "s", "5-0", "bad")
		h.fails("ERR syntax error, MAXLEN and MINID options at the same time are not compatible", "XTRIM", "s", "MAXLEN", "0", "MINID", "9")
		h.fails("ERR timeout is negative", "XREAD", "BLOCK", "-1", "STREAMS", "s", "0")
		h.fails("ERR wrong number of arguments for 'xadd' command", "XADD", "s", "6-0", "f")
	})
}

// Consumer groups' times are the commands' (the Raft log's): idle times,
// XCLAIM's and XAUTOCLAIM's minimum idle time, delivery counts. (Replies
// without times are Redis's: testdata/diff/streamgroups.txt.)
func TestStreamGroupTimes(t *testing.T) {
	stores(t, func(t *testing.T, h *harness) {
		h.now = 10_000
		for i := 1; i <= 5; i++ {
			h.do("XADD", "s", fmt.Sprintf("%d-0", i), "f", strconv.Itoa(i))
		}
		h.is("+OK", "XGROUP", "CREATE", "s", "g", "0")
		h.do("XREADGROUP", "GROUP", "g", "alice", "COUNT", "2", "STREAMS", "s", ">")
		h.now = 10_500
		h.do("XREADGROUP", "GROUP", "g", "bob", "STREAMS", "s", ">")
		h.now = 11_000
		h.is(`[["1-0" "alice" :1000 :1] ["2-0" "alice" :1000 :1] ["3-0" "bob" :500 :1] ["4-0" "bob" :500 :1] ["5-0" "bob" :500 :1]]`,
			"XPENDING", "s", "g", "-", "+", "10")
		h.is(`[["1-0" "alice" :1000 :1] ["2-0" "alice" :1000 :1]]`, "XPENDING", "s", "g", "IDLE", "600", "-", "+", "10")
		h.is(`[["3-0" "bob" :500 :1]]`, "XPENDING", "s", "g", "-", "+", "1", "bob")
		h.is(`[{"name" "alice" "pending" :2 "idle" :1000} {"name" "bob" "pending" :3 "idle" :500}]`, "XINFO", "CONSUMERS", "s", "g")
		// Alice reads her history again: counted, and not idle now.
		h.is(`k{"s" [["1-0" ["f" "1"]] ["2-0" ["f" "2"]]]}`, "XREADGROUP", "GROUP", "g", "alice", "STREAMS", "s", "0")
		h.now = 11_200
		// Only bob's entries are idle for 600 ms.
		h.is(`["3-0" "4-0" "5-0"]`, "XCLAIM", "s", "g", "carol", "600", "1-0", "3-0", "4-0", "5-0", "JUSTID")
		h.is(`[["1-0" "alice" :200 :2] ["2-0" "alice" :200 :2] ["3-0" "carol" :0 :1]]`, "XPENDING", "s", "g", "-", "+", "3")
		h.is(`[["3-0" ["f" "3"]]]`, "XCLAIM", "s", "g", "dave", "0", "3-0", "IDLE", "5000", "RETRYCOUNT", "9")
		h.is(`[["3-0" "dave" :5000 :9]]`, "XPENDING", "s", "g", "3", "3", "1")
		h.now = 12_000
		// XAUTOCLAIM walks from a cursor, claims what is idle enough.
		h.is(`["0-0" [["1-0" ["f" "1"]] ["2-0" ["f" "2"]] ["3-0" ["f" "3"]]] []]`, "XAUTOCLAIM", "s", "g", "erin", "900", "0")
		h.is(`[["1-0" "erin" :0 :3] ["2-0" "erin" :0 :3] ["3-0" "erin" :0 :10] ["4-0" "carol" :800 :1] ["5-0" "carol" :800 :1]]`,
			"XPENDING", "s", "g", "-", "+", "10")
		h.is(`["5-0" ["4-0"] []]`, "XAUTOCLAIM", "s", "g", "frank", "0", "4", "COUNT", "1", "JUSTID")
		// A FORCE claim of an entry no one was given counts one delivery,
		// then the claim's.
		h.do("XADD", "s", "6-0", "f", "6")
		h.is(`[["6-0" ["f" "6"]]]`, "XCLAIM", "s", "g", "gina", "0", "6-0", "FORCE")
		h.is(`[["6-0" "gina" :0 :2]]`, "XPENDING", "s", "g", "6", "6", "1")
		// Every way of removing a group, or the stream, leaves nothing.
		h.is(":1", "XGROUP", "DELCONSUMER", "s", "g", "gina")
		h.is(":1", "XGROUP", "DESTROY", "s", "g")
		h.is("+OK", "XGROUP", "CREATE", "s", "g2", "0")
		h.do("XREADGROUP", "GROUP", "g2", "x", "STREAMS", "s", ">")
		h.is(":1", "DEL", "s")
		if d := dump(t, h.w); d != "" {
			t.Fatalf("left behind: %s", d)
		}
	})
}

// XINFO STREAM FULL gives what Redis 7.0 gives (the same commands run on
// both), but for Redis's radix tree sizes, left out, and the consumers'
// seen times, which are each server's clock (delivery times are set with
// XCLAIM TIME, so they are compared).
func TestXinfoStreamFull(t *testing.T) {
	var cmds [][]string
	for i := 1; i <= 13; i++ {
		cmds = append(cmds, []string{"XADD", "s", fmt.Sprintf("%d-1", i), "f", strconv.Itoa(i)})
	}
	cmds = append(cmds, [][]string{
		{"XDEL", "s", "2-1"},
		{"XGROUP", "CREATE", "s", "g1", "0"},
		{"XGROUP", "CREATE", "s", "g2", "$"},
		{"XREADGROUP", "GROUP", "g1", "alice", "COUNT", "4", "STREAMS", "s", ">"},
		{"XREADGROUP", "GROUP", "g1", "bob", "COUNT", "12", "STREAMS", "s", ">"},
		{"XGROUP", "CREATECONSUMER", "s", "g1", "carol"},
		{"XACK", "s", "g1", "5-1"},
	}...)
	for i, c := range []string{"alice", "alice", "alice", "bob", "bob", "bob", "bob", "bob", "bob", "bob", "bob"} {
		id := []string{"1-1", "3-1", "4-1", "6-1", "7-1", "8-1", "9-1", "10-1", "11-1", "12-1", "13-1"}[i]
		cmds = append(cmds, []string{"XCLAIM", "s", "g1", c, "0", id, "TIME", strconv.Itoa(1000 + i), "RETRYCOUNT", strconv.Itoa(i), "JUSTID"})
	}
	var full [][]string
	for _, count := range [][]string{nil, {"COUNT", "0"}, {"COUNT", "2"}, {"COUNT", "-3"}, {"count", "100"}} {
		full = append(full, append([]string{"XINFO", "STREAM", "s", "FULL"}, count...))
	}
	rc := startRedis(t)
	ps := newPebbleStore(t)
	rc.do(t, [][]byte{[]byte("FLUSHALL")})
	for _, c := range append(cmds, full...) {
		args := make([][]byte, len(c))
		for j, s := range c {
			args[j] = []byte(s)
		}
		want := rc.do(t, args)
		got := toResp2(engineDo(t, ps, args, time.Now().UnixMilli()))
		if c[0] == "XINFO" {
			want, got = withoutClocks(want, true), withoutClocks(got, false)
			if len(want.items) != 14 || string(want.items[12].str) != "groups" || len(want.items[13].items) != 2 {
				t.Fatalf("%q: redis answered %q", c, want.wire())
			}
		}
		if got.wire() != want.wire() {
			t.Fatalf("%q:\n  redis:  %.2000q\n  engine: %.2000q", c, want.wire(), got.wire())
		}
	}
}

// withoutClocks is r with every consumer's seen-time 0 and, from Redis's
// (radix true), the radix tree's sizes taken out.
func withoutClocks(r resp, radix bool) resp {
	if r.kind != '*' {
		return r
	}
	var items []resp
	for i := 0; i < len(r.items); i++ {
		it := r.items[i]
		name := string(it.str)
		if it.kind == '$' && i+1 < len(r.items) {
			if radix && (name == "radix-tree-keys" || name == "radix-tree-nodes") {
				i++
				continue
			}
			if name == "seen-time" {
				items = append(items, it, resp{kind: ':'})
				i++
				continue
			}
		}
		items = append(items, withoutClocks(it, radix))
	}
	r.items = items
	return r
}
