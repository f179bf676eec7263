package kv

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"

	"github.com/coppice-kv/coppice/messages"
)

// Consumer groups, under the stream's field prefix beside its entries
// (0x00 ID):
//
//	0x01 group                         -> last delivered ID, entries read
//	0x02 len(group) group ID           -> consumer, delivery time, count (the group's PEL)
//	0x03 len(group) group consumer     -> seen time, pending count
//	0x04 len(group) group len(consumer) consumer ID -> empty (the consumer's PEL)
//
// Lengths are uvarints, IDs 16 bytes big-endian, times the command's (the
// Raft log's, the same on every replica). Deleting the stream's fields
// deletes its groups with it.

const (
	sgGroup    byte = 0x01
	sgPEL      byte = 0x02
	sgConsumer byte = 0x03
	sgOwned    byte = 0x04
)

// invalidRead is Redis's SCG_INVALID_ENTRIES_READ: a group's read count
// that is not known.
const invalidRead = -1

// group is a consumer group as a command sees it.
type group struct {
	name    []byte
	last    streamID
	read    int64 // entries read, or invalidRead
	changed bool
}

// gkey is the prefix of one of group g's kinds of key.
func (s *stream) gkey(kind byte, g []byte) []byte {
	k := append(bytes.Clone(s.base), kind)
	if kind == sgGroup {
		return append(k, g...)
	}
	k = binary.AppendUvarint(k, uint64(len(g)))
	return append(k, g...)
}

func appendID(k []byte, id streamID) []byte {
	k = binary.BigEndian.AppendUint64(k, id.ms)
	return binary.BigEndian.AppendUint64(k, id.seq)
}

func readID(b []byte) streamID {
	return streamID{binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:])}
}

func (s *stream) pelKey(g []byte, id streamID) []byte { return appendID(s.gkey(sgPEL, g), id) }

func (s *stream) consumerKey(g, c []byte) []byte { return append(s.gkey(sgConsumer, g), c...) }

func (s *stream) ownedPrefix(g, c []byte) []byte {
	k := binary.AppendUvarint(s.gkey(sgOwned, g), uint64(len(c)))
	return append(k, c...)
}

// uvarints decodes n uvarints, or fails on the key.
func uvarints(key, v []byte, n int) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		x, k := binary.Uvarint(v)
		if k <= 0 {
			must(errCorruptKey(key))
		}
		out[i], v = x, v[k:]
	}
	return out
}

// groupOf reads group g of s; nil when there is none.
func (t *txn) groupOf(s *stream, g []byte) *group {
	v, ok := t.get(s.gkey(sgGroup, g))
	if !ok {
		return nil
	}
	f := uvarints(s.e.key, v, 3)
	return &group{name: g, last: streamID{f[0], f[1]}, read: int64(f[2]) - 1}
}

func (t *txn) saveGroup(s *stream, g *group) {
	v := binary.AppendUvarint(nil, g.last.ms)
	v = binary.AppendUvarint(v, g.last.seq)
	v = binary.AppendUvarint(v, uint64(g.read+1))
	t.set(s.gkey(sgGroup, g.name), v)
}

// groups lists s's groups, by name.
func (t *txn) groups(s *stream) []*group {
	var out []*group
	p := append(bytes.Clone(s.base), sgGroup)
	must(t.r.Scan(p, successor(p), func(k, v []byte) bool {
		f := uvarints(s.e.key, v, 3)
		out = append(out, &group{name: bytes.Clone(k[len(p):]), last: streamID{f[0], f[1]}, read: int64(f[2]) - 1})
		return true
	}))
	return out
}

// pending is one entry of a group's PEL.
type pending struct {
	id       streamID
	consumer []byte
	time     int64 // last delivery, Unix ms
	count    uint64
}

func (t *txn) pendingOf(s *stream, g []byte, id streamID) (pending, bool) {
	v, ok := t.get(s.pelKey(g, id))
	if !ok {
		return pending{}, false
	}
	return decodePending(s, id, v), true
}

func decodePending(s *stream, id streamID, v []byte) pending {
	n, k := binary.Uvarint(v)
	if k <= 0 || n > uint64(len(v)-k) {
		must(errCorruptKey(s.e.key))
	}
	c := bytes.Clone(v[k : k+int(n)])
	f := uvarints(s.e.key, v[k+int(n):], 2)
	return pending{id: id, consumer: c, time: int64(f[0]), count: f[1]}
}

func (t *txn) putPending(s *stream, g []byte, p pending) {
	v := binary.AppendUvarint(nil, uint64(len(p.consumer)))
	v = append(v, p.consumer...)
	v = binary.AppendUvarint(v, uint64(max(p.time, 0)))
	v = binary.AppendUvarint(v, p.count)
	t.set(s.pelKey(g, p.id), v)
}

// pendings reads a group's PEL entries with IDs in [from, to], up to count
// (negative: all); with consumer, only that consumer's.
func (t *txn) pendings(s *stream, g, consumer []byte, from, to streamID, count int64) []pending {
	var out []pending
	if count == 0 || to.less(from) {
		return out
	}
	if consumer != nil {
		p := s.ownedPrefix(g, consumer)
		var ids []streamID
		must(t.r.Scan(appendID(bytes.Clone(p), from), successor(appendID(bytes.Clone(p), to)), func(k, _ []byte) bool {
			ids = append(ids, readID(k[len(p):]))
			return count < 0 || int64(len(ids)) < count
		}))
		for _, id := range ids {
			if pe, ok := t.pendingOf(s, g, id); ok {
				out = append(out, pe)
			}
		}
		return out
	}
	p := s.gkey(sgPEL, g)
	must(t.r.Scan(appendID(bytes.Clone(p), from), successor(appendID(bytes.Clone(p), to)), func(k, v []byte) bool {
		out = append(out, decodePending(s, readID(k[len(p):]), v))
		return count < 0 || int64(len(out)) < count
	}))
	return out
}

// consumer is a group's consumer as a command sees it.
type consumer struct {
	name    []byte
	seen    int64
	pending int64
	exists  bool
}

func (t *txn) consumerOf(s *stream, g, c []byte) *consumer {
	out := &consumer{name: c}
	if v, ok := t.get(s.consumerKey(g, c)); ok {
		f := uvarints(s.e.key, v, 2)
		out.seen, out.pending, out.exists = int64(f[0]), int64(f[1]), true
	}
	return out
}

func (t *txn) saveConsumer(s *stream, g []byte, c *consumer) {
	v := binary.AppendUvarint(nil, uint64(max(c.seen, 0)))
	v = binary.AppendUvarint(v, uint64(c.pending))
	t.set(s.consumerKey(g, c.name), v)
	c.exists = true
}

func (t *txn) consumers(s *stream, g []byte) []*consumer {
	var out []*consumer
	p := s.gkey(sgConsumer, g)
	must(t.r.Scan(p, successor(p), func(k, v []byte) bool {
		f := uvarints(s.e.key, v, 2)
		out = append(out, &consumer{name: bytes.Clone(k[len(p):]), seen: int64(f[0]), pending: int64(f[1]), exists: true})
		return true
	}))
	return out
}

// own gives PEL entry p to consumer c (from its owner, if another),
// writing the entry and both owners' counts; cs caches the consumers
// touched, saved by the caller.
func (t *txn) own(s *stream, g []byte, p pending, was []byte, cs map[string]*consumer) {
	if was != nil && !bytes.Equal(was, p.consumer) {
		old := cs[string(was)]
		if old == nil {
			old = t.consumerOf(s, g, was)
			cs[string(was)] = old
		}
		if old.exists {
			old.pending--
		}
		t.del(appendID(s.ownedPrefix(g, was), p.id))
	}
	if was == nil || !bytes.Equal(was, p.consumer) {
		c := cs[string(p.consumer)]
		if c == nil {
			c = t.consumerOf(s, g, p.consumer)
			cs[string(p.consumer)] = c
		}
		c.pending++
		t.set(appendID(s.ownedPrefix(g, p.consumer), p.id), nil)
	}
	t.putPending(s, g, p)
}

// unpend removes PEL entry p (acknowledged, or its entry deleted).
func (t *txn) unpend(s *stream, g []byte, p pending, cs map[string]*consumer) {
	c := cs[string(p.consumer)]
	if c == nil {
		c = t.consumerOf(s, g, p.consumer)
		cs[string(p.consumer)] = c
	}
	if c.exists {
		c.pending--
	}
	t.del(s.pelKey(g, p.id))
	t.del(appendID(s.ownedPrefix(g, p.consumer), p.id))
}

// saveConsumers writes the consumers a command touched (the one it acts
// for is made if new, as Redis makes it).
func (t *txn) saveConsumers(s *stream, g []byte, cs map[string]*consumer) {
	for _, c := range cs {
		t.saveConsumer(s, g, c)
	}
}

// consumerMade fires "xgroup-createconsumer" on s's key when a command
// made the consumer it acts for (made: it did not exist), as Redis's
// streamCreateConsumer does.
func (t *txn) consumerMade(s *stream, made bool) {
	if made {
		t.notify(ClassStream, "xgroup-createconsumer", s.e.key)
	}
}

// lazyConsumer saves the consumers XCLAIM and XAUTOCLAIM touched: as
// Redis 7.0, the claimer c is made, and its seen time refreshed, only when
// the command claimed an entry (made: it did not exist; seen: its old
// seen time).
func (t *txn) lazyConsumer(s *stream, g []byte, c *consumer, cs map[string]*consumer, made bool, seen int64, claimed bool) {
	if !claimed {
		if made {
			delete(cs, string(c.name))
		} else {
			c.seen = seen
		}
	}
	t.saveConsumers(s, g, cs)
	t.consumerMade(s, made && claimed)
}

// firstID is the ID of s's first entry; false when it has none.
func (t *txn) firstID(s *stream) (streamID, bool) {
	es := t.entries(s, streamID{}, maxStreamID, 1, false)
	if len(es) == 0 {
		return streamID{}, false
	}
	return es[0].id, true
}

// hasTombstones is Redis's streamRangeHasTombstones: whether a deleted
// entry may lie in [start, end].
func (t *txn) hasTombstones(s *stream, start, end streamID) bool {
	if s.n == 0 || s.maxDel == (streamID{}) {
		return false
	}
	if first, _ := t.firstID(s); s.maxDel.less(first) {
		return false
	}
	return !s.maxDel.less(start) && !end.less(s.maxDel)
}

// distance is Redis's streamEstimateDistanceFromFirstEverEntry: the read
// count of a group whose last ID is id, or invalidRead.
func (t *txn) distance(s *stream, id streamID) int64 {
	if s.added == 0 {
		return 0
	}
	if s.n == 0 && !s.last.less(id) {
		return int64(s.added)
	}
	switch {
	case id == s.last:
		return int64(s.added)
	case s.last.less(id):
		return invalidRead
	}
	first, _ := t.firstID(s)
	if s.maxDel == (streamID{}) || s.maxDel.less(first) {
		switch {
		case id.less(first):
			return int64(s.added) - s.n
		case id == first:
			return int64(s.added) - s.n + 1
		}
	}
	return invalidRead
}

// lag is a group's lag as XINFO GROUPS gives it; false for a null one.
func (t *txn) lag(s *stream, g *group) (int64, bool) {
	switch {
	case s.added == 0:
		return 0, true
	case g.read != invalidRead && !t.hasTombstones(s, g.last, maxStreamID):
		return int64(s.added) - g.read, true
	}
	if read := t.distance(s, g.last); read != invalidRead {
		return int64(s.added) - read, true
	}
	return 0, false
}

// delivered moves g past entry id as XREADGROUP's ">" delivers it.
func (t *txn) delivered(s *stream, g *group, id streamID) {
	if !g.last.less(id) {
		return
	}
	if g.read != invalidRead && !t.hasTombstones(s, id, maxStreamID) {
		g.read++
	} else if s.added > 0 {
		g.read = t.distance(s, id)
	}
	g.last = id
	g.changed = true
}

// streamGroup looks up a stream key and its group g: WRONGTYPE, or
// NOGROUP when either is missing.
func (t *txn) streamGroup(key, g []byte) (*stream, *group, *messages.Reply) {
	s, r := t.streamFor(key)
	if r != nil {
		return nil, nil, r
	}
	var grp *group
	if s.e.exists {
		grp = t.groupOf(s, g)
	}
	if grp == nil {
		return nil, nil, errReply(fmt.Sprintf("NOGROUP No such key '%s' or consumer group '%s'", key, g))
	}
	return s, grp, nil
}

var (
	errXGroupKey   = errReply("ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.")
	errBusyGroup   = errReply("BUSYGROUP Consumer Group name already exists")
	errEntriesRead = errReply("ERR value for ENTRIESREAD must be positive or -1")
)

// XGROUP CREATE|SETID|DESTROY|CREATECONSUMER|DELCONSUMER|HELP, in Redis's
// order of checks: options, the key, the group, the ID.
func cmdXGroup(t *txn, a [][]byte) *messages.Reply {
	sub := string(bytes.ToLower(a[1])) // resolve checked it
	if sub == "help" {
		return HelpReply("XGROUP",
			"CREATE <key> <groupname> <id|$> [option]",
			"    Create a new consumer group. Options are:",
			"    * MKSTREAM",
			"      Create the empty stream if it does not exist.",
			"    * ENTRIESREAD entries_read",
			"      Set the group's entries_read counter (internal use).",
			"CREATECONSUMER <key> <groupname> <consumer>",
			"    Create a new consumer in the specified group.",
			"DELCONSUMER <key> <groupname> <consumer>",
			"    Remove the specified consumer.",
			"DESTROY <key> <groupname>",
			"    Remove the specified group.",
			"SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
			"    Set the current group ID and entries_read counter.",
		)
	}
	syntax := errReply(fmt.Sprintf("ERR unknown subcommand or wrong number of arguments for '%s'. Try XGROUP HELP.", a[1]))
	mk, read := false, int64(invalidRead)
	if sub == "create" || sub == "setid" {
		if sub == "create" && len(a) > 8 || sub == "setid" && len(a) != 5 && (len(a) != 7 || !isOpt(a[5], "entriesread")) {
			return syntax
		}
		for i := 5; i < len(a); i++ {
			switch {
			case sub == "create" && isOpt(a[i], "mkstream"):
				mk = true
			case isOpt(a[i], "entriesread") && i+1 < len(a):
				n, ok := parseInt(a[i+1])
				if !ok {
					return errNotInteger
				}
				if n < 0 && n != invalidRead {
					return errEntriesRead
				}
				read = n
				i++
			default:
				return syntax
			}
		}
	}
	key, gname := a[2], a[3]
	s, r := t.streamFor(key)
	if r != nil {
		return r
	}
	if !s.e.exists && !mk {
		return errXGroupKey
	}
	g := t.groupOf(s, gname)
	if g == nil && (sub == "setid" || sub == "createconsumer" || sub == "delconsumer") {
		return errReply(fmt.Sprintf("NOGROUP No such consumer group '%s' for key name '%s'", gname, key))
	}
	var id streamID
	if sub == "create" || sub == "setid" {
		if string(a[4]) == "$" {
			id = s.last
		} else {
			var ok bool
			// CREATE's ID is strict; SETID's may be "-" or "+", as Redis
			// reads them (streamParseIDOrReply).
			if id, _, ok = parseStreamID(a[4], 0, false); !ok || sub == "create" && (string(a[4]) == "-" || string(a[4]) == "+") {
				return errStreamID
			}
		}
	}
	switch sub {
	case "create":
		if !s.e.exists {
			t.saveStream(s)
		}
		if g != nil {
			return errBusyGroup
		}
		t.saveGroup(s, &group{name: gname, last: id, read: read})
		t.notify(ClassStream, "xgroup-create", key)
		return replyOK
	case "setid":
		g.last, g.read = id, read
		t.saveGroup(s, g)
		t.saveStream(s) // the record written: blocked readers wake (RecordKey)
		t.notify(ClassStream, "xgroup-setid", key)
		return replyOK
	case "destroy":
		if g == nil {
			return zero
		}
		for _, kind := range []byte{sgPEL, sgConsumer, sgOwned} {
			p := s.gkey(kind, gname)
			must(t.w.DeleteRange(p, successor(p)))
		}
		t.del(s.gkey(sgGroup, gname))
		t.saveStream(s) // wakes the group's blocked consumers, to their error
		t.notify(ClassStream, "xgroup-destroy", key)
		return one
	case "createconsumer":
		c := t.consumerOf(s, gname, a[4])
		if c.exists {
			return zero
		}
		c.seen = t.now
		t.saveConsumer(s, gname, c)
		t.notify(ClassStream, "xgroup-createconsumer", key)
		return one
	default: // delconsumer
		c := t.consumerOf(s, gname, a[4])
		if !c.exists {
			return zero
		}
		for _, p := range t.pendings(s, gname, a[4], streamID{}, maxStreamID, -1) {
			t.del(s.pelKey(gname, p.id))
		}
		p := s.ownedPrefix(gname, a[4])
		must(t.w.DeleteRange(p, successor(p)))
		t.del(s.consumerKey(gname, a[4]))
		t.notify(ClassStream, "xgroup-delconsumer", key)
		return integer(c.pending)
	}
}

// HelpReply is a command's HELP, as Redis's addReplyHelp gives it: a
// first line naming the command, its lines, then HELP's own.
func HelpReply(name string, lines ...string) *messages.Reply {
	items := []*messages.Reply{status(name + " <subcommand> [<arg> [value] [opt] ...]. Subcommands are:")}
	for _, l := range lines {
		items = append(items, status(l))
	}
	items = append(items, status("HELP"), status("    Prints this help."))
	return array(items)
}

// xreadGroupArgs is XREADGROUP's arguments.
type xreadGroupArgs struct {
	group, consumer []byte
	noAck           bool
	XReadArgs
}

// ParseXReadGroup reads XREADGROUP GROUP group consumer [COUNT count]
// [BLOCK ms] [NOACK] STREAMS key... id...; it returns the XREAD part (the
// node blocks on it) and whether every ID is ">" (only then it blocks).
func ParseXReadGroup(a [][]byte) (x XReadArgs, onlyNew bool, r *messages.Reply) {
	xg, r := parseXReadGroup(a)
	if r != nil {
		return x, false, r
	}
	onlyNew = true
	for _, id := range xg.IDs {
		onlyNew = onlyNew && string(id) == ">"
	}
	return xg.XReadArgs, onlyNew, nil
}

func parseXReadGroup(a [][]byte) (xreadGroupArgs, *messages.Reply) {
	return parseStreamRead(a, true)
}

// XREADGROUP GROUP group consumer [COUNT count] [BLOCK ms] [NOACK] STREAMS
// key [key ...] id [id ...]: ">" delivers entries no consumer of the group
// was given (and adds them to the group's pending entries, unless NOACK);
// an ID gives this consumer's pending entries after it again. BLOCK is
// the node's: here it reads once.
func cmdXReadGroup(t *txn, a [][]byte) *messages.Reply {
	xg, r := parseXReadGroup(a)
	if r != nil {
		return r
	}
	type target struct {
		s *stream
		g *group
	}
	targets := make([]target, len(xg.Keys))
	for i, k := range xg.Keys {
		s, r := t.streamFor(k)
		if r != nil {
			return r
		}
		var g *group
		if s.e.exists {
			g = t.groupOf(s, xg.group)
		}
		if g == nil {
			return errReply(fmt.Sprintf("NOGROUP No such key '%s' or consumer group '%s' in XREADGROUP with GROUP option", k, xg.group))
		}
		targets[i] = target{s, g}
	}
	var items []*messages.Reply
	for i, tg := range targets {
		s, g := tg.s, tg.g
		cs := map[string]*consumer{}
		c := t.consumerOf(s, g.name, xg.consumer)
		made := !c.exists
		c.seen = t.now
		cs[string(c.name)] = c
		if string(xg.IDs[i]) != ">" {
			after, _, _ := parseStreamID(xg.IDs[i], 0, false)
			from, ok := after.next()
			var ps []pending
			if ok {
				ps = t.pendings(s, g.name, xg.consumer, from, maxStreamID, xg.Count)
			}
			out := make([]*messages.Reply, len(ps))
			for j, p := range ps {
				es := t.entries(s, p.id, p.id, 1, false)
				if len(es) == 0 {
					out[j] = array([]*messages.Reply{bulkString(p.id.String()), nullArray})
				} else {
					out[j] = entriesReply(es).GetArray().GetItems()[0]
				}
				p.time, p.count = t.now, p.count+1
				t.putPending(s, g.name, p)
			}
			items = append(items, bulk(xg.Keys[i]), array(out))
			t.saveConsumers(s, g.name, cs)
			t.consumerMade(s, made)
			continue
		}
		from, ok := g.last.next()
		var es []streamEntry
		if ok {
			es = t.entries(s, from, maxStreamID, xg.Count, false)
		}
		for _, e := range es {
			t.delivered(s, g, e.id)
			if xg.noAck {
				continue
			}
			p := pending{id: e.id, consumer: xg.consumer, time: t.now, count: 1}
			var was []byte
			if old, ok := t.pendingOf(s, g.name, e.id); ok {
				was = old.consumer // redelivered after a SETID back
			}
			t.own(s, g.name, p, was, cs)
		}
		if g.changed {
			t.saveGroup(s, g)
		}
		if len(es) == 0 {
			continue // Redis 7.0 neither makes nor refreshes the consumer
		}
		t.saveConsumers(s, g.name, cs)
		t.consumerMade(s, made)
		items = append(items, bulk(xg.Keys[i]), entriesReply(es))
	}
	if len(items) == 0 {
		return nullArray
	}
	return &messages.Reply{Value: &messages.Reply_Keyed{Keyed: &messages.Replies{Items: items}}}
}

// XACK key group id [id ...]
func cmdXAck(t *txn, a [][]byte) *messages.Reply {
	ids := make([]streamID, len(a)-3)
	for i, b := range a[3:] {
		id, _, ok := parseStreamID(b, 0, false)
		if !ok {
			return errStreamID
		}
		ids[i] = id
	}
	s, r := t.streamFor(a[1])
	if r != nil {
		return r
	}
	if !s.e.exists || t.groupOf(s, a[2]) == nil {
		return zero
	}
	cs := map[string]*consumer{}
	var n int64
	for _, id := range ids {
		if p, ok := t.pendingOf(s, a[2], id); ok {
			t.unpend(s, a[2], p, cs)
			n++
		}
	}
	t.saveConsumers(s, a[2], cs)
	return integer(n)
}

// XPENDING key group [[IDLE min-idle-time] start end count [consumer]]
func cmdXPending(t *txn, a [][]byte) *messages.Reply {
	var minIdle int64
	i := 3
	extended := len(a) > 3
	if extended && isOpt(a[3], "idle") {
		if len(a) < 8 {
			return errSyntax
		}
		n, ok := parseInt(a[4])
		if !ok {
			return errNotInteger
		}
		minIdle = n
		i = 5
	}
	var start, end streamID
	var count int64
	var consumerName []byte
	if extended {
		if len(a)-i < 3 || len(a)-i > 4 {
			return errSyntax
		}
		var r *messages.Reply
		if start, end, r = parseInterval(a[i], a[i+1]); r != nil {
			return r
		}
		n, ok := parseInt(a[i+2])
		if !ok {
			return errNotInteger
		}
		count = max(n, 0)
		if len(a)-i == 4 {
			consumerName = a[i+3]
		}
	}
	s, g, r := t.streamGroup(a[1], a[2])
	if r != nil {
		return r
	}
	if !extended {
		ps := t.pendings(s, g.name, nil, streamID{}, maxStreamID, -1)
		if len(ps) == 0 {
			return array([]*messages.Reply{zero, nullBulk, nullBulk, nullArray})
		}
		var per []*messages.Reply
		for _, c := range t.consumers(s, g.name) {
			if c.pending > 0 {
				per = append(per, array([]*messages.Reply{bulk(c.name), bulkString(strconv.FormatInt(c.pending, 10))}))
			}
		}
		return array([]*messages.Reply{integer(int64(len(ps))), bulkString(ps[0].id.String()),
			bulkString(ps[len(ps)-1].id.String()), array(per)})
	}
	var out []*messages.Reply
	if count > 0 {
		all := t.pendings(s, g.name, consumerName, start, end, -1)
		for _, p := range all {
			idle := max(t.now-p.time, 0)
			if idle < minIdle {
				continue
			}
			out = append(out, array([]*messages.Reply{bulkString(p.id.String()), bulk(p.consumer), integer(idle), integer(int64(p.count))}))
			if int64(len(out)) == count {
				break
			}
		}
	}
	return array(out)
}

// claimOpts is XCLAIM's options.
type claimOpts struct {
	minIdle        int64
	time           int64 // IDLE's or TIME's delivery time
	setTime        bool
	retry          int64
	setRetry       bool
	force, justID  bool
	lastID         streamID
	hasLast        bool
	ids            []streamID
	group, claimer []byte
}

// XCLAIM key group consumer min-idle-time id [id ...] [IDLE ms] [TIME ms]
// [RETRYCOUNT count] [FORCE] [JUSTID] [LASTID id]
func cmdXClaim(t *txn, a [][]byte) *messages.Reply {
	o := claimOpts{group: a[2], claimer: a[3]}
	n, ok := parseInt(a[4])
	if !ok {
		return errReply("ERR Invalid min-idle-time argument for XCLAIM")
	}
	o.minIdle = max(n, 0)
	i := 5
	for ; i < len(a); i++ {
		id, _, ok := parseStreamID(a[i], 0, false)
		if !ok {
			break
		}
		o.ids = append(o.ids, id)
	}
	for ; i < len(a); i++ {
		more := len(a) - i - 1
		switch {
		case isOpt(a[i], "force"):
			o.force = true
		case isOpt(a[i], "justid"):
			o.justID = true
		case isOpt(a[i], "idle") && more >= 1:
			v, ok := parseInt(a[i+1])
			if !ok {
				return errReply("ERR Invalid IDLE option argument for XCLAIM")
			}
			o.time, o.setTime = t.now-v, true
			i++
		case isOpt(a[i], "time") && more >= 1:
			v, ok := parseInt(a[i+1])
			if !ok {
				return errReply("ERR Invalid TIME option argument for XCLAIM")
			}
			o.time, o.setTime = v, true
			i++
		case isOpt(a[i], "retrycount") && more >= 1:
			v, ok := parseInt(a[i+1])
			if !ok {
				return errReply("ERR Invalid RETRYCOUNT option argument for XCLAIM")
			}
			o.retry, o.setRetry = v, true
			i++
		case isOpt(a[i], "lastid") && more >= 1:
			id, _, ok := parseStreamID(a[i+1], 0, false)
			if !ok {
				return errStreamID
			}
			o.lastID, o.hasLast = id, true
			i++
		default:
			return errReply(fmt.Sprintf("ERR Unrecognized XCLAIM option '%s'", a[i]))
		}
	}
	if o.setTime {
		o.time = min(o.time, t.now) // a time in the future is now
	}
	s, g, r := t.streamGroup(a[1], o.group)
	if r != nil {
		return r
	}
	if o.hasLast && g.last.less(o.lastID) {
		g.last = o.lastID
		t.saveGroup(s, g)
	}
	cs := map[string]*consumer{}
	c := t.consumerOf(s, g.name, o.claimer)
	made, seen := !c.exists, c.seen
	c.seen = t.now
	cs[string(c.name)] = c
	var out []*messages.Reply
	for _, id := range o.ids {
		p, ok := t.pendingOf(s, g.name, id)
		es := t.entries(s, id, id, 1, false)
		if !ok {
			if !o.force || len(es) == 0 {
				continue
			}
			p = pending{id: id, time: t.now, count: 1} // as Redis's new NACK
		} else if len(es) == 0 {
			t.unpend(s, g.name, p, cs) // its entry was deleted
			continue
		}
		if o.minIdle > 0 && ok && t.now-p.time < o.minIdle {
			continue
		}
		var was []byte
		if ok {
			was = p.consumer
		}
		p.consumer = o.claimer
		p.time = t.now
		if o.setTime {
			p.time = o.time
		}
		if o.setRetry {
			p.count = uint64(max(o.retry, 0))
		} else if !o.justID {
			p.count++
		}
		t.own(s, g.name, p, was, cs)
		if o.justID {
			out = append(out, bulkString(id.String()))
		} else {
			out = append(out, entriesReply(es).GetArray().GetItems()[0])
		}
	}
	t.lazyConsumer(s, g.name, c, cs, made, seen, len(out) > 0)
	return array(out)
}

// XAUTOCLAIM key group consumer min-idle-time start [COUNT count] [JUSTID]
func cmdXAutoClaim(t *txn, a [][]byte) *messages.Reply {
	n, ok := parseInt(a[4])
	if !ok {
		return errReply("ERR Invalid min-idle-time argument for XAUTOCLAIM")
	}
	minIdle := max(n, 0)
	start, _, r := parseInterval(a[5], []byte("+")) // "(" too
	if r != nil {
		return r
	}
	count, justID := int64(100), false
	for i := 6; i < len(a); i++ {
		switch {
		case isOpt(a[i], "count") && i+1 < len(a):
			v, ok := parseInt(a[i+1])
			if !ok || v < 1 || v > math.MaxInt64/10 {
				return errReply("ERR COUNT must be > 0")
			}
			count = v
			i++
		case isOpt(a[i], "justid"):
			justID = true
		default:
			return errSyntax
		}
	}
	s, g, r2 := t.streamGroup(a[1], a[2])
	if r2 != nil {
		return r2
	}
	cs := map[string]*consumer{}
	c := t.consumerOf(s, g.name, a[3])
	made, seen := !c.exists, c.seen
	c.seen = t.now
	cs[string(c.name)] = c
	// As Redis: up to count*10 pending entries looked at, up to count
	// answered (claimed or deleted), and the cursor is the entry after
	// the last one looked at (0-0 past the end).
	attempts, budget := count*10, count
	ps := t.pendings(s, g.name, nil, start, maxStreamID, attempts+1)
	var claimed, deleted []*messages.Reply
	i := 0
	for ; i < len(ps) && attempts > 0 && budget > 0; i++ {
		attempts--
		p := ps[i]
		es := t.entries(s, p.id, p.id, 1, false)
		if len(es) == 0 {
			t.unpend(s, g.name, p, cs)
			deleted = append(deleted, bulkString(p.id.String()))
			budget--
			continue
		}
		if minIdle > 0 && t.now-p.time < minIdle {
			continue
		}
		was := p.consumer
		p.consumer, p.time = a[3], t.now
		if !justID {
			p.count++
		}
		t.own(s, g.name, p, was, cs)
		if justID {
			claimed = append(claimed, bulkString(p.id.String()))
		} else {
			claimed = append(claimed, entriesReply(es).GetArray().GetItems()[0])
		}
		budget--
	}
	next := streamID{}
	if i < len(ps) {
		next = ps[i].id
	}
	t.lazyConsumer(s, g.name, c, cs, made, seen, len(claimed) > 0)
	return array([]*messages.Reply{bulkString(next.String()), array(claimed), array(deleted)})
}

// XINFO STREAM key | GROUPS key | CONSUMERS key group | HELP
func cmdXInfo(t *txn, a [][]byte) *messages.Reply {
	sub := string(bytes.ToLower(a[1])) // resolve checked it
	if sub == "help" {
		return HelpReply("XINFO",
			"CONSUMERS <key> <groupname>",
			"    Show consumers of <groupname>.",
			"GROUPS <key>",
			"    Show the stream consumer groups.",
			"STREAM <key> [FULL [COUNT <count>]",
			"    Show information about the stream.",
		)
	}
	s, r := t.streamFor(a[2])
	if r != nil {
		return r
	}
	if !s.e.exists {
		return errReply("ERR no such key")
	}
	switch sub {
	case "groups":
		var out []*messages.Reply
		for _, g := range t.groups(s) {
			read := nullBulk
			if g.read != invalidRead {
				read = integer(g.read)
			}
			lag := nullBulk
			if l, ok := t.lag(s, g); ok {
				lag = integer(l)
			}
			out = append(out, mapReply([]*messages.Reply{
				bulkString("name"), bulk(g.name),
				bulkString("consumers"), integer(int64(len(t.consumers(s, g.name)))),
				bulkString("pending"), integer(int64(len(t.pendings(s, g.name, nil, streamID{}, maxStreamID, -1)))),
				bulkString("last-delivered-id"), bulkString(g.last.String()),
				bulkString("entries-read"), read,
				bulkString("lag"), lag,
			}))
		}
		return array(out)
	case "consumers":
		if t.groupOf(s, a[3]) == nil {
			return errReply(fmt.Sprintf("NOGROUP No such consumer group '%s' for key name '%s'", a[3], a[2]))
		}
		var out []*messages.Reply
		for _, c := range t.consumers(s, a[3]) {
			out = append(out, mapReply([]*messages.Reply{
				bulkString("name"), bulk(c.name),
				bulkString("pending"), integer(c.pending),
				bulkString("idle"), integer(max(t.now-c.seen, 0)),
			}))
		}
		return array(out)
	}
	// stream
	if len(a) > 3 {
		return t.xinfoStreamFull(s, a)
	}
	first, last := nullArray, nullArray
	if es := t.entries(s, streamID{}, maxStreamID, 1, false); len(es) > 0 {
		first = entriesReply(es).GetArray().GetItems()[0]
		last = entriesReply(t.entries(s, streamID{}, maxStreamID, 1, true)).GetArray().GetItems()[0]
	}
	return mapReply(append(t.streamHead(s),
		bulkString("groups"), integer(int64(len(t.groups(s)))),
		bulkString("first-entry"), first,
		bulkString("last-entry"), last,
	))
}

// xinfoStreamFull is XINFO STREAM key FULL [COUNT n]: the stream, its
// first n entries (10 by default, all for 0) and its groups, each with
// its first n pending entries and its consumers with theirs, as Redis
// 7.0 gives them, but for the radix tree's sizes, which describe Redis's
// memory, not the stream (XINFO STREAM leaves them out too).
func (t *txn) xinfoStreamFull(s *stream, a [][]byte) *messages.Reply {
	count := int64(10)
	switch {
	case !isOpt(a[3], "full") || (len(a) != 4 && (len(a) != 6 || !isOpt(a[4], "count"))):
		return errReply(fmt.Sprintf("ERR unknown subcommand or wrong number of arguments for '%s'. Try XINFO HELP.", a[1]))
	case len(a) == 6:
		n, ok := parseInt(a[5])
		if !ok {
			return errNotInteger
		}
		if n >= 0 {
			count = n
		}
	}
	if count == 0 {
		count = -1 // all
	}
	var groups []*messages.Reply
	for _, g := range t.groups(s) {
		read, lag := nullBulk, nullBulk
		if g.read != invalidRead {
			read = integer(g.read)
		}
		if l, ok := t.lag(s, g); ok {
			lag = integer(l)
		}
		var pel []*messages.Reply
		for _, p := range t.pendings(s, g.name, nil, streamID{}, maxStreamID, count) {
			pel = append(pel, array([]*messages.Reply{bulkString(p.id.String()), bulk(p.consumer), integer(p.time), integer(int64(p.count))}))
		}
		var consumers []*messages.Reply
		var pelCount int64 // every pending entry has one consumer
		for _, c := range t.consumers(s, g.name) {
			pelCount += c.pending
			var owned []*messages.Reply
			for _, p := range t.pendings(s, g.name, c.name, streamID{}, maxStreamID, count) {
				owned = append(owned, array([]*messages.Reply{bulkString(p.id.String()), integer(p.time), integer(int64(p.count))}))
			}
			consumers = append(consumers, mapReply([]*messages.Reply{
				bulkString("name"), bulk(c.name),
				bulkString("seen-time"), integer(c.seen),
				bulkString("pel-count"), integer(c.pending),
				bulkString("pending"), array(owned),
			}))
		}
		groups = append(groups, mapReply([]*messages.Reply{
			bulkString("name"), bulk(g.name),
			bulkString("last-delivered-id"), bulkString(g.last.String()),
			bulkString("entries-read"), read,
			bulkString("lag"), lag,
			bulkString("pel-count"), integer(pelCount),
			bulkString("pending"), array(pel),
			bulkString("consumers"), array(consumers),
		}))
	}
	return mapReply(append(t.streamHead(s),
		bulkString("entries"), entriesReply(t.entries(s, streamID{}, maxStreamID, count, false)),
		bulkString("groups"), array(groups),
	))
}

// streamHead is XINFO STREAM's first fields, with FULL or without.
func (t *txn) streamHead(s *stream) []*messages.Reply {
	firstID, _ := t.firstID(s)
	return []*messages.Reply{
		bulkString("length"), integer(s.n),
		bulkString("last-generated-id"), bulkString(s.last.String()),
		bulkString("max-deleted-entry-id"), bulkString(s.maxDel.String()),
		bulkString("entries-added"), integer(int64(s.added)),
		bulkString("recorded-first-entry-id"), bulkString(firstID.String()),
	}
}
