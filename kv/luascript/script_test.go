package luascript

import (
	"fmt"
	"strings"
	"testing"

	"github.com/coppice-kv/coppice/messages"
)

// run compiles and runs src with no keys and a host that answers every
// call with 1.
func runScript(t *testing.T, src string, seed int32, host Host) *messages.Reply {
	t.Helper()
	s, r := Compile([]byte(src))
	if r != nil {
		t.Fatalf("compile %q: %s", src, r.GetError())
	}
	if host == nil {
		host = okHost
	}
	return s.Run(nil, nil, seed, host)
}

// lowerLimits makes the budget small enough to reach in a test.
func lowerLimits(t *testing.T, steps, bytes int64) {
	old1, old2 := stepLimit, byteLimit
	stepLimit, byteLimit = steps, bytes
	t.Cleanup(func() { stepLimit, byteLimit = old1, old2 })
}

// Every way a script can make a value that grows faster than its
// instructions ends in an error, the same one each time, before the value
// is made; and pcall cannot catch the stop and go on.
func TestBudgetStopsEveryBomb(t *testing.T) {
	lowerLimits(t, 2_000_000, 16<<20)
	for _, c := range []struct{ src, want string }{
		{"local s = 'x' for i = 1, 40 do s = s .. s end return #s", "bytes of strings"},
		{"local s = 'x' for i = 1, 40 do s = s .. 'y' .. s end return #s", "bytes of strings"},
		{"local s = 'x' for i = 1, 40 do s = ('%s%s'):format(s, s) end return #s", "bytes of strings"},
		{"return #string.rep('x', 1e9)", "longer than"},
		{"local t = {} for i = 1, 100 do t[i] = string.rep('x', 1e6) end return #t", "bytes of strings"},
		{"return #string.gsub(string.rep('x', 1000), 'x', string.rep('y', 1e5))", "bytes of strings"},
		{"return #string.gsub(string.rep('x', 1000), 'x', function() return string.rep('y', 1e5) end)", "bytes of strings"},
		{"local t = {} for i = 1, 100 do t[i] = string.rep('x', 1e5) end for i = 1, 100 do table.concat(t) end return 1", "bytes of strings"},
		{"return select('#', unpack({}, 1, 1e8))", "too many results"},
		{"return loadstring(\"local s = 'x' for i = 1, 40 do s = s .. s end return #s\")()", "bytes of strings"},
		{"local n = 0 return #load(function() n = n + 1 if n < 100 then return string.rep('x', 1e6) end end)", "bytes of strings"},
		{"local a = {'x'} for i = 1, 40 do a = {a, a} end return #cjson.encode(a)", "bytes of strings"},
		{"return #cjson.decode(string.rep('[', 2000))", "too many nested"},
		{"local a = {string.rep('x', 1e5)} for i = 1, 15 do a = {a, a} end return #cmsgpack.pack(a)", "bytes of strings"},
		{"return #cmsgpack.unpack(string.rep('\\220\\255\\255', 1000))", "Missing bytes"},
		{"local t = {} for i = 1, 100 do t[i] = struct.pack('c0', string.rep('x', 1e6)) end return #t", "bytes of strings"},
		{"while true do end", "Lua instructions"},
		{"local n = 0 while true do pcall(function() while true do n = n + 1 end end) end", "Lua instructions"},
		{"local s = string.rep('x', 1e6) local t = {} for i = 1, 1000 do t[i] = s:upper() end return #t", "bytes of strings"},
		{"local t = {} for i = 1, 1e5 do t[i] = 'x' end local r = {} for i = 1, 100 do r[i] = t end return r", "bytes of strings"},
	} {
		got := runScript(t, c.src, 1, nil)
		if e := got.GetError(); !strings.Contains(e, c.want) {
			t.Errorf("%s:\n  got %v, want an error with %q", c.src, got, c.want)
		}
		again := runScript(t, c.src, 1, nil)
		if again.GetError() != got.GetError() {
			t.Errorf("%s: ended %q, then %q", c.src, got.GetError(), again.GetError())
		}
	}
}

// What a library makes is charged once: packing a map of 100000 keys
// (1.4 MB) costs about what it makes, not the output so far for every key
// (which charged cmsgpack.pack 70 GB here once), and so does a chunk load
// reads in 20000 pieces.
func TestBudgetChargesOutputOnce(t *testing.T) {
	lowerLimits(t, 50_000_000, 64<<20)
	src := `local m = {} for i = 1, 100000 do m[tostring(i)] = i end
		local s = string.rep('x', 100000)
		local n = 0
		local f = load(function() n = n + 1 if n <= 20000 then return '-- padding\n' end end)
		return {#cmsgpack.pack(m, s), #cjson.encode(m), #struct.pack('c0', s), type(f)}`
	got := runScript(t, src, 1, nil)
	items := got.GetArray().GetItems()
	if len(items) != 4 || items[0].GetInteger() < 1_000_000 || items[1].GetInteger() < 1_000_000 || string(items[3].GetBulk()) != "function" {
		t.Fatalf("packing 100000 keys within 64 MB: %v", got)
	}
}

// Two runs with the same seed give the same reply, whatever the script
// looks at: table and function names, library orders, random numbers,
// random replies; a different seed changes the random numbers.
func TestRunsAreDeterministic(t *testing.T) {
	src := `
local out = {}
out[#out+1] = tostring({}) .. tostring(tostring) .. tostring(function() end) .. tostring({})
for _, lib in ipairs({string, table, math, bit, redis}) do
  for k in pairs(lib) do out[#out+1] = k end
end
for i = 1, 5 do out[#out+1] = tostring(math.random()) end
out[#out+1] = collectgarbage('count')
return out`
	a := runScript(t, src, 7, nil)
	if a.GetError() != "" {
		t.Fatal(a.GetError())
	}
	for range 5 {
		if b := runScript(t, src, 7, nil); b.String() != a.String() {
			t.Fatalf("two runs differ:\n%v\n%v", a, b)
		}
	}
	items := a.GetArray().GetItems()
	if first := string(items[0].GetBulk()); first != "table: 0x00000001function: 0x00000002function: 0x00000003table: 0x00000004" {
		t.Errorf("tostring numbering: %q", first)
	}
	if c := runScript(t, src, 8, nil); c.String() == a.String() {
		t.Errorf("another seed gave the same random numbers")
	}
}

// A storage failure in a command the script calls stops the run, even
// under pcall, and reaches the caller as the same panic.
func TestStorageFailureStopsTheRun(t *testing.T) {
	type failure struct{ msg string }
	calls := 0
	host := hostFunc(func(args [][]byte) *messages.Reply {
		calls++
		panic(&failure{"disk gone"})
	})
	s, r := Compile([]byte("for i = 1, 10 do pcall(redis.call, 'set', 'k', i) end return 'went on'"))
	if r != nil {
		t.Fatal(r)
	}
	defer func() {
		p := recover()
		if f, ok := p.(*failure); !ok || f.msg != "disk gone" {
			t.Fatalf("recovered %v, want the host's failure", p)
		}
		if calls != 1 {
			t.Fatalf("%d calls after the failure, want 1", calls)
		}
	}()
	s.Run(nil, nil, 1, host)
	t.Fatal("Run returned")
}

// Errors carry the script's line, as Redis's do: a call's, an error's, a
// nested function's.
func TestErrorLines(t *testing.T) {
	errHost := hostFunc(func(args [][]byte) *messages.Reply {
		return &messages.Reply{Value: &messages.Reply_Error{Error: "WRONGTYPE nope"}}
	})
	for src, want := range map[string]string{
		"local a = 1\nlocal b = 2\nreturn redis.call('get', 'k')":          "WRONGTYPE nope script: %s, on @user_script:3.",
		"local function f()\n\n  error('deep')\nend\nreturn f()":           "ERR user_script:3: deep script: %s, on @user_script:3.",
		"local function f()\n  return redis.call('x')\nend\n\nreturn f()":  "WRONGTYPE nope script: %s, on @user_script:2.",
		"#!lua\nreturn redis.call('x')":                                    "WRONGTYPE nope script: %s, on @user_script:2.",
		"return redis.pcall('x').err":                                      "",
		"local ok, e = pcall(redis.call, 'x') return e":                    "",
		"local ok, e = pcall(redis.call, 'x') return redis.error_reply(e)": "WRONGTYPE nope",
	} {
		s, r := Compile([]byte(src))
		if r != nil {
			t.Fatal(r)
		}
		got := s.Run(nil, nil, 1, errHost)
		if want == "" {
			if string(got.GetBulk()) != "WRONGTYPE nope" {
				t.Errorf("%q: got %v, want the bulk WRONGTYPE nope", src, got)
			}
			continue
		}
		want = strings.Replace(want, "%s", s.SHA, 1)
		if got.GetError() != want {
			t.Errorf("%q:\n  got  %q\n  want %q", src, got.GetError(), want)
		}
	}
}

// Bad scripts are refused when compiled, with the line.
func TestCompileErrors(t *testing.T) {
	for src, want := range map[string]string{
		"return +":                "ERR Error compiling script (new function): user_script:1:",
		"\n\nlocal x = = 1":       "ERR Error compiling script (new function): user_script:3:",
		"#!lua flags=no-writes,x": "ERR Unexpected flag in script shebang: x",
		"#!python\nreturn 1":      "ERR Unexpected engine in script shebang: #!python",
	} {
		if _, r := Compile([]byte(src)); !strings.HasPrefix(r.GetError(), want) {
			t.Errorf("%q: %v, want %q...", src, r, want)
		}
	}
	s, r := Compile([]byte("#!lua flags=no-writes,allow-oom\nreturn 1"))
	if r != nil || !s.NoWrites || !s.Shebang {
		t.Errorf("shebang flags: %v %+v", r, s)
	}
}

// One compiled script runs on many shards' goroutines at once (the node
// compiles each script once): runs share nothing but the compiled code.
func TestConcurrentRuns(t *testing.T) {
	src := "local t = {} for i = 1, 200 do t[#t+1] = string.format('%d', i) .. cjson.encode({i}) end return table.concat(t, ',') .. redis.call('x') .. tostring(math.random())"
	want := runScript(t, src, 1, nil).String()
	done := make(chan string)
	for range 8 {
		go func() {
			s, _ := Compile([]byte(src))
			for range 20 {
				if got := s.Run(nil, nil, 1, okHost).String(); got != want {
					done <- got
					return
				}
			}
			done <- ""
		}()
	}
	for range 8 {
		if got := <-done; got != "" {
			t.Fatalf("a concurrent run answered %s, want %s", got, want)
		}
	}
}

// A chunk nested deeper than the compiler's walk allows is refused, not a
// crash of the node (the compiler recurses through the syntax tree: a
// million levels would exhaust the stack): unary chains, chains of '+'
// (Lua's parser loops through them, but the tree is as deep), tables,
// blocks, nested functions. (Parentheses leave no level in the tree.)
func TestDeepChunksAreRefused(t *testing.T) {
	for _, src := range []string{
		"return " + strings.Repeat("- ", 200000) + "1",
		"return " + strings.Repeat("not ", 200000) + "1",
		"return 1" + strings.Repeat("+1", 200000),
		"return " + strings.Repeat("{", 100000) + strings.Repeat("}", 100000),
		strings.Repeat("do ", 50000) + strings.Repeat("end ", 50000),
		"return " + strings.Repeat("function() return ", 20000) + "1" + strings.Repeat(" end", 20000),
	} {
		if _, r := Compile([]byte(src)); !strings.Contains(r.GetError(), "too many syntax levels") {
			t.Errorf("%.40s...: %v, want too many syntax levels", src, r)
		}
	}
	if got := runScript(t, "return 1"+strings.Repeat("+1", 300), 1, nil); got.GetInteger() != 301 {
		t.Errorf("a chain of 300 additions: %v", got)
	}
	if got := runScript(t, "return "+strings.Repeat("(", 100000)+"1"+strings.Repeat(")", 100000), 1, nil); got.GetInteger() != 1 {
		t.Errorf("100000 parentheses: %v", got)
	}
}

// Any source compiles or is refused, and a script that compiles runs the
// same twice (its reply, and the commands it calls): what every replica
// relies on. The seeds are scripts of the tests above; go test -fuzz
// FuzzScriptsRunAlike looks further.
func FuzzScriptsRunAlike(f *testing.F) {
	for _, seed := range []string{
		"return 1", "return redis.call('set', 'k', tostring({}))", "local t = {} for i = 1, 10 do t[i] = math.random() end return t",
		"return cjson.encode({a = {1, 2}, b = 'x'})", "return string.format('%5.2f %s', 1.5, 'x')",
		"for k in pairs(string) do redis.call('rpush', 'l', k) end", "return {string.gsub('abc', '%w', '%0%0')}",
		"return cmsgpack.unpack(cmsgpack.pack({1, 'a', {b = true}}))", "return struct.pack('>i4 s', 7, 'x')",
		"error({err = 'E'})", "local s = 'x' for i = 1, 30 do s = s .. s end", "return (function(...) return select('#', ...) end)(1, 2, 3)",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, src string) {
		old1, old2 := stepLimit, byteLimit
		stepLimit, byteLimit = 200_000, 8<<20
		defer func() { stepLimit, byteLimit = old1, old2 }()
		s, r := Compile([]byte(src))
		if r != nil {
			return
		}
		run := func() string {
			var calls []string
			host := hostFunc(func(args [][]byte) *messages.Reply {
				calls = append(calls, fmt.Sprintf("%q", args))
				return &messages.Reply{Value: &messages.Reply_Bulk{Bulk: []byte("v")}}
			})
			return s.Run([][]byte{[]byte("k")}, [][]byte{[]byte("a")}, 9, host).String() + strings.Join(calls, ",")
		}
		if a, b := run(), run(); a != b {
			t.Fatalf("%q ran two ways:\n%s\n%s", src, a, b)
		}
	})
}

// A library's top level that runs past MaxLoadSteps (a count standing for
// Redis's 500 ms load timeout) is refused with Redis's error; the same
// loop in a function it registers runs to MaxSteps.
func TestLibraryLoadTimeout(t *testing.T) {
	old := loadStepLimit
	loadStepLimit = 100_000
	t.Cleanup(func() { loadStepLimit = old })
	_, r := LoadLibrary([]byte("#!lua name=loadtimeout\nlocal a = 1\nwhile 1 do a = a + 1 end"))
	if got := r.GetError(); got != "ERR Error registering functions: ERR FUNCTION LOAD timeout" {
		t.Fatalf("a looping top level: %q", got)
	}
	lib, r := LoadLibrary([]byte("#!lua name=loadok\nlocal n = 0 for i = 1, 20000 do n = n + i end\n" +
		"redis.register_function('f', function() local m = 0 for i = 1, 200000 do m = m + i end return m end)"))
	if r != nil {
		t.Fatalf("a top level within its budget: %v", r)
	}
	if got := lib.Call("f", nil, nil, 1, okHost); got.GetInteger() != 200000*200001/2 {
		t.Fatalf("a function past the load budget: %v", got)
	}
}
