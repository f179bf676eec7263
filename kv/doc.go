// Package kv is coppice's command engine: Redis 7 command semantics for
// strings, hashes, sets and keys, over one shard's ordered key-value store.
//
// The engine is a pure function of the store and the command. It does no
// I/O except through the Reader and Writer interfaces (store.go), and reads
// no clock: a write command carries its time (messages.Command.now_ms, the
// proposer's clock, stamped once before the command enters the shard's
// Raft log), and a read gets its time as an argument. Every replica that
// applies the same log entries therefore ends with the same bytes.
//
// # Using it
//
// The node looks a command up in the table, checks it and routes it:
//
//	if r := kv.CheckArity(args); r != nil { reply(r) }   // unknown command, wrong arity
//	spec, _ := kv.Lookup(args[0])
//	keys := spec.Keys(args)                               // route by the keys' slot
//	if spec.Write {
//		// propose &messages.Command{Args: args, NowMs: now} to the shard;
//		// the shard's FSM runs kv.Exec(batch, cmd) on an indexed batch
//	} else {
//		reply(kv.Read(liveDB, args, now))
//	}
//
// A write that often changes nothing (an LPOP, an SADD, a DEL, a SET NX)
// can first be probed on a consistent view of the store: Probe runs it as
// Exec would until its first write, and gives its reply when it wrote
// nothing, which a node that leads the shard alone may answer without the
// log (probe.go).
//
// Spec.Node marks the commands the node answers itself (PING, HELLO, AUTH,
// ACL, MIGRATE, ASKING, SELECT, CLIENT, CONFIG, INFO, QUIT, ECHO, COMMAND,
// TIME, RESET, WAIT,
// the blocking pops, MULTI and the rest of the transactions', and pub/sub's
// SUBSCRIBE, PUBLISH, PUBSUB and the like): they are in the table
// so that CheckArity accepts them and COMMAND lists them. Command answers
// COMMAND (COUNT, INFO, DOCS, LIST, GETKEYS, GETKEYSANDFLAGS, HELP) from
// the table and from Redis 7.0's own metadata (commands_redis.go, written
// by kv/internal/gencommands). ACL rules (acl.go) check commands by
// Redis's whole command table and their keys by Redis's key specs
// (keyspecs.go).
//
// Commands the node splits across shards (MGET, MSET, DEL, UNLINK, EXISTS,
// TOUCH by key; DBSIZE, KEYS, FLUSHDB, FLUSHALL on every shard; SCAN with Scan and
// ParseScanArgs) run per shard on the keys of that shard. The other
// commands with several keys (RENAME, RENAMENX, COPY, MSETNX, SMOVE,
// SINTER, SUNION, SDIFF and their STORE forms, SINTERCARD, LMOVE, RPOPLPUSH,
// LMPOP) use them together, so the
// node runs them only when every key is on one shard. SCAN through Read
// is a one-shot scan of the whole shard that always answers cursor "0";
// the node builds real cursors from Scan's `next` key.
//
// A read may make several reads of its Reader (HGETALL reads the record,
// then the fields; MGET reads each key). To see one consistent state while
// a shard applies writes, pass a Reader over a Pebble snapshot (or an
// iterator-consistent view) rather than the live DB.
//
// # Commands
//
// Strings: GET SET (NX XX GET EX PX EXAT PXAT KEEPTTL) SETNX SETEX PSETEX
// GETSET GETDEL GETEX (EX PX EXAT PXAT PERSIST) MGET MSET INCR DECR INCRBY
// DECRBY INCRBYFLOAT APPEND STRLEN GETRANGE SUBSTR SETRANGE MSETNX LCS.
//
// Keys: DEL UNLINK EXISTS TOUCH TYPE EXPIRE PEXPIRE EXPIREAT PEXPIREAT (NX
// XX GT LT) TTL PTTL EXPIRETIME PEXPIRETIME PERSIST RENAME RENAMENX COPY
// (DB 0, REPLACE) DUMP RESTORE (Redis 7.0's RDB format: rdb.go) KEYS
// DBSIZE FLUSHDB FLUSHALL (ASYNC SYNC) SCAN; MOVE and SWAPDB (as Redis
// with one database: admin.go).
//
// Server commands with a key: MEMORY USAGE (an estimate of the key's
// bytes in the store), DEBUG OBJECT and DEBUG DIGEST-VALUE (Redis's
// digests; DEBUG DIGEST combines every shard's DatasetDigestName read)
// (admin.go); the node serves MEMORY's and DEBUG's other subcommands.
//
// Hashes: HSET HMSET HSETNX HGET HMGET HDEL HGETALL HKEYS HVALS HLEN
// HEXISTS HSTRLEN HINCRBY HINCRBYFLOAT HSCAN (MATCH COUNT; through Read a
// one-shot scan with cursor "0", the node pages with HScan) HRANDFIELD (its
// WITHVALUES reply is messages.Reply's pairs: flat in RESP2, nested in
// RESP3).
//
// Sets: SADD SREM SMEMBERS SISMEMBER SMISMEMBER SCARD SMOVE SINTER SUNION
// SDIFF SINTERSTORE SUNIONSTORE SDIFFSTORE SINTERCARD SPOP (its choice seeded by the
// command's time and key: every replica pops the same) SRANDMEMBER SSCAN
// (as HSCAN; the node pages with SScan).
//
// Lists: LPUSH RPUSH LPUSHX RPUSHX LPOP RPOP (with a count) LLEN LINDEX
// LSET LRANGE LTRIM LREM LINSERT LPOS (RANK COUNT MAXLEN) LMOVE
// RPOPLPUSH LMPOP. The blocking forms (BLPOP BRPOP BLMPOP BLMOVE
// BRPOPLPUSH) are the node's: it runs these until they pop something.
//
// Sorted sets: ZADD (NX XX GT LT CH INCR) ZINCRBY ZREM ZCARD ZSCORE ZMSCORE
// ZRANK ZREVRANK ZCOUNT ZRANGE (BYSCORE BYLEX REV LIMIT WITHSCORES)
// ZRANGEBYSCORE ZREVRANGEBYSCORE ZREVRANGE ZRANGEBYLEX ZREVRANGEBYLEX
// ZLEXCOUNT ZREMRANGEBYLEX ZRANDMEMBER ZRANGESTORE ZUNION ZINTER ZDIFF
// ZUNIONSTORE ZINTERSTORE ZDIFFSTORE ZINTERCARD ZSCAN (as HSCAN; the node
// pages with ZScan) ZREMRANGEBYSCORE
// ZREMRANGEBYRANK ZPOPMIN ZPOPMAX ZMPOP; scores are RESP3 doubles,
// WITHSCORES pairs (zsets.go). BZPOPMIN BZPOPMAX BZMPOP are the node's, as
// the blocking list pops are.
//
// SORT and SORT_RO: lists, sets and sorted sets, by their elements or by
// patterns' keys and hash fields, with GET, LIMIT and STORE (sort.go).
//
// Bitmaps: SETBIT GETBIT BITCOUNT BITPOS BITOP BITFIELD BITFIELD_RO, on
// strings (bits.go). HyperLogLogs: PFADD PFCOUNT PFMERGE PFDEBUG, strings in
// Redis's HLL format (hll.go).
//
// Streams: XADD XLEN XRANGE XREVRANGE XDEL XTRIM XSETID XREAD (BLOCK is the
// node's: it resolves "$" with the internal StreamLastIDsName read and runs
// XREAD until it answers), and consumer groups: XGROUP XREADGROUP XACK
// XPENDING XCLAIM XAUTOCLAIM XINFO (streams.go, streamgroups.go).
//
// Transactions: the node queues MULTI's commands and proposes them to
// their shard as the internal ExecName command, with WATCH's digests
// (DigestName, a read); see multi.go.
//
// Replies and errors are Redis 7.0's, byte for byte (a differential test
// runs over a thousand commands against a real redis-server; see
// testdata/diff). INCRBYFLOAT and HINCRBYFLOAT compute in x87 80-bit long
// double, as Redis does on amd64, so "INCRBYFLOAT k 0.1" twice gives "0.2"
// and then 0.1 more gives "0.3". Where the order of a reply is Redis's hash
// order (KEYS, SCAN, HKEYS, HVALS, HGETALL, COMMAND), the engine gives key
// order instead.
//
// # Encoding
//
// Keys starting with 0x00 belong to storage (the applied index); the engine
// uses three prefixes:
//
//	0x01 key                               -> record
//	0x02 uvarint(len(key)) key field       -> the field's value
//	0x03 be64(expiry ^ 1<<63) key          -> "" (the expiry index)
//
// A record is a header and a payload. The header's first byte is the type
// (1 string, 2 hash, 3 set, 4 list, 5 sorted set, 6 stream), with bit 0x80 set when the key has an expiry; the
// expiry then follows as 8 bytes, big-endian, Unix milliseconds. A string's
// payload is its value, so GET is one Get and SET one Get (the old record:
// its expiry entry and, for a hash, its fields must go) and one Set. A
// hash's payload is its field count as a uvarint (HLEN is one Get); each
// field is a key of its own under the 0x02 prefix, where the length of the
// user key keeps one key's fields apart from another's. An empty hash does
// not exist: HDEL of the last field deletes the key. A set is a hash whose
// fields (its members) have empty values. A list's payload is its length
// (a uvarint) and the position of its first element (a varint); its
// elements are fields named by their position (8 bytes, big-endian, the
// sign bit flipped), so pushes and pops at either end, LINDEX and LSET
// touch only their elements (lists.go). A sorted set keeps, under its
// field prefix, each member (0x00 member -> its score) and a score index
// (0x01 sortable score, member -> ""), so ranges by score are seeks
// (zsets.go); from 128 members, rank levels over the index (0x02 level,
// entry -> "" and 0x03 level, entry -> its span), so ranks are walks of
// O(log n) (zrank.go), and its payload adds a mark and the top level. A stream's payload is its length, last ID, entries added and
// greatest deleted ID (uvarints); under its field prefix are its entries
// (0x00 ID -> its fields) and its consumer groups, their pending entries
// and consumers (streamgroups.go). An empty stream is a key.
//
// The expiry index orders keys by expiry time (the sign bit flipped, so
// that signed times sort as unsigned bytes): ExpireDue scans it from the
// start up to now. Every change of a key's expiry moves its index entry in
// the same command, so the index and the records agree.
//
// Deleting a hash deletes its fields one by one when it has at most 16,
// and with one DeleteRange over its field prefix otherwise. FLUSHDB and
// FLUSHALL delete the range [0x01, 0x04).
//
// DBSIZE and KEYS scan the shard's records (0x01): they cost a pass over
// the shard's keys, not over hash fields. Unlike Redis, DBSIZE does not
// count keys past their expiry that are not yet deleted.
//
// # Time and expiry
//
// A key with expiry T is alive at times up to and including T and gone
// after it (Redis: expired when now > T). Expired keys are invisible to
// every command. Reads leave them in place; a write command that looks one
// up deletes it first (lazy expiry, like Redis's lookupKeyWrite), so SET on
// an expired key starts afresh. EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT and
// GETEX EXAT/PXAT with a time not after now delete the key, as Redis does;
// SET with an expiry before now stores a key no command sees, as Redis
// does, for the next write or active expiry to delete.
//
// Active expiry: ExpireDue(w, now, limit) deletes up to limit keys whose
// expiry is before now, oldest first. Each shard's leader runs it through
// Raft every 100 ms while keys are due (actors/expiry.go), so that every
// replica deletes the same keys, with the internal command
// ExpireDueCommand builds: args ["\x00expire-due", limit, from], now_ms
// the proposer's clock, from a floor below which no key is due (the scan
// need not step over the index's tombstones). The name is not in the
// table, so a client cannot send it (CheckArity refuses it); only Exec
// runs it. Its reply is the number of keys deleted.
//
// # Keyspace notifications
//
// ExecEvents collects the keyspace events a write fires (notify.go): the
// events of Redis 7.0's notifyKeyspaceEvent calls, by the same commands,
// in the same order ("new" as a key is added, "expired" as lazy or active
// expiry deletes one). The node publishes them once the batch commits.
//
// # Atomicity
//
// All the writes of one command go to the Writer it is given: on a shard,
// one Pebble indexed batch for a whole Raft entry (a CommandBatch), which
// commits as one. A command checks its input (arity, syntax, numbers,
// types) before it writes: a command that replies with an error has changed
// nothing (lazy expiry aside: an expired key it looked up is deleted, as
// Redis would). A command sees the writes of the commands before it in the
// same batch.
//
// A Writer or Reader error inside Exec panics with a *StorageError: the
// batch may hold half a command, and the state machine can neither skip the
// entry (replicas would diverge) nor commit it; the shard's store takes it
// for its failure and applies nothing more, and the shard is rebuilt from
// its group or the node stops and replays the entry from its log at its
// next start (storage.Shard.ApplyBatch). Read and Scan return storage errors
// instead ("ERR kv: storage: ..." for Read).
//
// Replies may be shared between calls (+OK, small integers, fixed errors):
// callers must not modify them.
package kv
