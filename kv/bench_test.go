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
