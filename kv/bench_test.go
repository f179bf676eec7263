package kv

import (
	"fmt"
	"testing"

	"github.com/coppice-kv/coppice/messages"
)

// go test -run '^$' -bench . -benchmem ./kv/

func benchStores(b *testing.B, fn func(b *testing.B, w Writer)) {
	b.Run("mem", func(b *testing.B) { fn(b, newMemStore()) })
	benchPebble(b, fn)
}

// benchPebble is benchStores without the in-memory store, whose scans
// cost a pass over every key it holds.
func benchPebble(b *testing.B, fn func(b *testing.B, w Writer)) {
	b.Run("pebble", func(b *testing.B) {
		fn(b, newPebbleStore(b))
	})
}

func BenchmarkSet(b *testing.B) {
	benchStores(b, func(b *testing.B, w Writer) {
		cmd := &messages.Command{Args: [][]byte{[]byte("SET"), []byte("key:000042"), make([]byte, 100)}, NowMs: 1}
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if r := Exec(w, cmd); r != replyOK {
				b.Fatal(r)
			}
		}
	})
}

func BenchmarkGet(b *testing.B) {
	benchStores(b, func(b *testing.B, w Writer) {
		Exec(w, &messages.Command{Args: [][]byte{[]byte("SET"), []byte("key:000042"), make([]byte, 100)}, NowMs: 1})
		args := [][]byte{[]byte("GET"), []byte("key:000042")}
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if r := Read(w, args, 1); len(r.GetBulk()) != 100 {
				b.Fatal(r)
			}
		}
	})
}

func BenchmarkIncr(b *testing.B) {
	benchStores(b, func(b *testing.B, w Writer) {
		cmd := &messages.Command{Args: [][]byte{[]byte("INCR"), []byte("counter")}, NowMs: 1}
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			Exec(w, cmd)
		}
	})
}

func BenchmarkHSet(b *testing.B) {
	benchStores(b, func(b *testing.B, w Writer) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			Exec(w, &messages.Command{Args: [][]byte{[]byte("HSET"), []byte("h"), []byte(fmt.Sprint("f", i%1000)), []byte("v")}, NowMs: 1})
		}
	})
}

// benchRead fills each store with the setup commands, then reads args
// again and again, checking the reply's length each time.
func benchRead(b *testing.B, setup [][]string, args []string, want int) {
	benchReadIn(b, benchStores, setup, args, want)
}

func benchReadIn(b *testing.B, stores func(*testing.B, func(*testing.B, Writer)), setup [][]string, args []string, want int) {
	stores(b, func(b *testing.B, w Writer) {
		setUp(b, w, setup)
		read := make([][]byte, len(args))
		for i, a := range args {
			read[i] = []byte(a)
		}
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			r := Read(w, read, 1)
			if got := len(r.GetArray().GetItems()) + len(r.GetMap().GetItems()) + len(r.GetSet().GetItems()) + len(r.GetPairs().GetItems()); got != want {
				b.Fatalf("%d items, want %d", got, want)
			}
		}
	})
}

// elements makes n arguments: prefix0, prefix1, ... each padded to 64
// bytes, after the first ones given.
func elements(n int, prefix string, first ...string) []string {
	out := first
	for i := range n {
		out = append(out, fmt.Sprintf("%s%d:%0*d", prefix, i, 62-len(prefix), 0))
	}
	return out
}

func BenchmarkLRange600(b *testing.B) {
	benchRead(b, [][]string{elements(600, "e", "RPUSH", "l")}, []string{"LRANGE", "l", "0", "599"}, 600)
}

func BenchmarkHGetAll100(b *testing.B) {
	var set []string
	for _, f := range elements(100, "f") {
		set = append(set, f, "v"+f)
	}
	benchRead(b, [][]string{append([]string{"HSET", "h"}, set...)}, []string{"HGETALL", "h"}, 200)
}

func BenchmarkSMembers100(b *testing.B) {
	benchRead(b, [][]string{elements(100, "m", "SADD", "s")}, []string{"SMEMBERS", "s"}, 100)
}

func BenchmarkZRangeWithScores100(b *testing.B) {
	var add []string
	for i, m := range elements(100, "m") {
		add = append(add, fmt.Sprint(i), m)
	}
	benchRead(b, [][]string{append([]string{"ZADD", "z"}, add...)}, []string{"ZRANGE", "z", "0", "-1", "WITHSCORES"}, 200)
}

func BenchmarkMGet10(b *testing.B) {
	keys := elements(10, "k")
	var setup [][]string
	for _, k := range keys {
		setup = append(setup, []string{"SET", k, "v" + k})
	}
	benchRead(b, setup, append([]string{"MGET"}, keys...), 10)
}

// The top ten of a sorted set of 10000, by rank and by score, and the
// rank from the top of one of them.
func BenchmarkZRevRangeTop10(b *testing.B) {
	var add []string
	members := elements(10000, "m")
	for i, m := range members {
		add = append(add, fmt.Sprint(i), m)
	}
	setup := [][]string{append([]string{"ZADD", "z"}, add...)}
	b.Run("rank", func(b *testing.B) {
		benchRead(b, setup, []string{"ZREVRANGE", "z", "0", "9", "WITHSCORES"}, 20)
	})
	b.Run("score", func(b *testing.B) {
		benchRead(b, setup, []string{"ZREVRANGEBYSCORE", "z", "+inf", "-inf", "LIMIT", "0", "10"}, 10)
	})
	b.Run("revrank", func(b *testing.B) {
		benchRead(b, setup, []string{"ZREVRANK", "z", members[9995]}, 0)
	})
}

// A sorted set of 100000 (scores 0 to 99999): a rank, a page, a count
// and a LIMIT offset in its middle, and writes that move or add a member.
func BenchmarkZSetMiddle(b *testing.B) {
	const n = 100000
	members := elements(n, "m")
	var setup [][]string
	for i := 0; i < n; i += 1000 {
		add := []string{"ZADD", "z"}
		for j := i; j < i+1000; j++ {
			add = append(add, fmt.Sprint(j), members[j])
		}
		setup = append(setup, add)
	}
	read := func(want int, args ...string) func(b *testing.B) {
		return func(b *testing.B) { benchReadIn(b, benchPebble, setup, args, want) }
	}
	b.Run("zrank", read(0, "ZRANK", "z", members[n/2]))
	b.Run("zrange", read(10, "ZRANGE", "z", "50000", "50009"))
	b.Run("zcount", read(0, "ZCOUNT", "z", "1000", "99000"))
	b.Run("offset", read(10, "ZRANGEBYSCORE", "z", "-inf", "+inf", "LIMIT", "50000", "10"))
	b.Run("zrandmember", read(5, "ZRANDMEMBER", "z", "5"))
	write := func(b *testing.B, args func(i int) []string) {
		benchPebble(b, func(b *testing.B, w Writer) {
			setUp(b, w, setup)
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if r := Exec(w, command(args(i))); r.GetError() != "" {
					b.Fatal(r)
				}
			}
		})
	}
	b.Run("zincrby", func(b *testing.B) {
		write(b, func(i int) []string { return []string{"ZINCRBY", "z", "0.5", members[(i*7919)%n]} })
	})
	b.Run("zadd", func(b *testing.B) {
		write(b, func(i int) []string { return []string{"ZADD", "z", fmt.Sprint(i % n), fmt.Sprint("new", i)} })
	})
}

// setUp runs the setup commands on w, each in a batch of its own on
// Pebble, as a shard applies them, and starts the benchmark's clock.
func setUp(b *testing.B, w Writer, setup [][]string) {
	for _, c := range setup {
		if r := Exec(w, command(c)); r.GetError() != "" {
			b.Fatal(r)
		}
		if ps, ok := w.(*pebbleStore); ok {
			ps.commit(b)
		}
	}
	b.ResetTimer()
}

func command(args []string) *messages.Command {
	cmd := &messages.Command{NowMs: 1}
	for _, a := range args {
		cmd.Args = append(cmd.Args, []byte(a))
	}
	return cmd
}
