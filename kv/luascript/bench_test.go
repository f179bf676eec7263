package luascript

import (
	"testing"

	"github.com/coppice-kv/coppice/messages"
)

// hostFunc is a Host from a function.
type hostFunc func(args [][]byte) *messages.Reply

func (f hostFunc) Call(args [][]byte) *messages.Reply { return f(args) }

var okHost = hostFunc(func([][]byte) *messages.Reply {
	return &messages.Reply{Value: &messages.Reply_Integer{Integer: 1}}
})

// One run of a script that makes one call: what a script costs a replica
// beyond its commands (a new VM, its libraries, the conversions).
func BenchmarkRunOneCall(b *testing.B) {
	s, r := Compile([]byte("return redis.call('incr', KEYS[1])"))
	if r != nil {
		b.Fatal(r)
	}
	keys := [][]byte{[]byte("k")}
	b.ReportAllocs()
	for b.Loop() {
		if got := s.Run(keys, nil, 1, okHost); got.GetInteger() != 1 {
			b.Fatal(got)
		}
	}
}

// A loop of a million instructions: the VM's speed under the budget's
// per-instruction count.
func BenchmarkRunLoop(b *testing.B) {
	s, r := Compile([]byte("local n = 0 for i = 1, 250000 do n = n + i end return n"))
	if r != nil {
		b.Fatal(r)
	}
	for b.Loop() {
		s.Run(nil, nil, 1, okHost)
	}
}

// One FCALL of a one-call function: its library's top level runs again
// (registering its functions), then the function.
func BenchmarkFcallOneCall(b *testing.B) {
	lib, r := LoadLibrary([]byte("#!lua name=bench\nredis.register_function('f', function(keys, args) return redis.call('incr', keys[1]) end)"))
	if r != nil {
		b.Fatal(r)
	}
	keys := [][]byte{[]byte("k")}
	b.ReportAllocs()
	for b.Loop() {
		if got := lib.Call("f", keys, nil, 1, okHost); got.GetInteger() != 1 {
			b.Fatal(got)
		}
	}
}
