package storage

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// filledCache is a cache of 100000 entries of 64 bytes (room for all),
// and their keys in a random order, as a node's clients use them.
func filledCache() (*recordCache, []string) {
	c := newRecordCache(64 << 20)
	keys := make([]string, 100000)
	for i := range keys {
		keys[i] = fmt.Sprintf("key:%012d", i)
		c.applied(map[string][]byte{keys[i]: make([]byte, 64)}, nil)
	}
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	return c, keys
}

// BenchmarkCacheGet: hits in a cache of 100000 entries (no eviction), in
// a random order, as a node's clients read.
func BenchmarkCacheGet(b *testing.B) {
	c, names := filledCache()
	keys := make([][]byte, len(names))
	for i, k := range names {
		keys[i] = []byte(k)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.get(keys[i%len(keys)])
	}
}

// BenchmarkCacheOverwrite: stores over cached keys in a random order, as
// SETs over a working set that fits.
func BenchmarkCacheOverwrite(b *testing.B) {
	c, keys := filledCache()
	v := make([]byte, 64)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.mu.Lock()
		c.put(keys[i%len(keys)], v, false)
		c.mu.Unlock()
	}
}

// BenchmarkCachePut: stores into a full cache, each evicting an entry.
func BenchmarkCachePut(b *testing.B) {
	c := newRecordCache(4 << 20)
	keys := make([]string, 200000)
	for i := range keys {
		keys[i] = fmt.Sprintf("key:%012d", i)
	}
	v := make([]byte, 64)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.mu.Lock()
		c.put(keys[i%len(keys)], v, false)
		c.mu.Unlock()
	}
}
