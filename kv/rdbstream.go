package kv

// Streams in DUMP and RESTORE payloads, as Redis 7.0 writes them
// (rdb.c, RDB_TYPE_STREAM_LISTPACKS_2; RESTORE also reads Redis 5 and
// 6's RDB_TYPE_STREAM_LISTPACKS): the entries in listpacks, each headed by
// a master entry whose fields later entries may share (t_stream.c); then
// the stream's length, last ID, first ID, greatest deleted ID and count
// of entries ever added; then each consumer group with its last ID, its
// read count, its pending entries (ID, delivery time and count) and its
// consumers (name, seen time, the IDs each owns).

import (
	"bytes"
	"encoding/binary"
	"math"
	"slices"
	"strconv"
)

// dumpStream is a stream as DUMP writes it and RESTORE reads it.
type dumpStream struct {
	entries []streamEntry // live entries, by ID
	last    streamID
	maxDel  streamID
	added   uint64
	groups  []dumpGroup
	// addedKnown is false for Redis 5 and 6's format, which keeps
	// neither the count of entries added nor the groups' read counts.
	addedKnown bool
}

type dumpGroup struct {
	name      []byte
	last      streamID
	read      int64 // or invalidRead
	pel       []pending
	consumers []dumpConsumer
}

type dumpConsumer struct {
	name  []byte
	seen  int64
	owned []streamID
}

// Stream listpack entry flags (t_stream.c).
const (
	streamItemDeleted    = 1
	streamItemSameFields = 2
	// streamNodeMaxEntries is how many entries DUMP puts in a listpack:
	// Redis's stream-node-max-entries default.
	streamNodeMaxEntries = 100
)

// dumpStreamOf reads stream s whole, for DUMP.
func (t *txn) dumpStreamOf(s *stream) *dumpStream {
	ds := &dumpStream{entries: t.entries(s, streamID{}, maxStreamID, -1, false), last: s.last, maxDel: s.maxDel,
		added: s.added, addedKnown: true}
	for _, g := range t.groups(s) {
		dg := dumpGroup{name: g.name, last: g.last, read: g.read, pel: t.pendings(s, g.name, nil, streamID{}, maxStreamID, -1)}
		owned := map[string][]streamID{}
		for _, p := range dg.pel {
			owned[string(p.consumer)] = append(owned[string(p.consumer)], p.id)
		}
		for _, c := range t.consumers(s, g.name) {
			dg.consumers = append(dg.consumers, dumpConsumer{name: c.name, seen: c.seen, owned: owned[string(c.name)]})
		}
		ds.groups = append(ds.groups, dg)
	}
	return ds
}

// listpackBuilder writes a listpack, integers in listpack's integer
// encodings as Redis writes them.
type listpackBuilder struct {
	b []byte
	n int
}

func newListpack() *listpackBuilder { return &listpackBuilder{b: make([]byte, 6, 256)} }

func (lp *listpackBuilder) str(s []byte) {
	if v, ok := parseInt(s); ok {
		lp.int(v) // as Redis's lpAppend: a string that is an integer
		return
	}
	start := len(lp.b)
	switch n := len(s); {
	case n < 64:
		lp.b = append(lp.b, 0x80|byte(n))
	case n < 4096:
		lp.b = append(lp.b, 0xe0|byte(n>>8), byte(n))
	default:
		lp.b = binary.LittleEndian.AppendUint32(append(lp.b, 0xf0), uint32(n))
	}
	lp.b = append(lp.b, s...)
	lp.b = appendBacklen(lp.b, uint64(len(lp.b)-start))
	lp.n++
}

func (lp *listpackBuilder) int(v int64) {
	start := len(lp.b)
	switch {
	case v >= 0 && v <= 127:
		lp.b = append(lp.b, byte(v))
	case v >= -4096 && v <= 4095:
		u := uint64(v) & 0x1fff
		lp.b = append(lp.b, 0xc0|byte(u>>8), byte(u))
	case v >= math.MinInt16 && v <= math.MaxInt16:
		lp.b = binary.LittleEndian.AppendUint16(append(lp.b, 0xf1), uint16(v))
	case v >= -(1<<23) && v < 1<<23:
		u := uint32(v)
		lp.b = append(lp.b, 0xf2, byte(u), byte(u>>8), byte(u>>16))
	case v >= math.MinInt32 && v <= math.MaxInt32:
		lp.b = binary.LittleEndian.AppendUint32(append(lp.b, 0xf3), uint32(v))
	default:
		lp.b = binary.LittleEndian.AppendUint64(append(lp.b, 0xf4), uint64(v))
	}
	lp.b = appendBacklen(lp.b, uint64(len(lp.b)-start))
	lp.n++
}

func (lp *listpackBuilder) bytes() []byte {
	b := append(lp.b, 0xff)
	binary.LittleEndian.PutUint32(b, uint32(len(b)))
	binary.LittleEndian.PutUint16(b[4:], uint16(min(lp.n, 65535)))
	return b
}

// streamNode is one listpack of entries, headed by the first one's ID
// and fields.
func streamNode(es []streamEntry) []byte {
	master := es[0]
	lp := newListpack()
	lp.int(int64(len(es))) // count
	lp.int(0)              // deleted
	lp.int(int64(len(master.fields) / 2))
	for i := 0; i < len(master.fields); i += 2 {
		lp.str(master.fields[i])
	}
	lp.int(0) // the master entry's end
	for _, e := range es {
		same := len(e.fields) == len(master.fields)
		for i := 0; same && i < len(e.fields); i += 2 {
			same = bytes.Equal(e.fields[i], master.fields[i])
		}
		n := int64(len(e.fields) / 2)
		if same {
			lp.int(streamItemSameFields)
		} else {
			lp.int(0)
		}
		lp.int(int64(e.id.ms - master.id.ms))
		lp.int(int64(e.id.seq - master.id.seq))
		if same {
			for i := 1; i < len(e.fields); i += 2 {
				lp.str(e.fields[i])
			}
			lp.int(n + 3)
		} else {
			lp.int(n)
			for _, f := range e.fields {
				lp.str(f)
			}
			lp.int(2*n + 4)
		}
	}
	return lp.bytes()
}

func appendRDBID(b []byte, id streamID) []byte {
	return appendRDBLen(appendRDBLen(b, id.ms), id.seq)
}

// appendStream writes ds as RDB_TYPE_STREAM_LISTPACKS_2's value.
func appendStream(b []byte, ds *dumpStream) []byte {
	nodes := (len(ds.entries) + streamNodeMaxEntries - 1) / streamNodeMaxEntries
	b = appendRDBLen(b, uint64(nodes))
	for i := 0; i < len(ds.entries); i += streamNodeMaxEntries {
		es := ds.entries[i:min(i+streamNodeMaxEntries, len(ds.entries))]
		b = appendRDBString(b, appendID(nil, es[0].id))
		b = appendRDBString(b, streamNode(es))
	}
	b = appendRDBLen(b, uint64(len(ds.entries)))
	b = appendRDBID(b, ds.last)
	var first streamID
	if len(ds.entries) > 0 {
		first = ds.entries[0].id
	}
	b = appendRDBID(b, first)
	b = appendRDBID(b, ds.maxDel)
	b = appendRDBLen(b, ds.added)
	b = appendRDBLen(b, uint64(len(ds.groups)))
	for _, g := range ds.groups {
		b = appendRDBString(b, g.name)
		b = appendRDBID(b, g.last)
		b = appendRDBLen(b, uint64(g.read)) // invalidRead: all ones, as Redis writes -1
		b = appendRDBLen(b, uint64(len(g.pel)))
		for _, p := range g.pel {
			b = appendID(b, p.id)
			b = binary.LittleEndian.AppendUint64(b, uint64(p.time))
			b = appendRDBLen(b, p.count)
		}
		b = appendRDBLen(b, uint64(len(g.consumers)))
		for _, c := range g.consumers {
			b = appendRDBString(b, c.name)
			b = binary.LittleEndian.AppendUint64(b, uint64(c.seen))
			b = appendRDBLen(b, uint64(len(c.owned)))
			for _, id := range c.owned {
				b = appendID(b, id)
			}
		}
	}
	return b
}

// id reads an ID written as two lengths.
func (r *rdbReader) id() (streamID, error) {
	ms, _, err := r.length()
	if err != nil {
		return streamID{}, err
	}
	seq, _, err := r.length()
	return streamID{ms, seq}, err
}

// rawID reads an ID written as 16 bytes, big-endian.
func (r *rdbReader) rawID() (streamID, error) {
	b, err := r.take(16)
	if err != nil {
		return streamID{}, err
	}
	return readID(b), nil
}

func (r *rdbReader) msTime() (int64, error) {
	b, err := r.take(8)
	if err != nil {
		return 0, err
	}
	return int64(binary.LittleEndian.Uint64(b)), nil
}

// stream reads a stream's value (v2: Redis 7.0's format).
func (r *rdbReader) stream(v2 bool) (*dumpStream, error) {
	ds := &dumpStream{addedKnown: v2}
	nodes, err := r.count()
	if err != nil {
		return nil, err
	}
	for range nodes {
		key, err := r.string()
		if err != nil {
			return nil, err
		}
		blob, err := r.string()
		if err != nil {
			return nil, err
		}
		if len(key) != 16 {
			return nil, errBadDump
		}
		es, err := streamNodeEntries(readID(key), blob)
		if err != nil {
			return nil, err
		}
		for _, e := range es {
			if n := len(ds.entries); n > 0 && !ds.entries[n-1].id.less(e.id) {
				return nil, errBadDump // IDs out of order, or twice
			}
			ds.entries = append(ds.entries, e)
		}
	}
	length, _, err := r.length()
	if err != nil {
		return nil, err
	}
	if length != uint64(len(ds.entries)) {
		return nil, errBadDump
	}
	if ds.last, err = r.id(); err != nil {
		return nil, err
	}
	if n := len(ds.entries); n > 0 && ds.last.less(ds.entries[n-1].id) {
		return nil, errBadDump
	}
	if v2 {
		if _, err = r.id(); err != nil { // the first ID: the entries tell it
			return nil, err
		}
		if ds.maxDel, err = r.id(); err != nil {
			return nil, err
		}
		if ds.added, _, err = r.length(); err != nil {
			return nil, err
		}
	} else {
		ds.added = length
	}
	ngroups, err := r.count()
	if err != nil {
		return nil, err
	}
	seenGroup := map[string]bool{}
	for range ngroups {
		g, err := r.group(v2)
		if err != nil {
			return nil, err
		}
		if seenGroup[string(g.name)] {
			return nil, errBadDump
		}
		seenGroup[string(g.name)] = true
		ds.groups = append(ds.groups, g)
	}
	return ds, nil
}

// group reads a consumer group: every pending entry must be owned by
// exactly one of its consumers.
func (r *rdbReader) group(v2 bool) (dumpGroup, error) {
	var g dumpGroup
	var err error
	if g.name, err = r.string(); err != nil {
		return g, err
	}
	if g.last, err = r.id(); err != nil {
		return g, err
	}
	g.read = invalidRead
	if v2 {
		read, _, err := r.length()
		if err != nil {
			return g, err
		}
		if read <= math.MaxInt64 {
			g.read = int64(read)
		}
	}
	npel, err := r.count()
	if err != nil {
		return g, err
	}
	owner := map[streamID]int{} // pending entry -> its index in g.pel
	for range npel {
		var p pending
		if p.id, err = r.rawID(); err != nil {
			return g, err
		}
		if p.time, err = r.msTime(); err != nil {
			return g, err
		}
		if p.count, _, err = r.length(); err != nil {
			return g, err
		}
		if _, dup := owner[p.id]; dup {
			return g, errBadDump
		}
		owner[p.id] = len(g.pel)
		g.pel = append(g.pel, p)
	}
	ncons, err := r.count()
	if err != nil {
		return g, err
	}
	seen := map[string]bool{}
	for range ncons {
		var c dumpConsumer
		if c.name, err = r.string(); err != nil {
			return g, err
		}
		if seen[string(c.name)] {
			return g, errBadDump
		}
		seen[string(c.name)] = true
		if c.seen, err = r.msTime(); err != nil {
			return g, err
		}
		n, err := r.count()
		if err != nil {
			return g, err
		}
		for range n {
			id, err := r.rawID()
			if err != nil {
				return g, err
			}
			i, ok := owner[id]
			if !ok || g.pel[i].consumer != nil {
				return g, errBadDump // not pending in the group, or owned twice
			}
			g.pel[i].consumer = c.name
			c.owned = append(c.owned, id)
		}
		g.consumers = append(g.consumers, c)
	}
	for _, p := range g.pel {
		if p.consumer == nil {
			return g, errBadDump // pending, and nobody's
		}
	}
	slices.SortFunc(g.pel, func(a, b pending) int {
		switch {
		case a.id.less(b.id):
			return -1
		case b.id.less(a.id):
			return 1
		}
		return 0
	})
	return g, nil
}

// streamNodeEntries reads one listpack of a stream (master ID master):
// its live entries.
func streamNodeEntries(master streamID, blob []byte) ([]streamEntry, error) {
	elems, err := listpackElems(blob)
	if err != nil || len(elems) == 0 {
		return nil, errBadDump
	}
	at := 0
	next := func() ([]byte, bool) {
		if at >= len(elems) {
			return nil, false
		}
		at++
		return elems[at-1], true
	}
	integer := func() (int64, bool) {
		e, ok := next()
		if !ok {
			return 0, false
		}
		v, err := strconv.ParseInt(string(e), 10, 64)
		return v, err == nil
	}
	count, ok1 := integer()
	deleted, ok2 := integer()
	nMaster, ok3 := integer()
	if !ok1 || !ok2 || !ok3 || count < 0 || deleted < 0 || nMaster < 0 || nMaster > int64(len(elems)) {
		return nil, errBadDump
	}
	masterFields := make([][]byte, nMaster)
	for i := range masterFields {
		f, ok := next()
		if !ok {
			return nil, errBadDump
		}
		masterFields[i] = f
	}
	if end, ok := integer(); !ok || end != 0 {
		return nil, errBadDump
	}
	var out []streamEntry
	total := int64(0)
	for at < len(elems) {
		flags, ok1 := integer()
		msDiff, ok2 := integer()
		seqDiff, ok3 := integer()
		if !ok1 || !ok2 || !ok3 || flags&^(streamItemDeleted|streamItemSameFields) != 0 {
			return nil, errBadDump
		}
		var fields [][]byte
		var lpCount int64
		if flags&streamItemSameFields != 0 {
			for _, f := range masterFields {
				v, ok := next()
				if !ok {
					return nil, errBadDump
				}
				fields = append(fields, f, v)
			}
			lpCount = nMaster + 3
		} else {
			n, ok := integer()
			if !ok || n < 0 || n > int64(len(elems)) {
				return nil, errBadDump
			}
			for range 2 * n {
				x, ok := next()
				if !ok {
					return nil, errBadDump
				}
				fields = append(fields, x)
			}
			lpCount = 2*n + 4
		}
		if got, ok := integer(); !ok || got != lpCount {
			return nil, errBadDump
		}
		total++
		if flags&streamItemDeleted != 0 {
			continue
		}
		ms, ok1 := addDiff(master.ms, msDiff)
		seq, ok2 := addDiff(master.seq, seqDiff)
		if !ok1 || !ok2 {
			return nil, errBadDump
		}
		id := streamID{ms, seq}
		if len(fields) == 0 {
			return nil, errBadDump // an entry has a field at least
		}
		out = append(out, streamEntry{id: id, fields: fields})
	}
	if int64(len(out)) != count || total != count+deleted || count == 0 {
		return nil, errBadDump
	}
	return out, nil
}

// restoreStream writes ds as stream s (a new key).
func (t *txn) restoreStream(s *stream, ds *dumpStream) {
	for _, e := range ds.entries {
		t.set(s.at(e.id), encodeFields(e.fields))
	}
	s.n, s.last, s.maxDel, s.added = int64(len(ds.entries)), ds.last, ds.maxDel, ds.added
	t.saveStream(s)
	for _, g := range ds.groups {
		read := g.read
		if !ds.addedKnown {
			read = t.distance(s, g.last)
		}
		t.saveGroup(s, &group{name: g.name, last: g.last, read: read})
		for _, p := range g.pel {
			t.putPending(s, g.name, p)
			t.set(appendID(s.ownedPrefix(g.name, p.consumer), p.id), nil)
		}
		for _, c := range g.consumers {
			t.saveConsumer(s, g.name, &consumer{name: c.name, seen: c.seen, pending: int64(len(c.owned))})
		}
	}
}

// addDiff is base+d, false when it leaves uint64's range.
func addDiff(base uint64, d int64) (uint64, bool) {
	if d >= 0 {
		return base + uint64(d), base <= math.MaxUint64-uint64(d)
	}
	m := uint64(-(d + 1)) + 1 // |d|, without overflow at MinInt64
	return base - m, m <= base
}
