package kv

import (
	"encoding/binary"
)

// Storage keys. See doc.go for the layout.
const (
	prefixMeta   byte = 0x01 // 0x01 key -> record
	prefixField  byte = 0x02 // 0x02 uvarint(len(key)) key field -> value
	prefixExpiry byte = 0x03 // 0x03 be64(when^1<<63) key -> empty
	// Function libraries (FUNCTION LOAD): 0x04 'L' library -> code, and
	// 0x04 'F' function -> its library's name. Not keys: FLUSHALL leaves
	// them (FUNCTION FLUSH removes them).
	prefixFunction byte = 0x04
	prefixEnd      byte = 0x05 // no engine key starts at or above this byte
)

// Record types (the low bits of a record's first byte).
const (
	typeString byte = 1
	typeHash   byte = 2
	typeSet    byte = 3 // members are field keys with empty values
	typeList   byte = 4 // elements are field keys suffixed by their position (lists.go)
	typeZSet   byte = 5 // members and a score index are field keys (zsets.go)
	typeStream byte = 6 // entries are field keys by ID (streams.go)

	flagExpire byte = 0x80 // the record's header carries an expiry
	typeMask   byte = 0x7f
)

func metaKey(key []byte) []byte {
	k := make([]byte, 1+len(key))
	k[0] = prefixMeta
	copy(k[1:], key)
	return k
}

// fieldPrefix is the prefix of every field key of hash key.
func fieldPrefix(key []byte) []byte {
	k := make([]byte, 0, 1+binary.MaxVarintLen64+len(key))
	k = append(k, prefixField)
	k = binary.AppendUvarint(k, uint64(len(key)))
	return append(k, key...)
}

func fieldKey(prefix, field []byte) []byte {
	k := make([]byte, len(prefix)+len(field))
	copy(k, prefix)
	copy(k[len(prefix):], field)
	return k
}

// expiryKey is key's entry in the expiry index; entries sort by when
// (signed), then by key.
func expiryKey(when int64, key []byte) []byte {
	k := make([]byte, 9+len(key))
	k[0] = prefixExpiry
	binary.BigEndian.PutUint64(k[1:], uint64(when)^(1<<63))
	copy(k[9:], key)
	return k
}

// expiryBound is the first index key of time when: the index entries below
// it have when' < when.
func expiryBound(when int64) []byte {
	k := make([]byte, 9)
	k[0] = prefixExpiry
	binary.BigEndian.PutUint64(k[1:], uint64(when)^(1<<63))
	return k
}

func decodeExpiryKey(k []byte) (when int64, key []byte, ok bool) {
	if len(k) < 9 || k[0] != prefixExpiry {
		return 0, nil, false
	}
	return int64(binary.BigEndian.Uint64(k[1:]) ^ (1 << 63)), k[9:], true
}

// successor returns the smallest key greater than every key with prefix p,
// or nil when there is none (p is all 0xff).
func successor(p []byte) []byte {
	s := append([]byte(nil), p...)
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] != 0xff {
			s[i]++
			return s[:i+1]
		}
	}
	return nil
}

// record is a decoded meta record: a header (type, optional expiry) and a
// payload (a string's bytes; a hash's or set's element count as a uvarint;
// a list's count, then the position of its first element as a varint).
type record struct {
	typ     byte
	hasExp  bool
	expire  int64 // Unix ms; valid when hasExp
	payload []byte
}

func decodeRecord(v []byte) (record, bool) {
	if len(v) == 0 {
		return record{}, false
	}
	r := record{typ: v[0] & typeMask}
	if v[0]&flagExpire != 0 {
		if len(v) < 9 {
			return record{}, false
		}
		r.hasExp = true
		r.expire = int64(binary.BigEndian.Uint64(v[1:9]))
		r.payload = v[9:]
	} else {
		r.payload = v[1:]
	}
	return r, r.typ == typeString || r.typ == typeHash || r.typ == typeSet || r.typ == typeList || r.typ == typeZSet || r.typ == typeStream
}

// expired reports whether r is past its expiry at now: a key lives up to
// and including its expiry millisecond, as in Redis.
func (r *record) expired(now int64) bool { return r.hasExp && now > r.expire }

// headerLen is the length of the header encodeRecord writes.
func headerLen(hasExp bool) int {
	if hasExp {
		return 9
	}
	return 1
}

// appendHeader appends a record header.
func appendHeader(b []byte, typ byte, hasExp bool, expire int64) []byte {
	if !hasExp {
		return append(b, typ)
	}
	b = append(b, typ|flagExpire)
	return binary.BigEndian.AppendUint64(b, uint64(expire))
}

// countRecord encodes the record of a key whose elements are field keys
// (a hash's fields, a set's members): its type and their count.
func countRecord(typ byte, n int64, hasExp bool, expire int64) []byte {
	b := make([]byte, 0, headerLen(hasExp)+binary.MaxVarintLen64)
	b = appendHeader(b, typ, hasExp, expire)
	return binary.AppendUvarint(b, uint64(n))
}

func (r *record) hashLen() int64 {
	n, _ := binary.Uvarint(r.payload)
	return int64(n)
}

// RecordKey is the store key of key's record, which every write of key
// sets or deletes: what a shard's Watch is given to wait for writes of
// key.
func RecordKey(key []byte) []byte { return metaKey(key) }
