package kv

import (
	"testing"
	"time"

	"github.com/coppice-kv/coppice/messages"
)

// FCALL finds a function in any case; a library loaded before that (its
// index entry under the name as written) is still found by that name,
// and is replaced whole by a new load.
func TestFcallFindsFunctionsInAnyCase(t *testing.T) {
	ps := newPebbleStore(t)
	run := func(args ...string) *messages.Reply {
		b := make([][]byte, len(args))
		for i, a := range args {
			b[i] = []byte(a)
		}
		r := Exec(ps, &messages.Command{Args: b, NowMs: time.Now().UnixMilli()})
		ps.commit(t)
		return r
	}
	fcall := func(name string) *messages.Reply {
		cmd, _, _, r := PrepareFcall("fcall", [][]byte{[]byte("FCALL"), []byte(name), []byte("0")}, 1)
		if r != nil {
			return r
		}
		r = Exec(ps, &messages.Command{Args: cmd, NowMs: time.Now().UnixMilli()})
		ps.commit(t)
		return r
	}
	code := "#!lua name=old\nredis.register_function('MixedCase', function() return 'found' end)"
	if r := run(FunctionName, "load", "0", code); string(r.GetBulk()) != "old" {
		t.Fatalf("load: %v", r)
	}
	for _, name := range []string{"MixedCase", "mixedcase", "MIXEDCASE"} {
		if r := fcall(name); string(r.GetBulk()) != "found" {
			t.Fatalf("FCALL %s: %v", name, r)
		}
	}
	// As an older node indexed it: under "MixedCase".
	if err := ps.Delete(funcKey([]byte("MixedCase"))); err != nil {
		t.Fatal(err)
	}
	if err := ps.Set(append([]byte{prefixFunction, 'F'}, "MixedCase"...), []byte("old")); err != nil {
		t.Fatal(err)
	}
	ps.commit(t)
	if r := fcall("MixedCase"); string(r.GetBulk()) != "found" {
		t.Fatalf("FCALL of a legacy entry: %v", r)
	}
	if r := run(FunctionName, "load", "1", code); string(r.GetBulk()) != "old" {
		t.Fatalf("replace: %v", r)
	}
	if r := fcall("mixedcase"); string(r.GetBulk()) != "found" {
		t.Fatalf("FCALL after the replace: %v", r)
	}
	n := 0
	p := []byte{prefixFunction, 'F'}
	if err := ps.Scan(p, successor(p), func(k, _ []byte) bool { n++; return true }); err != nil || n != 1 {
		t.Fatalf("function index entries after the replace: %d, %v", n, err)
	}
	// A payload whose two libraries have functions named alike in
	// another case is refused whole.
	payload := FunctionDump([][]byte{
		[]byte("#!lua name=l1\nredis.register_function('Twin', function() return 1 end)"),
		[]byte("#!lua name=l2\nredis.register_function('twin', function() return 2 end)"),
	})
	codes, r := FunctionCodes(payload)
	if r != nil {
		t.Fatal(r)
	}
	args := [][]byte{[]byte(FunctionName), []byte("restore"), []byte("append")}
	if r := Exec(ps, &messages.Command{Args: append(args, codes...)}); r.GetError() != "ERR Function twin already exists" {
		t.Fatalf("RESTORE of twins: %v", r)
	}
	ps.commit(t)
	if r := fcall("twin"); r.GetError() != "ERR Function not found" {
		t.Fatalf("FCALL twin after the refused RESTORE: %v", r)
	}
}
