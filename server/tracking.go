package server

// Client-side caching: CLIENT TRACKING, Redis 7.0's (tracking.c). A
// tracking connection's reads are remembered (default mode) or it names
// key prefixes (BCAST); when a key it may have cached changes, it gets an
// invalidation: a RESP3 push ["invalidate", [keys]], or, redirected to a
// RESP2 connection in pub/sub mode, a message on "__redis__:invalidate".
//
// Every node applies every shard's writes, and each shard hands the node
// what each write changed (Modified, with the store keys it wrote, so
// nothing a command changes goes unseen), so a client tracking through
// any node hears of writes made through every node.
//
// Order. A connection's reads run concurrently with the shards' writes:
// an invalidation for a key must not overtake the reply of a read of it
// issued before, or the client would cache that reply after dropping the
// key, stale for good. So an invalidation waits until every reply the
// connection had issued when it came is written (a write of the
// connection's own: until that write's reply, as Redis sends it after the
// command's reply), and a read's keys are remembered before the read is
// issued: a write applied after that invalidates them.

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/coppice-kv/coppice/kv"
	"github.com/coppice-kv/coppice/messages"
	"google.golang.org/protobuf/proto"
)

// trackingMaxKeys bounds the keys the table remembers (Redis's
// tracking-table-max-keys default): past it, keys are dropped with an
// invalidation, as if written.
const trackingMaxKeys = 1_000_000

// trackingTable is the node's: which connections may cache which keys.
type trackingTable struct {
	mu       sync.Mutex
	clients  atomic.Int32                  // connections with tracking on
	keys     map[string]map[*conn]struct{} // default mode: key -> who read it
	prefixes map[string]map[*conn]struct{} // BCAST: prefix -> who wants it
	// instance tells this port's writes from other nodes' in an origin.
	instance string
}

// tracking is a connection's state. The mode fields change under the
// table's lock (the shards read them under it); deferred under mu.
type tracking struct {
	on, bcast, optin, optout, noloop, broken bool
	redirect                                 int64
	prefixes                                 []string
	flushedBy                                string // the origin of the last FLUSH* told
	// caching is CLIENT CACHING's, for the next command: only the
	// connection's goroutine reads and writes it.
	caching bool

	// issued and out are the sequence numbers of the last reply the
	// connection issued and the last it wrote.
	issued, out atomic.Uint64
	mu          sync.Mutex
	deferred    []deferredPush
	writing     bool // between the replies written together (written)
}

// deferredPush is an invalidation waiting for the connection's reply
// number after to be written; batch ones (BCAST's) wait for the end of the
// replies written together, as Redis sends them before it sleeps.
type deferredPush struct {
	after uint64
	batch bool
	r     *messages.Reply
}

const trackingChannel = "__redis__:invalidate"

// trackingCmd answers CLIENT TRACKING, CACHING, GETREDIR and TRACKINGINFO;
// false for another subcommand.
func (c *conn) trackingCmd(sub string, args [][]byte) bool {
	switch sub {
	case "tracking":
		if len(args) < 3 {
			c.reply(errorf("ERR wrong number of arguments for 'client|tracking' command"))
		} else {
			c.reply(c.clientTracking(args[2:]))
		}
	case "caching":
		if len(args) != 3 {
			c.reply(errorf("ERR wrong number of arguments for 'client|caching' command"))
		} else {
			c.reply(c.clientCaching(args[2]))
		}
	case "getredir":
		if len(args) != 2 {
			c.reply(errorf("ERR wrong number of arguments for 'client|getredir' command"))
			return true
		}
		redirect := int64(-1)
		c.s.track.mu.Lock()
		if t := c.trk; t != nil && t.on {
			redirect = t.redirect
		}
		c.s.track.mu.Unlock()
		c.reply(integer(redirect))
	case "trackinginfo":
		if len(args) != 2 {
			c.reply(errorf("ERR wrong number of arguments for 'client|trackinginfo' command"))
			return true
		}
		c.reply(c.trackingInfo())
	default:
		return false
	}
	return true
}

// clientTracking: CLIENT TRACKING ON|OFF [REDIRECT id] [PREFIX p ...]
// [BCAST] [OPTIN] [OPTOUT] [NOLOOP], with Redis's checks in its order.
func (c *conn) clientTracking(args [][]byte) *messages.Reply {
	var redirect int64
	var bcast, optin, optout, noloop bool
	var prefixes []string
	for i := 1; i < len(args); i++ {
		more := i+1 < len(args)
		switch opt := strings.ToLower(string(args[i])); {
		case opt == "redirect" && more:
			i++
			if redirect != 0 {
				return errorf("ERR A client can only redirect to a single other client")
			}
			id, err := strconv.ParseInt(string(args[i]), 10, 64)
			if err != nil {
				return errorf("ERR value is not an integer or out of range")
			}
			if c.s.connByID(id) == nil {
				return errorf("ERR The client ID you want redirect to does not exist")
			}
			redirect = id
		case opt == "bcast":
			bcast = true
		case opt == "optin":
			optin = true
		case opt == "optout":
			optout = true
		case opt == "noloop":
			noloop = true
		case opt == "prefix" && more:
			i++
			prefixes = append(prefixes, string(args[i]))
		default:
			return errorf("ERR syntax error")
		}
	}
	tt := &c.s.track
	switch strings.ToLower(string(args[0])) {
	case "on":
	case "off":
		tt.mu.Lock()
		c.trackingOff()
		tt.mu.Unlock()
		return replyOK
	default:
		return errorf("ERR syntax error")
	}
	t := c.trk
	switch {
	case !bcast && len(prefixes) > 0:
		return errorf("ERR PREFIX option requires BCAST mode to be enabled")
	case t != nil && t.on && t.bcast != bcast:
		return errorf("ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode.")
	case bcast && (optin || optout):
		return errorf("ERR OPTIN and OPTOUT are not compatible with BCAST")
	case optin && optout:
		return errorf("ERR You can't specify both OPTIN mode and OPTOUT mode")
	case t != nil && t.on && ((optin && t.optout) || (optout && t.optin)):
		return errorf("ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode.")
	}
	if bcast {
		if r := prefixCollision(t, prefixes); r != nil {
			return r
		}
		if len(prefixes) == 0 {
			prefixes = []string{""}
		}
	}
	c.openOutbox() // invalidations come between replies
	tt.mu.Lock()
	defer tt.mu.Unlock()
	if t == nil {
		t = &tracking{}
		c.trk = t
	}
	if !t.on {
		tt.clients.Add(1)
	}
	t.on, t.broken, t.redirect = true, false, redirect
	t.bcast, t.optin, t.optout, t.noloop = bcast, optin, optout, noloop
	for _, p := range prefixes {
		if slices.Contains(t.prefixes, p) {
			continue
		}
		t.prefixes = append(t.prefixes, p)
		if tt.prefixes == nil {
			tt.prefixes = map[string]map[*conn]struct{}{}
		}
		if tt.prefixes[p] == nil {
			tt.prefixes[p] = map[*conn]struct{}{}
		}
		tt.prefixes[p][c] = struct{}{}
	}
	slices.Sort(t.prefixes)
	return replyOK
}

// prefixCollision is Redis's check that no two prefixes of a client
// would invalidate the same key: new ones against t's and each other.
func prefixCollision(t *tracking, prefixes []string) *messages.Reply {
	overlap := func(a, b string) bool { n := min(len(a), len(b)); return a[:n] == b[:n] }
	for i, p := range prefixes {
		if t != nil {
			for _, old := range t.prefixes {
				if overlap(old, p) {
					return errorf(fmt.Sprintf("ERR Prefix '%s' overlaps with an existing prefix '%s'. Prefixes for a single client must not overlap.", p, old))
				}
			}
		}
		for _, q := range prefixes[i+1:] {
			if overlap(p, q) {
				return errorf(fmt.Sprintf("ERR Prefix '%s' overlaps with another provided prefix '%s'. Prefixes for a single client must not overlap.", p, q))
			}
		}
	}
	return nil
}

// trackingOff turns tracking off (the table's lock held): out of the
// prefixes' lists at once; the keys it read are dropped lazily, as their
// invalidations come.
func (c *conn) trackingOff() {
	t, tt := c.trk, &c.s.track
	if t == nil || !t.on {
		return
	}
	for _, p := range t.prefixes {
		delete(tt.prefixes[p], c)
		if len(tt.prefixes[p]) == 0 {
			delete(tt.prefixes, p)
		}
	}
	tt.clients.Add(-1)
	t.on, t.bcast, t.optin, t.optout, t.noloop, t.broken = false, false, false, false, false, false
	t.redirect, t.prefixes, t.caching = 0, nil, false
}

// clientCaching: CLIENT CACHING YES|NO, for the next command.
func (c *conn) clientCaching(arg []byte) *messages.Reply {
	t := c.trk
	if t == nil || !t.on {
		return errorf("ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled")
	}
	switch strings.ToLower(string(arg)) {
	case "yes":
		if !t.optin {
			return errorf("ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.")
		}
	case "no":
		if !t.optout {
			return errorf("ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.")
		}
	default:
		return errorf("ERR syntax error")
	}
	t.caching = true
	return replyOK
}

// trackingInfo is CLIENT TRACKINGINFO's map.
func (c *conn) trackingInfo() *messages.Reply {
	c.s.track.mu.Lock()
	defer c.s.track.mu.Unlock()
	t := c.trk
	if t == nil || !t.on {
		return mapReply(bulkString("flags"), setReply(bulkString("off")), bulkString("redirect"), integer(-1),
			bulkString("prefixes"), array())
	}
	flags := []*messages.Reply{bulkString("on")}
	add := func(on bool, name string) {
		if on {
			flags = append(flags, bulkString(name))
		}
	}
	add(t.bcast, "bcast")
	add(t.optin, "optin")
	add(t.optin && t.caching, "caching-yes")
	add(t.optout, "optout")
	add(t.optout && t.caching, "caching-no")
	add(t.noloop, "noloop")
	add(t.broken, "broken_redirect")
	prefixes := make([]*messages.Reply, len(t.prefixes))
	for i, p := range t.prefixes {
		prefixes[i] = bulkString(p)
	}
	return mapReply(bulkString("flags"), setReply(flags...), bulkString("redirect"), integer(t.redirect),
		bulkString("prefixes"), array(prefixes...))
}

// afterCommand ends CLIENT CACHING's effect once the command after it
// ran, as Redis's: outside MULTI, and not past the CLIENT CACHING itself.
func (c *conn) afterCommand(name string) {
	if t := c.trk; t != nil && t.caching && name != "client" && c.tx == nil {
		t.caching = false
	}
}

// remember records keys, which a read of the connection's is about to
// fetch, as cached by it (default mode: OPTIN only after CLIENT CACHING
// YES, OPTOUT unless after CLIENT CACHING NO).
func (c *conn) remember(keys [][]byte) {
	t := c.trk
	if t == nil || !t.on || t.bcast || len(keys) == 0 || (t.optin && !t.caching) || (t.optout && t.caching) {
		return
	}
	tt := &c.s.track
	tt.mu.Lock()
	defer tt.mu.Unlock()
	if tt.keys == nil {
		tt.keys = map[string]map[*conn]struct{}{}
	}
	for _, k := range keys {
		who := tt.keys[string(k)]
		if who == nil {
			who = map[*conn]struct{}{}
			tt.keys[string(k)] = who
		}
		who[c] = struct{}{}
	}
	for k := range tt.keys { // over the bound: forget keys, telling their readers
		if len(tt.keys) <= trackingMaxKeys {
			break
		}
		c.s.invalidateKey(k, nil, 0)
	}
}

// origin is what a write of the connection carries in its Command, when
// it tracks: this port, the connection and the number of the write's
// reply (the reply issued next).
func (c *conn) origin() string {
	if t := c.trk; t == nil || !t.on {
		return ""
	}
	return c.originAlways()
}

// originAlways is origin for a write every tracking client must hear of
// once however many shards it runs on (FLUSHALL, FLUSHDB).
func (c *conn) originAlways() string {
	return c.s.track.instance + ":" + strconv.FormatInt(c.id, 10) + ":" + strconv.FormatUint(c.seq+1, 10)
}

// Tracking reports whether a connection of this port tracks keys: the
// shards hand Modified what their writes change only then.
func (s *Server) Tracking() bool { return s.track.clients.Load() > 0 }

// Modified sends the invalidations of what a shard's writes changed, once
// they are applied and before their replies.
func (s *Server) Modified(mods []kv.Modification) {
	tt := &s.track
	if tt.clients.Load() == 0 {
		return
	}
	tt.mu.Lock()
	defer tt.mu.Unlock()
	type bucket struct { // a BCAST client's prefix: a message of its own
		c *conn
		p string
	}
	bcast := map[bucket][]*messages.Reply{}
	told := map[*conn]map[string]bool{} // a key once in a message
	for _, m := range mods {
		by, seq := s.originOf(m.Origin)
		if m.All {
			s.invalidateAll(m.Origin, by, seq)
			continue
		}
		seen := map[string]bool{}
		for _, k := range m.Keys {
			if seen[k] {
				continue
			}
			seen[k] = true
			s.invalidateKey(k, by, seq)
			for p, who := range tt.prefixes {
				if !strings.HasPrefix(k, p) {
					continue
				}
				for c := range who {
					if (c.trk.noloop && c == by) || told[c][k] {
						continue
					}
					if told[c] == nil {
						told[c] = map[string]bool{}
					}
					told[c][k] = true
					bcast[bucket{c, p}] = append(bcast[bucket{c, p}], bulkString(k))
				}
			}
		}
	}
	// A message per client and prefix, in prefix order, as Redis's
	// trackingBroadcastInvalidationMessages sends them.
	for _, b := range slices.SortedFunc(maps.Keys(bcast), func(x, y bucket) int { return strings.Compare(x.p, y.p) }) {
		s.sendTracking(b.c, array(bcast[b]...), 0, true)
	}
}

// originOf finds the connection of this port an origin names, and the
// number of its write's reply (nil: none of this port's).
func (s *Server) originOf(origin string) (*conn, uint64) {
	rest, ok := strings.CutPrefix(origin, s.track.instance+":")
	if origin == "" || !ok {
		return nil, 0
	}
	idText, seqText, _ := strings.Cut(rest, ":")
	id, err1 := strconv.ParseInt(idText, 10, 64)
	seq, err2 := strconv.ParseUint(seqText, 10, 64)
	if err1 != nil || err2 != nil {
		return nil, 0
	}
	return s.connByID(id), seq
}

// invalidateKey tells the default-mode readers of key it changed (by: the
// connection that changed it, with its write's reply number) and forgets
// it. The table's lock is held.
func (s *Server) invalidateKey(key string, by *conn, seq uint64) {
	tt := &s.track
	who := tt.keys[key]
	if who == nil {
		return
	}
	delete(tt.keys, key)
	for c := range who {
		t := c.trk
		if !t.on || t.bcast || (t.noloop && c == by) {
			continue
		}
		after := uint64(0)
		if c == by {
			after = seq
		}
		s.sendTracking(c, array(bulkString(key)), after, false)
	}
}

// invalidateAll tells every tracking connection that every key changed
// (FLUSHALL, FLUSHDB, a shard replaced by a snapshot), once per write:
// one FLUSHALL runs on every shard.
func (s *Server) invalidateAll(origin string, by *conn, seq uint64) {
	tt := &s.track
	tt.keys = nil
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		if c.trk != nil && c.trk.on {
			conns = append(conns, c)
		}
	}
	s.mu.Unlock()
	for _, c := range conns {
		if origin != "" {
			if c.trk.flushedBy == origin {
				continue // another shard's part of the same FLUSHALL
			}
			c.trk.flushedBy = origin
		}
		after := uint64(0)
		if c == by {
			after = seq
		}
		s.sendTracking(c, nil, after, false)
	}
}

// sendTracking sends an invalidation (keys nil: of every key) for c's
// cache, to c or to the connection it redirects to, after c's reply
// number after (0: after every reply it issued so far; batch: and after
// the replies written with it). The table's lock is held.
func (s *Server) sendTracking(c *conn, keys *messages.Reply, after uint64, batch bool) {
	t := c.trk
	if t.redirect == 0 {
		if c.protocol() == 3 {
			if keys == nil {
				keys = nullArray()
			}
			c.deliver(push(bulkString("invalidate"), keys), after, batch)
		}
		// A RESP2 connection that does not redirect gets nothing: RESP2
		// has no pushes, as in Redis.
		return
	}
	to := s.connByID(t.redirect)
	if to == nil {
		t.broken = true
		if c.protocol() == 3 {
			c.deliver(push(bulkString("tracking-redir-broken"), integer(t.redirect)), after, batch)
		}
		return
	}
	// To another connection, at once: its order is its own. Only one
	// whose outbox is known open (it subscribes, or tracks itself).
	subscribed := to.nsubs.Load() > 0
	if !subscribed && (to.trk == nil || !to.trk.on) {
		return
	}
	version := to.protocol()
	if keys == nil {
		keys = nullArray()
		if version == 2 {
			keys = nullBulk()
		}
	}
	switch {
	case version == 3:
		to.box.add(push(bulkString("invalidate"), keys), int64(proto.Size(keys))+32)
	case subscribed:
		to.box.add(push(bulkString("message"), bulkString(trackingChannel), keys), int64(proto.Size(keys))+48)
	}
}

// deliver queues an invalidation on c's outbox once c has written its
// reply number after (0: every reply issued so far); at once if it has
// (batch: and is not writing replies).
func (c *conn) deliver(r *messages.Reply, after uint64, batch bool) {
	t := c.trk
	t.mu.Lock()
	defer t.mu.Unlock()
	if after == 0 {
		after = t.issued.Load()
	}
	if after <= t.out.Load() && (!batch || !t.writing) {
		c.box.add(r, int64(proto.Size(r)))
		return
	}
	t.deferred = append(t.deferred, deferredPush{after: after, batch: batch, r: r})
}

// written records that c wrote its reply number seq (done: the last of
// those written together), and sends the invalidations that waited for
// it.
func (c *conn) written(seq uint64, done bool) {
	t := c.trk
	t.out.Store(seq)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.writing = !done
	kept := t.deferred[:0]
	for _, d := range t.deferred {
		if d.after > seq || (d.batch && !done) {
			kept = append(kept, d)
			continue
		}
		c.box.add(d.r, int64(proto.Size(d.r)))
	}
	clear(t.deferred[len(kept):])
	t.deferred = kept
}

// issuing marks that the command being read will issue reply number
// c.seq+1 at least: an invalidation from now on waits for it.
func (c *conn) issuing() {
	if t := c.trk; t != nil {
		t.issued.Store(c.seq + 1)
	}
}

// setReply is a RESP3 set (an array in RESP2).
func setReply(items ...*messages.Reply) *messages.Reply {
	return &messages.Reply{Value: &messages.Reply_Set{Set: &messages.Replies{Items: items}}}
}

// connByID is this port's connection of that id, or nil.
func (s *Server) connByID(id int64) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byID[id]
}

// rememberRead remembers the keys of a read the connection is about to
// issue (a command Redis flags readonly, not pub/sub's), and of a script
// its declared keys, which its calls read (Redis 7.0 remembers the
// script's declared keys for each read it makes). In MULTI, EXEC calls it
// for the queued commands.
func (c *conn) rememberRead(name string, args [][]byte) {
	spec, ok := kv.Lookup(args[0])
	if !ok || kv.CheckArity(args) != nil || spec.Has("pubsub") {
		return
	}
	flags := spec // a container's subcommand has the flags (OBJECT, MEMORY USAGE)
	if len(spec.Subcommands) > 0 && len(args) > 1 {
		if sub := spec.Sub(args[1]); sub != nil {
			flags = sub
		}
	}
	switch {
	case flags.Has("readonly"):
	case name == "eval", name == "evalsha", name == "fcall":
	default:
		return
	}
	c.remember(spec.Keys(args))
}

// untrack turns tracking off as the connection goes.
func (c *conn) untrack() {
	if c.trk == nil {
		return
	}
	c.s.track.mu.Lock()
	c.trackingOff()
	c.s.track.mu.Unlock()
}

// trackingState is CLIENT LIST's tracking flags (t tracking, R its
// redirect broken, B broadcasting) and redir (the redirect's client id,
// 0 for none, -1 when not tracking).
func (c *conn) trackingState() (flags []byte, redir int64) {
	c.s.track.mu.Lock() // c.trk is set under it, by another goroutine
	defer c.s.track.mu.Unlock()
	redir = -1
	if t := c.trk; t != nil && t.on {
		flags, redir = append(flags, 't'), t.redirect
		if t.broken {
			flags = append(flags, 'R')
		}
		if t.bcast {
			flags = append(flags, 'B')
		}
	}
	return flags, redir
}
