package kv

import (
	"bytes"
	"crypto/sha1"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/coppice-kv/coppice/messages"
)

// The engine's part of Redis's server commands: MEMORY USAGE and DEBUG
// OBJECT read a key where it is stored; MOVE and SWAPDB answer as Redis
// 7.0 started with "databases 1" does, since coppice has only database 0.
// MEMORY's other subcommands and DEBUG's others are the node's
// (server/admin.go): the node never sends them here.

// MemoryDefaultSamples is MEMORY USAGE's default SAMPLES, Redis's
// OBJ_COMPUTE_SIZE_DEF_SAMPLES.
const MemoryDefaultSamples = 5

// MEMORY USAGE key [SAMPLES count]: an estimate of the bytes the key takes
// in this shard's store, null for a missing (or expired) key. It is the
// sum, over the key's records, of their store keys' and values' lengths:
// the record (the key's name behind a one-byte prefix, its header and, for
// a string, its value), its entry in the expiry index, and its elements'
// records (a hash's fields and values, a set's members, a list's elements,
// a sorted set's members and their score index, a stream's entries,
// groups and pending entries). As Redis does, a collection's elements are
// sampled: the first count element records are read and their average
// size stands for the others (SAMPLES 0 reads them all; a stream's are
// always all read, their number not being kept). It does not count
// Pebble's per-record overhead, its compression, or copies of the records
// in the Raft log and in memtables: it is the logical size of the key's
// data, not the process's memory. As Redis's, it sizes a key past its
// expiry that active expiry has not deleted yet. Redis's checks come in its order
// (options, then the key).
func cmdMemory(t *txn, a [][]byte) *messages.Reply {
	if !isOpt(a[1], "usage") {
		return errReply(fmt.Sprintf("ERR kv: MEMORY %s is served by the node, not the engine", a[1]))
	}
	samples := int64(MemoryDefaultSamples)
	for j := 3; j < len(a); j++ {
		if !isOpt(a[j], "samples") || j+1 >= len(a) {
			return errSyntax
		}
		n, ok := parseInt(a[j+1])
		if !ok {
			return errNotInteger
		}
		if n < 0 {
			return errSyntax
		}
		if n == 0 {
			n = math.MaxInt64
		}
		samples = n
		j++
	}
	// As Redis's, it finds a key past its expiry that is still stored,
	// and counts no keyspace hit or miss.
	e := entry{key: a[2], mk: metaKey(a[2])}
	v, found := t.get(e.mk)
	if !found {
		return nullBulk
	}
	rec, valid := decodeRecord(v)
	if !valid {
		must(errCorruptKey(a[2]))
	}
	e.rec, e.exists = rec, true
	return integer(t.keyBytes(&e, len(v), samples))
}

// keyBytes is MEMORY USAGE's estimate for e (a live key, whose record is
// recordLen bytes): see cmdMemory.
func (t *txn) keyBytes(e *entry, recordLen int, samples int64) int64 {
	size := int64(len(e.mk) + recordLen)
	if e.rec.hasExp {
		size += int64(9 + len(e.key)) // its expiry index entry, an empty value
	}
	var records int64 // the element records the key has
	switch e.rec.typ {
	case typeString:
		return size
	case typeZSet:
		records = 2 * e.rec.hashLen() // each member, and its score index entry
	case typeStream:
		samples = math.MaxInt64
	default:
		records = e.rec.hashLen()
	}
	p := fieldPrefix(e.key)
	var seen, sum int64
	must(t.r.Scan(p, successor(p), func(k, v []byte) bool {
		seen++
		sum += int64(len(k) + len(v))
		return seen < samples
	}))
	if seen > 0 && records > seen {
		sum = int64(float64(sum) / float64(seen) * float64(records))
	}
	return size + sum
}

// DEBUG: the engine answers DEBUG OBJECT key; the node serves the other
// subcommands (server/admin.go). DEBUG OBJECT's line has Redis's fields:
// "Value at" (no address here: 0x0), refcount (as OBJECT REFCOUNT),
// encoding (as OBJECT ENCODING), serializedlength (the length of the
// value's RDB encoding as DUMP writes it, uncompressed and, for hashes
// and sets, in RDB's plain forms rather than listpack or intset: Redis's
// may be shorter), lru (Redis's LRU clock now: keys keep no access time
// here, so they read as just used, as OBJECT IDLETIME's 0 does) and
// lru_seconds_idle 0. A list's quicklist fields (ql_nodes...) are left out:
// a list is no quicklist here.
func cmdDebug(t *txn, a [][]byte) *messages.Reply {
	if isOpt(a[1], "digest-value") {
		return debugDigestValue(t, a[2:])
	}
	if !isOpt(a[1], "object") || len(a) != 3 {
		return DebugUnknown(a[1])
	}
	e := t.lookup(a[2])
	if !e.exists {
		return errReply("ERR no such key")
	}
	serialized := len(encodeDump(t.dumpValueOf(&e))) - 1 - 10 // less the type byte, the version and the checksum
	lru := (t.now / 1000) & (1<<24 - 1)                       // Redis's LRU_CLOCK: seconds, 24 bits
	return status(fmt.Sprintf("Value at:0x0 refcount:%d encoding:%s serializedlength:%d lru:%d lru_seconds_idle:0",
		refcount(&e), t.encoding(&e), serialized, lru))
}

// DebugUnknown is Redis's answer to a DEBUG subcommand it does not know
// or given the wrong number of arguments.
func DebugUnknown(sub []byte) *messages.Reply {
	return errReply(fmt.Sprintf("ERR unknown subcommand or wrong number of arguments for '%s'. Try DEBUG HELP.", sub))
}

// debugKeys routes DEBUG: DEBUG OBJECT's key, DIGEST-VALUE's keys (the
// node sends each to its shard); the other subcommands have none.
func debugKeys(args [][]byte) [][]byte {
	switch {
	case len(args) == 3 && isOpt(args[1], "object"):
		return args[2:3]
	case len(args) >= 3 && isOpt(args[1], "digest-value"):
		return args[2:]
	}
	return nil
}

// DEBUG DIGEST-VALUE key...: each key's digest as Redis 7.0 computes it
// (debug.c's xorObjectDigest), in hex; 40 zeros for a missing key. Equal
// values have equal digests here and in Redis.
func debugDigestValue(t *txn, keys [][]byte) *messages.Reply {
	items := make([]*messages.Reply, len(keys))
	for i, k := range keys {
		var d [20]byte
		if e := t.lookup(k); e.exists {
			t.objectDigest(&e, &d)
		}
		items[i] = status(fmt.Sprintf("%x", d))
	}
	return array(items)
}

// DatasetDigestName is DEBUG DIGEST's internal read of a shard: its reply
// is [the XOR of its live keys' digests (20 bytes), their number]. The
// node XORs the shards' and, when there are keys, mixes in database 0
// first, as Redis's computeDatasetDigest does (DatasetDigest).
const DatasetDigestName = "\x00dataset-digest"

func readDatasetDigest(t *txn, _ [][]byte) *messages.Reply {
	var all [20]byte
	n := int64(0)
	t.eachKey(nil, nil, func(key []byte, rec *record) bool {
		e := entry{key: bytes.Clone(key), mk: metaKey(key), rec: *rec, exists: true}
		e.rec.payload = bytes.Clone(rec.payload)
		var d [20]byte
		mixDigest(&d, key)
		t.objectDigest(&e, &d)
		xorDigest(&all, d[:])
		n++
		return true
	})
	return array([]*messages.Reply{bulk(all[:]), integer(n)})
}

// DatasetDigest combines the shards' DatasetDigestName replies into DEBUG
// DIGEST's: 40 hex digits (all zeros for no keys).
func DatasetDigest(parts []*messages.Reply) *messages.Reply {
	var all [20]byte
	n := int64(0)
	for _, r := range parts {
		if r.GetError() != "" {
			return r
		}
		items := r.GetArray().GetItems()
		if len(items) != 2 || len(items[0].GetBulk()) != 20 {
			return errReply("ERR kv: bad dataset digest reply")
		}
		for i, b := range items[0].GetBulk() {
			all[i] ^= b
		}
		n += items[1].GetInteger()
	}
	if n > 0 {
		var db [20]byte
		mixDigest(&db, []byte{0, 0, 0, 0}) // htonl(0): database 0
		for i := range all {
			all[i] ^= db[i]
		}
	}
	return status(fmt.Sprintf("%x", all))
}

// xorDigest and mixDigest are Redis's (debug.c): XOR in SHA1(b); then, for
// mix, the digest becomes SHA1 of itself, so that order counts.
func xorDigest(d *[20]byte, b []byte) {
	h := sha1.Sum(b)
	for i := range d {
		d[i] ^= h[i]
	}
}

func mixDigest(d *[20]byte, b []byte) {
	h := sha1.Sum(b)
	for i := range d {
		d[i] ^= h[i]
	}
	*d = sha1.Sum(d[:])
}

// objectDigest is Redis's xorObjectDigest of e's value into d: its type,
// then a string's bytes, a list's elements in order, a set's members and a
// hash's fields and values in any order, a sorted set's members with
// their scores (%.17g), a stream's entries ("ms.seq", fields and values),
// and whether it has an expiry.
func (t *txn) objectDigest(e *entry, d *[20]byte) {
	redisType := map[byte]uint32{typeString: 0, typeList: 1, typeSet: 2, typeZSet: 3, typeHash: 4, typeStream: 6}[e.rec.typ]
	var aux [4]byte
	binary.BigEndian.PutUint32(aux[:], redisType)
	mixDigest(d, aux[:])
	switch e.rec.typ {
	case typeString:
		mixDigest(d, e.rec.payload)
	case typeList:
		l, _ := t.listFor(e.key)
		for _, el := range t.elems(l, 0, l.n) {
			mixDigest(d, el)
		}
	case typeSet:
		for _, m := range t.members(e) {
			xorDigest(d, m)
		}
	case typeZSet:
		z, _ := t.zsetFor(e.key)
		t.each(z, nil, func(s scored) bool {
			var ed [20]byte
			mixDigest(&ed, s.member)
			mixDigest(&ed, formatScore(binary.BigEndian.AppendUint64(nil, math.Float64bits(s.score))))
			xorDigest(d, ed[:])
			return true
		})
	case typeHash:
		t.eachField(e, func(f, v []byte) {
			var ed [20]byte
			mixDigest(&ed, f)
			mixDigest(&ed, v)
			xorDigest(d, ed[:])
		})
	case typeStream:
		s, _ := t.streamFor(e.key)
		for _, en := range t.entries(s, streamID{}, maxStreamID, -1, false) {
			mixDigest(d, []byte(fmt.Sprintf("%d.%d", en.id.ms, en.id.seq)))
			for _, f := range en.fields {
				mixDigest(d, f)
			}
		}
	}
	if e.rec.hasExp {
		xorDigest(d, []byte("!!expire!!"))
	}
}

// memoryKeys routes MEMORY: MEMORY USAGE's key.
func memoryKeys(args [][]byte) [][]byte {
	if len(args) >= 3 && isOpt(args[1], "usage") {
		return args[2:3]
	}
	return nil
}

// MOVE key db: coppice has one database, 0, so MOVE never moves. Redis 7.0
// with "databases 1" answers the same: its checks in its order (db an
// integer in C's int range, then a database that exists, then not the
// current one), the key not even looked at.
func cmdMove(t *txn, a [][]byte) *messages.Reply {
	db, r := dbIndex(a[2], "")
	if r != nil {
		return r
	}
	if db != 0 {
		return errDBRange
	}
	return errReply("ERR source and destination objects are the same")
}

// SWAPDB index1 index2: with one database, SWAPDB 0 0 is the only swap
// there is, and does nothing (OK, as in Redis); any other index is out of
// range.
func cmdSwapDB(t *txn, a [][]byte) *messages.Reply {
	id1, r := dbIndex(a[1], "ERR invalid first DB index")
	if r != nil {
		return r
	}
	id2, r := dbIndex(a[2], "ERR invalid second DB index")
	if r != nil {
		return r
	}
	if id1 != 0 || id2 != 0 {
		return errDBRange
	}
	return replyOK
}

var errDBRange = errReply("ERR DB index is out of range")

// dbIndex reads a database index as Redis's getIntFromObjectOrReply does:
// msg (or Redis's own messages, when msg is "") for a value that is not an
// integer or not in C's int range.
func dbIndex(b []byte, msg string) (int64, *messages.Reply) {
	n, isInt := parseInt(b)
	switch {
	case !isInt && msg != "":
		return 0, errReply(msg)
	case !isInt:
		return 0, errNotInteger
	case n < math.MinInt32 || n > math.MaxInt32:
		if msg != "" {
			return 0, errReply(msg)
		}
		return 0, errReply("ERR value is out of range, value must between -2147483648 and 2147483647")
	}
	return n, nil
}
