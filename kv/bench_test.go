package kv

import (
	"fmt"
	"testing"

	"github.com/coppice-kv/coppice/messages"
)

// go test -run '^$' -bench . -benchmem ./kv/

func benchStores(b *testing.B, fn func(b *testing.B, w Writer)) {
	b.Run("mem", func(b *testing.B) { fn(b, newMemStore()) })
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

// benchRead fills the store with the setup commands, then reads args
// again and again, checking the reply's length each time.
func benchRead(b *testing.B, setup [][]string, args []string, want int) {
	benchStores(b, func(b *testing.B, w Writer) {
		for _, c := range setup {
			cmd := &messages.Command{NowMs: 1}
			for _, a := range c {
				cmd.Args = append(cmd.Args, []byte(a))
			}
			if r := Exec(w, cmd); r.GetError() != "" {
				b.Fatal(r)
			}
		}
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
