package kv

import "sync/atomic"

// Keyspace counts of this process, for INFO stats: reads that found their
// key or not (Redis's keyspace_hits and keyspace_misses: a read's lookups,
// counted where the read runs), and keys deleted at their expiry, by a
// write that found them expired or by active expiry (counted by every
// replica that applies the deletion, as each applies it).
var keyspace struct{ hits, misses, expired atomic.Uint64 }

// KeyspaceStats returns the counts: hits, misses, expired keys.
func KeyspaceStats() (hits, misses, expired uint64) {
	return keyspace.hits.Load(), keyspace.misses.Load(), keyspace.expired.Load()
}
