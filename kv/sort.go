package kv

import (
	"bytes"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/coppice-kv/coppice/messages"
)

// SORT key [BY pattern] [LIMIT offset count] [GET pattern [GET pattern
// ...]] [ASC|DESC] [ALPHA] [STORE destination], and SORT_RO (no STORE), as
// Redis 7.0's sort.c: a list, set or sorted set's elements sorted as
// numbers (strtod), or as bytes with ALPHA, by themselves or by the
// values of the keys (or hash fields, "key->field") a pattern makes of
// them ('*' standing for the element); a BY pattern without '*' does not
// sort. ALPHA compares bytes, as Redis does in the C locale. The node
// refuses patterns whose keys may be on another shard (server).

var (
	errSortScore = errReply("ERR One or more scores can't be converted into double")
)

// sortElement is an element being sorted, with what it sorts by.
type sortElement struct {
	elem  []byte
	score float64
	by    []byte // ALPHA with BY: the pattern's value (nil: none)
	hasBy bool
}

// lookupPattern is Redis's lookupKeyByPattern: the value the pattern
// makes of elem ("#": elem itself; "key->field" a hash field), or nil.
func (t *txn) lookupPattern(pattern, elem []byte) []byte {
	if string(pattern) == "#" {
		return elem
	}
	star := bytes.IndexByte(pattern, '*')
	if star < 0 {
		return nil
	}
	var field []byte
	keyPat := pattern
	if arrow := bytes.Index(pattern[star+1:], []byte("->")); arrow >= 0 && star+1+arrow+2 < len(pattern) {
		keyPat, field = pattern[:star+1+arrow], pattern[star+1+arrow+2:]
	}
	key := slices.Concat(keyPat[:star], elem, keyPat[star+1:])
	e := t.lookup(key)
	if !e.exists {
		return nil
	}
	if field != nil {
		if e.rec.typ != typeHash {
			return nil
		}
		v, ok := t.hget(&e, field)
		if !ok {
			return nil
		}
		return v
	}
	if e.rec.typ != typeString {
		return nil
	}
	return e.rec.payload
}

// sortScore reads a number as strtod does over the whole value: leading
// spaces, hex, an empty value as 0; no NaN, no overflow.
func sortScore(b []byte) (float64, bool) {
	s := strings.TrimLeft(string(b), " \t\n\v\f\r")
	if s == "" {
		return 0, true
	}
	body := strings.TrimLeft(s, "+-")
	if len(body) > 2 && (body[:2] == "0x" || body[:2] == "0X") && !strings.ContainsAny(body, "pP") {
		s += "p0"
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) {
		return 0, false
	}
	return f, true
}

// sortKeys is SORT's keys: its key and STORE's destination.
func sortKeys(a [][]byte) [][]byte {
	if len(a) < 2 {
		return nil
	}
	keys := [][]byte{a[1]}
	var dest []byte
	for i := 2; i < len(a); i++ { // as Redis's sortGetKeys: options' values skipped
		switch {
		case isOpt(a[i], "limit"):
			i += 2
		case isOpt(a[i], "get"), isOpt(a[i], "by"):
			i++
		case isOpt(a[i], "store") && i+1 < len(a):
			dest = a[i+1] // the last STORE counts
		}
	}
	if dest != nil {
		keys = append(keys, dest)
	}
	return keys
}

func sortCmd(ro bool) func(t *txn, a [][]byte) *messages.Reply {
	return func(t *txn, a [][]byte) *messages.Reply {
		var by []byte
		var gets [][]byte
		var store []byte
		desc, alpha, dontSort := false, false, false
		start, count := int64(0), int64(-1)
		for i := 2; i < len(a); i++ {
			more := len(a) - i - 1
			switch {
			case isOpt(a[i], "asc"):
				desc = false
			case isOpt(a[i], "desc"):
				desc = true
			case isOpt(a[i], "alpha"):
				alpha = true
			case isOpt(a[i], "limit") && more >= 2:
				var ok1, ok2 bool
				start, ok1 = parseInt(a[i+1])
				count, ok2 = parseInt(a[i+2])
				if !ok1 || !ok2 {
					return errNotInteger
				}
				i += 2
			case !ro && isOpt(a[i], "store") && more >= 1:
				store = a[i+1]
				i++
			case isOpt(a[i], "by") && more >= 1:
				by = a[i+1]
				if bytes.IndexByte(by, '*') < 0 {
					dontSort = true
				}
				i++
			case isOpt(a[i], "get") && more >= 1:
				gets = append(gets, a[i+1])
				i++
			default:
				return errSyntax
			}
		}
		e := t.lookup(a[1])
		var elems [][]byte
		isZSet := false
		if e.exists {
			switch e.rec.typ {
			case typeList:
				l, _ := t.listFor(a[1])
				elems = t.elems(l, 0, l.n)
			case typeSet:
				elems = t.members(&e)
			case typeZSet:
				isZSet = true
				z, _ := t.zsetFor(a[1])
				t.each(z, nil, func(s scored) bool {
					elems = append(elems, s.member)
					return true
				})
			default:
				return errWrongType
			}
		}
		if dontSort && e.exists && e.rec.typ == typeSet && store != nil {
			// Redis sorts a set's elements when storing them, so the
			// stored list is the same everywhere.
			dontSort, alpha, by = false, true, nil
		}
		vector := make([]sortElement, len(elems))
		for i, el := range elems {
			vector[i].elem = el
		}
		if !dontSort {
			for i := range vector {
				v := &vector[i]
				val := v.elem
				if by != nil {
					val = t.lookupPattern(by, v.elem)
					v.by, v.hasBy = val, val != nil
				}
				if alpha {
					continue
				}
				if val == nil {
					continue // a missing weight is 0
				}
				f, ok := sortScore(val)
				if !ok {
					return errSortScore
				}
				v.score = f
			}
			slices.SortStableFunc(vector, func(x, y sortElement) int {
				var c int
				switch {
				case !alpha:
					switch {
					case x.score > y.score:
						c = 1
					case x.score < y.score:
						c = -1
					default:
						c = bytes.Compare(x.elem, y.elem)
					}
				case by != nil:
					switch {
					case !x.hasBy || !y.hasBy:
						c = boolCmp(x.hasBy, y.hasBy)
					default:
						c = bytes.Compare(x.by, y.by)
					}
				default:
					c = bytes.Compare(x.elem, y.elem)
				}
				if desc {
					return -c
				}
				return c
			})
		} else if desc && (isZSet || (e.exists && e.rec.typ == typeList)) {
			slices.Reverse(vector) // a list's or sorted set's own order, reversed
		}
		// LIMIT, as Redis clamps it.
		n := int64(len(vector))
		from := max(start, 0)
		to := n - 1
		if count >= 0 {
			to = from + min(count, n) - 1
		}
		if from >= n {
			from, to = 0, -1
		}
		to = min(to, n-1)
		var out []*messages.Reply
		var stored [][]byte
		for _, v := range vector[from : to+1] {
			if len(gets) == 0 {
				out = append(out, bulk(v.elem))
				stored = append(stored, v.elem)
				continue
			}
			for _, g := range gets {
				val := t.lookupPattern(g, v.elem)
				if val == nil {
					out = append(out, nullBulk)
					stored = append(stored, []byte{})
				} else {
					out = append(out, bulk(val))
					stored = append(stored, val)
				}
			}
		}
		if store == nil {
			return array(nonNil(out))
		}
		d := t.lookup(store)
		existed := d.exists
		if existed {
			t.deleteKey(&d)
		}
		if len(stored) == 0 {
			if existed {
				t.notify(ClassGeneric, "del", store)
			}
			return zero
		}
		l, _ := t.listFor(store)
		// A new list replaces the old value, with no expiry; it is a new
		// key only if there was none: Redis's setKey fires "new" only then.
		l.e.exists = existed
		t.push(l, false, stored)
		t.notify(ClassList, "sortstore", store)
		return integer(int64(len(stored)))
	}
}

// boolCmp orders false before true.
func boolCmp(x, y bool) int {
	switch {
	case x == y:
		return 0
	case !x:
		return -1
	}
	return 1
}
