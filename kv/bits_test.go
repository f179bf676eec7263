package kv

import (
	"math/rand/v2"
	"strconv"
	"testing"
)

// Random bitmaps and random ranges, types and offsets, against a real
// redis-server: BITCOUNT and BITPOS (bytes and bits, negative and out of
// range ends), BITFIELD's GET, SET and INCRBY under each OVERFLOW, and
// SETBIT, must answer the same and leave the same string. (The edge cases
// by hand are in testdata/diff/bits.txt.)
func TestBitsAgainstRedisRandomly(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	num := func(lo, hi int) string { return strconv.Itoa(lo + rng.IntN(hi-lo+1)) }
	types := []string{"u1", "u3", "u8", "u13", "u32", "u63", "i1", "i5", "i8", "i17", "i32", "i63", "i64"}
	ovf := []string{"WRAP", "SAT", "FAIL"}
	vals := []string{"0", "1", "-1", "127", "-128", "255", "65535", "-9223372036854775808", "9223372036854775807", "4611686018427387904"}
	var cmds [][]string
	for range 600 {
		switch rng.IntN(6) {
		case 0:
			b := make([]byte, rng.IntN(12))
			for i := range b {
				b[i] = []byte{0, 0xff, 0x0f, 0xf0, 0x81, byte(rng.IntN(256))}[rng.IntN(6)]
			}
			cmds = append(cmds, []string{"SET", "k", string(b)})
		case 1:
			unit := []string{"BYTE", "BIT"}[rng.IntN(2)]
			cmds = append(cmds, []string{"BITCOUNT", "k", num(-100, 100), num(-100, 100), unit})
		case 2:
			args := []string{"BITPOS", "k", num(0, 1), num(-100, 100)}
			if rng.IntN(3) > 0 {
				args = append(args, num(-100, 100))
				if rng.IntN(2) == 0 {
					args = append(args, []string{"BYTE", "BIT"}[rng.IntN(2)])
				}
			}
			cmds = append(cmds, args)
		case 3:
			cmds = append(cmds, []string{"SETBIT", "k", num(0, 120), num(0, 1)})
		default:
			args := []string{"BITFIELD", "k"}
			for range 1 + rng.IntN(4) {
				ty, off := types[rng.IntN(len(types))], num(0, 100)
				switch rng.IntN(4) {
				case 0:
					args = append(args, "GET", ty, off)
				case 1:
					args = append(args, "SET", ty, off, vals[rng.IntN(len(vals))])
				case 2:
					args = append(args, "INCRBY", ty, off, vals[rng.IntN(len(vals))])
				default:
					args = append(args, "OVERFLOW", ovf[rng.IntN(len(ovf))])
				}
			}
			cmds = append(cmds, args)
		}
		cmds = append(cmds, []string{"GET", "k"})
	}
	againstRedis(t, cmds, nil)
}
