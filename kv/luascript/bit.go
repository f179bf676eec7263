package luascript

import (
	"math"
	"math/bits"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// bitLib is LuaBitOp's bit library, as Redis ships it: 32-bit operations
// on numbers, results signed.
func (r *run) bitLib() *lua.LTable {
	L := r.L
	m := map[string]lua.LValue{}
	arg := func(L *lua.LState, n int, fn string) uint32 {
		return uint32(int64(math.RoundToEven(checkNumber(L, n, fn))))
	}
	ret := func(L *lua.LState, v uint32) int { L.Push(lua.LNumber(int32(v))); return 1 }
	fold := func(fn string, op func(a, b uint32) uint32) lua.LGFunction {
		return func(L *lua.LState) int {
			v := arg(L, 1, fn)
			for i := 2; i <= L.GetTop(); i++ {
				v = op(v, arg(L, i, fn))
			}
			return ret(L, v)
		}
	}
	shift := func(fn string, op func(v uint32, n uint) uint32) lua.LGFunction {
		return func(L *lua.LState) int { return ret(L, op(arg(L, 1, fn), uint(arg(L, 2, fn)&31))) }
	}
	for name, fn := range map[string]lua.LGFunction{
		"tobit":  func(L *lua.LState) int { return ret(L, arg(L, 1, "tobit")) },
		"bnot":   func(L *lua.LState) int { return ret(L, ^arg(L, 1, "bnot")) },
		"bswap":  func(L *lua.LState) int { return ret(L, bits.ReverseBytes32(arg(L, 1, "bswap"))) },
		"band":   fold("band", func(a, b uint32) uint32 { return a & b }),
		"bor":    fold("bor", func(a, b uint32) uint32 { return a | b }),
		"bxor":   fold("bxor", func(a, b uint32) uint32 { return a ^ b }),
		"lshift": shift("lshift", func(v uint32, n uint) uint32 { return v << n }),
		"rshift": shift("rshift", func(v uint32, n uint) uint32 { return v >> n }),
		"arshift": shift("arshift", func(v uint32, n uint) uint32 {
			return uint32(int32(v) >> n)
		}),
		"rol": shift("rol", func(v uint32, n uint) uint32 { return bits.RotateLeft32(v, int(n)) }),
		"ror": shift("ror", func(v uint32, n uint) uint32 { return bits.RotateLeft32(v, -int(n)) }),
		"tohex": func(L *lua.LState) int {
			v := arg(L, 1, "tohex")
			n := 8
			if L.GetTop() >= 2 {
				n = int(int32(arg(L, 2, "tohex")))
			}
			digits := "0123456789abcdef"
			if n < 0 {
				n, digits = -n, strings.ToUpper(digits)
			}
			n = min(n, 8)
			out := make([]byte, n)
			for i := n - 1; i >= 0; i-- {
				out[i] = digits[v&15]
				v >>= 4
			}
			L.Push(lua.LString(out))
			return 1
		},
	} {
		m[name] = L.NewFunction(fn)
	}
	return tableOf(L, m)
}
