package luascript

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// Redis's version as the scripts see it (redis.REDIS_VERSION).
const (
	redisVersion    = "7.0.15"
	redisVersionNum = 0x07000f
)

// openLibs opens what Redis opens (base, table, string, math, bit, cjson,
// cmsgpack, struct), with the functions that could differ
// between replicas or make unbounded values replaced. Nothing is made
// before the script names it (global makes it then): a VM's libraries
// cost more than a short script's run, and most scripts name few.
func (r *run) openLibs() {
	L := r.L
	r.global = L.G.Global
	// A string's methods ("x"):rep(3) are string's: made when first used.
	r.strMeta = L.CreateTable(0, 1)
	r.strMeta.RawSetString("__index", L.NewFunction(func(L *lua.LState) int {
		L.Push(r.lib("string").RawGet(L.Get(2)))
		return 1
	}))
	L.SetMetatable(lua.LString(""), r.strMeta)
}

// globalValue is the global name, made the first time the script names it;
// LNil for a name that is none.
func (r *run) globalValue(name string) lua.LValue {
	if v := r.global.RawGetString(name); v != lua.LNil {
		return v
	}
	L := r.L
	var v lua.LValue = lua.LNil
	switch {
	case lazyLibs[name]:
		r.lib(name)
		return r.global.RawGetString(name)
	case name == "redis":
		if r.redis == nil {
			r.redis = r.readonly(r.redisLib(), nil)
		}
		v = r.redis
	case name == "_G":
		v = r.view
	case name == "_VERSION":
		v = lua.LString("Lua 5.1")
	case ownFuncs[name] != nil:
		v = L.NewFunction(ownFuncs[name](r))
	case baseFuncs[name] != nil:
		if aux := baseIterators[name]; aux != nil {
			v = L.NewClosure(baseFuncs[name], L.NewFunction(aux))
		} else {
			v = L.NewFunction(baseFuncs[name])
		}
	default:
		return lua.LNil
	}
	r.global.RawSetString(name, v)
	return v
}

// ownFuncs replace gopher-lua's base functions that could differ between
// replicas or make unbounded values, and add '..' (concatName).
var ownFuncs = map[string]func(r *run) lua.LGFunction{
	concatName:       func(r *run) lua.LGFunction { return r.b.concat },
	"tostring":       func(r *run) lua.LGFunction { return r.tostring },
	"unpack":         func(r *run) lua.LGFunction { return r.unpack },
	"pcall":          func(r *run) lua.LGFunction { return r.pcall },
	"loadstring":     func(r *run) lua.LGFunction { return r.loadstring },
	"load":           func(r *run) lua.LGFunction { return r.load },
	"collectgarbage": func(*run) lua.LGFunction { return zero },
	"rawset":         func(r *run) lua.LGFunction { return r.rawset },
	"rawget":         func(r *run) lua.LGFunction { return r.rawget },
	"next":           func(r *run) lua.LGFunction { return r.next },
	"pairs":          func(r *run) lua.LGFunction { return r.pairs },
	"setmetatable":   func(r *run) lua.LGFunction { return r.setmetatable },
	"getmetatable":   func(r *run) lua.LGFunction { return r.getmetatable },
	"gcinfo":         func(*run) lua.LGFunction { return zero },
}

func zero(L *lua.LState) int { L.Push(lua.LNumber(0)); return 1 }

// baseFuncs are gopher-lua's base functions Redis keeps, by name, taken
// once from a VM: Go functions of the VM they are called in, holding
// nothing. baseIterators are ipairs's and pairs's iterators (their
// upvalues).
var baseFuncs, baseIterators = func() (funcs, iters map[string]lua.LGFunction) {
	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer L.Close()
	L.Push(L.NewFunction(lua.OpenBase))
	L.Call(0, 0)
	funcs, iters = map[string]lua.LGFunction{}, map[string]lua.LGFunction{}
	eachPair(L.G.Global, func(k, v lua.LValue) {
		fn, ok := v.(*lua.LFunction)
		if !ok || !fn.IsG {
			return
		}
		name := lua.LVAsString(k)
		switch name {
		case "dofile", "loadfile", "print", "_printregs", "module", "require",
			"setfenv", "getfenv", "newproxy": // deprecated, off by default since 7.0.15-1~deb12u10 (lua-enable-deprecated-api)
			return // not in Redis's sandbox
		}
		funcs[name] = fn.GFunction
		if len(fn.Upvalues) == 1 {
			if it, ok := fn.Upvalues[0].Value().(*lua.LFunction); ok && it.IsG {
				iters[name] = it.GFunction
			}
		}
	})
	return funcs, iters
}()

// lazyLibs are the libraries lib makes when the script first names them.
var lazyLibs = map[string]bool{"string": true, "table": true, "math": true, "bit": true, "cjson": true, "cmsgpack": true, "struct": true}

// lib is the library name (one of lazyLibs), made on first use; the
// script sees a read-only view of it (readonly).
func (r *run) lib(name string) *lua.LTable {
	if t := r.libs[name]; t != nil {
		return t
	}
	L := r.L
	// gopher-lua fills a library's table from a Go map, in an order that
	// differs from one run to the next (pairs(string) would list the
	// functions in a different order on each replica): open refills it in
	// name order. (Our own libraries are made in that order by tableOf.)
	open := func(fn lua.LGFunction) *lua.LTable {
		L.Push(L.NewFunction(fn))
		L.Push(lua.LString(name))
		L.Call(1, 1)
		t := L.Get(-1).(*lua.LTable)
		L.Pop(1)
		return sorted(L, t)
	}
	set := func(t *lua.LTable, name string, fn lua.LGFunction) { t.RawSetString(name, L.NewFunction(fn)) }
	var t *lua.LTable
	switch name {
	case "string":
		t = open(lua.OpenString)
		t.RawSetString("dump", lua.LNil)
		set(t, "rep", r.strRep)
		set(t, "format", r.strFormat)
		set(t, "gsub", r.strGsub)
		set(t, "byte", r.charged(t.RawGetString("byte").(*lua.LFunction), false))
		for _, name := range []string{"lower", "upper", "reverse", "char"} {
			set(t, name, r.charged(t.RawGetString(name).(*lua.LFunction), true))
		}
		L.SetMetatable(lua.LString(""), r.strMeta) // OpenString set its own
	case "table":
		t = open(lua.OpenTable)
		set(t, "concat", r.tableConcat)
		set(t, "insert", r.tableInsert(t.RawGetString("insert").(*lua.LFunction)))
	case "math":
		t = open(lua.OpenMath)
		set(t, "random", r.random)
		set(t, "randomseed", r.randomseed)
	case "bit":
		t = r.bitLib()
	case "cjson":
		t = r.cjsonLib()
	case "cmsgpack":
		t = r.cmsgpackLib()
	case "struct":
		t = r.structLib()
	}
	r.libs[name] = t
	r.global.RawSetString(name, r.readonly(t, nil))
	return t
}

// sorted is a copy of t's string keys, inserted in name order.
func sorted(L *lua.LState, t *lua.LTable) *lua.LTable {
	m := map[string]lua.LValue{}
	eachPair(t, func(k, v lua.LValue) {
		if s, ok := k.(lua.LString); ok && s != "__index" {
			m[string(s)] = v
		}
	})
	return tableOf(L, m)
}

// redisLib is the redis table: redisAPI's entries, in name order.
func (r *run) redisLib() *lua.LTable {
	L := r.L
	t := L.CreateTable(0, len(redisNames))
	for _, name := range redisNames {
		switch v := redisAPI[name].(type) {
		case lua.LGFunction:
			t.RawSetString(name, L.NewFunction(v))
		case lua.LValue:
			t.RawSetString(name, v)
		}
	}
	return t
}

// runOf is the run L belongs to (its context is the run's budget).
func runOf(L *lua.LState) *run { return L.Context().(*budget).run }

// redisAPI is Redis's redis table: functions (of the run their VM
// belongs to) and constants. redisNames are its names, sorted.
var redisAPI = map[string]any{
	"call":  lua.LGFunction(func(L *lua.LState) int { return runOf(L).redisCall(L, true) }),
	"pcall": lua.LGFunction(func(L *lua.LState) int { return runOf(L).redisCall(L, false) }),
	"sha1hex": lua.LGFunction(func(L *lua.LState) int {
		if L.GetTop() != 1 {
			L.Error(errTable(L, "wrong number of arguments"), 0)
		}
		L.Push(lua.LString(SHA1([]byte(runOf(L).toString(L.Get(1))))))
		return 1
	}),
	"error_reply": lua.LGFunction(func(L *lua.LState) int {
		s, ok := L.Get(1).(lua.LString)
		if L.GetTop() != 1 || !ok {
			L.Push(errTable(L, "wrong number or type of arguments"))
			return 1
		}
		msg := string(s)
		if !strings.HasPrefix(msg, "-") {
			msg = "-" + msg
		}
		L.Push(errTable(L, msg))
		return 1
	}),
	"status_reply": lua.LGFunction(func(L *lua.LState) int {
		s, ok := L.Get(1).(lua.LString)
		if L.GetTop() != 1 || !ok {
			L.Push(errTable(L, "wrong number or type of arguments"))
			return 1
		}
		st := L.CreateTable(0, 1)
		st.RawSetString("ok", s)
		L.Push(st)
		return 1
	}),
	"setresp": lua.LGFunction(func(L *lua.LState) int {
		if L.GetTop() != 1 {
			L.Error(errTable(L, "redis.setresp() requires one argument."), 0)
		}
		n := int(lua.LVAsNumber(L.Get(1)))
		if n != 2 && n != 3 {
			L.Error(errTable(L, "RESP version must be 2 or 3."), 0)
		}
		runOf(L).resp = n
		return 0
	}),
	"log": lua.LGFunction(func(L *lua.LState) int {
		switch {
		case L.GetTop() < 2:
			L.Error(errTable(L, "redis.log() requires two arguments or more."), 0)
		case L.Get(1).Type() != lua.LTNumber:
			L.Error(errTable(L, "First argument must be a number (log level)."), 0)
		case L.Get(1).(lua.LNumber) < 0 || L.Get(1).(lua.LNumber) > 3:
			L.Error(errTable(L, "Invalid debug level."), 0)
		}
		// Every replica runs the script: logging it would log it on every
		// node, once per replica. The log stays empty.
		return 0
	}),
	"set_repl": lua.LGFunction(func(L *lua.LState) int {
		if L.GetTop() != 1 {
			L.Error(errTable(L, "redis.set_repl() requires two arguments."), 0)
		}
		if f := int(lua.LVAsNumber(L.Get(1))); f&^3 != 0 {
			L.Error(errTable(L, "Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE."), 0)
		}
		// Every replica runs the whole script: there is nothing to hold
		// back from replicas.
		return 0
	}),
	"acl_check_cmd": lua.LGFunction(func(L *lua.LState) int {
		args, fail := callArgs(L)
		if fail != "" {
			L.Error(errTable(L, fail), 0)
		}
		host, ok := runOf(L).host.(interface {
			Allowed(args [][]byte) (known, allowed bool)
		})
		known, allowed := false, false
		if ok {
			known, allowed = host.Allowed(args)
		}
		if !known {
			L.Error(errTable(L, "Invalid command passed to redis.acl_check_cmd()"), 0)
		}
		L.Push(lua.LBool(allowed))
		return 1
	}),
	"replicate_commands": lua.LGFunction(func(L *lua.LState) int { L.Push(lua.LTrue); return 1 }),
	"breakpoint":         lua.LGFunction(func(L *lua.LState) int { L.Push(lua.LFalse); return 1 }),
	"debug":              lua.LGFunction(func(L *lua.LState) int { return 0 }),
	"LOG_DEBUG":          lua.LNumber(0),
	"LOG_VERBOSE":        lua.LNumber(1),
	"LOG_NOTICE":         lua.LNumber(2),
	"LOG_WARNING":        lua.LNumber(3),
	"REPL_NONE":          lua.LNumber(0),
	"REPL_AOF":           lua.LNumber(1),
	"REPL_SLAVE":         lua.LNumber(2),
	"REPL_REPLICA":       lua.LNumber(2),
	"REPL_ALL":           lua.LNumber(3),
	"REDIS_VERSION_NUM":  lua.LNumber(redisVersionNum),
	"REDIS_VERSION":      lua.LString(redisVersion),
}

var redisNames = slices.Sorted(maps.Keys(redisAPI))

// tableOf is a table of m's entries, inserted in name order (the order
// pairs gives them on every replica).
func tableOf(L *lua.LState, m map[string]lua.LValue) *lua.LTable {
	t := L.CreateTable(0, len(m))
	for _, name := range slices.Sorted(maps.Keys(m)) {
		t.RawSetString(name, m[name])
	}
	return t
}

// numberString is Lua 5.1's number to string ("%.14g", as C prints it).
func numberString(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	case math.IsNaN(f) && math.Signbit(f):
		return "-nan"
	case math.IsNaN(f):
		return "nan"
	}
	return strconv.FormatFloat(f, 'g', 14, 64)
}

// toString is tostring without metamethods: numbers as Lua prints them,
// tables and functions numbered in the order the run first asks (their
// addresses would differ between replicas).
func (r *run) toString(v lua.LValue) string {
	if s, ok := asString(v); ok {
		return s
	}
	switch v := v.(type) {
	case *lua.LNilType:
		return "nil"
	case lua.LBool:
		if v {
			return "true"
		}
		return "false"
	}
	if r.ids == nil {
		r.ids = map[any]int64{}
	}
	id, ok := r.ids[v]
	if !ok {
		id = int64(len(r.ids) + 1)
		r.ids[v] = id
	}
	return fmt.Sprintf("%s: 0x%08x", v.Type().String(), id)
}

func (r *run) tostring(L *lua.LState) int {
	v := L.CheckAny(1)
	if mm := L.GetMetaField(v, "__tostring"); mm != lua.LNil {
		L.Push(mm)
		L.Push(v)
		L.Call(1, 1)
		return 1
	}
	s := r.toString(v)
	r.b.charge(L, len(s))
	L.Push(lua.LString(s))
	return 1
}

// asString is a string, or a number as Lua 5.1 writes it ("%.14g");
// ok is false for any other value. (gopher-lua's own conversion writes
// numbers as Go does: 1e15 as 1000000000000000.)
func asString(v lua.LValue) (string, bool) {
	switch v := v.(type) {
	case lua.LString:
		return string(v), true
	case lua.LNumber:
		return numberString(float64(v)), true
	}
	return "", false
}

// str is an argument as a string (numbers as Lua prints them).
func (r *run) str(L *lua.LState, n int, fn string) string {
	if s, ok := asString(L.Get(n)); ok {
		return s
	}
	argError(L, n, fn, "string expected, got "+L.Get(n).Type().String())
	return ""
}

// argError is Lua's "bad argument #n to 'fn' (msg)".
func argError(L *lua.LState, n int, fn, msg string) {
	L.RaiseError("bad argument #%d to '%s' (%s)", n, fn, msg)
}

// charged wraps a string function whose result is charged: lower, upper
// and reverse make a string as long as their argument, char one byte per
// argument (strings); byte pushes a value per byte (values).
func (r *run) charged(fn *lua.LFunction, strings bool) lua.LGFunction {
	return func(L *lua.LState) int {
		top := L.GetTop()
		if strings {
			n := top
			if v, ok := L.Get(1).(lua.LString); ok {
				n = max(n, len(v))
			}
			r.b.chargeString(L, n)
		}
		L.Insert(fn, 1)
		L.Call(top, lua.MultRet)
		if !strings {
			r.b.chargeSlots(L, L.GetTop())
		}
		return L.GetTop()
	}
}

func (r *run) strRep(L *lua.LState) int {
	s := r.str(L, 1, "rep")
	n := checkInt(L, 2, "rep")
	if n <= 0 || len(s) == 0 {
		L.Push(lua.LString(""))
		return 1
	}
	if len(s) > maxString/n {
		L.RaiseError("%s", errLong.Error())
	}
	r.b.chargeString(L, len(s)*n)
	L.Push(lua.LString(strings.Repeat(s, n)))
	return 1
}

func (r *run) tableConcat(L *lua.LState) int {
	t := L.CheckTable(1)
	sep := lua.LString("")
	if L.GetTop() >= 2 && L.Get(2) != lua.LNil {
		sep = lua.LString(r.str(L, 2, "concat"))
	}
	i := L.OptInt(3, 1)
	j := L.OptInt(4, t.Len())
	var parts []string
	size := 0
	for k := i; k <= j; k++ {
		v := t.RawGetInt(k)
		part, ok := asString(v)
		if !ok {
			L.RaiseError("invalid value (%s) at index %d in table for 'concat'", v.Type().String(), k)
		}
		if size += len(part); k < j {
			size += len(sep)
		}
		if size > maxString {
			L.RaiseError("%s", errLong.Error())
		}
		parts = append(parts, part)
	}
	r.b.chargeString(L, size)
	var sb strings.Builder
	sb.Grow(size)
	for k, part := range parts {
		if k > 0 {
			sb.WriteString(string(sep))
		}
		sb.WriteString(part)
	}
	L.Push(lua.LString(sb.String()))
	return 1
}

// unpack is Lua's, its values charged (unpack(t, 1, 1e8) would push a
// hundred million nils).
func (r *run) unpack(L *lua.LState) int {
	t := L.CheckTable(1)
	i := L.OptInt(2, 1)
	j := L.OptInt(3, t.Len())
	if i > j {
		return 0
	}
	n := int64(j) - int64(i) + 1
	if n >= 8000 {
		// Lua 5.1's C stack limit (LUAI_MAXCSTACK).
		L.RaiseError("too many results to unpack")
	}
	r.b.chargeSlots(L, int(n))
	for k := i; k <= j; k++ {
		L.Push(t.RawGetInt(k))
	}
	return int(n)
}

// pcall is Redis's: an error table's message is the error pcall gives.
func (r *run) pcall(L *lua.LState) int {
	L.CheckAny(1)
	nargs := L.GetTop() - 1
	if err := L.PCall(nargs, lua.MultRet, nil); err != nil {
		var obj lua.LValue = lua.LString(err.Error())
		if e, ok := err.(*lua.ApiError); ok && e.Object != nil {
			obj = e.Object
		}
		if t, ok := obj.(*lua.LTable); ok {
			if msg, ok := t.RawGetString("err").(lua.LString); ok {
				obj = msg
			}
		}
		L.Push(lua.LFalse)
		L.Push(obj)
		return 2
	}
	L.Insert(lua.LTrue, 1)
	return L.GetTop()
}

// loadstring and load compile with the same rewrite as the script, so a
// loaded chunk's '..' is counted too.
func (r *run) loadstring(L *lua.LState) int {
	return r.loadChunk(L, r.str(L, 1, "loadstring"), L.OptString(2, "=(load)"))
}

func (r *run) load(L *lua.LState) int {
	fn := L.CheckFunction(1)
	name := L.OptString(2, "=(load)")
	var sb strings.Builder
	for {
		L.Push(fn)
		L.Call(0, 1)
		v := L.Get(-1)
		L.Pop(1)
		s, ok := v.(lua.LString)
		if v == lua.LNil || (ok && len(s) == 0) {
			break
		}
		if !ok {
			L.Push(lua.LNil)
			L.Push(lua.LString("reader function must return a string"))
			return 2
		}
		r.b.checkLen(L, sb.Len()+len(s)) // the chunk stays under the longest string
		r.b.charge(L, len(s))            // each piece once
		sb.WriteString(string(s))
	}
	return r.loadChunk(L, sb.String(), name)
}

func (r *run) loadChunk(L *lua.LState, src, name string) int {
	proto, err := compileChunk([]byte(src), name)
	if err != nil {
		L.Push(lua.LNil)
		L.Push(lua.LString(err.Error()))
		return 2
	}
	fn := L.NewFunctionFromProto(proto)
	fn.Env = r.view // Lua's loadstring gives the global environment
	L.Push(fn)
	return 1
}

// rand48 is Redis's redisLrand48: the 48-bit linear congruential
// generator of drand48, so math.random after math.randomseed(n) gives
// Redis's numbers.
type rand48 struct{ x uint64 }

const (
	rand48Mask = 1<<48 - 1
	rand48Max  = math.MaxInt32
)

func (g *rand48) seed(s int32) { g.x = uint64(uint32(s))<<16 | 0x330E }

func (g *rand48) next() int32 {
	g.x = (g.x*0x5DEECE66D + 0xB) & rand48Mask
	return int32(g.x >> 17)
}

func (r *run) random(L *lua.LState) int {
	f := float64(r.rand.next()%rand48Max) / rand48Max
	switch L.GetTop() {
	case 0:
		L.Push(lua.LNumber(f))
	case 1:
		u := checkInt(L, 1, "random")
		if u < 1 {
			L.ArgError(1, "interval is empty")
		}
		L.Push(lua.LNumber(math.Floor(f*float64(u)) + 1))
	case 2:
		l, u := checkInt(L, 1, "random"), checkInt(L, 2, "random")
		if l > u {
			L.ArgError(2, "interval is empty")
		}
		L.Push(lua.LNumber(math.Floor(f*float64(u-l+1)) + float64(l)))
	default:
		L.RaiseError("wrong number of arguments")
	}
	return 1
}

func (r *run) randomseed(L *lua.LState) int {
	r.rand.seed(int32(checkInt(L, 1, "randomseed")))
	return 0
}
