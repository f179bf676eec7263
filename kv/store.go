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

// KeyCounts are a shard's counts that storage may keep beside its data,
// so that DBSIZE and INFO keyspace need no pass over every key: the
// keys' records (live or past their expiry), the expiry index's entries,
// and the sum of their times in Unix ms (CountedKey says what counts).
type KeyCounts struct {
	Keys, Expiring int64
	WhenSum        float64
}

// KeyCounter is a Reader that keeps KeyCounts; ok false when it has none
// to give.
type KeyCounter interface {
	KeyCounts() (c KeyCounts, ok bool)
}

// CountedKey says what a storage key counts for in KeyCounts: a key's
// record, or an entry of the expiry index, with its time. The counted
// keys are all in CountedRanges.
func CountedKey(k []byte) (record, expiry bool, whenMs int64) {
	switch {
	case len(k) > 0 && k[0] == prefixMeta:
		return true, false, 0
	case len(k) > 0 && k[0] == prefixExpiry:
		when, _, ok := decodeExpiryKey(k)
		return false, ok, when
	}
	return false, false, 0
}

// CountedRanges are the ranges [lower, upper) of the keys CountedKey
// counts: the records, then the expiry index.
var CountedRanges = [2][2][]byte{{{prefixMeta}, {prefixMeta + 1}}, {{prefixExpiry}, {prefixExpiry + 1}}}
