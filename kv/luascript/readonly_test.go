package luascript

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/coppice-kv/coppice/messages"
	"google.golang.org/protobuf/proto"
)

// tampering are scripts that try to leave something behind in their VM
// for the next run, each with the start of the reply it must get.
var tampering = []struct{ src, reply string }{
	{"a = 10", "ERR user_script:1: Attempt to modify a readonly table"},
	{"_G.x = 1", "ERR user_script:1: Attempt to modify a readonly table"},
	{"_G[1] = 1", "ERR user_script:1: Attempt to modify a readonly table"},
	{"rawset(_G, 'x', 1)", "ERR Attempt to modify a readonly table"},
	{"table.insert(_G, 1)", "ERR Attempt to modify a readonly table"},
	{"setmetatable(_G, {})", "ERR Attempt to modify a readonly table"},
	{"getmetatable(_G).__index = {}", "ERR user_script:1: Attempt to modify a readonly table"},
	{"getmetatable(_G).__newindex = nil", "ERR user_script:1: Attempt to modify a readonly table"},
	{"rawset(getmetatable(_G), '__index', {})", "ERR Attempt to modify a readonly table"},
	{"string.rep = nil", "ERR user_script:1: Attempt to modify a readonly table"},
	{"string.x = 1", "ERR user_script:1: Attempt to modify a readonly table"},
	{"rawset(string, 'rep', 1)", "ERR Attempt to modify a readonly table"},
	{"setmetatable(string, {__index = function() return 1 end})", "ERR Attempt to modify a readonly table"},
	{"table.insert(math, 1)", "ERR Attempt to modify a readonly table"},
	{"table.sort(math) table.remove(table) return 1", ":1"},
	{"redis.call = nil", "ERR user_script:1: Attempt to modify a readonly table"},
	{"cjson.decode = nil", "ERR user_script:1: Attempt to modify a readonly table"},
	{"cmsgpack.pack = nil", "ERR user_script:1: Attempt to modify a readonly table"},
	{"struct.pack = nil", "ERR user_script:1: Attempt to modify a readonly table"},
	{"bit.band = nil", "ERR user_script:1: Attempt to modify a readonly table"},
	{"getmetatable('').__index = function() return 1 end", "ERR user_script:1: Attempt to modify a readonly table"},
	{"rawset(getmetatable(''), '__index', nil)", "ERR Attempt to modify a readonly table"},
	{"setmetatable('', {})", "ERR user_script:1: bad argument #1 to 'setmetatable' (table expected, got string)"},
	{"setmetatable(cjson.null, {})", "ERR user_script:1: bad argument #1 to 'setmetatable' (table expected, got userdata)"},
	{"setfenv(0, {})", "ERR user_script:1: Script attempted to access nonexistent global variable 'setfenv'"},
	{"local f, t = pairs(string) rawset(t, 'x', 1)", "ERR Attempt to modify a readonly table"},
	{"for k, v in pairs(math) do math[k] = nil end", "ERR user_script:1: Attempt to modify a readonly table"},
	// What a run may change, set back for the next.
	{"cjson.encode_max_depth(1) cjson.encode_sparse_array(true, 1, 1) return 1", ":1"},
	{"redis.setresp(3) return 1", ":1"},
	{"math.randomseed(99) return math.random(100)", ":"},
	{"KEYS[1] = 'changed' ARGV[2] = 'x' return 1", ":1"},
	{"return tostring({}) .. tostring(string)", "$"},
	{"error('half way')", "ERR user_script:1: half way"},
	{"local t = {} for i = 1, 1000 do t[i] = string.rep('x', 100) end return #t", ":1000"},
}

// probe reads everything a run could have left behind.
const probe = `
local out = {}
local function add(v) out[#out + 1] = tostring(v) end
for _, name in ipairs({'string', 'table', 'math', 'bit', 'cjson', 'cmsgpack', 'struct', 'redis'}) do
  local lib = assert(loadstring('return ' .. name))()
  local n = 0
  for k, v in pairs(lib) do n = n + 1 add(k .. '=' .. type(v)) end
  add(name .. ':' .. n .. ':' .. tostring(getmetatable(lib)))
end
add(next(_G)) add(#_G) add(rawget(_G, 'a')) add(type(getmetatable(_G).__index))
add(type(getmetatable('').__index)) add(('ab'):rep(2)) add(#KEYS) add(#ARGV) add(KEYS[1]) add(ARGV[2])
add(pcall(cjson.encode, {{{1}}})) add(cjson.encode({[1] = 1, [5] = 5}))
add(math.random(1000)) add(math.random(1000)) add(tostring({})) add(tostring(math))
add(type(redis.call('ping'))) add(string.format('%q', 'x'))
return out
`

// A VM left by any run is, for the next run, as a new one: same reply,
// same budget spent, so every replica, whichever of its VMs runs a
// script, gives the same reply.
func TestReusedVMIsAsNew(t *testing.T) {
	host := hostFunc(func([][]byte) *messages.Reply {
		return &messages.Reply{Value: &messages.Reply_Status{Status: "PONG"}}
	})
	p, e := Compile([]byte(probe))
	if e != nil {
		t.Fatal(e)
	}
	keys, argv := [][]byte{[]byte("k")}, [][]byte{[]byte("a"), []byte("b")}
	fresh := newVM()
	fresh.start(p.SHA, chunkName, host, 7)
	want := p.run(fresh, keys, argv)
	wantSteps, wantBytes := fresh.b.steps, fresh.b.bytes
	if want.GetError() != "" {
		t.Fatal(want.GetError())
	}

	r := newVM()
	for _, tc := range tampering {
		s, e := Compile([]byte(tc.src))
		if e != nil {
			t.Fatal(tc.src, e)
		}
		r.start(s.SHA, chunkName, host, 3)
		got := s.run(r, keys, argv)
		if text := replyText(got); !strings.HasPrefix(text, tc.reply) {
			t.Errorf("%s: got %q, want %q...", tc.src, text, tc.reply)
		}
		if !r.reset() {
			t.Fatalf("%s: the VM was not kept", tc.src)
		}
		r.start(p.SHA, chunkName, host, 7)
		got = p.run(r, keys, argv)
		if !proto.Equal(got, want) {
			t.Fatalf("after %s: the probe got\n%v\nwant\n%v", tc.src, replyText(got), replyText(want))
		}
		if r.b.steps != wantSteps || r.b.bytes != wantBytes {
			t.Fatalf("after %s: the probe spent %d steps and %d bytes, on a new VM %d and %d", tc.src, r.b.steps, r.b.bytes, wantSteps, wantBytes)
		}
		if !r.reset() {
			t.Fatal("the VM was not kept after the probe")
		}
	}

	// A function's call on a VM an EVAL left sees no KEYS, and the EVAL
	// after it the full redis table.
	lib, e := LoadLibrary([]byte("#!lua name=lib\nredis.register_function('f', function(keys, args) return type(KEYS) end)"))
	if e != nil {
		t.Fatal(e)
	}
	r.start("f", funcChunk, host, 7)
	if got := replyText(lib.call(r, "f", keys, argv)); !strings.Contains(got, "nonexistent global variable 'KEYS'") {
		t.Errorf("FCALL after EVAL: %q", got)
	}
	if !r.reset() {
		t.Fatal("the VM was not kept after FCALL")
	}
	r.start(p.SHA, chunkName, host, 7)
	if got := p.run(r, keys, argv); !proto.Equal(got, want) {
		t.Fatalf("after FCALL: the probe got\n%v\nwant\n%v", replyText(got), replyText(want))
	}
}

// A run that failed for good, or grew its VM, leaves it to be collected.
func TestVMNotKept(t *testing.T) {
	lowerLimits(t, 2*reuseSteps, 4*reuseBytes)
	for _, src := range []string{
		"while true do end", // the step limit
		"local t = {} for i = 1, 1000 do t[i] = string.rep('x', 10000) end",          // the byte limit
		"local n = 0 for i = 1, 1000000 do n = n + i end return n",                   // past reuseSteps
		"local t = {} for i = 1, 30 do t[i] = string.rep('x', 100000) end return #t", // past reuseBytes
	} {
		s, e := Compile([]byte(src))
		if e != nil {
			t.Fatal(e)
		}
		r := newVM()
		r.start(s.SHA, chunkName, okHost, 1)
		s.run(r, nil, nil)
		steps, bytes := r.b.steps, r.b.bytes
		if r.reset() {
			t.Errorf("%s: the VM was kept (%d steps, %d bytes)", src, steps, bytes)
		}
	}
}

// Runs on many goroutines share the pool of VMs (run with -race).
func TestRunsInParallel(t *testing.T) {
	s, e := Compile([]byte("math.randomseed(tonumber(ARGV[1])) return {KEYS[1], ARGV[1], math.random(1000000), string.rep('x', 2)}"))
	if e != nil {
		t.Fatal(e)
	}
	want := func(i int) string {
		r := newVM()
		r.start(s.SHA, chunkName, okHost, 1)
		return replyText(s.run(r, [][]byte{[]byte(fmt.Sprint("k", i))}, [][]byte{[]byte(fmt.Sprint(i))}))
	}
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g * 100; i < g*100+100; i++ {
				got := replyText(s.Run([][]byte{[]byte(fmt.Sprint("k", i))}, [][]byte{[]byte(fmt.Sprint(i))}, 1, okHost))
				if w := want(i); got != w {
					errs <- fmt.Sprintf("run %d: got %s, want %s", i, got, w)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// replyText is a reply as text, errors as their message.
func replyText(r *messages.Reply) string {
	if e := r.GetError(); e != "" {
		return e
	}
	switch v := r.GetValue().(type) {
	case *messages.Reply_Integer:
		return fmt.Sprintf(":%d", v.Integer)
	case *messages.Reply_Bulk:
		return "$" + string(v.Bulk)
	}
	return r.String()
}
