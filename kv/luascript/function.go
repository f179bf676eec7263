package luascript

import (
	"bytes"
	"strings"

	"github.com/coppice-kv/coppice/messages"
	"github.com/coppice-kv/coppice/resp"
	lua "github.com/yuin/gopher-lua"
)

// Functions (Redis 7's FUNCTION LOAD and FCALL): a library is Lua code
// whose first line names it ("#!lua name=mylib") and whose top level
// registers functions with redis.register_function. Redis runs the top
// level once and keeps the functions in its VM; here a library's code is
// in its shard's state, and each FCALL runs the top level again in a new
// VM (registering the functions, as deterministic as any script) and then
// calls the function with its keys and arguments.

// funcChunk is the name of a library's chunk in its errors.
const funcChunk = "user_function"

// Library is a loaded library: its name, its code, its functions in the
// order it registered them. Immutable and shared.
type Library struct {
	Name  string
	Code  []byte
	Funcs []Function
	proto *lua.FunctionProto
}

// Function is a function a library registered.
type Function struct {
	Name, Description string // Description "" when it has none
	Flags             []string
	NoWrites          bool
}

// library is what a library's top level registers, as it runs.
type library struct {
	funcs     []Function
	callbacks map[string]*lua.LFunction
}

var functionFlags = map[string]bool{"no-writes": true, "allow-oom": true, "allow-stale": true, "no-cluster": true, "allow-cross-slot-keys": true}

// LoadLibrary checks a library's code, runs its top level and returns what
// it registered, or the error reply Redis gives. Libraries are kept by
// their code, as compiled scripts are.
func LoadLibrary(code []byte) (*Library, *messages.Reply) {
	return libraries.get(code, func() (*Library, *messages.Reply) { return loadLibrary(code) })
}

// LibraryName is the name a library's first line gives it, or the error
// reply Redis gives for the line (functionExtractLibMetaData, then the
// name's check, then the engine's); the rest of the library is not read.
// The line is split as Redis splits it, quotes and all: #!lua name="x".
func LibraryName(code []byte) (string, *messages.Reply) {
	if !bytes.HasPrefix(code, []byte("#!")) {
		return "", errorf("ERR Missing library metadata")
	}
	line, _, _ := bytes.Cut(code, []byte("\n"))
	parts, ok := resp.SplitArgs(line)
	if !ok || len(parts) == 0 {
		return "", errorf("ERR Invalid library metadata")
	}
	engine := string(parts[0][min(2, len(parts[0])):])
	name, named := "", false
	for _, p := range parts[1:] {
		if len(p) < 5 || !strings.EqualFold(string(p[:5]), "name=") {
			return "", errorf("ERR Invalid metadata value given: %s", p)
		}
		if named {
			return "", errorf("ERR Invalid metadata value, name argument was given multiple times")
		}
		name, named = string(p[5:]), true
	}
	if !named {
		return "", errorf("ERR Library name was not given")
	}
	if !validName(name) {
		return "", errNameChars
	}
	if !strings.EqualFold(engine, "lua") { // engines are found in any case
		return "", errorf("ERR Engine '%s' not found", engine)
	}
	return name, nil
}

func loadLibrary(code []byte) (*Library, *messages.Reply) {
	name, e := LibraryName(code)
	if e != nil {
		return nil, e
	}
	l := &Library{Name: name, Code: bytes.Clone(code)}
	_, rest, _ := bytes.Cut(code, []byte("\n"))
	proto, err := compileChunk(append([]byte("\n"), rest...), funcChunk)
	if err != nil {
		return nil, errorf("ERR Error compiling function: %s", err)
	}
	l.proto = proto
	r := newRun("", funcChunk, nil, 0)
	reg, e := r.register(proto)
	r.release()
	if e != nil {
		return nil, errorf("ERR Error registering functions: %s", e.GetError())
	}
	if len(reg.funcs) == 0 {
		return nil, errorf("ERR No functions registered")
	}
	l.Funcs = reg.funcs
	return l, nil
}

// errNameChars is Redis 7.0's refusal of a library's or a function's name.
var errNameChars = errorf("ERR Library names can only contain letters, numbers, or underscores(_) and must be at least one character long")

func validName(s string) bool {
	for _, c := range s {
		if !(c == '_' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9')) {
			return false
		}
	}
	return s != ""
}

// register runs a library's top level with the loading API (redis has
// register_function and log, not call), and returns what it registered.
func (r *run) register(proto *lua.FunctionProto) (*library, *messages.Reply) {
	reg := &library{callbacks: map[string]*lua.LFunction{}}
	r.loading = reg
	r.global.RawSetString("redis", r.loadingAPI())
	defer func() {
		r.loading = nil
		r.global.RawSetString("redis", lua.LNil) // the full API (globalValue)
	}()
	fn := r.L.NewFunctionFromProto(proto)
	fn.Env = r.view
	if e := r.call(fn); e.GetError() != "" {
		if r.b.fatal == errLoadTimeout {
			return nil, errorf("ERR FUNCTION LOAD timeout")
		}
		return nil, &messages.Reply{Value: &messages.Reply_Error{Error: strings.TrimPrefix(e.GetError(), "-")}}
	}
	return reg, nil
}

// loadingAPI is redis as a library's top level sees it: naming anything
// else (redis.call) is an error, as in Redis.
func (r *run) loadingAPI() *lua.LTable {
	if r.loadAPI != nil {
		return r.loadAPI
	}
	L := r.L
	t := L.CreateTable(0, 8)
	t.RawSetString("register_function", L.NewFunction(r.registerFunction))
	for _, name := range []string{"log", "LOG_DEBUG", "LOG_VERBOSE", "LOG_NOTICE", "LOG_WARNING", "REDIS_VERSION", "REDIS_VERSION_NUM"} {
		switch v := redisAPI[name].(type) {
		case lua.LGFunction:
			t.RawSetString(name, L.NewFunction(v))
		case lua.LValue:
			t.RawSetString(name, v)
		}
	}
	r.loadAPI = r.readonly(t, L.NewFunction(func(L *lua.LState) int {
		v := t.RawGet(L.Get(2))
		if v == lua.LNil {
			L.RaiseError("Script attempted to access nonexistent global variable '%s'", lua.LVAsString(L.Get(2)))
		}
		L.Push(v)
		return 1
	}))
	return r.loadAPI
}

// registerFunction is redis.register_function(name, callback) or
// redis.register_function{function_name=, callback=, flags=, description=}.
func (r *run) registerFunction(L *lua.LState) int {
	fail := func(msg string) { L.Error(errTable(L, msg), 0) }
	if r.loading == nil { // a function kept the loading API and calls it
		fail("redis.register_function can only be called on FUNCTION LOAD command")
	}
	var f Function
	var cb *lua.LFunction
	switch L.GetTop() {
	case 1:
		t, ok := L.Get(1).(*lua.LTable)
		if !ok {
			fail("calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments).")
		}
		eachPair(t, func(k, v lua.LValue) {
			switch strings.ToLower(lua.LVAsString(k)) {
			case "function_name":
				s, ok := asString(v)
				if !ok {
					fail("function_name argument given to redis.register_function must be a string")
				}
				f.Name = s
			case "callback":
				if cb, ok = v.(*lua.LFunction); !ok {
					fail("callback argument given to redis.register_function must be a function")
				}
			case "description":
				s, ok := asString(v)
				if !ok {
					fail("description argument given to redis.register_function must be a string")
				}
				f.Description = s
			case "flags":
				flags, ok := v.(*lua.LTable)
				if !ok {
					fail("flags argument to redis.register_function must be a table representing function flags")
				}
				eachPair(flags, func(_, fl lua.LValue) {
					s, ok := fl.(lua.LString)
					if !ok || !functionFlags[string(s)] {
						fail("unknown flag given")
					}
					f.Flags = append(f.Flags, string(s))
					f.NoWrites = f.NoWrites || s == "no-writes"
				})
			default:
				fail("unknown argument given to redis.register_function")
			}
		})
		switch {
		case f.Name == "":
			fail("redis.register_function must get a function name argument")
		case cb == nil:
			fail("redis.register_function must get a callback argument")
		}
	case 2:
		s, ok := asString(L.Get(1))
		if !ok {
			fail("first argument to redis.register_function must be a string")
		}
		if cb, ok = L.Get(2).(*lua.LFunction); !ok {
			fail("second argument to redis.register_function must be a function")
		}
		f.Name = s
	default:
		fail("wrong number of arguments to redis.register_function")
	}
	if !validName(f.Name) {
		fail(strings.TrimPrefix(errNameChars.GetError(), "ERR "))
	}
	if _, dup := r.loading.callbacks[f.Name]; dup { // in its exact case, as Redis's library dict
		fail("Function already exists in the library")
	}
	r.loading.callbacks[f.Name] = cb
	r.loading.funcs = append(r.loading.funcs, f)
	return 0
}

// Function is the library's function name (in any case, as Redis finds
// functions), if it has it.
func (l *Library) Function(name string) (Function, bool) {
	for _, f := range l.Funcs {
		if strings.EqualFold(f.Name, name) {
			return f, true
		}
	}
	return Function{}, false
}

// Call runs the library's function name (one it has) with its keys and
// arguments, as Run runs a script.
func (l *Library) Call(name string, keys, argv [][]byte, seed int32, host Host) *messages.Reply {
	r := newRun(name, funcChunk, host, seed)
	reply := l.call(r, name, keys, argv)
	r.release()
	return reply
}

func (l *Library) call(r *run, name string, keys, argv [][]byte) *messages.Reply {
	reg, e := r.register(l.proto)
	if e != nil {
		return e // as it loaded before, only a storage failure or the budget
	}
	return r.call(reg.callbacks[name], r.strings(keys), r.strings(argv))
}
