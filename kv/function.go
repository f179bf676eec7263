package kv

import (
	"bytes"
	"encoding/binary"
	"hash/fnv"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"

	"github.com/coppice-kv/coppice/kv/luascript"
	"github.com/coppice-kv/coppice/messages"
)

// Functions (FUNCTION LOAD, FCALL): every shard keeps every library, under
// prefixFunction, so that FCALL finds its function on whatever shard its
// keys are; the node sends FUNCTION LOAD, DELETE and FLUSH to every shard.
// FCALL runs as a script does (eval.go), the function's library loaded
// from the shard's own state.

// FunctionName is the internal command of FUNCTION LOAD, DELETE, FLUSH
// (writes, on every shard) and LIST (a read):
//
//	["\x00function", "load", "0"|"1" (REPLACE), code]
//	["\x00function", "delete", library]
//	["\x00function", "flush"]
//	["\x00function", "list"]   every library: [name, code] pairs
//	["\x00function", "restore", "append"|"replace"|"flush", code...]
const FunctionName = "\x00function"

// FcallName is the internal command of FCALL and FCALL_RO:
//
//	["\x00fcall", "<shards>:<shard>[:ro]", function, numkeys, key..., arg...]
//
// as EvalName's, with the function's name for the body.
const FcallName = "\x00fcall"

func libKey(name []byte) []byte { return append([]byte{prefixFunction, 'L'}, name...) }

// funcKey is the index entry of function name: under the name in lower
// case, as Redis finds functions in any case.
func funcKey(name []byte) []byte {
	return append([]byte{prefixFunction, 'F'}, bytes.ToLower(name)...)
}

// funcOwner is the library that has function name, in any case. A
// library loaded before functions were found in any case may have its
// entry under the name as written.
func (t *txn) funcOwner(name []byte) ([]byte, bool) {
	if owner, ok := t.get(funcKey(name)); ok {
		return owner, true
	}
	return t.get(append([]byte{prefixFunction, 'F'}, name...))
}

var (
	errLibNotFound  = errReply("ERR Library not found")
	errFuncNotFound = errReply("ERR Function not found")
	errBadFunction  = errReply("ERR kv: malformed function command")
)

// execFunction runs FunctionName's args: LOAD, DELETE and FLUSH on the write
// path, LIST on either.
func execFunction(t *txn, args [][]byte) *messages.Reply {
	if len(args) < 2 {
		return errBadFunction
	}
	op := string(args[1])
	if op != "list" && t.w == nil {
		return errReadWrite
	}
	switch {
	case op == "load" && len(args) == 4:
		return t.functionLoad(string(args[2]) == "1", args[3])
	case op == "delete" && len(args) == 3:
		if _, ok := t.get(libKey(args[2])); !ok {
			return errLibNotFound
		}
		t.dropLibrary(args[2])
		return replyOK
	case op == "flush" && len(args) == 2:
		must(t.w.DeleteRange([]byte{prefixFunction}, []byte{prefixEnd}))
		return replyOK
	case op == "restore" && len(args) >= 3:
		return t.functionRestore(string(args[2]), args[3:])
	case op == "list" && len(args) == 2:
		var items []*messages.Reply
		p := []byte{prefixFunction, 'L'}
		must(t.r.Scan(p, successor(p), func(k, v []byte) bool {
			items = append(items, bulk(bytes.Clone(k[2:])), bulk(bytes.Clone(v)))
			return true
		}))
		return array(items)
	}
	return errBadFunction
}

// FunctionMayWrite tells, from list (the libraries a shard answered to
// FunctionName "list"), whether the function name may write: false for
// one registered with no-writes; true when no library has it (FCALL then
// answers its error, after what waits on writes).
func FunctionMayWrite(list *messages.Reply, name []byte) bool {
	items := list.GetArray().GetItems()
	for i := 1; i < len(items); i += 2 {
		lib, r := luascript.LoadLibrary(items[i].GetBulk())
		if r != nil {
			continue
		}
		if f, ok := lib.Function(string(name)); ok {
			return !f.NoWrites
		}
	}
	return true
}

// functionLoad stores a library and indexes its functions.
func (t *txn) functionLoad(replace bool, code []byte) *messages.Reply {
	libName, r := luascript.LibraryName(code)
	if r != nil {
		return r
	}
	name := []byte(libName)
	_, exists := t.get(libKey(name))
	if exists && !replace {
		return errReply("ERR Library '" + libName + "' already exists") // before compiling, as Redis
	}
	lib, r := luascript.LoadLibrary(code)
	if r != nil {
		return r
	}
	for _, f := range lib.Funcs {
		if owner, ok := t.funcOwner([]byte(f.Name)); ok && !bytes.Equal(owner, name) {
			return errReply("ERR Function " + f.Name + " already exists")
		}
	}
	if exists {
		t.dropLibrary(name)
	}
	t.set(libKey(name), lib.Code)
	for _, f := range lib.Funcs {
		t.set(funcKey([]byte(f.Name)), name)
	}
	return bulkString(lib.Name)
}

// functionRestore is FUNCTION RESTORE's libraries (codes) joined to the
// shard's as Redis's libraryJoin joins them: with policy append a library
// the shard has refuses them all, with replace it is replaced, with flush
// the shard's go first; a function another library has refuses them all.
// Nothing changes unless all go in.
func (t *txn) functionRestore(policy string, codes [][]byte) *messages.Reply {
	libs := map[string]*luascript.Library{}
	owners := map[string]string{} // the payload's functions, by name in lower case: their library
	for _, code := range codes {
		lib, r := luascript.LoadLibrary(code)
		if r != nil {
			return r
		}
		if libs[lib.Name] != nil {
			return errReply("ERR Library '" + lib.Name + "' already exists")
		}
		for _, f := range lib.Funcs {
			lower := strings.ToLower(f.Name) // functions collide in any case
			if _, dup := owners[lower]; dup {
				return errReply("ERR Function " + f.Name + " already exists")
			}
			owners[lower] = lib.Name
		}
		libs[lib.Name] = lib
	}
	replaced := map[string]bool{}
	if policy != "flush" {
		for _, name := range slices.Sorted(maps.Keys(libs)) {
			if _, ok := t.get(libKey([]byte(name))); ok {
				if policy != "replace" {
					return errReply("ERR Library " + name + " already exists")
				}
				replaced[name] = true
			}
		}
		for _, f := range slices.Sorted(maps.Keys(owners)) {
			if owner, ok := t.funcOwner([]byte(f)); ok && !replaced[string(owner)] {
				return errReply("ERR Function " + f + " already exists")
			}
		}
	}
	if policy == "flush" {
		must(t.w.DeleteRange([]byte{prefixFunction}, []byte{prefixEnd}))
	}
	for name := range replaced {
		t.dropLibrary([]byte(name))
	}
	for _, name := range slices.Sorted(maps.Keys(libs)) {
		t.set(libKey([]byte(name)), libs[name].Code)
		for _, f := range libs[name].Funcs {
			t.set(funcKey([]byte(f.Name)), []byte(name))
		}
	}
	return replyOK
}

// rdbFunction2 is RDB_OPCODE_FUNCTION2, before each library's code in a
// FUNCTION DUMP payload; rdbFunctionPreGA, a Redis 7.0 release
// candidate's.
const (
	rdbFunction2     = 245
	rdbFunctionPreGA = 246
)

// FunctionDump is FUNCTION DUMP's payload of libraries (their codes):
// each as RDB_OPCODE_FUNCTION2 and its code, then the RDB version and the
// CRC64, as Redis's.
func FunctionDump(codes [][]byte) []byte {
	var b []byte
	for _, code := range codes {
		b = appendRDBString(append(b, rdbFunction2), code)
	}
	b = binary.LittleEndian.AppendUint16(b, rdbVersion)
	return binary.LittleEndian.AppendUint64(b, crc64Redis(b))
}

// FunctionCodes reads a FUNCTION DUMP payload's libraries' codes, or gives
// Redis's error for one it cannot read.
func FunctionCodes(payload []byte) ([][]byte, *messages.Reply) {
	body, ok := checkDump(payload)
	if !ok {
		return nil, errReply("ERR DUMP payload version or checksum are wrong")
	}
	r := &rdbReader{p: body}
	var codes [][]byte
	for len(r.p) > 0 {
		switch typ, _ := r.byte(); typ {
		case rdbFunction2:
		case rdbFunctionPreGA:
			return nil, errReply("ERR Pre-GA function format not supported")
		default:
			return nil, errReply("ERR given type is not a function")
		}
		code, err := r.string()
		if err != nil {
			return nil, errReply("ERR Failed loading library payload")
		}
		codes = append(codes, bytes.Clone(code))
	}
	return codes, nil
}

// dropLibrary removes library name (its code) and its functions' index
// entries (those that name it).
func (t *txn) dropLibrary(name []byte) {
	p := []byte{prefixFunction, 'F'}
	var funcs [][]byte
	must(t.r.Scan(p, successor(p), func(k, v []byte) bool {
		if bytes.Equal(v, name) {
			funcs = append(funcs, bytes.Clone(k))
		}
		return true
	}))
	for _, k := range funcs {
		t.del(k)
	}
	t.del(libKey(name))
}

// PrepareFcall turns FCALL or FCALL_RO (name lower-case, args arity
// checked) into FcallName's command on a node of shards shards, or returns
// Redis's error: shard is the keys' shard (-1 for none: the command gives
// shard 0), read tells that it runs on the read path (FCALL_RO). The
// command's arguments are args' own slices.
func PrepareFcall(name string, args [][]byte, shards int) (cmd [][]byte, shard int, read bool, r *messages.Reply) {
	if _, ok := parseInt(args[2]); !ok {
		return nil, 0, false, errReply("ERR Bad number of keys provided")
	}
	keys, r := ScriptKeys(args)
	if r != nil {
		return nil, 0, false, r
	}
	if shard, r = keysShard(keys, shards); r != nil {
		return nil, 0, false, r
	}
	ro := name == "fcall_ro"
	cmd = EvalCommand(shards, max(shard, 0), ro, args[1], args)
	cmd[0] = []byte(FcallName)
	return cmd, shard, ro, nil
}

// execFcall runs FcallName's args: on the write path when t.w is not nil.
func execFcall(t *txn, args [][]byte) *messages.Reply {
	shards, shard, readOnly, rules, ok := parseWhere(args)
	if !ok || len(args) < 4 {
		return errBadEval
	}
	keys, e := ScriptKeys(args[1:])
	if e != nil {
		return e
	}
	owner, found := t.funcOwner(args[2])
	if !found {
		return errFuncNotFound
	}
	code, found := t.get(libKey(owner))
	if !found {
		return errFuncNotFound
	}
	lib, e := luascript.LoadLibrary(code)
	if e != nil {
		return e
	}
	f, found := lib.Function(string(args[2]))
	if !found {
		return errFuncNotFound
	}
	name := f.Name // as registered: FCALL names it in any case
	if readOnly && !f.NoWrites {
		return errROWithFlag
	}
	host, seed, e := newScriptHost(t, shards, shard, name, !f.NoWrites && !readOnly, rules)
	if e != nil {
		return e
	}
	return lib.Call(name, keys, args[4+len(keys):], seed, host)
}

// newScriptHost is the host of a script or function (named name) that t
// runs on shard: it writes to t's batch when t has one (the write path)
// and mayWrite, and draws from a random source its name and t's time
// seed.
func newScriptHost(t *txn, shards, shard int, name string, mayWrite bool, rules string) (*scriptHost, int32, *messages.Reply) {
	h := fnv.New64a()
	h.Write([]byte(name))
	seed := h.Sum64() ^ uint64(t.now)
	host := &scriptHost{
		t:      &txn{r: t.r, now: t.now, rng: rand.New(rand.NewPCG(seed, uint64(t.now))), trace: t.trace},
		shards: shards, shard: shard,
	}
	if mayWrite {
		host.t.w, host.t.ev = t.w, t.ev
	}
	if rules != "" {
		u, err := scriptUser(rules)
		if err != nil {
			return nil, 0, errReply("ERR kv: a script's ACL rules: " + err.Error())
		}
		host.user = u
	}
	return host, int32(seed), nil
}

// parseWhere reads EvalName's and FcallName's args[1]:
// "shards:shard[:ro]", then, for a caller whose ACL rules its calls must
// follow, "\x00" and the rules (ScriptACL).
func parseWhere(args [][]byte) (shards, shard int, readOnly bool, rules string, ok bool) {
	if len(args) < 2 {
		return 0, 0, false, "", false
	}
	at, r, _ := bytes.Cut(args[1], []byte{0})
	where := bytes.Split(at, []byte(":"))
	readOnly = len(where) == 3 && string(where[2]) == "ro"
	if len(where) != 2 && !readOnly {
		return 0, 0, false, "", false
	}
	shards, err1 := strconv.Atoi(string(where[0]))
	shard, err2 := strconv.Atoi(string(where[1]))
	ok = err1 == nil && err2 == nil && shards >= 1 && shard >= 0 && shard < shards
	return shards, shard, readOnly, string(r), ok
}
