package luascript

import (
	"math"
	"strconv"
	"strings"

	"github.com/coppice-kv/coppice/messages"
	lua "github.com/yuin/gopher-lua"
)

// toLua is a command's reply as redis.call gives it to the script: Redis's
// conversion for the protocol the script chose (redis.setresp; RESP2
// unless it did). Every value is charged to the run's budget.
func (r *run) toLua(L *lua.LState, reply *messages.Reply) lua.LValue {
	r.b.chargeSlots(L, 1)
	resp3 := r.resp == 3
	field := func(name string, v lua.LValue) *lua.LTable {
		t := L.CreateTable(0, 1)
		t.RawSetString(name, v)
		return t
	}
	list := func(items []*messages.Reply) *lua.LTable {
		t := L.CreateTable(len(items), 0)
		for i, it := range items {
			t.RawSetInt(i+1, r.toLua(L, it))
		}
		return t
	}
	pairsOf := func(items []*messages.Reply) *lua.LTable {
		t := L.CreateTable(len(items)/2, 0)
		for i := 0; i+1 < len(items); i += 2 {
			t.RawSetInt(i/2+1, list(items[i:i+2]))
		}
		return t
	}
	mapOf := func(items []*messages.Reply) *lua.LTable {
		t := L.CreateTable(0, len(items)/2)
		for i := 0; i+1 < len(items); i += 2 {
			L.RawSet(t, r.toLua(L, items[i]), r.toLua(L, items[i+1]))
		}
		return field("map", t)
	}
	switch v := reply.GetValue().(type) {
	case *messages.Reply_Status:
		return field("ok", lua.LString(v.Status))
	case *messages.Reply_Error:
		return errTable(L, "-"+v.Error)
	case *messages.Reply_Integer:
		return lua.LNumber(v.Integer)
	case *messages.Reply_Bulk:
		r.b.charge(L, len(v.Bulk))
		return lua.LString(v.Bulk)
	case *messages.Reply_Verbatim:
		r.b.charge(L, len(v.Verbatim))
		if resp3 {
			vs := L.CreateTable(0, 2)
			vs.RawSetString("format", lua.LString("txt"))
			vs.RawSetString("string", lua.LString(v.Verbatim))
			return field("verbatim_string", vs)
		}
		return lua.LString(v.Verbatim)
	case *messages.Reply_NullBulk, *messages.Reply_NullArray:
		if resp3 {
			return lua.LNil
		}
		return lua.LFalse
	case *messages.Reply_Double:
		if resp3 {
			return field("double", lua.LNumber(v.Double))
		}
		return lua.LString(formatDouble(v.Double))
	case *messages.Reply_Boolean:
		if resp3 {
			return lua.LBool(v.Boolean)
		}
		if v.Boolean {
			return lua.LNumber(1)
		}
		return lua.LNumber(0)
	case *messages.Reply_Array:
		return list(v.Array.GetItems())
	case *messages.Reply_Push:
		return list(v.Push.GetItems())
	case *messages.Reply_Set:
		if resp3 {
			t := L.CreateTable(0, len(v.Set.GetItems()))
			for _, it := range v.Set.GetItems() {
				L.RawSet(t, r.toLua(L, it), lua.LTrue)
			}
			return field("set", t)
		}
		return list(v.Set.GetItems())
	case *messages.Reply_Map:
		if resp3 {
			return mapOf(v.Map.GetItems())
		}
		return list(v.Map.GetItems())
	case *messages.Reply_Pairs:
		if resp3 {
			return pairsOf(v.Pairs.GetItems())
		}
		return list(v.Pairs.GetItems())
	case *messages.Reply_Keyed:
		if resp3 {
			return mapOf(v.Keyed.GetItems())
		}
		return pairsOf(v.Keyed.GetItems())
	}
	return lua.LNil
}

// formatDouble is a double as RESP2 sends it (C's "%.17g").
func formatDouble(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	case math.IsNaN(f):
		return "nan"
	}
	return strconv.FormatFloat(f, 'g', 17, 64)
}

// maxDepth bounds the nesting of a script's reply (Redis's Lua stack
// limit gives the same error).
const maxDepth = 1000

var errStackLimit = &messages.Reply{Value: &messages.Reply_Error{Error: "ERR reached lua stack limit"}}

// toReply is a script's result as the client gets it (Redis's
// luaReplyToRedisReply). Each element is charged; past the budget the
// whole reply is its error.
func (r *run) toReply(v lua.LValue, depth int) (reply *messages.Reply) {
	defer func() {
		if depth == 0 && r.b.bytes > byteLimit {
			reply = &messages.Reply{Value: &messages.Reply_Error{Error: "ERR " + errBytes.Error()}}
		}
	}()
	if depth > maxDepth {
		return errStackLimit
	}
	r.b.bytes += slotBytes
	if r.b.bytes > byteLimit {
		return nil
	}
	switch v := v.(type) {
	case lua.LString:
		r.b.bytes += int64(len(v))
		return &messages.Reply{Value: &messages.Reply_Bulk{Bulk: []byte(v)}}
	case lua.LBool:
		if r.resp == 3 {
			return &messages.Reply{Value: &messages.Reply_Boolean{Boolean: bool(v)}}
		}
		if v {
			return &messages.Reply{Value: &messages.Reply_Integer{Integer: 1}}
		}
		return nullBulk
	case lua.LNumber:
		return &messages.Reply{Value: &messages.Reply_Integer{Integer: int64(float64(v))}}
	case *lua.LTable:
		return r.tableReply(v, depth)
	}
	return nullBulk
}

var nullBulk = &messages.Reply{Value: &messages.Reply_NullBulk{NullBulk: true}}

func (r *run) tableReply(t *lua.LTable, depth int) *messages.Reply {
	if s, ok := t.RawGetString("err").(lua.LString); ok {
		return errorText(string(s))
	}
	if s, ok := t.RawGetString("ok").(lua.LString); ok {
		return &messages.Reply{Value: &messages.Reply_Status{Status: strings.NewReplacer("\r", " ", "\n", " ").Replace(string(s))}}
	}
	if n, ok := t.RawGetString("double").(lua.LNumber); ok {
		return &messages.Reply{Value: &messages.Reply_Double{Double: float64(n)}}
	}
	if s, ok := t.RawGetString("big_number").(lua.LString); ok {
		// No big number type here: its digits, as RESP2 sends them.
		return &messages.Reply{Value: &messages.Reply_Bulk{Bulk: []byte(oneLine(string(s)))}}
	}
	if vs, ok := t.RawGetString("verbatim_string").(*lua.LTable); ok {
		_, fok := vs.RawGetString("format").(lua.LString)
		if s, ok := vs.RawGetString("string").(lua.LString); ok && fok {
			return &messages.Reply{Value: &messages.Reply_Verbatim{Verbatim: string(s)}}
		}
	}
	if m, ok := t.RawGetString("map").(*lua.LTable); ok {
		var items []*messages.Reply
		eachPair(m, func(k, v lua.LValue) {
			items = append(items, r.toReply(k, depth+1), r.toReply(v, depth+1))
		})
		return &messages.Reply{Value: &messages.Reply_Map{Map: &messages.Replies{Items: items}}}
	}
	if s, ok := t.RawGetString("set").(*lua.LTable); ok {
		var items []*messages.Reply
		eachPair(s, func(k, _ lua.LValue) { items = append(items, r.toReply(k, depth+1)) })
		return &messages.Reply{Value: &messages.Reply_Set{Set: &messages.Replies{Items: items}}}
	}
	var items []*messages.Reply
	for i := 1; ; i++ {
		v := t.RawGetInt(i)
		if v == lua.LNil || r.b.bytes > byteLimit {
			break
		}
		items = append(items, r.toReply(v, depth+1))
	}
	return &messages.Reply{Value: &messages.Reply_Array{Array: &messages.Replies{Items: items}}}
}
