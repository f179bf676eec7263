package gossip

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/serf/serf"

	"github.com/coppice-kv/coppice/internal/netfail"
	"github.com/coppice-kv/coppice/messages"
)

// QueueLimit is how many events a Gossip holds for a caller that is not
// receiving before it drops the oldest.
const QueueLimit = 1024

// queueLimit is QueueLimit; tests lower it.
var queueLimit = QueueLimit

// serfEventBuffer sizes the channel serf writes into. The pump drains it at
// once; the buffer only absorbs bursts (with SnapshotPath serf drops events
// when it is full).
const serfEventBuffer = 256

// Gossip is one serf member. Its methods are safe for concurrent use.
type Gossip struct {
	name string
	addr string // Addr(), kept for the merge delegate, which may not call serf
	log  *slog.Logger
	serf *serf.Serf
	// serfLog is what serf and memberlist log through.
	serfLog logWriter

	serfEvents chan serf.Event
	out        chan<- *messages.MemberEvent
	stop       chan struct{}
	pumpDone   chan struct{}
	limit      int
	dropped    atomic.Uint64
	shutdown   sync.Once
	onRefused  func(member string, err error) // Config.OnRefused

	joinMu sync.Mutex // one Join at a time

	mu      sync.Mutex
	tags    Tags  // ours, as the merge delegate compares them
	joining bool  // our Join is running: check our own name too
	refusal error // the last merge refusal while joining
}

// Start validates cfg, starts serf listening on cfg.BindAddr and returns
// the running Gossip. Events go to events (see the package doc on
// backpressure). The local node's own JOIN is the first event.
func Start(cfg Config, events chan<- *messages.MemberEvent) (*Gossip, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if events == nil {
		return nil, ErrNoEvents
	}
	lg := cfg.Log
	if lg == nil {
		lg = slog.Default()
	}
	lg = lg.With("node", cfg.Name)
	self := cmp.Or(cfg.AdvertiseAddr, cfg.BindAddr)
	w := logWriter{log: lg.With("component", "serf"), self: &atomic.Pointer[string]{}}
	w.self.Store(&self)
	sc, err := cfg.serfConfig(log.New(w, "", 0))
	if err != nil {
		return nil, err
	}
	g := &Gossip{
		name:       cfg.Name,
		log:        lg,
		serfEvents: make(chan serf.Event, serfEventBuffer),
		out:        events,
		stop:       make(chan struct{}),
		pumpDone:   make(chan struct{}),
		limit:      queueLimit,
		tags:       cfg.Tags,
		onRefused:  cfg.OnRefused,
		serfLog:    w,
	}
	sc.EventCh = g.serfEvents
	sc.Merge = mergeDelegate{g}
	go g.pump()
	if g.serf, err = serf.Create(sc); err != nil {
		close(g.stop)
		<-g.pumpDone
		return nil, fmt.Errorf("gossip: start serf on %s: %w", cfg.BindAddr, err)
	}
	n := g.serf.Memberlist().LocalNode()
	g.addr = hostPort(n.Addr, n.Port)
	self = fmt.Sprintf("%v:%d", n.Addr, n.Port) // as memberlist prints it, once it has chosen (port 0, 0.0.0.0)
	w.self.Store(&self)
	g.log.Info("gossip started", "addr", g.Addr(), "encrypted", g.serf.EncryptionEnabled(),
		"snapshot", cfg.SnapshotPath)
	return g, nil
}

// pump moves serf's member events to the caller without ever making serf
// wait; see the package doc.
func (g *Gossip) pump() {
	defer close(g.pumpDone)
	var queue []*messages.MemberEvent
	for {
		var out chan<- *messages.MemberEvent
		var head *messages.MemberEvent
		if len(queue) > 0 {
			out, head = g.out, queue[0]
		}
		select {
		case e := <-g.serfEvents:
			me, ok := e.(serf.MemberEvent)
			if !ok {
				continue // user events and queries are not ours
			}
			if len(queue) == g.limit {
				queue[0] = nil
				queue = queue[1:]
				n := g.dropped.Add(1)
				g.log.Warn("gossip event dropped: receiver is behind", "dropped", n)
			}
			queue = append(queue, g.event(me))
		case out <- head:
			queue[0] = nil
			queue = queue[1:]
		case <-g.stop:
			return
		}
	}
}

// Join contacts seeds (host:port, or name/host:port) and merges with their
// cluster. It returns how many seeds answered; err is non-nil only when
// none did, and then wraps the refusal (ErrClusterMismatch,
// ErrShardsMismatch, ErrNameConflict, ...) when there was one. It logs a
// failure at debug level only: the caller decides what it means.
func (g *Gossip) Join(seeds []string) (int, error) {
	if len(seeds) == 0 {
		return 0, fmt.Errorf("%w: no seeds", ErrJoin)
	}
	g.joinMu.Lock()
	defer g.joinMu.Unlock()
	g.mu.Lock()
	g.joining, g.refusal = true, nil
	g.mu.Unlock()
	n, err := g.serf.Join(seeds, true)
	g.mu.Lock()
	refusal := g.refusal
	g.joining, g.refusal = false, nil
	g.mu.Unlock()
	if err != nil {
		if n == 0 && refusal != nil {
			err = refusal
		} else if multi, ok := err.(interface{ WrappedErrors() []error }); ok {
			// memberlist's multierror prints a bulleted list; make it a line.
			var msgs []string
			for _, e := range multi.WrappedErrors() {
				msgs = append(msgs, e.Error())
			}
			err = errors.New(strings.Join(msgs, "; "))
		}
		g.log.Debug("gossip join failed", "seeds", seeds, "contacted", n, "err", err) // the caller tells
		return n, fmt.Errorf("%w (seeds %s): %w", ErrJoin, strings.Join(seeds, ","), err)
	}
	g.log.Info("gossip joined", "seeds", seeds, "contacted", n)
	return n, nil
}

// Members returns every member serf knows, this node included, failed and
// left ones until they are reaped, sorted by name.
func (g *Gossip) Members() []*messages.Member {
	ms := g.serf.Members()
	out := make([]*messages.Member, len(ms))
	for i := range ms {
		out[i] = g.member(&ms[i])
	}
	slices.SortFunc(out, func(a, b *messages.Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// LocalMember returns this node as the others see it.
func (g *Gossip) LocalMember() *messages.Member {
	m := g.serf.LocalMember()
	return g.member(&m)
}

// SetTags replaces this node's tags and gossips them; the others get a
// MEMBER_UPDATE. From now on the merge checks compare against the new
// cluster ID and shard count. An error after validation means the update
// was applied here but its broadcast was not confirmed in time; gossip
// still carries it.
func (g *Gossip) SetTags(t Tags) error {
	if err := t.Validate(); err != nil {
		return err
	}
	g.mu.Lock()
	g.tags = t
	g.mu.Unlock()
	if err := g.serf.SetTags(t.Encode()); err != nil {
		return fmt.Errorf("gossip: set tags: %w", err)
	}
	return nil
}

// Leave tells the cluster this node is leaving, waits (bounded) for the
// message to spread, and clears the snapshot's member list. Call Shutdown
// after it.
func (g *Gossip) Leave() error {
	g.log.Info("gossip leaving")
	if err := g.serf.Leave(); err != nil {
		return fmt.Errorf("gossip: leave: %w", err)
	}
	return nil
}

// Shutdown stops serf and every goroutine of this Gossip; queued events
// are discarded. Without Leave first, the others see this node FAILED.
// Safe to call more than once.
func (g *Gossip) Shutdown() error {
	var err error
	g.shutdown.Do(func() {
		err = g.serf.Shutdown()
		close(g.stop)
		<-g.pumpDone
		g.log.Info("gossip stopped", "err", err)
	})
	if err != nil {
		return fmt.Errorf("gossip: shutdown: %w", err)
	}
	return nil
}

// Done is closed when serf stops: after Shutdown, or when serf shuts
// itself down having lost a name conflict vote.
func (g *Gossip) Done() <-chan struct{} { return g.serf.ShutdownCh() }

// Dropped returns how many events were dropped because the receiver was
// behind.
func (g *Gossip) Dropped() uint64 { return g.dropped.Load() }

// Addr returns the ip:port the others gossip with us at.
func (g *Gossip) Addr() string { return g.addr }

func hostPort(ip net.IP, port uint16) string {
	return net.JoinHostPort(ip.String(), strconv.Itoa(int(port)))
}

var eventKinds = map[serf.EventType]messages.MemberEventKind{
	serf.EventMemberJoin:   messages.MemberEventKind_MEMBER_JOIN,
	serf.EventMemberUpdate: messages.MemberEventKind_MEMBER_UPDATE,
	serf.EventMemberLeave:  messages.MemberEventKind_MEMBER_LEAVE,
	serf.EventMemberFailed: messages.MemberEventKind_MEMBER_FAILED,
	serf.EventMemberReap:   messages.MemberEventKind_MEMBER_REAP,
}

var statuses = map[serf.MemberStatus]messages.MemberStatus{
	serf.StatusAlive:   messages.MemberStatus_ALIVE,
	serf.StatusLeaving: messages.MemberStatus_LEAVING,
	serf.StatusLeft:    messages.MemberStatus_LEFT,
	serf.StatusFailed:  messages.MemberStatus_FAILED,
}

// event converts a serf member event and logs it.
func (g *Gossip) event(e serf.MemberEvent) *messages.MemberEvent {
	me := &messages.MemberEvent{Kind: eventKinds[e.Type]}
	names := make([]string, len(e.Members))
	for i := range e.Members {
		me.Members = append(me.Members, g.member(&e.Members[i]))
		names[i] = e.Members[i].Name
	}
	g.log.Info("gossip member event", "kind", me.Kind.String(), "members", names)
	return me
}

// member converts a serf member. Tags that do not decode (which the merge
// checks keep out of the cluster) are passed on raw in Member.tags.
func (g *Gossip) member(m *serf.Member) *messages.Member {
	pm := &messages.Member{
		Name:       m.Name,
		GossipAddr: hostPort(m.Addr, m.Port),
		Status:     statuses[m.Status],
	}
	t, err := DecodeTags(m.Tags)
	if err != nil {
		g.log.Warn("gossip member has bad tags", "member", m.Name, "err", err)
		pm.Tags = maps.Clone(m.Tags)
		return pm
	}
	pm.ClusterAddr, pm.ClientAddr, pm.HttpAddr = t.ClusterAddr, t.ClientAddr, t.HTTPAddr
	pm.Role, pm.ClusterId, pm.Shards, pm.DiskLow = t.Role, t.ClusterID, uint32(t.Shards), t.DiskLow
	pm.BootstrapExpect, pm.DataDirId = uint32(t.BootstrapExpect), t.DataDirID
	pm.Tags = extraTags(m.Tags)
	return pm
}

// mergeDelegate is serf's MergeDelegate. Serf calls it with the remote
// state on a join (both sides) and with each alive message after, so a
// refusal here keeps a stranger out of the member list on every path.
type mergeDelegate struct{ g *Gossip }

func (d mergeDelegate) NotifyMerge(members []*serf.Member) error {
	g := d.g
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, m := range members {
		self := ""
		if g.joining {
			self = g.addr
		}
		if err := admit(m, g.name, g.tags, self); err != nil {
			if g.joining {
				// Join returns it, and its caller tells.
				g.log.Debug("gossip refused member", "member", m.Name, "addr", hostPort(m.Addr, m.Port), "err", err)
				g.refusal = err
			} else {
				g.log.Warn("gossip refused member", "member", m.Name, "addr", hostPort(m.Addr, m.Port), "err", err)
				if g.onRefused != nil {
					g.onRefused(m.Name, err)
				}
			}
			return err
		}
	}
	return nil
}

// admit decides whether a remote member may merge with us, whose name and
// tags are given. When self (our address) is set, as while we join, a
// member with our name at another address that has not left is a name
// conflict (*NameConflictError): serf tells a merge only whether a member
// left, not whether it is alive, so a node restarted at new addresses is
// refused until the others forget its earlier run (the caller tells the
// two apart and tries again). It must not call serf or memberlist:
// memberlist calls the delegate with its node lock held.
func admit(m *serf.Member, name string, ours Tags, self string) error {
	if err := ValidateName(m.Name); err != nil {
		return err
	}
	theirs, err := DecodeTags(m.Tags)
	if err != nil {
		return fmt.Errorf("member %q: %w", m.Name, err)
	}
	if ours.ClusterID != "" && theirs.ClusterID != "" && ours.ClusterID != theirs.ClusterID {
		return fmt.Errorf("%w: member %q has cluster id %q, want %q", ErrClusterMismatch, m.Name, theirs.ClusterID, ours.ClusterID)
	}
	if ours.Shards != 0 && theirs.Shards != 0 && ours.Shards != theirs.Shards {
		return fmt.Errorf("%w: member %q has %d shards, want %d", ErrShardsMismatch, m.Name, theirs.Shards, ours.Shards)
	}
	if addr := hostPort(m.Addr, m.Port); self != "" && m.Name == name && m.Status != serf.StatusLeft && addr != self {
		return &NameConflictError{Name: name, Addr: addr, ClusterAddr: theirs.ClusterAddr, Self: self}
	}
	return nil
}

// logWriter turns serf's and memberlist's "[LEVEL] text" lines into slog
// records. Their INFO lines repeat what this package logs, so they go to
// Debug; an error that is a peer's network failure goes to Warn
// (peerFailure), a warning every restart makes goes to Info (routine),
// and one about a socket this node closed as it stops (the node's own
// stop, netfail.Closed) to Debug.
type logWriter struct {
	log *slog.Logger
	// self is the address this node gossips from, as memberlist prints
	// it ("ip:port"), to tell its own restart from a name conflict: the
	// configured one, then the one memberlist advertises once it runs.
	self *atomic.Pointer[string]
}

func (w logWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	level := slog.LevelInfo
	for prefix, l := range map[string]slog.Level{
		"[TRACE]": slog.LevelDebug, "[DEBUG]": slog.LevelDebug, "[INFO]": slog.LevelDebug,
		"[WARN]": slog.LevelWarn, "[ERR]": slog.LevelError, "[ERROR]": slog.LevelError,
	} {
		if rest, ok := strings.CutPrefix(msg, prefix); ok {
			msg, level = strings.TrimSpace(rest), l
			break
		}
	}
	switch {
	case level >= slog.LevelWarn && netfail.Closed(lineError(msg)):
		level = slog.LevelDebug
	case level == slog.LevelError && peerFailure(msg):
		level = slog.LevelWarn
	case level == slog.LevelWarn && (routine(msg) || w.ownRestart(msg)):
		level = slog.LevelInfo
	}
	w.log.Log(context.Background(), level, msg)
	return len(p), nil
}

// lineError is a serf or memberlist line up to the end of its error:
// without the " from=ADDR" that may follow it.
func lineError(msg string) string {
	msg, _, _ = strings.Cut(msg, " from=")
	return msg
}

// ownRestart tells whether a warning is memberlist refuting word of this
// node alive at its own address with other metadata: its previous run's
// (serf encodes the tags in no set order, so the same tags differ in
// bytes from one run to the next). Word of it alive at another address
// is a name conflict, and stays a warning.
func (w logWriter) ownRestart(msg string) bool {
	self := ""
	if w.self != nil {
		self = *w.self.Load()
	}
	return self != "" && strings.HasPrefix(msg, refutingAlive) && strings.Contains(msg, " ("+self+") meta:")
}

// refutingAlive begins memberlist's warning that it refutes word of this
// node alive (ownRestart).
const refutingAlive = "memberlist: Refuting an alive message for "

// routineWarnings are serf's and memberlist's warnings that every restart
// of a node makes, on that node: it stops without a leave (a SIGTERM is
// not a departure: the node comes back and catches up), and once back it
// refutes the others' suspicion that it failed, or their word that it
// died. Its peers' failed probes, logged as warnings, tell of a node
// that does not come back. Refuting another node's word that it is alive
// at other addresses (a name conflict) stays a warning.
var routineWarnings = []string{
	"serf: Shutdown without a Leave",
	"memberlist: Refuting a suspect message ",
	"memberlist: Refuting a dead message ",
}

// routine tells whether a serf or memberlist warning is one of
// routineWarnings: an info line.
func routine(msg string) bool {
	return slices.ContainsFunc(routineWarnings, func(p string) bool { return strings.HasPrefix(msg, p) })
}

// peerFailure tells whether a memberlist error line is a peer's network
// failure (a probe that timed out, a push/pull refused): what every fault
// of another node makes each node log, not this node's own trouble. The
// failure ends the line's error, which may be followed by " from=ADDR".
func peerFailure(msg string) bool { return netfail.Text(lineError(msg)) }
