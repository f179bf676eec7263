package faults

import (
	"math"
	"testing"

	"github.com/anishathalye/porcupine"
)

// The register model takes SET NX and DEL: a history whose SET NX claims
// a value is there after a DEL took it, or whose DEL deleted nothing
// while a value was there, is not linearizable; one whose write's outcome
// is unknown may place it where it changes nothing seen.
func TestRegisterModelWritesThatMayChangeNothing(t *testing.T) {
	op := func(client int, in kvInput, out kvOutput, call, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Input: in, Output: out, Call: call, Return: ret}
	}
	set := func(call, ret int64, v string) porcupine.Operation {
		return op(0, kvInput{op: 's', key: "r", value: v}, kvOutput{}, call, ret)
	}
	setnx := func(call, ret int64, v string, done bool) porcupine.Operation {
		return op(1, kvInput{op: 'n', key: "r", value: v}, kvOutput{done: done}, call, ret)
	}
	del := func(call, ret int64, done bool) porcupine.Operation {
		return op(2, kvInput{op: 'd', key: "r"}, kvOutput{done: done}, call, ret)
	}
	get := func(call, ret int64, v string) porcupine.Operation {
		return op(3, kvInput{op: 'g', key: "r"}, kvOutput{value: v, exists: v != ""}, call, ret)
	}
	unknown := func(o porcupine.Operation) porcupine.Operation {
		o.Output, o.Return = kvOutput{unknown: true}, math.MaxInt64
		return o
	}
	for _, tc := range []struct {
		name    string
		history []porcupine.Operation
		ok      bool
	}{
		{"setnx of a register holding a value sets nothing", []porcupine.Operation{set(0, 1, "a"), setnx(2, 3, "b", false), get(4, 5, "a")}, true},
		{"setnx of an empty register sets", []porcupine.Operation{setnx(0, 1, "b", true), get(2, 3, "b")}, true},
		{"setnx finds a value a delete took", []porcupine.Operation{set(0, 1, "a"), del(2, 3, true), setnx(4, 5, "b", false)}, false},
		{"setnx sets over a value", []porcupine.Operation{set(0, 1, "a"), setnx(2, 3, "b", true)}, false},
		{"delete finds nothing where a value is", []porcupine.Operation{set(0, 1, "a"), del(2, 3, false)}, false},
		{"delete deletes what is not there", []porcupine.Operation{del(0, 1, true)}, false},
		{"a second delete finds nothing", []porcupine.Operation{set(0, 1, "a"), del(2, 3, true), del(4, 5, false), get(6, 7, "")}, true},
		{"concurrent setnx and delete, either order", []porcupine.Operation{set(0, 1, "a"), del(2, 5, true), setnx(3, 4, "b", false), get(6, 7, "")}, true},
		{"an unknown delete placed after the reads", []porcupine.Operation{set(0, 1, "a"), unknown(del(2, 3, false)), get(4, 5, "a")}, true},
		{"an unknown setnx that took effect", []porcupine.Operation{unknown(setnx(0, 1, "b", false)), get(2, 3, "b")}, true},
	} {
		if got := porcupine.CheckOperations(registerModel, tc.history); got != tc.ok {
			t.Errorf("%s: linearizable %v, want %v", tc.name, got, tc.ok)
		}
	}
}
