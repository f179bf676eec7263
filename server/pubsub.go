package server

// Pub/sub: SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE and their UNSUBSCRIBEs,
// PUBLISH, SPUBLISH, PUBSUB, as in Redis 7.0.
//
// A message published on any node reaches the subscribers of every node:
// the node delivers it to its own at once, and a backend that is a
// Broadcaster hands it to the other nodes, each of which delivers a node's
// messages in the order they were published there. PUBLISH answers the
// number of clients it reached on every node that answered in time (Redis
// Cluster answers the receiving node's only). Shard channels (SSUBSCRIBE,
// SPUBLISH) are a namespace of their own, delivered the same way: every
// node serves every slot. PUBSUB's answers count every node's subscribers
// too (a backend that is a PubSubAsker asks the others).
//
// A subscribed connection writes through its outbox, which a goroutine of
// its own empties onto the socket: messages come while the connection's
// goroutine waits for the client's next command, and they must not wait
// for it. Once the outbox exists every reply of the connection goes
// through it, so a confirmation, the messages after it and the replies to
// later commands reach the client in the order Redis writes them. A client
// that does not read its messages is disconnected, as Redis's pubsub
// client-output-buffer-limit does (32 MiB queued, or 8 MiB for 60 s).

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coppice-kv/coppice/kv"
	"github.com/coppice-kv/coppice/messages"
	"google.golang.org/protobuf/proto"
)

// Broadcaster is a backend whose node has peers: Broadcast hands a message
// to every other node's subscribers, in the order of the calls, and its
// reply is the number of clients it reached there (an integer).
type Broadcaster interface {
	Broadcast(channel, message []byte, sharded bool) Pending
}

// subKind is what a connection subscribes to.
type subKind int

const (
	channelSub subKind = iota // SUBSCRIBE
	patternSub                // PSUBSCRIBE
	shardSub                  // SSUBSCRIBE
)

// verbs are each kind's confirmations and message type, as Redis writes them.
var verbs = [3]struct{ sub, unsub, msg string }{
	{"subscribe", "unsubscribe", "message"},
	{"psubscribe", "punsubscribe", "pmessage"},
	{"ssubscribe", "sunsubscribe", "smessage"},
}

// Output limits of a subscribed connection: Redis's pubsub class.
const (
	outboxHard     = 32 << 20
	outboxSoft     = 8 << 20
	outboxSoftFor  = 60 * time.Second
	outboxReplyCap = 1 << 20 // a command's reply waits while more is queued
	outboxDrain    = 5 * time.Second
)

// hub is the node's subscriptions: who listens to what, by kind.
type hub struct {
	mu   sync.RWMutex
	subs [3]map[string]map[*conn]struct{}
}

func newHub() *hub {
	h := &hub{}
	for k := range h.subs {
		h.subs[k] = map[string]map[*conn]struct{}{}
	}
	return h
}

// publish delivers a message to this node's subscribers of channel (a
// shard channel's if sharded) and the patterns matching it, and returns
// how many connections it reached.
func (h *hub) publish(s *Server, channel, message []byte, sharded bool) int {
	kind := channelSub
	if sharded {
		kind = shardSub
	}
	var slow []*conn
	n := 0
	h.mu.RLock()
	if conns := h.subs[kind][string(channel)]; len(conns) > 0 {
		r := push(bulkString(verbs[kind].msg), bulk(channel), bulk(message))
		size := int64(len(channel) + len(message) + 32)
		for c := range conns {
			if c.box.add(r, size) {
				n++
			} else {
				slow = append(slow, c)
			}
		}
	}
	if !sharded {
		for pat, conns := range h.subs[patternSub] {
			if !kv.MatchGlob([]byte(pat), channel) {
				continue
			}
			r := push(bulkString("pmessage"), bulkString(pat), bulk(channel), bulk(message))
			size := int64(len(pat) + len(channel) + len(message) + 40)
			for c := range conns {
				if c.box.add(r, size) {
					n++
				} else {
					slow = append(slow, c)
				}
			}
		}
	}
	h.mu.RUnlock()
	s.stats.published.Add(1)
	s.stats.delivered.Add(uint64(n))
	for _, c := range slow {
		if c.box.kill() {
			h.forget(c)
			s.stats.slowSubscribers.Add(1)
			s.cfg.Log.Warn("pub/sub client disconnected: it does not read its messages",
				"id", c.id, "addr", c.nc.RemoteAddr().String(), "limit", "32 MiB, or 8 MiB for 60 s")
			c.nc.Close()
		}
	}
	return n
}

// empty reports whether nobody subscribes to a channel or a pattern.
func (h *hub) empty() bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.subs[channelSub]) == 0 && len(h.subs[patternSub]) == 0
}

// forget takes c off every subscription at once, for a connection being
// closed under its goroutine's feet (CLIENT KILL, a slow subscriber): it
// no longer counts, though its goroutine drops its own subscriptions only
// once it sees the connection closed.
func (h *hub) forget(c *conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for kind := range h.subs {
		for name, conns := range h.subs[kind] {
			if _, ok := conns[c]; ok {
				delete(conns, c)
				if len(conns) == 0 {
					delete(h.subs[kind], name)
				}
			}
		}
	}
}

// channels is PUBSUB's: channels (with at least one subscriber) of kind
// matching pattern (nil: all), sorted.
func (h *hub) channels(kind subKind, pattern []byte) []string {
	h.mu.RLock()
	defer h.mu.RUnlock()
	var out []string
	for ch := range h.subs[kind] {
		if pattern == nil || kv.MatchGlob(pattern, []byte(ch)) {
			out = append(out, ch)
		}
	}
	slices.Sort(out)
	return out
}

func (h *hub) numsub(kind subKind, channel []byte) int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.subs[kind][string(channel)])
}

func (h *hub) count(kind subKind) int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.subs[kind])
}

// Deliver hands messages published on another node to this node's
// subscribers, in order, and returns how many clients each reached.
func (s *Server) Deliver(msgs []*messages.Published) []uint32 {
	out := make([]uint32, len(msgs))
	for i, m := range msgs {
		out[i] = uint32(s.hub.publish(s, m.Channel, m.Message, m.Sharded))
	}
	return out
}

// Notify publishes keyspace events to this node's subscribers, as Redis's
// notifyKeyspaceEvent: each on "__keyspace@0__:<key>" with the event's
// name (class K) and on "__keyevent@0__:<name>" with the key (class E).
// The node's shards call it with the events of each batch they apply
// (every replica applies every write: each node tells its own
// subscribers), so unlike PUBLISH it reaches no other node.
func (s *Server) Notify(events []kv.Event) {
	classes := s.cfg.Notify.Load()
	if !classes.Fires() || s.hub.empty() {
		return
	}
	for _, e := range events {
		if classes&e.Class == 0 {
			continue
		}
		if classes&kv.ClassKeyspace != 0 {
			s.hub.publish(s, append([]byte("__keyspace@0__:"), e.Key...), []byte(e.Name), false)
		}
		if classes&kv.ClassKeyevent != 0 {
			s.hub.publish(s, append([]byte("__keyevent@0__:"), e.Name...), e.Key, false)
		}
	}
}

func push(items ...*messages.Reply) *messages.Reply {
	return &messages.Reply{Value: &messages.Reply_Push{Push: &messages.Replies{Items: items}}}
}

// subscriptions is a connection's: names by kind. Only the connection's
// goroutine changes it, under the hub's lock.
type subscriptions [3]map[string]struct{}

// countSubs publishes the connection's subscription counts to other
// goroutines (CLIENT LIST).
func (c *conn) countSubs() {
	total := 0
	for k := range c.subs {
		n := len(c.subs[k])
		c.nsubsBy[k].Store(int32(n))
		total += n
	}
	c.nsubs.Store(int32(total))
}

// total is the count Redis's confirmations carry: channels and patterns
// together, shard channels on their own.
func (c *conn) subCount(kind subKind) int {
	if kind == shardSub {
		return len(c.subs[shardSub])
	}
	return len(c.subs[channelSub]) + len(c.subs[patternSub])
}

func (c *conn) subscribed() bool {
	return len(c.subs[channelSub])+len(c.subs[patternSub])+len(c.subs[shardSub]) > 0
}

// subscribe: SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE.
func (c *conn) subscribe(kind subKind, args [][]byte) {
	if r := kv.CheckArity(args); r != nil {
		c.reply(r)
		return
	}
	c.openOutbox()
	h := c.s.hub
	h.mu.Lock()
	confirms := make([]*messages.Reply, 0, len(args)-1)
	for _, a := range args[1:] {
		name := string(a)
		if c.subs[kind] == nil {
			c.subs[kind] = map[string]struct{}{}
		}
		if _, ok := c.subs[kind][name]; !ok {
			c.subs[kind][name] = struct{}{}
			conns := h.subs[kind][name]
			if conns == nil {
				conns = map[*conn]struct{}{}
				h.subs[kind][name] = conns
			}
			conns[c] = struct{}{}
		}
		confirms = append(confirms, push(bulkString(verbs[kind].sub), bulkString(name), integer(int64(c.subCount(kind)))))
	}
	// Counted before confirmed: a client that read the confirmation finds
	// the subscription in CLIENT LIST.
	c.countSubs()
	for _, r := range confirms {
		c.box.add(r, int64(proto.Size(r)))
	}
	h.mu.Unlock()
}

// unsubscribe: UNSUBSCRIBE, PUNSUBSCRIBE, SUNSUBSCRIBE; with no names,
// from every one of the kind (in their order), or a confirmation with a
// null name when there is none.
func (c *conn) unsubscribe(kind subKind, args [][]byte) {
	if r := kv.CheckArity(args); r != nil {
		c.reply(r)
		return
	}
	c.openOutbox()
	names := make([]string, 0, len(args)-1)
	for _, a := range args[1:] {
		names = append(names, string(a))
	}
	if len(names) == 0 {
		names = slices.Sorted(maps.Keys(c.subs[kind]))
		if len(names) == 0 {
			c.box.add(push(bulkString(verbs[kind].unsub), nullBulk(), integer(int64(c.subCount(kind)))), 32)
			return
		}
	}
	c.dropSubs(kind, names, true)
}

// dropSubs takes c off the named subscriptions of kind, confirming each
// if confirm.
func (c *conn) dropSubs(kind subKind, names []string, confirm bool) {
	h := c.s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	var confirms []*messages.Reply
	for _, name := range names {
		if _, ok := c.subs[kind][name]; ok {
			delete(c.subs[kind], name)
			conns := h.subs[kind][name]
			delete(conns, c)
			if len(conns) == 0 {
				delete(h.subs[kind], name)
			}
		}
		if confirm {
			confirms = append(confirms, push(bulkString(verbs[kind].unsub), bulkString(name), integer(int64(c.subCount(kind)))))
		}
	}
	c.countSubs()
	for _, r := range confirms {
		c.box.add(r, int64(proto.Size(r)))
	}
}

// dropAllSubs ends every subscription of c, silently (RESET, a closed
// connection).
func (c *conn) dropAllSubs() {
	for kind := range c.subs {
		if len(c.subs[kind]) > 0 {
			c.dropSubs(subKind(kind), slices.Collect(maps.Keys(c.subs[kind])), false)
		}
	}
}

// publish: PUBLISH and SPUBLISH.
func (c *conn) publish(sharded bool, args [][]byte) {
	if r := kv.CheckArity(args); r != nil {
		c.reply(r)
		return
	}
	args = c.cloneArgs(args) // queued for subscribers and peers as they are
	c.push(c.publishNow(sharded, args[1], args[2]))
}

// publishNow delivers a message to this node's subscribers, hands it to
// the other nodes, and returns the pending count of the clients reached.
// channel and message must be the connection's own (not the reader's).
func (c *conn) publishNow(sharded bool, channel, message []byte) Pending {
	n := c.s.hub.publish(c.s, channel, message, sharded)
	if b, ok := c.s.backend.(Broadcaster); ok {
		return published{local: n, others: b.Broadcast(channel, message, sharded)}
	}
	return done{integer(int64(n))}
}

// published is PUBLISH's reply: this node's receivers and the others'.
type published struct {
	local  int
	others Pending
}

func (p published) Wait() *messages.Reply {
	return integer(int64(p.local) + p.others.Wait().GetInteger())
}

// PubSubAsker is a Broadcaster that can ask the other nodes about their
// subscribers (PUBSUB): the answers of those that answered in time.
type PubSubAsker interface {
	AskPubSub(q *messages.PubSubQuery) []*messages.PubSubAnswer
}

// AnswerPubSub is this node's answer to a PUBSUB query (a peer's, or its
// own).
func (s *Server) AnswerPubSub(q *messages.PubSubQuery) *messages.PubSubAnswer {
	h := s.hub
	kind := channelSub
	if q.Sharded {
		kind = shardSub
	}
	a := &messages.PubSubAnswer{}
	if q.ListChannels {
		for _, ch := range h.channels(kind, q.Pattern) {
			a.Channels = append(a.Channels, []byte(ch))
		}
	}
	for _, ch := range q.Channels {
		a.Subscribers = append(a.Subscribers, uint64(h.numsub(kind, ch)))
	}
	if q.ListPatterns {
		for _, p := range h.channels(patternSub, nil) {
			a.Patterns = append(a.Patterns, []byte(p))
		}
	}
	return a
}

// pubsubCmd: PUBSUB CHANNELS, NUMSUB, NUMPAT, SHARDCHANNELS, SHARDNUMSUB,
// HELP. On a node with peers (PubSubAsker) the answers count every node's
// subscribers, as PUBLISH counts them: channels and patterns as a union,
// subscribers summed.
func (c *conn) pubsubCmd(args [][]byte) {
	if r := kv.CheckSubcommand(args); r != nil {
		c.reply(r)
		return
	}
	sub := c.lower(args[1])
	if sub == "help" {
		lines := []string{
			"CHANNELS [<pattern>]",
			"    Return the currently active channels matching a <pattern> (default: '*').",
			"NUMPAT",
			"    Return number of subscriptions to patterns.",
			"NUMSUB [<channel> ...]",
			"    Return the number of subscribers for the specified channels, excluding",
			"    pattern subscriptions(default: no channels).",
			"SHARDCHANNELS [<pattern>]",
			"    Return the currently active shard level channels matching a <pattern> (default: '*').",
			"SHARDNUMSUB [<shardchannel> ...]",
			"    Return the number of subscribers for the specified shard level channel(s)",
		}
		c.reply(kv.HelpReply("PUBSUB", lines...))
		return
	}
	q := &messages.PubSubQuery{Sharded: strings.HasPrefix(sub, "shard")}
	switch sub {
	case "channels", "shardchannels":
		if len(args) > 3 {
			c.reply(errorf(fmt.Sprintf("ERR unknown subcommand or wrong number of arguments for '%s'. Try PUBSUB HELP.", args[1])))
			return
		}
		q.ListChannels = true
		if len(args) > 2 {
			q.Pattern = clone(args[2])
		}
	case "numsub", "shardnumsub":
		for _, ch := range args[2:] {
			q.Channels = append(q.Channels, clone(ch))
		}
	default: // numpat
		q.ListPatterns = true
	}
	answers := []*messages.PubSubAnswer{c.s.AnswerPubSub(q)}
	asker, ok := c.s.backend.(PubSubAsker)
	if !ok {
		c.reply(mergePubSub(q, answers))
		return
	}
	ch := make(chan *messages.Reply, 1)
	go func() { ch <- mergePubSub(q, append(answers, asker.AskPubSub(q)...)) }()
	c.push(waiting(ch))
}

// waiting is a reply a goroutine of its own makes.
type waiting chan *messages.Reply

func (w waiting) Wait() *messages.Reply { return <-w }

// mergePubSub is PUBSUB's reply from the nodes' answers to q.
func mergePubSub(q *messages.PubSubQuery, answers []*messages.PubSubAnswer) *messages.Reply {
	switch {
	case q.ListChannels || q.ListPatterns:
		seen := map[string]bool{}
		for _, a := range answers {
			for _, name := range append(a.Channels, a.Patterns...) {
				seen[string(name)] = true
			}
		}
		if q.ListPatterns {
			return integer(int64(len(seen)))
		}
		items := make([]*messages.Reply, 0, len(seen))
		for _, name := range slices.Sorted(maps.Keys(seen)) {
			items = append(items, bulkString(name))
		}
		return array(items...)
	}
	items := make([]*messages.Reply, 0, 2*len(q.Channels))
	for i, ch := range q.Channels {
		var n uint64
		for _, a := range answers {
			if i < len(a.Subscribers) {
				n += a.Subscribers[i]
			}
		}
		items = append(items, bulk(ch), integer(int64(n)))
	}
	return array(items...)
}

// subscribedOnly refuses, on a RESP2 connection with subscriptions, what
// Redis refuses there (after an unknown command's error and an arity
// error, as Redis); it reports whether it answered.
func (c *conn) subscribedOnly(name string, args [][]byte) bool {
	if c.proto != 2 || !c.subscribed() || c.spec == nil {
		return false
	}
	switch name {
	case "subscribe", "ssubscribe", "sunsubscribe", "psubscribe", "unsubscribe", "punsubscribe", "ping", "quit", "reset":
		return false
	}
	if r := kv.CheckArity(args); r != nil {
		c.reply(r)
		return true
	}
	if len(c.spec.Subcommands) > 0 && kv.CheckSubcommand(args) == nil {
		name += "|" + c.lower(args[1]) // Redis names the subcommand
	}
	c.reply(errorf("ERR Can't execute '" + name + "': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"))
	return true
}

// openOutbox sends the connection's output through an outbox from now on,
// once every reply issued before is written.
func (c *conn) openOutbox() {
	c.drain()
	if c.box != nil {
		return
	}
	c.wr.Flush() // an error shows in the writer's next flush
	c.box = newOutbox()
	go c.writeOutbox()
}

// writeOutbox writes what the outbox gets, until it is closed and empty
// or the connection fails.
func (c *conn) writeOutbox() {
	b := c.box
	defer close(b.done)
	for {
		items, n, ok := b.take()
		if !ok {
			return
		}
		proto := c.protocol()
		for _, r := range items {
			c.wr.WriteReply(r, proto)
		}
		err := c.wr.Flush()
		b.written(n)
		if err != nil {
			b.kill()
			c.nc.Close()
			return
		}
	}
}

// closeOutbox writes what is left (for outboxDrain at most) and stops the
// outbox's writer.
func (c *conn) closeOutbox() {
	if c.box == nil {
		return
	}
	c.nc.SetWriteDeadline(time.Now().Add(outboxDrain))
	c.box.close()
	<-c.box.done
}

// outbox is a subscribed connection's output, queued.
type outbox struct {
	mu       sync.Mutex
	cond     sync.Cond // the writer wants items; a reply wants room
	items    []*messages.Reply
	size     []int64
	bytes    int64     // queued and being written
	overSoft time.Time // since when bytes passed outboxSoft (zero: not over)
	closed   bool      // no more: the writer ends once it is empty
	dead     bool      // the connection is being closed: drop everything
	done     chan struct{}
}

func newOutbox() *outbox {
	b := &outbox{done: make(chan struct{})}
	b.cond.L = &b.mu
	return b
}

// add queues a message or a confirmation; false when the connection is
// over its limits (the caller closes it) or going.
func (b *outbox) add(r *messages.Reply, size int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dead {
		return false
	}
	b.bytes += size
	switch {
	case b.bytes > outboxHard:
		return false
	case b.bytes > outboxSoft:
		if b.overSoft.IsZero() {
			b.overSoft = time.Now()
		} else if time.Since(b.overSoft) > outboxSoftFor {
			return false
		}
	default:
		b.overSoft = time.Time{}
	}
	b.items = append(b.items, r)
	b.size = append(b.size, size)
	b.cond.Broadcast()
	return true
}

// reply queues a command's reply, first waiting while more than
// outboxReplyCap is queued: a client that pipelines commands without
// reading makes its commands wait, not the node's memory grow.
func (b *outbox) reply(r *messages.Reply) {
	size := int64(proto.Size(r))
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.bytes > outboxReplyCap && !b.dead {
		b.cond.Wait()
	}
	if b.dead {
		return
	}
	b.bytes += size
	b.items = append(b.items, r)
	b.size = append(b.size, size)
	b.cond.Broadcast()
}

// take waits for items and takes them all, with their bytes; false once
// the outbox is closed and empty, or dead.
func (b *outbox) take() ([]*messages.Reply, int64, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.items) == 0 && !b.closed && !b.dead {
		b.cond.Wait()
	}
	if b.dead || len(b.items) == 0 {
		return nil, 0, false
	}
	items := b.items
	var n int64
	for _, s := range b.size {
		n += s
	}
	b.items, b.size = nil, b.size[:0]
	return items, n, true
}

// written gives back the room of n bytes written.
func (b *outbox) written(n int64) {
	b.mu.Lock()
	b.bytes -= n
	b.cond.Broadcast()
	b.mu.Unlock()
}

// kill drops everything queued and refuses more; it reports whether it
// was the one to do it.
func (b *outbox) kill() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dead {
		return false
	}
	b.dead, b.items = true, nil
	b.cond.Broadcast()
	return true
}

func (b *outbox) close() {
	b.mu.Lock()
	b.closed = true
	b.cond.Broadcast()
	b.mu.Unlock()
}
