package luascript

import (
	"fmt"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// A script runs on every replica of its shard, in the shard's apply loop:
// it must end, and end the same way, everywhere. Its limits are therefore
// counts, not times or heap sizes: every replica counts the same
// instructions and the same bytes, and stops the script at the same point
// with the same error. (Redis runs a script once and replicates its
// effects, and bounds it by time; a time here would stop it on one
// replica and not on another.)
const (
	// MaxSteps bounds the Lua instructions of one run (a second or two of
	// this machine's VM).
	MaxSteps = 100_000_000
	// MaxLoadSteps bounds the instructions of a library's top level
	// (FUNCTION LOAD), which only registers its functions: about Redis's
	// 500 ms load timeout of this machine's VM, as a count.
	MaxLoadSteps = 10_000_000
	// MaxBytes bounds the bytes one run creates: strings made by '..',
	// string.rep, string.format, string.gsub, table.concat and the other
	// string builders, the replies of redis.call and the values unpack
	// and string.byte push. It counts what is made, not what is kept (no
	// replica's garbage collector decides anything), so a string grown by
	// '..' in a loop is counted at every step: build big strings with
	// table.concat.
	MaxBytes = 2 << 30
	// maxString is the longest string a script may make (Redis's
	// proto-max-bulk-len).
	maxString = 512 << 20
	// slotBytes is what a value pushed on the stack or held in a table
	// costs the budget.
	slotBytes = 16
)

// stepLimit, loadStepLimit and byteLimit are MaxSteps, MaxLoadSteps and
// MaxBytes; tests lower them.
var (
	stepLimit     int64 = MaxSteps
	loadStepLimit int64 = MaxLoadSteps
	byteLimit     int64 = MaxBytes
)

var (
	errSteps = fmt.Errorf("script exceeded %d Lua instructions: coppice runs a script on every replica and stops it at the same instruction on each", MaxSteps)
	errBytes = fmt.Errorf("script made more than %d bytes of strings and values: coppice runs a script on every replica and bounds what it makes (build big strings with table.concat, not '..' in a loop)", MaxBytes)
	errLong  = fmt.Errorf("string longer than %d bytes", maxString)
	// errLoadTimeout is Redis's error for a library's top level that
	// runs too long.
	errLoadTimeout = fmt.Errorf("FUNCTION LOAD timeout")
)

// budget is the context the VM checks before every instruction: Done
// counts the instruction and, past MaxSteps or once the run has failed for
// good (its bytes, a storage failure), returns a closed channel, which
// makes the VM raise Err. A failure for good keeps raising at every
// instruction, so pcall cannot swallow it and go on.
type budget struct {
	run   *run // the run it bounds
	steps int64
	bytes int64
	fatal error
}

var closed = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (b *budget) Done() <-chan struct{} {
	b.steps++
	if b.fatal == nil {
		switch {
		case b.run.loading != nil && b.steps > loadStepLimit: // a library's top level
			b.fatal = errLoadTimeout
		case b.steps > stepLimit:
			b.fatal = errSteps
		}
	}
	if b.fatal != nil {
		return closed
	}
	return nil
}

func (b *budget) Err() error                        { return b.fatal }
func (b *budget) Deadline() (d time.Time, ok bool)  { return }
func (b *budget) Value(key any) any                 { return nil }
func (b *budget) charge(L *lua.LState, n int)       { b.chargeBytes(L, int64(n)) }
func (b *budget) chargeSlots(L *lua.LState, n int)  { b.chargeBytes(L, int64(n)*slotBytes) }
func (b *budget) chargeString(L *lua.LState, n int) { b.checkLen(L, n); b.charge(L, n) }

// chargeBytes counts n bytes, and raises for good past MaxBytes.
func (b *budget) chargeBytes(L *lua.LState, n int64) {
	b.bytes += n
	if b.bytes > byteLimit {
		b.fatal = errBytes
		L.RaiseError("%s", errBytes.Error())
	}
}

// checkLen refuses a string of n bytes before it is made.
func (b *budget) checkLen(L *lua.LState, n int) {
	if n > maxString || n < 0 {
		L.RaiseError("%s", errLong.Error())
	}
}

// concat is what '..' calls (see rewriteConcat): Lua's concatenation,
// right to left, with __concat for operands that are neither strings nor
// numbers, each result charged before it is made.
func (b *budget) concat(L *lua.LState) int {
	n := L.GetTop()
	acc := L.Get(n)
	for i := n - 1; i >= 1; {
		lhs := L.Get(i)
		if accStr, ok := asString(acc); ok && lua.LVCanConvToString(lhs) {
			// Join the run of strings and numbers that ends here at once,
			// numbers as Lua writes them.
			parts := []string{accStr}
			size := len(accStr)
			j := i
			for ; j >= 1; j-- {
				part, ok := asString(L.Get(j))
				if !ok {
					break
				}
				parts = append(parts, part)
				size += len(part)
			}
			b.chargeString(L, size)
			var sb strings.Builder
			sb.Grow(size)
			for k := len(parts) - 1; k >= 0; k-- {
				sb.WriteString(parts[k])
			}
			acc = lua.LString(sb.String())
			i = j
			continue
		}
		mm := L.GetMetaField(lhs, "__concat")
		if mm == lua.LNil {
			mm = L.GetMetaField(acc, "__concat")
		}
		if mm == lua.LNil {
			bad := lhs
			if lua.LVCanConvToString(lhs) {
				bad = acc
			}
			L.RaiseError("attempt to concatenate a %s value", bad.Type().String())
		}
		L.Push(mm)
		L.Push(lhs)
		L.Push(acc)
		L.Call(2, 1)
		acc = L.Get(-1)
		L.Pop(1)
		i--
	}
	L.Push(acc)
	return 1
}
