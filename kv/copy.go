package kv

import (
	"bytes"

	"github.com/coppice-kv/coppice/messages"
)

// RENAME, RENAMENX and COPY move or copy a key with its value and expiry;
// MSETNX sets keys only if none exists. Their keys must be on one shard
// (the node refuses others with CROSSSLOT), so each is one entry, applied
// whole. A hash's fields (a set's members) are copied one by one: the cost grows with them,
// where Redis moves a key in O(1).

var (
	errNoSuchKey   = errReply("ERR no such key")
	errSameObjects = errReply("ERR source and destination objects are the same")
	errDBIndex     = errReply("ERR DB index is out of range")
)

// RENAME key newkey
func cmdRename(t *txn, a [][]byte) *messages.Reply {
	src := t.lookup(a[1])
	if !src.exists {
		return errNoSuchKey
	}
	if !bytes.Equal(a[1], a[2]) {
		t.copyTo(&src, a[2])
		t.deleteKey(&src)
		t.notify(ClassGeneric, "rename_from", a[1])
		t.notify(ClassGeneric, "rename_to", a[2])
	}
	return replyOK
}

// RENAMENX key newkey
func cmdRenameNX(t *txn, a [][]byte) *messages.Reply {
	src := t.lookup(a[1])
	if !src.exists {
		return errNoSuchKey
	}
	if t.lookup(a[2]).exists {
		return integer(0) // newkey as key too
	}
	t.copyTo(&src, a[2])
	t.deleteKey(&src)
	t.notify(ClassGeneric, "rename_from", a[1])
	t.notify(ClassGeneric, "rename_to", a[2])
	return integer(1)
}

// COPY source destination [DB destination-db] [REPLACE]
func cmdCopy(t *txn, a [][]byte) *messages.Reply {
	replace := false
	for i := 3; i < len(a); i++ {
		switch {
		case bytes.EqualFold(a[i], []byte("replace")):
			replace = true
		case bytes.EqualFold(a[i], []byte("db")) && i+1 < len(a):
			i++
			db, ok := parseInt(a[i])
			if !ok {
				return errNotInteger
			}
			if db != 0 {
				return errDBIndex // one database, as in Redis Cluster
			}
		default:
			return errSyntax
		}
	}
	if bytes.Equal(a[1], a[2]) {
		return errSameObjects
	}
	src := t.lookup(a[1])
	if !src.exists {
		return integer(0)
	}
	if !replace && t.lookup(a[2]).exists {
		return integer(0)
	}
	t.copyTo(&src, a[2])
	t.notify(ClassGeneric, "copy_to", a[2])
	return integer(1)
}

// copyTo writes src's value and expiry under key dst, replacing whatever
// dst holds. src must exist and be another key.
func (t *txn) copyTo(src *entry, dst []byte) {
	d := t.lookup(dst)
	if d.exists {
		t.deleteKey(&d)
	}
	hasExp, when := src.rec.hasExp, src.rec.expire
	t.added(&d)
	t.setExpiry(&d, hasExp, when)
	// The payload as it is: a string's bytes, or what the type keeps of
	// its elements (their count; a list's positions too, which its
	// elements' keys carry).
	t.set(d.mk, append(appendHeader(nil, src.rec.typ, hasExp, when), src.rec.payload...))
	if src.rec.typ == typeString {
		return
	}
	from, to := fieldPrefix(src.key), fieldPrefix(dst)
	var fields [][2][]byte
	must(t.r.Scan(from, successor(from), func(k, v []byte) bool {
		fields = append(fields, [2][]byte{fieldKey(to, k[len(from):]), bytes.Clone(v)})
		return true
	}))
	for _, f := range fields {
		t.set(f[0], f[1])
	}
}

// MSETNX key value [key value ...]: all or none, and none if any exists.
func cmdMSetNX(t *txn, a [][]byte) *messages.Reply {
	if len(a)%2 == 0 {
		return errArity("msetnx")
	}
	for i := 1; i < len(a); i += 2 {
		if t.lookup(a[i]).exists {
			return integer(0)
		}
	}
	for i := 1; i < len(a); i += 2 {
		e := t.lookup(a[i])
		t.putString(&e, a[i+1], false, false, 0)
		t.notify(ClassString, "set", a[i])
	}
	return integer(1)
}
