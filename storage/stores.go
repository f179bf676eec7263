package storage

import (
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
)

// Stores is what a node's shard stores share, so that what they hold in
// memory and run at once follows the node's settings, not its shard
// count: one compaction scheduler (CompactionPool), one Pebble block
// cache, and a memtable budget split between them. With a Pebble of its
// own settings each, 256 shards could fill 256 memtables of 32 MiB (and
// as many again while they flush: 16 GiB, as their stores keep no WAL
// they only flush when full or for a snapshot) and 256 block caches of
// 8 MiB. A nil *Stores opens a store on its own, with those settings.
type Stores struct {
	pool     *CompactionPool
	cache    *pebble.Cache
	blocks   int64  // the cache's bytes for blocks (StoresConfig.BlockCache)
	memTable uint64 // each store's MemTableSize
	closed   atomic.Bool
}

// StoresConfig sizes a node's Stores; zero fields take the defaults.
type StoresConfig struct {
	// Shards is how many stores share them.
	Shards int
	// Compactions bounds the compactions the stores run at once (0:
	// max(4, GOMAXPROCS)).
	Compactions int
	// MemTables is the stores' memtables' bytes, split evenly (each
	// between MinMemTable and MaxMemTable); a store holds up to twice its
	// share while one flushes.
	MemTables int64
	// BlockCache is the bytes of the block cache the stores share.
	BlockCache int64
}

const (
	// DefaultMemTables gives up to 8 shards memtables of MaxMemTable, and
	// 64 shards Pebble's default of 4 MiB: below that, writes of 4 KiB
	// values to 64 shards ran 14% slower (docs/storage.md).
	DefaultMemTables = 256 << 20
	// DefaultBlockCache is 4 shards' Pebble default (8 MiB each).
	DefaultBlockCache = 32 << 20
	// MaxMemTable is a store's memtable on its own, and the most one
	// gets from the budget.
	MaxMemTable = 32 << 20
	// ownBlockCache is the block cache of a store on its own: Pebble's
	// default.
	ownBlockCache = 8 << 20
	// MinMemTable is the least a store's memtable gets from the budget:
	// Pebble's memtables start at 256 KiB and double up to their size.
	MinMemTable = 1 << 20
)

// NewStores returns what c's stores share; Close it once they are closed.
func NewStores(c StoresConfig) *Stores {
	if c.MemTables <= 0 {
		c.MemTables = DefaultMemTables
	}
	if c.BlockCache <= 0 {
		c.BlockCache = DefaultBlockCache
	}
	shards := max(c.Shards, 1)
	mem := min(max(uint64(c.MemTables)/uint64(shards), MinMemTable), MaxMemTable)
	return &Stores{
		pool:     NewCompactionPool(c.Compactions),
		cache:    pebble.NewCache(cacheFor(c.BlockCache, int64(mem)*int64(shards))),
		blocks:   c.BlockCache,
		memTable: mem,
	}
}

// cacheFor is the size of a Pebble cache that keeps blocks bytes of
// blocks beside stores whose memtables are memTables bytes together.
// Pebble counts its memtables' arenas against its block cache
// (Cache.Reserve), and blocks get only what they leave: a store holds
// two, its memtable and the last one flushed (kept to be recycled) or
// the one flushing. With a cache of BlockCache alone, 4 shards whose
// memtables had grown to 32 MiB kept no block at all, and every read of
// a table read its index and data blocks from the file.
func cacheFor(blocks, memTables int64) int64 { return blocks + 2*memTables }

// Close releases the block cache: a store that is open keeps it until it
// closes.
func (s *Stores) Close() {
	if s != nil && !s.closed.Swap(true) {
		s.cache.Unref()
	}
}

// MemTableSize is each store's memtable size.
func (s *Stores) MemTableSize() uint64 { return s.memTable }

// StoresStats is what the stores share, in figures.
type StoresStats struct {
	CompactionStats
	// MemTableSize is each store's memtable size.
	MemTableSize uint64
	// BlockCacheSize is the block cache's capacity for blocks (beside
	// the memtables it counts), BlockCacheBytes what it holds,
	// BlockCacheHits and BlockCacheMisses its lookups.
	BlockCacheSize, BlockCacheBytes, BlockCacheHits, BlockCacheMisses int64
	// Rebuilds counts the shard stores found damaged and rebuilt from
	// their groups since the node started; ScrubPasses the scrubs of
	// every shard store ended, ScrubTables and ScrubBytes what they
	// read, ScrubLast when the last pass ended (Unix seconds, 0: none
	// yet). The node's runtime sets them.
	Rebuilds                             uint64
	ScrubPasses, ScrubTables, ScrubBytes uint64
	ScrubLast                            int64
}

// Stats returns the stores' shared figures.
func (s *Stores) Stats() StoresStats {
	st := StoresStats{CompactionStats: s.pool.Stats(), MemTableSize: s.memTable}
	if !s.closed.Load() {
		m := s.cache.Metrics()
		st.BlockCacheSize = s.blocks
		st.BlockCacheBytes, st.BlockCacheHits, st.BlockCacheMisses = m.Size, m.Hits, m.Misses
	}
	return st
}

// options sets a store's shared settings in o.
func (s *Stores) options(o *pebble.Options) {
	if s == nil {
		o.MemTableSize = MaxMemTable
		o.CacheSize = cacheFor(ownBlockCache, MaxMemTable)
		return
	}
	o.MemTableSize = s.memTable
	o.Cache = s.cache
	o.Experimental.CompactionScheduler = s.pool.scheduler()
}
