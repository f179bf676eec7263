package kv

// Reader reads one shard's keys. Keys starting with byte 0x00 belong to
// storage (the applied index and term) and are never passed to or returned
// by the engine; the engine may use any key starting with 0x01..0xff.
type Reader interface {
	// Get returns a copy of key's value, or ok false when absent.
	Get(key []byte) (value []byte, ok bool, err error)
	// Scan calls fn for each key in [lower, upper) in order, until fn
	// returns false. k and v are only valid during the call.
	Scan(lower, upper []byte, fn func(k, v []byte) bool) error
	// ReverseScan is Scan from the last key down.
	ReverseScan(lower, upper []byte, fn func(k, v []byte) bool) error
}

// Writer reads and writes one shard's keys, seeing its own writes. All the
// writes of one command (and of one Raft entry) commit together.
type Writer interface {
	Reader
	Set(key, value []byte) error
	Delete(key []byte) error
	// DeleteRange deletes every key in [lower, upper).
	DeleteRange(lower, upper []byte) error
}
