// Package luascript runs Redis's Lua scripts (EVAL and its kin) for the
// engine: a sandbox of Lua 5.1 (gopher-lua) with Redis's libraries and its
// redis.* API, whose every run is deterministic and bounded, because the
// engine runs a script on every replica of its shard, as the Raft log
// applies it (see budget.go).
//
// What makes a run the same everywhere: a VM that is, for each run, as a
// new one (every table a script finds is read-only, readonly.go, and the
// rest set again for each run: release), no clock, no os, no print; math.random
// is Redis's rand48, seeded by the caller; tostring of a table or function
// numbers it in the order the script asks (not its address);
// collectgarbage answers 0; coroutines are not there (a coroutine's
// instructions escape the VM's instruction count). pairs and next follow
// the order keys were set in; this package walks tables that way too
// (eachPair), never with gopher-lua's ForEach, which walks Go maps.
package luascript

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/coppice-kv/coppice/messages"
	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/parse"
)

// chunkName is the name Redis gives a script's chunk: its errors read
// "user_script:3: ..." and "on @user_script:3.".
const chunkName = "user_script"

// Script is a compiled script. It is immutable and shared: many runs, on
// many goroutines, use one.
type Script struct {
	SHA  string // lower-case hex SHA-1 of Body
	Body []byte
	// Shebang is true when the script starts with "#!lua": Redis 7's
	// flags then apply, and a script without no-writes may write (EVAL_RO
	// refuses it).
	Shebang bool
	// NoWrites is the shebang's flags=no-writes: the script may only
	// read, and runs as a read.
	NoWrites bool
	proto    *lua.FunctionProto
}

// SHA1 is the lower-case hex SHA-1 of body: a script's name in EVALSHA.
func SHA1(body []byte) string {
	sum := sha1.Sum(body)
	return hex.EncodeToString(sum[:])
}

// Compile compiles body, or returns the error reply Redis gives for it.
// The Script holds a copy of body. Compiled scripts are kept by their
// source (up to maxCompiled), so a script the node runs again is neither
// compiled nor hashed again.
func Compile(body []byte) (*Script, *messages.Reply) {
	return compiled.get(body, func() (*Script, *messages.Reply) { return compile(SHA1(body), body) })
}

const maxCompiled = 1000

var (
	compiled  = newSourceCache[*Script]()
	libraries = newSourceCache[*Library]()
)

// sourceCache keeps what was made of a source (a script, a library) by
// the source itself: a hit costs a map lookup, not a hash of the source.
type sourceCache[T any] struct {
	mu sync.Mutex
	m  map[string]T
}

func newSourceCache[T any]() *sourceCache[T] { return &sourceCache[T]{m: map[string]T{}} }

// get is what build made of src, built now if it is not kept; what build
// refuses (its error) is not kept.
func (c *sourceCache[T]) get(src []byte, build func() (T, *messages.Reply)) (T, *messages.Reply) {
	c.mu.Lock()
	v, ok := c.m[string(src)]
	c.mu.Unlock()
	if ok {
		return v, nil
	}
	v, r := build()
	if r != nil {
		return v, r
	}
	c.mu.Lock()
	if len(c.m) >= maxCompiled {
		clear(c.m) // a node that runs this many different sources makes them again
	}
	c.m[string(src)] = v
	c.mu.Unlock()
	return v, nil
}

func compile(sha string, body []byte) (*Script, *messages.Reply) {
	body = bytes.Clone(body) // the caller's may be a reader's buffer
	s := &Script{SHA: sha, Body: body}
	src := body
	if bytes.HasPrefix(body, []byte("#!")) {
		s.Shebang = true
		line, rest, _ := bytes.Cut(body, []byte("\n"))
		if r := s.shebang(string(line)); r != nil {
			return nil, r
		}
		// Keep the line count: the shebang line becomes an empty one.
		src = append([]byte("\n"), rest...)
	}
	proto, err := compileChunk(src, chunkName)
	if err != nil {
		return nil, errorf("ERR Error compiling script (new function): %s", err)
	}
	s.proto = proto
	return s, nil
}

// shebang reads "#!lua [flags=a,b]" (Redis 7's script flags).
func (s *Script) shebang(line string) *messages.Reply {
	parts := strings.Fields(line[2:])
	if len(parts) == 0 || parts[0] != "lua" {
		return errorf("ERR Unexpected engine in script shebang: %s", line)
	}
	for _, p := range parts[1:] {
		flags, ok := strings.CutPrefix(p, "flags=")
		if !ok {
			return errorf("ERR Unknown lua shebang option: %s", p)
		}
		for _, f := range strings.Split(flags, ",") {
			switch f {
			case "no-writes":
				s.NoWrites = true
			case "allow-oom", "allow-stale", "no-cluster", "allow-cross-slot-keys", "":
				// allow-stale: every node reads as of its leader already;
				// no-cluster and allow-cross-slot-keys: a script's keys
				// are one shard's, as always here.
			default:
				return errorf("ERR Unexpected flag in script shebang: %s", f)
			}
		}
	}
	return nil
}

// compileChunk parses src, rewrites its '..' (rewriteConcat) and
// compiles it; a syntax error reads as Lua's "name:line: message".
func compileChunk(src []byte, name string) (proto *lua.FunctionProto, err error) {
	defer func() {
		// A chunk too deep for the walk, or one gopher-lua's compiler
		// fails on: refused, not a crash of the node that got it.
		if p := recover(); p != nil {
			proto, err = nil, fmt.Errorf("%s: %v", name, p)
		}
	}()
	chunk, err := parse.Parse(bytes.NewReader(src), name)
	if err != nil {
		if e, ok := err.(*parse.Error); ok {
			line := e.Pos.Line
			if line < 1 { // at the end of the source
				line = bytes.Count(src, []byte("\n")) + 1
			}
			return nil, fmt.Errorf("%s:%d: %s near '%s'", name, line, e.Message, e.Token)
		}
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	rewriteConcat(chunk)
	if proto, err = lua.Compile(chunk, name); err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	return proto, nil
}

// Host runs the commands a script calls. A Host that also has
// Allowed(args [][]byte) (known, allowed bool) answers
// redis.acl_check_cmd.
type Host interface {
	// Call runs one command (name first) and returns its reply, an error
	// reply for an error. It may panic with a storage failure: the run
	// stops and Run panics with it again.
	Call(args [][]byte) *messages.Reply
}

// Run runs s with KEYS and ARGV, math.random seeded with seed, and gives
// the reply for the client, or an error reply.
func (s *Script) Run(keys, argv [][]byte, seed int32, host Host) *messages.Reply {
	r := newRun(s.SHA, chunkName, host, seed)
	reply := s.run(r, keys, argv)
	r.release()
	return reply
}

func (s *Script) run(r *run, keys, argv [][]byte) *messages.Reply {
	r.global.RawSetString("KEYS", r.strings(keys))
	r.global.RawSetString("ARGV", r.strings(argv))
	fn := r.L.NewFunctionFromProto(s.proto)
	fn.Env = r.view
	return r.call(fn)
}

// run is one run: its VM, budget and state. A VM outlives its run: a run
// that ends cleanly leaves it to the next (release), as Redis keeps one VM
// for every script. Nothing one run does can reach the next: the globals
// and every library are read-only (readonly), what a run sets up (KEYS,
// ARGV, the settings of cjson and math.random, the numbers tostring gives)
// is set again for each, and the libraries a run makes on first use are
// the same whichever run made them.
type run struct {
	L       *lua.LState
	name    string // what its errors name: the script's SHA, the function's name
	chunk   string // its chunk's name: user_script, user_function
	host    Host
	b       budget
	rand    rand48
	resp    int           // redis.setresp: how replies reach the script
	ids     map[any]int64 // tostring's numbers for tables and functions
	cjson   cjsonConfig   // cjson's settings
	panic   any           // a storage failure from the host, raised again
	loading *library      // a library being loaded: its redis table registers functions

	// The VM's, kept from run to run.
	global    *lua.LTable                 // the real globals
	view      *lua.LTable                 // what the script sees of them (env)
	strMeta   *lua.LTable                 // strings' metatable
	null      *lua.LUserData              // cjson.null
	libs      map[string]*lua.LTable      // the libraries made so far, by name
	ro        map[*lua.LTable]*lua.LTable // read-only views, and the tables they show
	redis     *lua.LTable                 // the redis table's read-only view, once made
	loadAPI   *lua.LTable                 // a library's top level's redis table, once made
	metaViews map[*lua.LTable]*lua.LTable // getmetatable's read-only views of the VM's metatables
	refuse    *lua.LFunction              // a read-only view's __newindex
	pairsNext *lua.LFunction              // pairs's iterator
	onError   *lua.LFunction              // errorHandler
}

// vms are VMs their last run left clean, each ready for a run.
var vms sync.Pool

// A run past these leaves its VM to be collected, not to the next run: a
// VM keeps the stack and registry a run grew.
const (
	reuseSteps = 1_000_000
	reuseBytes = 1 << 20
)

func newRun(name, chunk string, host Host, seed int32) *run {
	r, _ := vms.Get().(*run)
	if r == nil {
		r = newVM()
	}
	r.start(name, chunk, host, seed)
	return r
}

func (r *run) start(name, chunk string, host Host, seed int32) {
	r.name, r.chunk, r.host = name, chunk, host
	r.rand.seed(seed)
}

// newVM is a run with a new VM, its state as release leaves it.
func newVM() *run {
	L := lua.NewState(lua.Options{
		SkipOpenLibs:        true,
		CallStackSize:       1000,
		MinimizeStackMemory: true, // the call stack grows as needed
		RegistrySize:        256,
		RegistryMaxSize:     1 << 20,
		RegistryGrowStep:    256,
	})
	r := &run{L: L, resp: 2, cjson: cjsonDefaults, libs: map[string]*lua.LTable{},
		ro: map[*lua.LTable]*lua.LTable{}, metaViews: map[*lua.LTable]*lua.LTable{}}
	r.b.run = r
	L.SetContext(&r.b)
	r.refuse = L.NewFunction(func(L *lua.LState) int {
		L.RaiseError("Attempt to modify a readonly table")
		return 0
	})
	r.onError = L.NewFunction(r.errorHandler)
	r.pairsNext = L.NewFunction(r.next)
	r.openLibs()
	r.view = r.env()
	return r
}

// release ends the run: its VM goes to the next run, set back to what
// newVM made, unless the run failed for good (its budget) or grew it past
// reuseSteps or reuseBytes. A run that panics (a storage failure, raised
// again by call) never reaches it: its VM is dropped. (A Go panic in the
// VM's Go functions, recovered by its pcall, unwinds as a Lua error does:
// the VM stays sound.)
func (r *run) release() {
	if r.reset() {
		vms.Put(r)
	} else {
		r.L.Close()
	}
}

// reset sets the run's VM back to what newVM made, or is false when it is
// not to serve again.
func (r *run) reset() bool {
	if r.b.fatal != nil || r.b.steps > reuseSteps || r.b.bytes > reuseBytes {
		return false
	}
	r.global.RawSetString("KEYS", lua.LNil)
	r.global.RawSetString("ARGV", lua.LNil)
	r.host, r.ids, r.loading = nil, nil, nil
	r.resp, r.cjson = 2, cjsonDefaults
	r.b = budget{run: r}
	r.L.SetTop(0)
	return true
}

// call calls fn with args, and gives its result as the client's reply, or
// the error it raised as Redis words it. A storage failure in a command
// it called panics again here.
func (r *run) call(fn *lua.LFunction, args ...lua.LValue) *messages.Reply {
	L := r.L
	L.Push(fn)
	for _, a := range args {
		L.Push(a)
	}
	err := L.PCall(len(args), 1, r.onError)
	if r.panic != nil {
		panic(r.panic)
	}
	if err != nil {
		var obj lua.LValue = lua.LString(err.Error())
		if e, ok := err.(*lua.ApiError); ok && e.Object != nil {
			obj = e.Object
		}
		r.counted(obj)
		return r.errorReply(obj)
	}
	ret := L.Get(-1)
	L.Pop(1)
	reply := r.toReply(ret, 0)
	if reply.GetError() != "" {
		r.counted(ret)
	}
	return reply
}

// ignoreStats is the field of an error table that says a command answered
// the error, which its statistics counted (Redis's).
const ignoreStats = "ignore_error_stats_update"

// Counter is a Host told when the run's reply is an error a command it
// called answered (an error table with ignore_error_stats_update), which
// Redis does not count in its error statistics twice.
type Counter interface {
	ErrorCounted()
}

// counted tells the host, if it is a Counter, that v, the run's error, is
// a command's.
func (r *run) counted(v lua.LValue) {
	if t, ok := v.(*lua.LTable); ok && lua.LVAsBool(t.RawGetString(ignoreStats)) {
		if c, ok := r.host.(Counter); ok {
			c.ErrorCounted()
		}
	}
}

func (r *run) strings(items [][]byte) *lua.LTable {
	t := r.L.CreateTable(len(items), 0)
	for i, it := range items {
		t.RawSetInt(i+1, lua.LString(it))
	}
	return t
}

// env is the script's view of the globals (Redis 7's): reading a global
// that does not exist is an error, and so is setting one.
// It is a read-only view (readonly) that shows an empty table, so
// pairs(_G) lists nothing: which globals were made differs from VM to VM.
func (r *run) env() *lua.LTable {
	L := r.L
	return r.readonly(L.CreateTable(0, 0), L.NewFunction(func(L *lua.LState) int {
		name := L.Get(2)
		if r.loading != nil && lua.LVAsString(name) != "redis" {
			// A library's top level sees redis alone (its loading API),
			// as in Redis 7.0: no libraries, no base functions.
			L.RaiseError("Script attempted to access nonexistent global variable '%s'", lua.LVAsString(name))
		}
		v := r.global.RawGet(name)
		if s, ok := name.(lua.LString); ok && v == lua.LNil {
			v = r.globalValue(string(s))
		}
		if v == lua.LNil {
			L.RaiseError("Script attempted to access nonexistent global variable '%s'", lua.LVAsString(name))
		}
		L.Push(v)
		return 1
	}))
}

// errorHandler gives an error the place it was raised, as Redis's error
// handler does: a table {err=..., source=..., line=...}.
func (r *run) errorHandler(L *lua.LState) int {
	obj := L.Get(1)
	t, ok := obj.(*lua.LTable)
	if !ok {
		t = L.CreateTable(0, 3)
		msg := "ERR " + lua.LVAsString(obj)
		if obj.Type() != lua.LTString && obj.Type() != lua.LTNumber {
			msg = "ERR " + r.toString(obj)
		}
		t.RawSetString("err", lua.LString(msg))
	}
	if line := callerLine(L); line > 0 && t.RawGetString("line") == lua.LNil {
		t.RawSetString("source", lua.LString("@"+r.chunk))
		t.RawSetString("line", lua.LNumber(line))
	}
	L.Push(t)
	return 1
}

// eachPair calls fn with t's pairs in the order pairs gives them (the
// array part, then the other keys in the order they were set), the same
// on every replica. Never LTable.ForEach: it walks Go maps, in an order
// that differs from one run to the next.
func eachPair(t *lua.LTable, fn func(k, v lua.LValue)) {
	for k, v := t.Next(lua.LNil); k != lua.LNil; k, v = t.Next(k) {
		fn(k, v)
	}
}

// callerLine is the line of the innermost Lua function on the stack (the
// script's line that called a Go function, or raised the error).
func callerLine(L *lua.LState) int {
	for i := 0; i < 200; i++ {
		dbg, ok := L.GetStack(i)
		if !ok {
			return 0
		}
		if _, err := L.GetInfo("Sl", dbg, lua.LNil); err == nil && dbg.CurrentLine > 0 {
			return dbg.CurrentLine
		}
	}
	return 0
}

// errorReply is the reply for a run that failed with obj: Redis's
// "<err> script: <sha>, on @user_script:<line>.".
func (r *run) errorReply(obj lua.LValue) *messages.Reply {
	t, ok := obj.(*lua.LTable)
	if !ok {
		return errorf("ERR Error running script (call to f_%s): %s", r.name, lua.LVAsString(obj))
	}
	msg := lua.LVAsString(t.RawGetString("err"))
	if msg == "" {
		msg = "ERR unknown error"
	}
	source, line := t.RawGetString("source"), t.RawGetString("line")
	if source != lua.LNil && line != lua.LNil && r.name != "" { // a library's loading has no name: Redis gives its errors bare
		msg = fmt.Sprintf("%s script: %s, on %s:%s.", msg, r.name, lua.LVAsString(source), lua.LVAsString(line))
	}
	return errorText(msg)
}

// errorText is an error reply of msg as Redis sends it ("-" then msg, on
// one line): the writer drops one leading '-', so an error a script
// spells "-X" (Redis sends "--X") keeps its own.
func errorText(msg string) *messages.Reply {
	msg = oneLine(msg)
	if strings.HasPrefix(msg, "-") {
		msg = "-" + msg
	}
	return &messages.Reply{Value: &messages.Reply_Error{Error: msg}}
}

// oneLine keeps an error on one line, as the protocol needs.
func oneLine(s string) string { return strings.NewReplacer("\r", " ", "\n", " ").Replace(s) }

func errorf(format string, args ...any) *messages.Reply {
	return &messages.Reply{Value: &messages.Reply_Error{Error: oneLine(fmt.Sprintf(format, args...))}}
}

// redisCall is redis.call (raise true) and redis.pcall (raise false).
func (r *run) redisCall(L *lua.LState, raise bool) int {
	args, fail := callArgs(L)
	if fail != "" {
		return r.callError(L, raise, fail, false)
	}
	L.SetTop(0)
	reply := r.hostCall(L, args)
	if e, ok := reply.GetValue().(*messages.Reply_Error); ok {
		return r.callError(L, raise, "-"+e.Error, true)
	}
	L.Push(r.toLua(L, reply))
	return 1
}

// callArgs are a call's arguments as a command's (numbers as "%.17g"),
// or the error Redis gives for them.
func callArgs(L *lua.LState) ([][]byte, string) {
	n := L.GetTop()
	if n == 0 {
		return nil, "Please specify at least one argument for this redis lib call"
	}
	args := make([][]byte, n)
	for i := 1; i <= n; i++ {
		switch v := L.Get(i).(type) {
		case lua.LString:
			args[i-1] = []byte(v)
		case lua.LNumber:
			args[i-1] = strconv.AppendFloat(nil, float64(v), 'g', 17, 64)
		default:
			return nil, "Lua redis lib command arguments must be strings or integers"
		}
	}
	return args, ""
}

// hostCall runs args on the host; a storage failure stops the run for
// good, and is raised again once the VM has returned.
func (r *run) hostCall(L *lua.LState, args [][]byte) (reply *messages.Reply) {
	failed := false
	func() {
		defer func() {
			if p := recover(); p != nil {
				r.panic, failed = p, true
				r.b.fatal = fmt.Errorf("storage failure")
			}
		}()
		reply = r.host.Call(args)
	}()
	if failed {
		L.RaiseError("storage failure")
	}
	return reply
}

// callError raises the error table of msg (errTable) (redis.call) or
// returns it (redis.pcall). A raised table carries the script's line, as
// Redis's; the table of an error a command answered (counted) says so, as
// Redis's does: the run's reply, if it is that error, does not count in
// the error statistics again (Counter).
func (r *run) callError(L *lua.LState, raise bool, msg string, counted bool) int {
	t := errTable(L, msg)
	if counted {
		t.RawSetString(ignoreStats, lua.LTrue)
	}
	if raise {
		if line := callerLine(L); line > 0 {
			t.RawSetString("source", lua.LString("@"+r.chunk))
			t.RawSetString("line", lua.LNumber(line))
		}
		L.Error(t, 0)
	}
	L.Push(t)
	return 1
}

// errTable is Redis's error table (luaPushErrorBuff): {err="CODE msg"}.
// msg is "-CODE msg" (a reply's error: its first word is the code) or a
// bare message (code ERR).
func errTable(L *lua.LState, msg string) *lua.LTable {
	code := "ERR"
	if m, ok := strings.CutPrefix(msg, "-"); ok {
		msg = m
		if c, rest, ok := strings.Cut(m, " "); ok {
			code, msg = c, rest
		}
	}
	t := L.CreateTable(0, 3)
	t.RawSetString("err", lua.LString(code+" "+strings.TrimRight(msg, "\r\n")))
	return t
}
