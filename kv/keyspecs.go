package kv

// Key specs: where a command's keys are and what it does to each, read
// from Redis's own COMMAND metadata (commands_redis.go), as Redis 7.0
// finds them (getKeysFromCommandWithSpecs). ACL rules check each key with
// its flags: a key a command reads needs a read pattern, one it changes a
// write pattern.

import (
	"strings"
	"sync"

	"github.com/coppice-kv/coppice/messages"
)

// KeyFlags are a key spec's flags.
type KeyFlags uint16

// The flags of a key spec, Redis's.
const (
	KeyRO KeyFlags = 1 << iota
	KeyRW
	KeyOW
	KeyRM
	KeyAccess
	KeyUpdate
	KeyInsert
	KeyDelete
	KeyNotKey
	KeyIncomplete
	KeyVariableFlags
)

// keyFlagNames is each flag by its name.
var keyFlagNames = func() map[string]KeyFlags {
	m := map[string]KeyFlags{}
	for i, name := range keyFlagOrder {
		m[name] = 1 << i
	}
	return m
}()

// reply is f as COMMAND GETKEYSANDFLAGS gives it: the names of its
// flags, in Redis's order.
func (f KeyFlags) reply() *messages.Reply {
	var items []*messages.Reply
	for i, name := range keyFlagOrder {
		if f&(1<<i) != 0 {
			items = append(items, ms(name))
		}
	}
	return mset(items...)
}

// keyFlagOrder is the flags' names, bit by bit.
var keyFlagOrder = []string{"RO", "RW", "OW", "RM", "access", "update", "insert", "delete", "not_key", "incomplete", "variable_flags"}

// KeyRef is a key argument of a command: its position and its flags.
type KeyRef struct {
	Pos   int
	Flags KeyFlags
}

type keySpec struct {
	flags KeyFlags
	// begin_search: an index, or a keyword searched from startFrom (a
	// negative one counts from the end, searching backwards); neither:
	// unknown.
	index     int
	keyword   string
	startFrom int
	unknown   bool
	// find_keys: a range (lastKey relative to the first key, or from the
	// end when negative; keyStep; limit), or a count at keyNumIdx with
	// the keys from firstKey.
	keynum                     bool
	lastKey, keyStep, limit    int
	keyNumIdx, firstKey, kstep int
}

var (
	keySpecsOnce sync.Once
	keySpecsBy   map[string][]keySpec
)

func keySpecs(name string) []keySpec {
	keySpecsOnce.Do(func() {
		loadMeta()
		keySpecsBy = map[string][]keySpec{}
		for n, m := range meta {
			items := m.info.GetArray().GetItems()
			if len(items) < 9 {
				continue
			}
			for _, sp := range items[8].GetSet().GetItems() {
				keySpecsBy[n] = append(keySpecsBy[n], parseKeySpec(sp))
			}
		}
	})
	return keySpecsBy[name]
}

// field finds a map reply's value by its (bulk) name.
func field(m *messages.Reply, name string) *messages.Reply {
	items := m.GetMap().GetItems()
	for i := 0; i+1 < len(items); i += 2 {
		if string(items[i].GetBulk()) == name {
			return items[i+1]
		}
	}
	return nil
}

func fieldInt(m *messages.Reply, name string) int { return int(field(m, name).GetInteger()) }

func parseKeySpec(r *messages.Reply) keySpec {
	var ks keySpec
	for _, f := range field(r, "flags").GetSet().GetItems() {
		ks.flags |= keyFlagNames[f.GetStatus()]
	}
	bs := field(r, "begin_search")
	switch bsSpec := field(bs, "spec"); string(field(bs, "type").GetBulk()) {
	case "index":
		ks.index = fieldInt(bsSpec, "index")
	case "keyword":
		ks.keyword = string(field(bsSpec, "keyword").GetBulk())
		ks.startFrom = fieldInt(bsSpec, "startfrom")
	default:
		ks.unknown = true
	}
	fk := field(r, "find_keys")
	switch fkSpec := field(fk, "spec"); string(field(fk, "type").GetBulk()) {
	case "range":
		ks.lastKey, ks.keyStep, ks.limit = fieldInt(fkSpec, "lastkey"), fieldInt(fkSpec, "keystep"), fieldInt(fkSpec, "limit")
	case "keynum":
		ks.keynum = true
		ks.keyNumIdx, ks.firstKey, ks.kstep = fieldInt(fkSpec, "keynumidx"), fieldInt(fkSpec, "firstkey"), fieldInt(fkSpec, "keystep")
	default:
		ks.unknown = true
	}
	return ks
}

// KeyRefs returns the keys of args (a whole command, name first) with
// their flags, as Redis finds them for ACL checks: from the key specs,
// or, for the commands whose specs cannot say (SORT's STORE, SET's GET,
// BITFIELD's writes), as Redis's own code for them does. A malformed
// command (a key count that is not a number, or runs past the arguments)
// has no keys: it fails on its own.
func KeyRefs(args [][]byte) []KeyRef {
	c := aclCommandTable().command(args)
	if c == nil {
		return nil
	}
	switch c.name {
	case "set":
		if len(args) < 2 {
			return nil
		}
		for _, a := range args[min(3, len(args)):] {
			if isOpt(a, "get") {
				return []KeyRef{{1, KeyRW | KeyAccess | KeyUpdate}} // as Redis's setGetKeys
			}
		}
		return []KeyRef{{1, KeyOW | KeyUpdate}}
	case "bitfield":
		return bitfieldKeys(args)
	case "sort", "sort_ro":
		return sortKeyRefs(c.name, args)
	}
	specs := keySpecs(c.name)
	var out []KeyRef
	for _, ks := range specs {
		if ks.flags&KeyNotKey != 0 {
			continue
		}
		if ks.unknown {
			return nil
		}
		first := 0
		if ks.keyword == "" {
			first = ks.index
		} else {
			// From startFrom to the end (exclusive: a keyword last has
			// no key after it), or backwards from the end to args[1].
			start, end := ks.startFrom, len(args)-1
			if ks.startFrom < 0 {
				start, end = len(args)+ks.startFrom, 1
			}
			step := 1
			if start > end {
				step = -1
			}
			for i := start; i != end; i += step {
				if i >= len(args) || i < 1 {
					break
				}
				if strings.EqualFold(string(args[i]), ks.keyword) {
					first = i + 1
					break
				}
			}
			if first == 0 {
				continue
			}
		}
		var last, step int
		if ks.keynum {
			step = ks.kstep
			at := first + ks.keyNumIdx
			if at >= len(args) {
				return nil
			}
			n, ok := parseInt(args[at])
			if !ok || n < 0 || n > int64(len(args)) {
				return nil
			}
			first += ks.firstKey
			last = first + int(n) - 1
		} else {
			step = ks.keyStep
			switch {
			case ks.lastKey >= 0:
				last = first + ks.lastKey
			case ks.limit == 0:
				last = len(args) + ks.lastKey
			default:
				last = first + ((len(args)-first)/ks.limit + ks.lastKey)
			}
		}
		if last < first {
			continue // a key count of 0
		}
		if last >= len(args) || first >= len(args) {
			return nil
		}
		for i := first; i <= last; i += max(step, 1) {
			out = append(out, KeyRef{i, ks.flags})
		}
	}
	return out
}

// bitfieldKeys: BITFIELD reads its key unless a SET or INCRBY (or
// something it cannot parse) may change it (bitfieldGetKeys).
func bitfieldKeys(args [][]byte) []KeyRef {
	if len(args) < 2 {
		return nil
	}
	readonly := true
	for i := 2; i < len(args) && readonly; i++ {
		rest := len(args) - i - 1
		switch {
		case isOpt(args[i], "get") && rest >= 2:
			i += 2
		case (isOpt(args[i], "set") || isOpt(args[i], "incrby")) && rest >= 3:
			readonly = false
		case isOpt(args[i], "overflow") && rest >= 1:
			i++
		default:
			readonly = false
		}
	}
	if readonly {
		return []KeyRef{{1, KeyRO | KeyAccess}}
	}
	return []KeyRef{{1, KeyRW | KeyAccess | KeyUpdate}}
}

// sortKeyRefs: SORT's key, and the last STORE's destination (sortGetKeys:
// LIMIT's two arguments and BY's and GET's one are skipped).
func sortKeyRefs(name string, args [][]byte) []KeyRef {
	if len(args) < 2 {
		return nil
	}
	out := []KeyRef{{1, KeyRO | KeyAccess}}
	if name == "sort_ro" {
		return out
	}
	store := 0
	for i := 2; i < len(args); i++ {
		switch {
		case isOpt(args[i], "limit"):
			i += 2
		case isOpt(args[i], "get"), isOpt(args[i], "by"):
			i++
		case isOpt(args[i], "store") && i+1 < len(args):
			store = i + 1
		}
	}
	if store > 0 {
		out = append(out, KeyRef{store, KeyOW | KeyUpdate})
	}
	return out
}
