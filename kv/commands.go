package kv

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/coppice-kv/coppice/messages"
)

// Spec describes one command: what COMMAND reports for it, how the node
// routes it, and how the engine runs it.
type Spec struct {
	// Name is the command's name in lower case ("get"); a subcommand's is
	// "container|sub" ("command|info").
	Name string
	// Arity counts the name: n means exactly n arguments, -n at least n.
	Arity int
	// Flags are COMMAND's flags, in Redis's order: "write", "readonly",
	// "denyoom", "admin", "fast", ...
	Flags []string
	// FirstKey, LastKey, Step give the key arguments: args[FirstKey],
	// args[FirstKey+Step], ... up to args[LastKey]; a negative LastKey
	// counts from the end (-1 is the last argument). FirstKey 0: no keys.
	FirstKey, LastKey, Step int
	// Write is true for commands that change state: they go through a
	// shard's Raft log and run with Exec. The others run with Read.
	Write bool
	// Node is true for commands the node serves itself (connection and
	// server commands such as PING, HELLO, CLIENT, CONFIG, INFO). They are
	// in the table so that CheckArity and COMMAND know them; the engine
	// does not run them.
	Node bool
	// Subcommands of a container command (COMMAND, CLIENT, CONFIG).
	Subcommands []*Spec
	// keysFn, if set, finds the keys instead of the positions: for the
	// commands whose keys follow a count (LMPOP numkeys key ...).
	keysFn func(args [][]byte) [][]byte

	run func(t *txn, args [][]byte) *messages.Reply
	// place is 1 + the spec's index in Specs(); 0 for a spec of no table.
	place int
}

// Index is the spec's place in Specs() (false for a spec not in the
// table): per-command counters index slices by it, with no map lookup.
func (s *Spec) Index() (int, bool) { return s.place - 1, s.place > 0 }

// MayWrite reports whether the command counts as a write where Redis
// takes its MAY_REPLICATE commands for writes (a flag COMMAND does not
// show): a read-only script may not call it, and a WRITE pause holds it.
// Besides the writes: PUBLISH, SPUBLISH and PFCOUNT (the scripts', EVAL's
// and FCALL's, depend on the script).
func (s *Spec) MayWrite() bool {
	switch s.Name {
	case "publish", "spublish", "pfcount":
		return true
	}
	return s.Write
}

// Has reports whether the spec carries flag f ("fast", "admin", ...).
func (s *Spec) Has(f string) bool {
	for _, x := range s.Flags {
		if x == f {
			return true
		}
	}
	return false
}

// Keys returns the key arguments of args (a whole command, name first), as
// the key positions give them (a slice of args when they are contiguous),
// nil for a command without keys. The node
// routes a command by its keys (each command's keys must be on one shard,
// except for the ones the node splits: MGET, MSET, DEL, UNLINK, EXISTS,
// TOUCH).
func (s *Spec) Keys(args [][]byte) [][]byte {
	if s.keysFn != nil {
		return s.keysFn(args)
	}
	if s.FirstKey <= 0 || s.FirstKey >= len(args) {
		return nil
	}
	last := s.LastKey
	if last < 0 {
		last = len(args) + last
	}
	if last >= len(args) {
		last = len(args) - 1
	}
	if last < s.FirstKey {
		return nil
	}
	step := max(s.Step, 1)
	if step == 1 {
		// No copy: every command routes by its keys.
		return args[s.FirstKey : last+1 : last+1]
	}
	keys := make([][]byte, 0, (last-s.FirstKey)/step+1)
	for i := s.FirstKey; i <= last; i += step {
		keys = append(keys, args[i])
	}
	return keys
}

var (
	fWrite        = []string{"write"}
	fWriteFast    = []string{"write", "fast"}
	fWriteOOM     = []string{"write", "denyoom"}
	fWriteOOMFst  = []string{"write", "denyoom", "fast"}
	fClusterAdmin = []string{"admin", "stale", "no_async_loading"}
	fRead         = []string{"readonly"}
	fReadFast     = []string{"readonly", "fast"}
)

// numkeysAt gives s the keys of a command whose key count is args[i], the
// keys following it (none when the count is not one, or runs past the
// arguments).
func numkeysAt(i int, s *Spec) *Spec {
	s.keysFn = func(args [][]byte) [][]byte {
		if i >= len(args) {
			return nil
		}
		n, ok := parseInt(args[i])
		if !ok || n < 1 || n > int64(len(args)-i-1) {
			return nil
		}
		return args[i+1 : i+1+int(n)]
	}
	return s
}

// destAndNumkeys gives s the keys of a STORE command: the destination,
// args[1], then the keys its count at args[2] gives.
func destAndNumkeys(s *Spec) *Spec {
	sources := numkeysAt(2, &Spec{}).keysFn
	s.FirstKey, s.LastKey, s.Step = 1, 1, 1 // as COMMAND reports them
	s.keysFn = func(args [][]byte) [][]byte {
		if len(args) < 2 {
			return nil
		}
		return append([][]byte{args[1]}, sources(args)...)
	}
	return s
}

// key1 is the common key position: one key, args[1].
func key1(s *Spec) *Spec { s.FirstKey, s.LastKey, s.Step = 1, 1, 1; return s }

// keysTo: every argument from args[1] to args[len+last] is a key.
func keysTo(last int, s *Spec) *Spec { s.FirstKey, s.LastKey, s.Step = 1, last, 1; return s }

// keys12: two keys, args[1] and args[2].
func keys12(s *Spec) *Spec { s.FirstKey, s.LastKey, s.Step = 1, 2, 1; return s }

// key2 finds a container's key, args[2] (XGROUP CREATE key ...), for
// routing; COMMAND gives the subcommands' positions.
func key2(args [][]byte) [][]byte {
	if len(args) < 3 {
		return nil
	}
	return args[2:3]
}

// keyedContainer is a container the engine runs (XGROUP, XINFO, OBJECT)
// whose subcommands take the key at args[2]; write says it goes through
// the log.
func keyedContainer(name string, write bool, run func(*txn, [][]byte) *messages.Reply, subs ...*Spec) *Spec {
	s := cmd(name, -2, []string{}, run)
	s.Write, s.keysFn, s.Subcommands = write, key2, subs
	return s
}

// keyedSub is a keyedContainer's subcommand, its key at args[2].
func keyedSub(name string, arity int, flags []string) *Spec {
	return &Spec{Name: name, Arity: arity, Flags: flags, FirstKey: 2, LastKey: 2, Step: 1}
}

// helpSub is a container's HELP subcommand.
func helpSub(name string) *Spec {
	return &Spec{Name: name, Arity: 2, Flags: []string{"loading", "stale"}}
}

// keysAll: every argument from args[1] on is a key.
func keysAll(s *Spec) *Spec { s.FirstKey, s.LastKey, s.Step = 1, -1, 1; return s }

func cmd(name string, arity int, flags []string, run func(*txn, [][]byte) *messages.Reply) *Spec {
	s := &Spec{Name: name, Arity: arity, Flags: flags, run: run}
	for _, f := range flags {
		if f == "write" {
			s.Write = true
		}
	}
	return s
}

func nodeCmd(name string, arity int, flags []string, sub ...*Spec) *Spec {
	s := &Spec{Name: name, Arity: arity, Flags: flags, Node: true, Subcommands: sub}
	for _, c := range sub {
		c.Node = true
	}
	return s
}

// table lists every command the node knows.
var table = []*Spec{
	// Strings.
	key1(cmd("get", 2, fReadFast, cmdGet)),
	key1(cmd("set", -3, fWriteOOM, cmdSet)),
	key1(cmd("setnx", 3, fWriteOOMFst, cmdSetNX)),
	key1(cmd("setex", 4, fWriteOOM, cmdSetEX)),
	key1(cmd("psetex", 4, fWriteOOM, cmdPSetEX)),
	key1(cmd("getset", 3, fWriteOOMFst, cmdGetSet)),
	key1(cmd("getdel", 2, fWriteFast, cmdGetDel)),
	key1(cmd("getex", -2, fWriteFast, cmdGetEx)),
	keysAll(cmd("mget", -2, fReadFast, cmdMGet)),
	func() *Spec {
		s := cmd("mset", -3, fWriteOOM, cmdMSet)
		s.FirstKey, s.LastKey, s.Step = 1, -1, 2
		return s
	}(),
	func() *Spec {
		s := cmd("msetnx", -3, fWriteOOM, cmdMSetNX)
		s.FirstKey, s.LastKey, s.Step = 1, -1, 2
		return s
	}(),
	key1(cmd("incr", 2, fWriteOOMFst, cmdIncr)),
	key1(cmd("decr", 2, fWriteOOMFst, cmdDecr)),
	key1(cmd("incrby", 3, fWriteOOMFst, cmdIncrBy)),
	key1(cmd("decrby", 3, fWriteOOMFst, cmdDecrBy)),
	key1(cmd("incrbyfloat", 3, fWriteOOMFst, cmdIncrByFloat)),
	key1(cmd("append", 3, fWriteOOMFst, cmdAppend)),
	key1(cmd("strlen", 2, fReadFast, cmdStrlen)),
	key1(cmd("getrange", 4, fRead, cmdGetRange)),
	key1(cmd("substr", 4, fRead, cmdGetRange)),
	func() *Spec {
		s := cmd("lcs", -3, fRead, cmdLCS)
		s.FirstKey, s.LastKey, s.Step = 1, 2, 1
		return s
	}(),
	key1(cmd("setrange", 4, fWriteOOM, cmdSetRange)),

	// Keys.
	keysAll(cmd("del", -2, fWrite, cmdDel)),
	keysAll(cmd("unlink", -2, fWriteFast, cmdDel)),
	keysAll(cmd("exists", -2, fReadFast, cmdExists)),
	key1(cmd("dump", 2, fRead, cmdDump)),
	key1(cmd("restore", -4, fWriteOOM, cmdRestore)),
	// RESTORE-ASKING: what a Redis Cluster node's MIGRATE sends.
	key1(cmd("restore-asking", -4, []string{"write", "denyoom", "asking"}, cmdRestore)),
	keysAll(cmd("touch", -2, fReadFast, cmdExists)),
	key1(cmd("type", 2, fReadFast, cmdType)),
	keys12(cmd("rename", 3, fWrite, cmdRename)),
	keys12(cmd("renamenx", 3, fWriteFast, cmdRenameNX)),
	keys12(cmd("copy", -3, fWriteOOM, cmdCopy)),
	key1(cmd("expire", -3, fWriteFast, cmdExpire)),
	key1(cmd("pexpire", -3, fWriteFast, cmdPExpire)),
	key1(cmd("expireat", -3, fWriteFast, cmdExpireAt)),
	key1(cmd("pexpireat", -3, fWriteFast, cmdPExpireAt)),
	key1(cmd("ttl", 2, fReadFast, cmdTTL)),
	key1(cmd("pttl", 2, fReadFast, cmdPTTL)),
	key1(cmd("expiretime", 2, fReadFast, cmdExpireTime)),
	key1(cmd("pexpiretime", 2, fReadFast, cmdPExpireTime)),
	key1(cmd("persist", 2, fWriteFast, cmdPersist)),
	cmd("keys", 2, fRead, cmdKeys),
	cmd("dbsize", 1, fReadFast, cmdDBSize),
	keyedContainer("object", false, cmdObject,
		keyedSub("object|encoding", 3, fRead),
		keyedSub("object|freq", 3, fRead),
		helpSub("object|help"),
		keyedSub("object|idletime", 3, fRead),
		keyedSub("object|refcount", 3, fRead),
	),
	key1(cmd("move", 3, fWriteFast, cmdMove)),
	cmd("swapdb", 3, fWriteFast, cmdSwapDB),
	func() *Spec {
		// MEMORY USAGE is the engine's, on its key's shard; the node
		// serves the other subcommands (server/admin.go).
		s := cmd("memory", -2, []string{}, cmdMemory)
		s.keysFn = memoryKeys
		s.Subcommands = []*Spec{
			{Name: "memory|doctor", Arity: 2, Flags: []string{}},
			helpSub("memory|help"),
			{Name: "memory|malloc-stats", Arity: 2, Flags: []string{}},
			{Name: "memory|purge", Arity: 2, Flags: []string{}},
			{Name: "memory|stats", Arity: 2, Flags: []string{}},
			keyedSub("memory|usage", -3, fRead),
		}
		return s
	}(),
	func() *Spec {
		// DEBUG OBJECT is the engine's, on its key's shard; the node
		// serves the other subcommands (server/admin.go).
		s := cmd("debug", -2, []string{"admin", "noscript", "loading", "stale"}, cmdDebug)
		s.keysFn = debugKeys
		return s
	}(),
	cmd("randomkey", 1, fRead, cmdRandomKey),
	cmd("flushdb", -1, fWrite, cmdFlush),
	cmd("flushall", -1, fWrite, cmdFlush),
	cmd("scan", -2, fRead, cmdScan),

	// Hashes.
	key1(cmd("hset", -4, fWriteOOMFst, cmdHSet)),
	key1(cmd("hmset", -4, fWriteOOMFst, cmdHMSet)),
	key1(cmd("hsetnx", 4, fWriteOOMFst, cmdHSetNX)),
	key1(cmd("hget", 3, fReadFast, cmdHGet)),
	key1(cmd("hmget", -3, fReadFast, cmdHMGet)),
	key1(cmd("hdel", -3, fWriteFast, cmdHDel)),
	key1(cmd("hgetall", 2, fRead, cmdHGetAll)),
	key1(cmd("hkeys", 2, fRead, cmdHKeys)),
	key1(cmd("hvals", 2, fRead, cmdHVals)),
	key1(cmd("hlen", 2, fReadFast, cmdHLen)),
	key1(cmd("hexists", 3, fReadFast, cmdHExists)),
	key1(cmd("hstrlen", 3, fReadFast, cmdHStrlen)),
	key1(cmd("hincrby", 4, fWriteOOMFst, cmdHIncrBy)),
	key1(cmd("hincrbyfloat", 4, fWriteOOMFst, cmdHIncrByFloat)),
	key1(cmd("hscan", -3, fRead, cmdHScan)),
	key1(cmd("hrandfield", -2, fRead, cmdHRandField)),

	// Sets.
	key1(cmd("sadd", -3, fWriteOOMFst, cmdSAdd)),
	key1(cmd("srem", -3, fWriteFast, cmdSRem)),
	key1(cmd("smembers", 2, fRead, cmdSMembers)),
	key1(cmd("sismember", 3, fReadFast, cmdSIsMember)),
	key1(cmd("smismember", -3, fReadFast, cmdSMIsMember)),
	key1(cmd("scard", 2, fReadFast, cmdSCard)),
	keys12(cmd("smove", 4, fWriteFast, cmdSMove)),
	keysAll(cmd("sinter", -2, fRead, setCmd(opInter))),
	keysAll(cmd("sunion", -2, fRead, setCmd(opUnion))),
	keysAll(cmd("sdiff", -2, fRead, setCmd(opDiff))),
	keysAll(cmd("sinterstore", -3, fWriteOOM, setStoreCmd(opInter))),
	keysAll(cmd("sunionstore", -3, fWriteOOM, setStoreCmd(opUnion))),
	keysAll(cmd("sdiffstore", -3, fWriteOOM, setStoreCmd(opDiff))),
	key1(cmd("spop", -2, fWriteFast, cmdSPop)),
	key1(cmd("srandmember", -2, fRead, cmdSRandMember)),
	key1(cmd("sscan", -3, fRead, cmdSScan)),
	numkeysAt(1, cmd("sintercard", -3, []string{"readonly", "movablekeys"}, cmdSInterCard)),

	// Sorted sets.
	key1(cmd("zadd", -4, fWriteOOMFst, cmdZAdd)),
	key1(cmd("zincrby", 4, fWriteOOMFst, cmdZIncrBy)),
	key1(cmd("zrem", -3, fWriteFast, cmdZRem)),
	key1(cmd("zcard", 2, fReadFast, cmdZCard)),
	key1(cmd("zscore", 3, fReadFast, cmdZScore)),
	key1(cmd("zmscore", -3, fReadFast, cmdZMScore)),
	key1(cmd("zrank", 3, fReadFast, rankCmd(false))),
	key1(cmd("zrevrank", 3, fReadFast, rankCmd(true))),
	key1(cmd("zcount", 4, fReadFast, cmdZCount)),
	key1(cmd("zrange", -4, fRead, zrangeCmd(zrangeAny))),
	key1(cmd("zrangebyscore", -4, fRead, zrangeCmd(zrangeByScore))),
	key1(cmd("zrevrangebyscore", -4, fRead, zrangeCmd(zrangeRevByScore))),
	key1(cmd("zrevrange", -4, fRead, zrangeCmd(zrangeRev))),
	key1(cmd("zremrangebyscore", 4, fWrite, cmdZRemRangeByScore)),
	key1(cmd("zremrangebyrank", 4, fWrite, cmdZRemRangeByRank)),
	key1(cmd("zrangebylex", -4, fRead, zrangeCmd(zrangeByLex))),
	key1(cmd("zrevrangebylex", -4, fRead, zrangeCmd(zrangeRevByLex))),
	key1(cmd("zlexcount", 4, fReadFast, cmdZLexCount)),
	key1(cmd("zrandmember", -2, fRead, cmdZRandMember)),
	key1(cmd("zscan", -3, fRead, cmdZScan)),
	keys12(cmd("zrangestore", -5, fWriteOOM, cmdZRangeStore)),
	numkeysAt(1, cmd("zunion", -3, []string{"readonly", "movablekeys"}, zalgebraCmd(zUnion))),
	numkeysAt(1, cmd("zinter", -3, []string{"readonly", "movablekeys"}, zalgebraCmd(zInter))),
	numkeysAt(1, cmd("zdiff", -3, []string{"readonly", "movablekeys"}, zalgebraCmd(zDiff))),
	numkeysAt(1, cmd("zintercard", -3, []string{"readonly", "movablekeys"}, cmdZInterCard)),
	destAndNumkeys(cmd("zunionstore", -4, []string{"write", "denyoom", "movablekeys"}, zalgebraStoreCmd(zUnion))),
	destAndNumkeys(cmd("zinterstore", -4, []string{"write", "denyoom", "movablekeys"}, zalgebraStoreCmd(zInter))),
	destAndNumkeys(cmd("zdiffstore", -4, []string{"write", "denyoom", "movablekeys"}, zalgebraStoreCmd(zDiff))),
	key1(cmd("zremrangebylex", 4, fWrite, cmdZRemRangeByLex)),
	key1(cmd("zpopmin", -2, fWriteFast, zpopCmd(false))),
	key1(cmd("zpopmax", -2, fWriteFast, zpopCmd(true))),
	numkeysAt(1, cmd("zmpop", -4, []string{"write", "movablekeys"}, cmdZMPop)),
	keysTo(-2, nodeCmd("bzpopmin", -3, []string{"write", "noscript", "blocking", "fast"})),
	keysTo(-2, nodeCmd("bzpopmax", -3, []string{"write", "noscript", "blocking", "fast"})),
	numkeysAt(2, nodeCmd("bzmpop", -5, []string{"write", "blocking", "movablekeys"})),

	// Lists.
	key1(cmd("lpush", -3, fWriteOOMFst, pushCmd(true, false))),
	key1(cmd("rpush", -3, fWriteOOMFst, pushCmd(false, false))),
	key1(cmd("lpushx", -3, fWriteOOMFst, pushCmd(true, true))),
	key1(cmd("rpushx", -3, fWriteOOMFst, pushCmd(false, true))),
	key1(cmd("lpop", -2, fWriteFast, popCmd(true))),
	key1(cmd("rpop", -2, fWriteFast, popCmd(false))),
	key1(cmd("llen", 2, fReadFast, cmdLLen)),
	key1(cmd("lindex", 3, fRead, cmdLIndex)),
	key1(cmd("lset", 4, fWriteOOM, cmdLSet)),
	key1(cmd("lrange", 4, fRead, cmdLRange)),
	key1(cmd("ltrim", 4, fWrite, cmdLTrim)),
	key1(cmd("lrem", 4, fWrite, cmdLRem)),
	key1(cmd("linsert", 5, fWriteOOM, cmdLInsert)),
	key1(cmd("lpos", -3, fRead, cmdLPos)),
	keys12(cmd("lmove", 5, fWriteOOM, cmdLMove)),
	keys12(cmd("rpoplpush", 3, fWriteOOM, cmdRPopLPush)),
	numkeysAt(1, cmd("lmpop", -4, []string{"write", "movablekeys"}, cmdLMPop)),
	// The blocking forms are the node's: it runs the forms above until
	// one answers or the timeout passes (server/blocking.go).
	keysTo(-2, nodeCmd("blpop", -3, []string{"write", "noscript", "blocking"})),
	keysTo(-2, nodeCmd("brpop", -3, []string{"write", "noscript", "blocking"})),
	keys12(nodeCmd("blmove", 6, []string{"write", "denyoom", "noscript", "blocking"})),
	keys12(nodeCmd("brpoplpush", 4, []string{"write", "denyoom", "noscript", "blocking"})),
	numkeysAt(2, nodeCmd("blmpop", -5, []string{"write", "blocking", "movablekeys"})),

	func() *Spec {
		// Its key, and STORE's destination (one shard).
		s := key1(cmd("sort", -2, []string{"write", "denyoom", "movablekeys"}, sortCmd(false)))
		s.keysFn = sortKeys
		return s
	}(),
	key1(cmd("sort_ro", -2, []string{"readonly", "movablekeys"}, sortCmd(true))),
	key1(cmd("pfadd", -2, fWriteOOMFst, cmdPFAdd)),
	keysAll(cmd("pfcount", -2, fRead, cmdPFCount)),
	keysAll(cmd("pfmerge", -2, fWriteOOM, cmdPFMerge)),
	func() *Spec {
		s := cmd("pfdebug", 3, []string{"write", "denyoom", "admin"}, cmdPFDebug)
		s.FirstKey, s.LastKey, s.Step = 2, 2, 1
		return s
	}(),
	nodeCmd("pfselftest", 1, []string{"admin"}),
	key1(cmd("setbit", 4, fWriteOOM, cmdSetBit)),
	key1(cmd("getbit", 3, fReadFast, cmdGetBit)),
	key1(cmd("bitcount", -2, fRead, cmdBitCount)),
	key1(cmd("bitpos", -3, fRead, cmdBitPos)),
	func() *Spec {
		s := cmd("bitop", -4, fWriteOOM, cmdBitOp)
		s.FirstKey, s.LastKey, s.Step = 2, -1, 1
		return s
	}(),
	key1(cmd("bitfield", -2, fWriteOOM, bitfieldCmd(false))),
	key1(cmd("bitfield_ro", -2, fReadFast, bitfieldCmd(true))),
	key1(cmd("xadd", -5, fWriteOOMFst, cmdXAdd)),
	key1(cmd("xtrim", -4, fWrite, cmdXTrim)),
	key1(cmd("xdel", -3, fWriteFast, cmdXDel)),
	key1(cmd("xsetid", -3, fWriteOOMFst, cmdXSetID)),
	key1(cmd("xlen", 2, fReadFast, cmdXLen)),
	key1(cmd("xrange", -4, fRead, xrangeCmd(false))),
	key1(cmd("xrevrange", -4, fRead, xrangeCmd(true))),
	key1(cmd("xack", -4, fWriteFast, cmdXAck)),
	key1(cmd("xpending", -3, fRead, cmdXPending)),
	key1(cmd("xclaim", -6, fWriteFast, cmdXClaim)),
	key1(cmd("xautoclaim", -6, fWriteFast, cmdXAutoClaim)),
	func() *Spec {
		// Its keys follow STREAMS; BLOCK is the node's (server).
		s := cmd("xreadgroup", -7, []string{"write", "blocking", "movablekeys"}, cmdXReadGroup)
		s.keysFn = xreadKeys
		return s
	}(),
	keyedContainer("xgroup", true, cmdXGroup,
		keyedSub("xgroup|create", -5, fWriteOOM),
		keyedSub("xgroup|createconsumer", 5, fWriteOOM),
		keyedSub("xgroup|delconsumer", 5, fWrite),
		keyedSub("xgroup|destroy", 4, fWrite),
		helpSub("xgroup|help"),
		keyedSub("xgroup|setid", -5, fWrite),
	),
	keyedContainer("xinfo", false, cmdXInfo,
		keyedSub("xinfo|consumers", 4, fRead),
		keyedSub("xinfo|groups", 3, fRead),
		helpSub("xinfo|help"),
		keyedSub("xinfo|stream", -3, fRead),
	),
	func() *Spec {
		// Its keys follow STREAMS; BLOCK is the node's (server).
		s := cmd("xread", -4, []string{"readonly", "blocking", "movablekeys"}, cmdXRead)
		s.FirstKey, s.LastKey, s.Step, s.keysFn = 0, 0, 0, xreadKeys
		return s
	}(),

	// Served by the node.
	nodeCmd("ping", -1, []string{"fast"}),
	nodeCmd("echo", 2, []string{"loading", "stale", "fast"}),
	nodeCmd("quit", -1, []string{"noscript", "loading", "stale", "fast", "no_auth", "allow_busy"}),
	nodeCmd("auth", -2, []string{"noscript", "loading", "stale", "fast", "no_auth", "allow_busy"}),
	nodeCmd("hello", -1, []string{"noscript", "loading", "stale", "fast", "no_auth", "allow_busy"}),
	nodeCmd("select", 2, []string{"loading", "stale", "fast"}),
	nodeCmd("info", -1, []string{"loading", "stale"}),
	nodeCmd("command", -1, []string{"loading", "stale"},
		&Spec{Name: "command|count", Arity: 2, Flags: []string{"loading", "stale"}},
		&Spec{Name: "command|docs", Arity: -2, Flags: []string{"loading", "stale"}},
		&Spec{Name: "command|getkeys", Arity: -4, Flags: []string{"loading", "stale"}},
		&Spec{Name: "command|getkeysandflags", Arity: -4, Flags: []string{"loading", "stale"}},
		helpSub("command|help"),
		&Spec{Name: "command|info", Arity: -2, Flags: []string{"loading", "stale"}},
		&Spec{Name: "command|list", Arity: -2, Flags: []string{"loading", "stale"}},
	),
	nodeCmd("client", -2, []string{},
		&Spec{Name: "client|caching", Arity: 3, Flags: []string{"noscript", "loading", "stale"}},
		&Spec{Name: "client|getname", Arity: 2, Flags: []string{"noscript", "loading", "stale"}},
		&Spec{Name: "client|getredir", Arity: 2, Flags: []string{"noscript", "loading", "stale"}},
		helpSub("client|help"),
		&Spec{Name: "client|id", Arity: 2, Flags: []string{"noscript", "loading", "stale"}},
		&Spec{Name: "client|info", Arity: 2, Flags: []string{"noscript", "loading", "stale"}},
		&Spec{Name: "client|kill", Arity: -3, Flags: []string{"admin", "noscript", "loading", "stale"}},
		&Spec{Name: "client|list", Arity: -2, Flags: []string{"admin", "noscript", "loading", "stale"}},
		&Spec{Name: "client|no-evict", Arity: 3, Flags: []string{"admin", "noscript", "loading", "stale"}},
		&Spec{Name: "client|pause", Arity: -3, Flags: []string{"admin", "noscript", "loading", "stale"}},
		&Spec{Name: "client|reply", Arity: 3, Flags: []string{"noscript", "loading", "stale"}},
		&Spec{Name: "client|setname", Arity: 3, Flags: []string{"noscript", "loading", "stale"}},
		&Spec{Name: "client|tracking", Arity: -3, Flags: []string{"noscript", "loading", "stale"}},
		&Spec{Name: "client|trackinginfo", Arity: 2, Flags: []string{"noscript", "loading", "stale"}},
		&Spec{Name: "client|unblock", Arity: -3, Flags: []string{"admin", "noscript", "loading", "stale"}},
		&Spec{Name: "client|unpause", Arity: 2, Flags: []string{"admin", "noscript", "loading", "stale"}},
	),
	nodeCmd("config", -2, []string{},
		&Spec{Name: "config|get", Arity: -3, Flags: []string{"admin", "noscript", "loading", "stale"}},
		helpSub("config|help"),
		&Spec{Name: "config|resetstat", Arity: 2, Flags: []string{"admin", "noscript", "loading", "stale"}},
		&Spec{Name: "config|rewrite", Arity: 2, Flags: []string{"admin", "noscript", "loading", "stale"}},
		&Spec{Name: "config|set", Arity: -4, Flags: []string{"admin", "noscript", "loading", "stale"}},
	),
	nodeCmd("cluster", -2, []string{},
		&Spec{Name: "cluster|addslots", Arity: -3, Flags: fClusterAdmin},
		&Spec{Name: "cluster|addslotsrange", Arity: -4, Flags: fClusterAdmin},
		&Spec{Name: "cluster|bumpepoch", Arity: 2, Flags: fClusterAdmin},
		&Spec{Name: "cluster|count-failure-reports", Arity: 3, Flags: []string{"admin", "stale"}},
		&Spec{Name: "cluster|countkeysinslot", Arity: 3, Flags: []string{"stale"}},
		&Spec{Name: "cluster|delslots", Arity: -3, Flags: fClusterAdmin},
		&Spec{Name: "cluster|delslotsrange", Arity: -4, Flags: fClusterAdmin},
		&Spec{Name: "cluster|failover", Arity: -2, Flags: fClusterAdmin},
		&Spec{Name: "cluster|flushslots", Arity: 2, Flags: fClusterAdmin},
		&Spec{Name: "cluster|forget", Arity: 3, Flags: fClusterAdmin},
		&Spec{Name: "cluster|getkeysinslot", Arity: 4, Flags: []string{"stale"}},
		helpSub("cluster|help"),
		&Spec{Name: "cluster|info", Arity: 2, Flags: []string{"stale"}},
		&Spec{Name: "cluster|keyslot", Arity: 3, Flags: []string{"stale"}},
		&Spec{Name: "cluster|links", Arity: 2, Flags: []string{"stale"}},
		&Spec{Name: "cluster|meet", Arity: -4, Flags: fClusterAdmin},
		&Spec{Name: "cluster|myid", Arity: 2, Flags: []string{"stale"}},
		&Spec{Name: "cluster|nodes", Arity: 2, Flags: []string{"stale"}},
		&Spec{Name: "cluster|replicas", Arity: 3, Flags: []string{"admin", "stale"}},
		&Spec{Name: "cluster|replicate", Arity: 3, Flags: fClusterAdmin},
		&Spec{Name: "cluster|reset", Arity: -2, Flags: []string{"admin", "noscript", "stale"}},
		&Spec{Name: "cluster|saveconfig", Arity: 2, Flags: fClusterAdmin},
		&Spec{Name: "cluster|set-config-epoch", Arity: 3, Flags: fClusterAdmin},
		&Spec{Name: "cluster|setslot", Arity: -4, Flags: fClusterAdmin},
		&Spec{Name: "cluster|shards", Arity: 2, Flags: []string{"stale"}},
		&Spec{Name: "cluster|slaves", Arity: 3, Flags: []string{"admin", "stale"}},
		&Spec{Name: "cluster|slots", Arity: 2, Flags: []string{"stale"}},
	),
	// Redis's modules and replication: the node answers them as a Redis
	// Cluster node without modules would (server/replication.go).
	nodeCmd("module", -2, []string{},
		helpSub("module|help"),
		&Spec{Name: "module|list", Arity: 2, Flags: []string{"admin", "noscript"}},
		&Spec{Name: "module|load", Arity: -3, Flags: []string{"admin", "noscript", "no_async_loading"}},
		&Spec{Name: "module|loadex", Arity: -3, Flags: []string{"admin", "noscript", "no_async_loading"}},
		&Spec{Name: "module|unload", Arity: 3, Flags: []string{"admin", "noscript", "no_async_loading"}},
	),
	nodeCmd("replicaof", 3, []string{"admin", "noscript", "stale", "no_async_loading"}),
	nodeCmd("slaveof", 3, []string{"admin", "noscript", "stale", "no_async_loading"}),
	nodeCmd("failover", -1, []string{"admin", "noscript", "stale"}),
	nodeCmd("sync", 1, []string{"admin", "noscript", "no_async_loading", "no_multi"}),
	nodeCmd("psync", -3, []string{"admin", "noscript", "no_async_loading", "no_multi"}),
	nodeCmd("replconf", -1, []string{"admin", "noscript", "loading", "stale", "allow_busy"}),
	nodeCmd("acl", -2, []string{},
		&Spec{Name: "acl|cat", Arity: -2, Flags: []string{"noscript", "loading", "stale"}},
		&Spec{Name: "acl|deluser", Arity: -3, Flags: []string{"admin", "noscript", "loading", "stale"}},
		&Spec{Name: "acl|dryrun", Arity: -4, Flags: []string{"admin", "noscript", "loading", "stale"}},
		&Spec{Name: "acl|genpass", Arity: -2, Flags: []string{"noscript", "loading", "stale"}},
		&Spec{Name: "acl|getuser", Arity: 3, Flags: []string{"admin", "noscript", "loading", "stale"}},
		helpSub("acl|help"),
		&Spec{Name: "acl|list", Arity: 2, Flags: []string{"admin", "noscript", "loading", "stale"}},
		&Spec{Name: "acl|load", Arity: 2, Flags: []string{"admin", "noscript", "loading", "stale"}},
		&Spec{Name: "acl|log", Arity: -2, Flags: []string{"admin", "noscript", "loading", "stale"}},
		&Spec{Name: "acl|save", Arity: 2, Flags: []string{"admin", "noscript", "loading", "stale"}},
		&Spec{Name: "acl|setuser", Arity: -3, Flags: []string{"admin", "noscript", "loading", "stale"}},
		&Spec{Name: "acl|users", Arity: 2, Flags: []string{"admin", "noscript", "loading", "stale"}},
		&Spec{Name: "acl|whoami", Arity: 2, Flags: []string{"noscript", "loading", "stale"}},
	),
	nodeCmd("time", 1, []string{"loading", "stale", "fast"}),
	nodeCmd("asking", 1, []string{"fast"}),
	func() *Spec {
		s := nodeCmd("migrate", -6, []string{"write", "movablekeys"})
		s.FirstKey, s.LastKey, s.Step = 3, 3, 1 // as COMMAND reports them
		s.Write = true                          // held by CLIENT PAUSE WRITE
		// Its keys, as Redis's migrateGetKeys finds them: the one at 3,
		// or, when that is empty, those after a KEYS from the options on.
		s.keysFn = func(args [][]byte) [][]byte {
			if len(args) > 6 && len(args[3]) == 0 {
				for i := 6; i < len(args); i++ {
					if isOpt(args[i], "keys") {
						return args[i+1:]
					}
				}
			}
			if len(args) > 3 {
				return args[3:4]
			}
			return nil
		}
		return s
	}(),
	nodeCmd("monitor", 1, []string{"admin", "noscript", "loading", "stale"}),
	nodeCmd("shutdown", -1, []string{"admin", "noscript", "loading", "stale", "no_multi", "allow_busy"}),
	nodeCmd("slowlog", -2, []string{},
		&Spec{Name: "slowlog|get", Arity: -2, Flags: []string{"admin", "loading", "stale"}},
		helpSub("slowlog|help"),
		&Spec{Name: "slowlog|len", Arity: 2, Flags: []string{"admin", "loading", "stale"}},
		&Spec{Name: "slowlog|reset", Arity: 2, Flags: []string{"admin", "loading", "stale"}},
	),
	nodeCmd("latency", -2, []string{},
		&Spec{Name: "latency|doctor", Arity: 2, Flags: []string{"admin", "noscript", "loading", "stale"}},
		&Spec{Name: "latency|graph", Arity: 3, Flags: []string{"admin", "noscript", "loading", "stale"}},
		helpSub("latency|help"),
		&Spec{Name: "latency|histogram", Arity: -2, Flags: []string{"admin", "noscript", "loading", "stale"}},
		&Spec{Name: "latency|history", Arity: 3, Flags: []string{"admin", "noscript", "loading", "stale"}},
		&Spec{Name: "latency|latest", Arity: 2, Flags: []string{"admin", "noscript", "loading", "stale"}},
		&Spec{Name: "latency|reset", Arity: -2, Flags: []string{"admin", "noscript", "loading", "stale"}},
	),
	nodeCmd("role", 1, []string{"noscript", "loading", "stale", "fast"}),
	nodeCmd("lastsave", 1, []string{"loading", "stale", "fast"}),
	nodeCmd("save", 1, []string{"admin", "noscript", "no_async_loading", "no_multi"}),
	nodeCmd("bgsave", -1, []string{"admin", "noscript", "no_async_loading"}),
	nodeCmd("bgrewriteaof", 1, []string{"admin", "noscript", "no_async_loading"}),
	nodeCmd("lolwut", -1, []string{"readonly", "fast"}),
	nodeCmd("readonly", 1, []string{"loading", "stale", "fast"}),
	nodeCmd("multi", 1, []string{"noscript", "loading", "stale", "fast", "allow_busy"}),
	nodeCmd("exec", 1, []string{"noscript", "loading", "stale", "skip_slowlog"}),
	nodeCmd("discard", 1, []string{"noscript", "loading", "stale", "fast", "allow_busy"}),
	keysAll(nodeCmd("watch", -2, []string{"noscript", "loading", "stale", "fast", "allow_busy"})),
	nodeCmd("unwatch", 1, []string{"noscript", "loading", "stale", "fast", "allow_busy"}),
	nodeCmd("readwrite", 1, []string{"loading", "stale", "fast"}),
	nodeCmd("wait", 3, []string{"noscript"}),
	nodeCmd("reset", 1, []string{"noscript", "loading", "stale", "fast", "no_auth", "allow_busy"}),
	nodeCmd("subscribe", -2, []string{"pubsub", "noscript", "loading", "stale"}),
	nodeCmd("psubscribe", -2, []string{"pubsub", "noscript", "loading", "stale"}),
	keysAll(nodeCmd("ssubscribe", -2, []string{"pubsub", "noscript", "loading", "stale"})),
	nodeCmd("unsubscribe", -1, []string{"pubsub", "noscript", "loading", "stale"}),
	nodeCmd("punsubscribe", -1, []string{"pubsub", "noscript", "loading", "stale"}),
	keysAll(nodeCmd("sunsubscribe", -1, []string{"pubsub", "noscript", "loading", "stale"})),
	nodeCmd("publish", 3, []string{"pubsub", "loading", "stale", "fast"}),
	key1(nodeCmd("spublish", 3, []string{"pubsub", "loading", "stale", "fast"})),
	// Geospatial: sorted sets of geohashes (geo.go).
	key1(cmd("geoadd", -5, fWriteOOM, cmdGeoAdd)),
	key1(cmd("geodist", -4, fRead, cmdGeoDist)),
	key1(cmd("geohash", -2, fRead, cmdGeoHash)),
	key1(cmd("geopos", -2, fRead, cmdGeoPos)),
	geoStoreKeys(6, cmd("georadius", -6, []string{"write", "denyoom", "movablekeys"}, geoCmd(geoByCoords))),
	key1(cmd("georadius_ro", -6, fRead, geoCmd(geoByCoords|geoNoStore))),
	geoStoreKeys(5, cmd("georadiusbymember", -5, []string{"write", "denyoom", "movablekeys"}, geoCmd(geoByMember))),
	key1(cmd("georadiusbymember_ro", -5, fRead, geoCmd(geoByMember|geoNoStore))),
	key1(cmd("geosearch", -7, fRead, geoCmd(geoSearch))),
	keys12(cmd("geosearchstore", -8, fWriteOOM, geoCmd(geoSearch|geoSearchStore))),
	// Scripting: the node turns EVAL and EVALSHA into EvalName (eval.go).
	evalCmd("eval", true),
	evalCmd("evalsha", true),
	evalCmd("eval_ro", false),
	evalCmd("evalsha_ro", false),
	evalCmd("fcall", true),
	evalCmd("fcall_ro", false),
	nodeCmd("function", -2, []string{},
		&Spec{Name: "function|delete", Arity: 3, Flags: []string{"write", "noscript"}},
		&Spec{Name: "function|dump", Arity: 2, Flags: []string{"noscript"}},
		&Spec{Name: "function|flush", Arity: -2, Flags: []string{"write", "noscript"}},
		helpSub("function|help"),
		&Spec{Name: "function|kill", Arity: 2, Flags: []string{"noscript", "allow_busy"}},
		&Spec{Name: "function|list", Arity: -2, Flags: []string{"noscript"}},
		&Spec{Name: "function|load", Arity: -3, Flags: []string{"write", "denyoom", "noscript"}},
		&Spec{Name: "function|restore", Arity: -3, Flags: []string{"write", "denyoom", "noscript"}},
		&Spec{Name: "function|stats", Arity: 2, Flags: []string{"noscript", "allow_busy"}},
	),
	nodeCmd("script", -2, []string{},
		&Spec{Name: "script|debug", Arity: 3, Flags: []string{"noscript"}},
		&Spec{Name: "script|exists", Arity: -3, Flags: []string{"noscript"}},
		&Spec{Name: "script|flush", Arity: -2, Flags: []string{"noscript"}},
		helpSub("script|help"),
		&Spec{Name: "script|kill", Arity: 2, Flags: []string{"noscript", "allow_busy"}},
		&Spec{Name: "script|load", Arity: 3, Flags: []string{"noscript", "stale"}},
	),
	nodeCmd("pubsub", -2, []string{},
		&Spec{Name: "pubsub|channels", Arity: -2, Flags: []string{"pubsub", "loading", "stale"}},
		helpSub("pubsub|help"),
		&Spec{Name: "pubsub|numpat", Arity: 2, Flags: []string{"pubsub", "loading", "stale"}},
		&Spec{Name: "pubsub|numsub", Arity: -2, Flags: []string{"pubsub", "loading", "stale"}},
		&Spec{Name: "pubsub|shardchannels", Arity: -2, Flags: []string{"pubsub", "loading", "stale"}},
		&Spec{Name: "pubsub|shardnumsub", Arity: -2, Flags: []string{"pubsub", "loading", "stale"}},
	),
}

// evalCmd is EVAL's, EVALSHA's, EVAL_RO's, EVALSHA_RO's, FCALL's or
// FCALL_RO's entry: keys after their count, args[2]. The engine never runs
// it as it is: the node sends EvalName or FcallName.
func evalCmd(name string, write bool) *Spec {
	flags := []string{"noscript", "stale", "skip_monitor", "no_mandatory_keys", "movablekeys"}
	if !write {
		flags = append([]string{"readonly"}, flags...)
	}
	s := numkeysAt(2, cmd(name, -3, flags, func(*txn, [][]byte) *messages.Reply {
		return errReply("ERR kv: a script reaches the engine as " + strconv.Quote(EvalName) + " or " + strconv.Quote(FcallName))
	}))
	s.Write = write
	return s
}

// byName indexes table by lower-case name.
var byName = func() map[string]*Spec {
	m := make(map[string]*Spec, len(table))
	for _, s := range table {
		m[s.Name] = s
	}
	return m
}()

// byFullName indexes every command and subcommand by its full name
// ("get", "config|get"); SpecNamed reads it.
var byFullName = func() map[string]*Spec {
	m := make(map[string]*Spec, len(specs))
	for _, s := range specs {
		m[s.Name] = s
	}
	return m
}()

// SpecNamed finds a command or a subcommand by its full name in lower
// case ("config|get"), as statistics and traces name them; Lookup is for
// a client's command name.
func SpecNamed(name string) (*Spec, bool) {
	s, ok := byFullName[name]
	return s, ok
}

// specs is every command of the table, sorted by name, each followed by
// its subcommands (Specs); each spec's place is set to its index here.
var specs = func() []*Spec {
	var out []*Spec
	for _, s := range Commands() {
		out = append(out, s)
		out = append(out, s.Subcommands...)
	}
	for i, s := range out {
		s.place = i + 1
	}
	return out
}()

// Specs returns every command and subcommand of the table: the commands
// sorted by name, each followed by its subcommands (Spec.Index).
func Specs() []*Spec { return slices.Clone(specs) }

// Lookup finds a command by name, in any case.
func Lookup(name []byte) (*Spec, bool) {
	var buf [24]byte
	if len(name) > len(buf) {
		return nil, false
	}
	lower := buf[:len(name)]
	for i, c := range name {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		lower[i] = c
	}
	s, ok := byName[string(lower)]
	return s, ok
}

// Commands returns every top-level command, sorted by name.
func Commands() []*Spec {
	out := append([]*Spec(nil), table...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// ArgsBytes is the bytes of a command's arguments (name first): what a
// node's write limit (--max-write-mib) bounds.
func ArgsBytes(args [][]byte) int64 {
	n := int64(0)
	for _, a := range args {
		n += int64(len(a))
	}
	return n
}

// CheckArity checks that args (name first) is a known command with an
// allowed number of arguments; it returns Redis's error reply, or nil.
func CheckArity(args [][]byte) *messages.Reply {
	if len(args) == 0 {
		return errReply("ERR unknown command '', with args beginning with: ")
	}
	s, ok := Lookup(args[0])
	if !ok {
		return unknownCommand(args)
	}
	if !arityOK(s.Arity, len(args)) {
		return errArity(s.Name)
	}
	return nil
}

// CheckSubcommand checks that args (a container command, a subcommand,
// its arguments) have the container's arity and name a known subcommand
// given an allowed number of arguments; it returns Redis's error reply,
// or nil.
func CheckSubcommand(args [][]byte) *messages.Reply {
	if r := CheckArity(args); r != nil || len(args) < 2 {
		return r
	}
	s, _ := Lookup(args[0])
	if sub := s.Sub(args[1]); sub != nil {
		if !arityOK(sub.Arity, len(args)) {
			return errArity(sub.Name)
		}
		return nil
	}
	return errReply(fmt.Sprintf("ERR unknown subcommand '%s'. Try %s HELP.", args[1], strings.ToUpper(s.Name)))
}

// Sub is the container s's subcommand named name (any case), or nil. It
// allocates nothing.
func (s *Spec) Sub(name []byte) *Spec {
	for _, sub := range s.Subcommands {
		if equalFoldASCII(name, sub.Name[len(s.Name)+1:]) { // "client|list"
			return sub
		}
	}
	return nil
}

// StatSpec is the command Redis counts args under (s is args[0]'s spec):
// a container's subcommand (CONFIG GET counts as config|get), the
// container itself when args name no subcommand (CONFIG alone, which
// Redis refuses for its arity), nil for an unknown subcommand (which
// Redis counts nowhere, as an unknown command).
func StatSpec(s *Spec, args [][]byte) *Spec {
	if s == nil || len(s.Subcommands) == 0 || len(args) < 2 {
		return s
	}
	return s.Sub(args[1])
}

func arityOK(arity, n int) bool {
	return (arity > 0 && n == arity) || (arity < 0 && n >= -arity)
}

// unknownCommand builds Redis's reply to an unknown command: the name cut
// at 128 bytes, then the arguments, each quoted, until 128 bytes are
// written; C strings, so each is cut at a NUL; newlines become spaces.
func unknownCommand(args [][]byte) *messages.Reply {
	b := []byte("ERR unknown command '")
	b = append(b, cString(args[0], 128)...)
	b = append(b, "', with args beginning with: "...)
	n := 0
	for _, a := range args[1:] {
		if n >= 128 {
			break
		}
		s := cString(a, 128-n)
		b = append(b, '\'')
		b = append(b, s...)
		b = append(b, "' "...)
		n += len(s) + 3
	}
	for i, c := range b {
		if c == '\r' || c == '\n' {
			b[i] = ' '
		}
	}
	return errReply(string(b))
}

// cString is b as C's "%.*s" prints it: up to the first NUL, at most n
// bytes.
func cString(b []byte, n int) []byte {
	for i, c := range b {
		if c == 0 {
			b = b[:i]
			break
		}
	}
	if len(b) > n {
		b = b[:n]
	}
	return b
}

// isOpt reports whether argument a is the keyword kw, in any case. Redis
// compares options as C strings, so a NUL byte ends the argument.
func isOpt(a []byte, kw string) bool { return equalFoldASCII(cString(a, len(a)), kw) }
