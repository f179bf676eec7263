package kv

import (
	"bytes"
	"encoding/binary"
	"math"
	"strconv"
	"strings"

	"github.com/coppice-kv/coppice/messages"
)

// Streams: a record with the stream's length, the last ID it generated,
// the number of entries ever added and the greatest ID deleted; each entry
// a field key under the stream's field prefix: 0x00, then its ID (ms and
// seq, 8 bytes each, big-endian: IDs sort as Redis orders them), whose
// value is the entry's field/value pairs (a count, then each length and
// bytes). XADD appends, XRANGE and XREAD seek, XDEL and XTRIM delete what
// they name: each costs what it touches. An empty stream is a key, as in
// Redis (XDEL or XTRIM of every entry keeps it). An automatic ID takes the
// command's time, which is in the Raft log: every replica makes the same.

// streamID is an entry's ID.
type streamID struct{ ms, seq uint64 }

var maxStreamID = streamID{math.MaxUint64, math.MaxUint64}

func (a streamID) less(b streamID) bool { return a.ms < b.ms || (a.ms == b.ms && a.seq < b.seq) }

func (a streamID) String() string {
	return strconv.FormatUint(a.ms, 10) + "-" + strconv.FormatUint(a.seq, 10)
}

// next is the ID after a; false past the last one.
func (a streamID) next() (streamID, bool) {
	switch {
	case a.seq < math.MaxUint64:
		return streamID{a.ms, a.seq + 1}, true
	case a.ms < math.MaxUint64:
		return streamID{a.ms + 1, 0}, true
	}
	return a, false
}

// prev is the ID before a; false before 0-0.
func (a streamID) prev() (streamID, bool) {
	switch {
	case a.seq > 0:
		return streamID{a.ms, a.seq - 1}, true
	case a.ms > 0:
		return streamID{a.ms - 1, math.MaxUint64}, true
	}
	return a, false
}

// stream is a stream key as a command sees it.
type stream struct {
	e       entry
	n       int64
	last    streamID // the last ID generated
	added   uint64   // entries ever added
	maxDel  streamID // the greatest ID deleted
	base    []byte   // its field prefix
	prefix  []byte   // its entries' key prefix (base, 0x00)
	changed bool
}

func (t *txn) streamFor(key []byte) (*stream, *messages.Reply) {
	e, r := t.lookupAs(key, typeStream)
	if r != nil {
		return nil, r
	}
	base := fieldPrefix(key)
	s := &stream{e: e, base: base, prefix: append(bytes.Clone(base), 0x00)}
	if e.exists {
		p := e.rec.payload
		var vals [6]uint64
		for i := range vals {
			v, k := binary.Uvarint(p)
			if k <= 0 {
				must(errCorruptKey(key))
			}
			vals[i], p = v, p[k:]
		}
		s.n, s.last, s.added, s.maxDel = int64(vals[0]), streamID{vals[1], vals[2]}, vals[3], streamID{vals[4], vals[5]}
	}
	return s, nil
}

// save writes s's record, keeping its expiry; an empty stream stays.
func (t *txn) saveStream(s *stream) {
	hasExp, when := s.e.exists && s.e.rec.hasExp, s.e.rec.expire
	t.added(&s.e)
	b := make([]byte, 0, headerLen(hasExp)+6*binary.MaxVarintLen64)
	b = appendHeader(b, typeStream, hasExp, when)
	for _, v := range []uint64{uint64(s.n), s.last.ms, s.last.seq, s.added, s.maxDel.ms, s.maxDel.seq} {
		b = binary.AppendUvarint(b, v)
	}
	t.set(s.e.mk, b)
	s.e.rec, _ = decodeRecord(b)
	s.e.exists = true
}

// at is the key of the entry with id.
func (s *stream) at(id streamID) []byte {
	k := binary.BigEndian.AppendUint64(bytes.Clone(s.prefix), id.ms)
	return binary.BigEndian.AppendUint64(k, id.seq)
}

// idOf reads the ID of an entry's key.
func (s *stream) idOf(k []byte) streamID {
	k = k[len(s.prefix):]
	return streamID{binary.BigEndian.Uint64(k), binary.BigEndian.Uint64(k[8:])}
}

// streamEntry is one entry, read.
type streamEntry struct {
	id     streamID
	fields [][]byte
}

func encodeFields(pairs [][]byte) []byte {
	n := binary.MaxVarintLen64
	for _, p := range pairs {
		n += binary.MaxVarintLen64 + len(p)
	}
	b := binary.AppendUvarint(make([]byte, 0, n), uint64(len(pairs)))
	for _, p := range pairs {
		b = binary.AppendUvarint(b, uint64(len(p)))
		b = append(b, p...)
	}
	return b
}

func decodeFields(v []byte) ([][]byte, bool) {
	n, k := binary.Uvarint(v)
	if k <= 0 || n > uint64(len(v)) {
		return nil, false
	}
	v = v[k:]
	out := make([][]byte, n)
	for i := range out {
		l, k := binary.Uvarint(v)
		if k <= 0 || l > uint64(len(v)-k) {
			return nil, false
		}
		out[i] = bytes.Clone(v[k : k+int(l)])
		v = v[k+int(l):]
	}
	return out, true
}

// entries reads up to count entries (count < 0: all) with IDs in [from,
// to], forward or in reverse.
func (t *txn) entries(s *stream, from, to streamID, count int64, rev bool) []streamEntry {
	var out []streamEntry
	if count == 0 || to.less(from) {
		return out
	}
	lo, hi := s.at(from), successor(s.at(to))
	fn := func(k, v []byte) bool {
		fields, ok := decodeFields(v)
		if !ok {
			must(errCorruptKey(s.e.key))
		}
		out = append(out, streamEntry{id: s.idOf(k), fields: fields})
		return count < 0 || int64(len(out)) < count
	}
	if rev {
		must(t.r.ReverseScan(lo, hi, fn))
	} else {
		must(t.r.Scan(lo, hi, fn))
	}
	return out
}

func entriesReply(es []streamEntry) *messages.Reply {
	items := make([]*messages.Reply, len(es))
	for i, e := range es {
		fields := make([]*messages.Reply, len(e.fields))
		for j, f := range e.fields {
			fields[j] = bulk(f)
		}
		items[i] = array([]*messages.Reply{bulkString(e.id.String()), array(fields)})
	}
	return array(items)
}

var (
	errStreamID      = errReply("ERR Invalid stream ID specified as stream command argument")
	errXAddSmaller   = errReply("ERR The ID specified in XADD is equal or smaller than the target stream top item")
	errXAddZero      = errReply("ERR The ID specified in XADD must be greater than 0-0")
	errStreamFull    = errReply("ERR The stream has exhausted the last possible ID, unable to add more items")
	errMaxLenNeg     = errReply("ERR The MAXLEN argument must be >= 0.")
	errLimitNeg      = errReply("ERR The LIMIT argument must be >= 0.")
	errLimitNoTilde  = errReply("ERR syntax error, LIMIT cannot be used without the special ~ option")
	errMaxLenMinID   = errReply("ERR syntax error, MAXLEN and MINID options at the same time are not compatible")
	errIntervalStart = errReply("ERR invalid start ID for the interval")
	errIntervalEnd   = errReply("ERR invalid end ID for the interval")
)

// parseU64 reads an unsigned decimal as Redis's string2ull: a long long
// that is not negative, or what strtoull takes (a leading '+' or spaces;
// not a '-').
func parseU64(b []byte) (uint64, bool) {
	if v, ok := parseInt(b); ok {
		return uint64(v), v >= 0
	}
	s := string(bytes.TrimLeft(b, " \t\n\v\f\r"))
	if len(s) > 0 && s[0] == '+' {
		s = s[1:]
	}
	if s == "" || s[0] < '0' || s[0] > '9' {
		return 0, false
	}
	v, err := strconv.ParseUint(s, 10, 64)
	return v, err == nil
}

// parseStreamID reads an ID: "ms-seq", or "ms" with seq missingSeq; "-"
// and "+" are the first and last IDs. autoSeq takes "ms-*" (XADD), with
// auto set.
func parseStreamID(b []byte, missingSeq uint64, autoSeq bool) (id streamID, auto bool, ok bool) {
	if len(b) > 127 {
		return id, false, false
	}
	switch string(b) {
	case "-":
		return streamID{}, false, true
	case "+":
		return maxStreamID, false, true
	}
	ms, seq, dash := bytes.Cut(b, []byte("-"))
	v, ok := parseU64(ms)
	if !ok {
		return id, false, false
	}
	if !dash {
		return streamID{v, missingSeq}, false, true
	}
	if autoSeq && string(seq) == "*" {
		return streamID{v, 0}, true, true
	}
	s, ok := parseU64(seq)
	return streamID{v, s}, false, ok
}

// trimSpec is XADD's and XTRIM's trimming: MAXLEN or MINID, exact or not,
// and its LIMIT.
type trimSpec struct {
	on, maxlen, approx bool
	threshold          int64
	minid              streamID
	limit              int64 // 0: none
	limitGiven         bool
}

var (
	errLimitNoStrategy = errReply("ERR syntax error, LIMIT cannot be used without specifying a trimming strategy")
	errXTrimStrategy   = errReply("ERR syntax error, XTRIM must be called with a trimming strategy")
)

// parseTrimOpts reads the options of XADD (xadd: from a[2] up to the ID,
// whose index it returns) or XTRIM (all of a[2:]), in Redis's order of
// checks.
func parseTrimOpts(a [][]byte, xadd bool) (ts trimSpec, noMk bool, idAt int, r *messages.Reply) {
	i := 2
	for ; i < len(a); i++ {
		more := len(a) - i - 1
		switch {
		case xadd && string(a[i]) == "*":
			goto done
		case more >= 1 && (isOpt(a[i], "maxlen") || isOpt(a[i], "minid")):
			maxlen := isOpt(a[i], "maxlen")
			if ts.on {
				return ts, false, 0, errMaxLenMinID
			}
			ts.on, ts.maxlen = true, maxlen
			if more >= 2 && (string(a[i+1]) == "=" || string(a[i+1]) == "~") {
				ts.approx = string(a[i+1]) == "~"
				i++
			}
			i++
			if maxlen {
				n, ok := parseInt(a[i])
				if !ok {
					return ts, false, 0, errNotInteger
				}
				if n < 0 {
					return ts, false, 0, errMaxLenNeg
				}
				ts.threshold = n
			} else {
				id, _, ok := parseStreamID(a[i], 0, false)
				if !ok {
					return ts, false, 0, errStreamID
				}
				ts.minid = id
			}
		case more >= 1 && isOpt(a[i], "limit"):
			n, ok := parseInt(a[i+1])
			if !ok {
				return ts, false, 0, errNotInteger
			}
			if n < 0 {
				return ts, false, 0, errLimitNeg
			}
			ts.limit, ts.limitGiven = n, true
			i++
		case xadd && isOpt(a[i], "nomkstream"):
			noMk = true
		case xadd:
			goto done
		default:
			return ts, false, 0, errSyntax
		}
	}
done:
	switch {
	case ts.limit > 0 && !ts.on:
		return ts, false, 0, errLimitNoStrategy
	case !xadd && !ts.on:
		return ts, false, 0, errXTrimStrategy
	case ts.limitGiven && !ts.approx:
		return ts, false, 0, errLimitNoTilde
	case ts.approx && !ts.limitGiven:
		ts.limit = 10000 // Redis's 100 entries per node times 100
	}
	return ts, noMk, i, nil
}

// trim deletes the entries ts says to, oldest first, and returns how
// many. Approximate trimming (~) trims as exact trimming does, up to its
// LIMIT (default 10000, Redis's 100 entries per node times 100; 0: none):
// Redis trims whole nodes of its radix tree and may keep more.
func (t *txn) trim(s *stream, ts trimSpec) int64 {
	if !ts.on || s.n == 0 {
		return 0
	}
	limit := int64(-1)
	if ts.limit > 0 {
		limit = ts.limit
	}
	var drop int64
	if ts.maxlen {
		drop = max(s.n-ts.threshold, 0)
		if limit >= 0 {
			drop = min(drop, limit)
		}
	}
	if drop == 0 && ts.maxlen {
		return 0
	}
	var removed int64
	var last streamID
	upTo := maxStreamID
	count := drop
	if !ts.maxlen {
		count = limit
		prev, ok := ts.minid.prev()
		if !ok {
			return 0
		}
		upTo = prev
	}
	var keys [][]byte
	must(t.r.Scan(s.at(streamID{}), successor(s.at(upTo)), func(k, _ []byte) bool {
		keys = append(keys, bytes.Clone(k))
		return count < 0 || int64(len(keys)) < count
	}))
	for _, k := range keys {
		last = s.idOf(k)
		t.del(k)
		removed++
	}
	if removed > 0 {
		s.n -= removed
		if s.maxDel.less(last) {
			s.maxDel = last
		}
		s.changed = true
	}
	return removed
}

// XADD key [NOMKSTREAM] [MAXLEN|MINID [=|~] threshold [LIMIT count]] *|id field value [field value ...]
func cmdXAdd(t *txn, a [][]byte) *messages.Reply {
	ts, noMk, i, r := parseTrimOpts(a, true)
	if r != nil {
		return r
	}
	if i < len(a) && string(a[i]) != "*" {
		if _, _, ok := parseStreamID(a[i], 0, true); !ok {
			return errStreamID // before the arity, as Redis
		}
	}
	if len(a)-i < 3 || (len(a)-i-1)%2 != 0 {
		return errArity("xadd")
	}
	var want streamID
	auto, autoSeq := string(a[i]) == "*", false
	if !auto {
		var ok bool
		want, autoSeq, ok = parseStreamID(a[i], 0, true)
		if !ok {
			return errStreamID
		}
		if !autoSeq && want == (streamID{}) {
			return errXAddZero
		}
	}
	s, r := t.streamFor(a[1])
	if r != nil {
		return r
	}
	if !s.e.exists && noMk {
		return nullBulk
	}
	if s.last == maxStreamID {
		return errStreamFull
	}
	var id streamID
	switch {
	case auto:
		now := uint64(max(t.now, 0))
		if now > s.last.ms {
			id = streamID{now, 0}
		} else {
			id, _ = s.last.next()
		}
	case autoSeq:
		switch {
		case want.ms > s.last.ms:
			id = streamID{want.ms, 0}
			if want.ms == 0 {
				id.seq = 1
			}
		case want.ms == s.last.ms && s.last.seq < math.MaxUint64:
			id = streamID{want.ms, s.last.seq + 1}
		default:
			return errXAddSmaller
		}
	default:
		if !s.last.less(want) {
			return errXAddSmaller
		}
		id = want
	}
	t.set(s.at(id), encodeFields(a[i+1:]))
	s.n++
	s.added++
	s.last = id
	trimmed := t.trim(s, ts)
	t.saveStream(s) // "new" for a new key: Redis makes it before adding
	t.notify(ClassStream, "xadd", a[1])
	if trimmed > 0 {
		t.notify(ClassStream, "xtrim", a[1])
	}
	return bulkString(id.String())
}

// XTRIM key MAXLEN|MINID [=|~] threshold [LIMIT count]
func cmdXTrim(t *txn, a [][]byte) *messages.Reply {
	ts, _, _, r := parseTrimOpts(a, false)
	if r != nil {
		return r
	}
	s, r := t.streamFor(a[1])
	if r != nil || !s.e.exists {
		if r != nil {
			return r
		}
		return zero
	}
	n := t.trim(s, ts)
	if s.changed {
		t.saveStream(s)
	}
	if n > 0 {
		t.notify(ClassStream, "xtrim", a[1])
	}
	return integer(n)
}

// XDEL key id [id ...]
func cmdXDel(t *txn, a [][]byte) *messages.Reply {
	ids := make([]streamID, len(a)-2)
	for i, b := range a[2:] {
		id, _, ok := parseStreamID(b, 0, false)
		if !ok {
			return errStreamID
		}
		ids[i] = id
	}
	s, r := t.streamFor(a[1])
	if r != nil || !s.e.exists {
		if r != nil {
			return r
		}
		return zero
	}
	var n int64
	for _, id := range ids {
		k := s.at(id)
		if _, ok := t.get(k); !ok {
			continue
		}
		t.del(k)
		n++
		s.n--
		if s.maxDel.less(id) {
			s.maxDel = id
		}
	}
	if n > 0 {
		t.saveStream(s)
		t.notify(ClassStream, "xdel", a[1])
	}
	return integer(n)
}

// XLEN key
func cmdXLen(t *txn, a [][]byte) *messages.Reply {
	s, r := t.streamFor(a[1])
	if r != nil {
		return r
	}
	return integer(s.n)
}

// parseInterval reads XRANGE's bounds: IDs, "-", "+", or an exclusive
// "(id"; missing sequence numbers are 0 for the start and the last for the
// end. ok is false for an empty interval made by an exclusive bound at an
// end of the ID space.
func parseInterval(startArg, endArg []byte) (start, end streamID, r *messages.Reply) {
	bound := func(b []byte, isStart bool) (streamID, *messages.Reply) {
		missing := uint64(0)
		if !isStart {
			missing = math.MaxUint64
		}
		exclusive := len(b) > 1 && b[0] == '('
		if exclusive {
			b = b[1:]
			if string(b) == "-" || string(b) == "+" {
				return streamID{}, errStreamID
			}
		}
		id, _, ok := parseStreamID(b, missing, false)
		if !ok {
			return id, errStreamID
		}
		if exclusive {
			var ok bool
			if isStart {
				id, ok = id.next()
				if !ok {
					return id, errIntervalStart
				}
			} else {
				id, ok = id.prev()
				if !ok {
					return id, errIntervalEnd
				}
			}
		}
		return id, nil
	}
	if start, r = bound(startArg, true); r != nil {
		return
	}
	end, r = bound(endArg, false)
	return
}

// xrangeCmd: XRANGE key start end [COUNT count], and XREVRANGE key end
// start [COUNT count].
func xrangeCmd(rev bool) func(t *txn, a [][]byte) *messages.Reply {
	return func(t *txn, a [][]byte) *messages.Reply {
		lo, hi := a[2], a[3]
		if rev {
			lo, hi = hi, lo
		}
		start, end, r := parseInterval(lo, hi)
		if r != nil {
			return r
		}
		count := int64(-1)
		if len(a) > 4 {
			if len(a) != 6 || !isOpt(a[4], "count") {
				return errSyntax
			}
			n, ok := parseInt(a[5])
			if !ok {
				return errNotInteger
			}
			if n <= 0 {
				return nullArray
			}
			count = n
		}
		s, r := t.streamFor(a[1])
		if r != nil {
			return r
		}
		if !s.e.exists {
			return array(nil)
		}
		return entriesReply(t.entries(s, start, end, count, rev))
	}
}

// StreamLastIDsName is the internal read that answers the last IDs of
// streams (0-0 for a missing key): what XREAD BLOCK's "$" stands for when
// it begins to wait. Not in the table: clients cannot send it.
const StreamLastIDsName = "\x00stream-last-ids"

func readStreamLastIDs(t *txn, a [][]byte) *messages.Reply {
	items := make([]*messages.Reply, 0, len(a)-1)
	for _, k := range a[1:] {
		s, r := t.streamFor(k)
		if r != nil {
			return r
		}
		items = append(items, bulkString(s.last.String()))
	}
	return array(items)
}

var (
	errXReadUnbalanced = errReply("ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified.")
	errXReadGroupID    = errReply("ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.")
)

var (
	errTimeoutInt = errReply("ERR timeout is not an integer or out of range")
	errTimeoutNeg = errReply("ERR timeout is negative")
)

// XReadArgs is XREAD's arguments, parsed: the node blocks XREAD BLOCK (its
// timeout) and resolves "$" before it does.
type XReadArgs struct {
	Count int64 // -1: none
	// Block is BLOCK's timeout in milliseconds (0: none), if Blocks.
	Block  int64
	Blocks bool
	// Keys and IDs are the streams and what to read after ("$" as given).
	Keys, IDs [][]byte
}

// ParseXRead reads XREAD [COUNT count] [BLOCK ms] STREAMS key... id...;
// the IDs are checked ("$" passes).
func ParseXRead(a [][]byte) (XReadArgs, *messages.Reply) {
	x, r := parseStreamRead(a, false)
	return x.XReadArgs, r
}

var (
	errXReadGroupUnbalanced = errReply("ERR Unbalanced XREADGROUP list of streams: for each stream key an ID or '>' must be specified.")
	errXReadGroupDollar     = errReply("ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.")
)

// parseStreamRead reads XREAD's arguments, or with group XREADGROUP's
// (GROUP and NOACK besides; ">" for "$").
func parseStreamRead(a [][]byte, group bool) (x xreadGroupArgs, r *messages.Reply) {
	x.Count = -1
	for i := 1; i < len(a); i++ {
		switch {
		case group && isOpt(a[i], "group") && i+2 < len(a):
			x.group, x.consumer = a[i+1], a[i+2]
			i += 2
		case group && isOpt(a[i], "noack"):
			x.noAck = true
		case isOpt(a[i], "count") && i+1 < len(a):
			n, ok := parseInt(a[i+1])
			if !ok {
				return x, errNotInteger
			}
			if n > 0 { // 0 or less: no limit, as Redis
				x.Count = n
			}
			i++
		case isOpt(a[i], "block") && i+1 < len(a):
			ms, ok := parseInt(a[i+1])
			if !ok {
				return x, errTimeoutInt
			}
			if ms < 0 {
				return x, errTimeoutNeg
			}
			x.Block, x.Blocks = ms, true
			i++
		case isOpt(a[i], "streams"):
			rest := a[i+1:]
			if len(rest) == 0 || len(rest)%2 != 0 {
				if group {
					return x, errXReadGroupUnbalanced
				}
				return x, errXReadUnbalanced
			}
			x.Keys, x.IDs = rest[:len(rest)/2], rest[len(rest)/2:]
			if group && x.group == nil {
				return x, errReply("ERR Missing GROUP option for XREADGROUP")
			}
			for _, id := range x.IDs {
				switch {
				case string(id) == "$" && group:
					return x, errXReadGroupDollar
				case string(id) == ">" && !group:
					return x, errXReadGroupID
				case string(id) == "$" || string(id) == ">":
				default:
					if _, _, ok := parseStreamID(id, 0, false); !ok {
						return x, errStreamID
					}
				}
			}
			return x, nil
		default:
			return x, errSyntax
		}
	}
	return x, errSyntax
}

// xreadKeys finds XREAD's and XREADGROUP's keys for routing: after
// STREAMS, the first half.
func xreadKeys(a [][]byte) [][]byte {
	for i := 1; i < len(a); i++ {
		if isOpt(a[i], "streams") {
			rest := a[i+1:]
			return rest[:len(rest)/2]
		}
	}
	return nil
}

// XREAD [COUNT count] [BLOCK ms] STREAMS key [key ...] id [id ...]: the
// entries after each ID; "$" (the last ID) reads nothing here: the node
// turns it into an ID before it blocks. BLOCK is the node's: here it reads
// once. Nil when no stream has an entry to give.
func cmdXRead(t *txn, a [][]byte) *messages.Reply {
	x, r := ParseXRead(a)
	if r != nil {
		return r
	}
	var items []*messages.Reply
	for i, k := range x.Keys {
		s, r := t.streamFor(k)
		if r != nil {
			return r
		}
		if !s.e.exists || string(x.IDs[i]) == "$" {
			continue
		}
		after, _, _ := parseStreamID(x.IDs[i], 0, false)
		from, ok := after.next()
		if !ok {
			continue
		}
		es := t.entries(s, from, maxStreamID, x.Count, false)
		if len(es) > 0 {
			items = append(items, bulk(k), entriesReply(es))
		}
	}
	if len(items) == 0 {
		return nullArray
	}
	return &messages.Reply{Value: &messages.Reply_Keyed{Keyed: &messages.Replies{Items: items}}}
}

// XSETID key last-id [ENTRIESADDED n] [MAXDELETEDID id]: sets a stream's
// last generated ID (and its count of entries ever added, its greatest
// deleted ID), with Redis 7.0's checks in its order.
func cmdXSetID(t *txn, a [][]byte) *messages.Reply {
	id, ok := parseStrictStreamID(a[2])
	if !ok {
		return errStreamID
	}
	added := int64(-1)
	var maxDel streamID
	for i := 3; i < len(a); i += 2 {
		more := i+1 < len(a)
		switch opt := strings.ToLower(string(a[i])); {
		case opt == "entriesadded" && more:
			n, ok := parseInt(a[i+1])
			switch {
			case !ok:
				return errNotInteger
			case n < 0:
				return errReply("ERR entries_added must be positive")
			}
			added = n
		case opt == "maxdeletedid" && more:
			if maxDel, ok = parseStrictStreamID(a[i+1]); !ok {
				return errStreamID
			}
			if id.less(maxDel) {
				return errReply("ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id")
			}
		default:
			return errSyntax
		}
	}
	s, r := t.streamFor(a[1])
	if r != nil {
		return r
	}
	if !s.e.exists {
		return errReply("ERR no such key")
	}
	if s.n > 0 {
		if top := t.entries(s, streamID{}, maxStreamID, 1, true); len(top) == 1 && id.less(top[0].id) {
			return errReply("ERR The ID specified in XSETID is smaller than the target stream top item")
		}
		if added != -1 && s.n > added {
			return errReply("ERR The entries_added specified in XSETID is smaller than the target stream length")
		}
	}
	s.last = id
	if added != -1 {
		s.added = uint64(added)
	}
	if maxDel != (streamID{}) {
		s.maxDel = maxDel
	}
	t.saveStream(s)
	t.notify(ClassStream, "xsetid", a[1])
	return replyOK
}

// parseStrictStreamID reads an ID as Redis's strict parse does: "ms-seq"
// or "ms" (seq 0), not "-", "+" nor "*".
func parseStrictStreamID(b []byte) (streamID, bool) {
	if string(b) == "-" || string(b) == "+" {
		return streamID{}, false
	}
	id, _, ok := parseStreamID(b, 0, false)
	return id, ok
}
