package luascript

import lua "github.com/yuin/gopher-lua"

// Redis 7 makes every table a script finds (the globals, the libraries,
// the metatables of strings and of the globals) read-only: setting a field,
// rawset, table.insert or setmetatable on one raises "Attempt to modify a
// readonly table". gopher-lua has no read-only tables, so a script is given
// a view of each (readonly): an empty table whose metatable reads from the
// real one and refuses every assignment (the VM calls __newindex for any
// key an empty table lacks), and the base functions that could write past
// the metatable (rawset, setmetatable, table.insert) refuse a view, while
// those that read (rawget, next, pairs) read the real table. This is also
// what lets a VM serve run after run (release): no run can change what the
// next one finds.

// readonly is a read-only view of t. Its reads go to index, or to t when
// index is nil.
func (r *run) readonly(t *lua.LTable, index lua.LValue) *lua.LTable {
	if index == nil {
		index = t
	}
	L := r.L
	view := L.CreateTable(0, 0)
	mt := L.CreateTable(0, 2)
	mt.RawSetString("__index", index)
	mt.RawSetString("__newindex", r.refuse)
	view.Metatable = mt
	r.ro[view] = t
	return view
}

// shown is the table t shows, if t is a read-only view, else t.
func (r *run) shown(t *lua.LTable) *lua.LTable {
	if real, ok := r.ro[t]; ok {
		return real
	}
	return t
}

func (r *run) refuseView(L *lua.LState, t *lua.LTable) {
	if _, ok := r.ro[t]; ok {
		// Lua's C API raises it, so without a position (the VM's
		// assignment, r.refuse, has one).
		L.Error(lua.LString("Attempt to modify a readonly table"), 0)
	}
}

// argType is what Lua's argument errors call argument n: its type, or
// "no value" past the last.
func argType(L *lua.LState, n int) string {
	if n > L.GetTop() {
		return "no value"
	}
	return L.Get(n).Type().String()
}

// checkTable is Lua's luaL_checktype(L, n, LUA_TTABLE).
func checkTable(L *lua.LState, n int, fn string) *lua.LTable {
	t, ok := L.Get(n).(*lua.LTable)
	if !ok {
		argError(L, n, fn, "table expected, got "+argType(L, n))
	}
	return t
}

// checkAny is Lua's luaL_checkany.
func checkAny(L *lua.LState, n int, fn string) lua.LValue {
	if n > L.GetTop() {
		argError(L, n, fn, "value expected")
	}
	return L.Get(n)
}

func (r *run) rawset(L *lua.LState) int {
	t := checkTable(L, 1, "rawset")
	k, v := checkAny(L, 2, "rawset"), checkAny(L, 3, "rawset")
	r.refuseView(L, t)
	L.RawSet(t, k, v)
	L.SetTop(1)
	return 1
}

func (r *run) rawget(L *lua.LState) int {
	t := checkTable(L, 1, "rawget")
	L.Push(r.shown(t).RawGet(checkAny(L, 2, "rawget")))
	return 1
}

func (r *run) next(L *lua.LState) int {
	t := r.shown(checkTable(L, 1, "next"))
	k, v := t.Next(L.Get(2))
	if k == lua.LNil {
		L.Push(lua.LNil)
		return 1
	}
	L.Push(k)
	L.Push(v)
	return 2
}

// pairs is Lua 5.1's: an iterator (next, but not the global next), the
// table and nil.
func (r *run) pairs(L *lua.LState) int {
	t := checkTable(L, 1, "pairs")
	L.Push(r.pairsNext)
	L.Push(t)
	L.Push(lua.LNil)
	return 3
}

// setmetatable is Lua 5.1's, on tables only (gopher-lua's sets the
// metatable of every string, or number, of the VM).
func (r *run) setmetatable(L *lua.LState) int {
	t := checkTable(L, 1, "setmetatable")
	mt := L.Get(2)
	if mt.Type() != lua.LTNil && mt.Type() != lua.LTTable {
		argError(L, 2, "setmetatable", "nil or table expected")
	}
	if L.GetMetaField(t, "__metatable") != lua.LNil {
		L.RaiseError("cannot change a protected metatable")
	}
	r.refuseView(L, t)
	t.Metatable = mt
	L.SetTop(1)
	return 1
}

// getmetatable is Lua's, but what it gives of the globals' and of
// strings' metatables is a read-only view, and a library has none.
func (r *run) getmetatable(L *lua.LState) int {
	v := checkAny(L, 1, "getmetatable")
	t, _ := v.(*lua.LTable)
	switch {
	case v.Type() == lua.LTString:
		L.Push(r.metaView(r.strMeta))
	case t != nil && t == r.view:
		L.Push(r.metaView(t.Metatable.(*lua.LTable)))
	case r.ro[t] != nil: // a library's view: a library has none
		L.Push(lua.LNil)
	default:
		L.Push(L.GetMetatable(v))
	}
	return 1
}

// metaView is the read-only view of mt, one of the VM's metatables.
func (r *run) metaView(mt *lua.LTable) *lua.LTable {
	view := r.metaViews[mt]
	if view == nil {
		view = r.readonly(mt, nil)
		r.metaViews[mt] = view
	}
	return view
}

// tableInsert is table.insert, refused on a read-only view.
func (r *run) tableInsert(insert *lua.LFunction) lua.LGFunction {
	return func(L *lua.LState) int {
		if t, ok := L.Get(1).(*lua.LTable); ok {
			r.refuseView(L, t)
		}
		top := L.GetTop()
		L.Insert(insert, 1)
		L.Call(top, 0)
		return 0
	}
}
