// Package gossip is the node's membership and failure detection: a thin
// wrapper around hashicorp/serf (and memberlist beneath it) that speaks the
// node's own types. The watcher actor owns one Gossip; nothing else should.
//
// # What it gives
//
// Every serf member event (join, update, leave, failed, reap) arrives on the
// caller's channel as a *messages.MemberEvent whose members carry their
// decoded Tags: the cluster, client and HTTP addresses, the role, the shard
// count and the cluster ID. Members and LocalMember give the current view.
//
// # What the caller must do
//
//  1. Build a Config (ValidateName for the name; Validate is called by
//     Start) and Start it with a buffered channel it drains promptly.
//  2. Call Join with seeds when the node is started with --join; Join is
//     also where refusals show (see below). A node restarted with
//     SnapshotPath rejoins the members it knew without seeds, in the
//     background.
//  3. Treat events as hints, not a log: feed them to a reconcile loop whose
//     handlers are safe to repeat, and reconcile against Members now and
//     then. Events are not coalesced, may repeat a state (a FAILED member
//     refuting its death comes back as JOIN), and are dropped when the
//     caller falls behind (see Backpressure); Dropped counts them.
//  4. When the cluster ID becomes known (after bootstrap, or when the system
//     group tells us), call SetTags so peers see it and refuse strangers.
//  5. To depart, Leave then Shutdown. Shutdown alone is a crash as far as
//     the others can tell: they see the node FAILED, and it comes back as
//     JOIN when it restarts. Watch Done: serf stops on its own when it loses
//     a name conflict vote; the owner must still call Shutdown.
//
// # Refusals
//
// A node is refused at merge time (serf's MergeDelegate), so neither side's
// membership changes, when its tags carry a non-empty cluster ID other than
// ours (ErrClusterMismatch) or a non-zero shard count other than ours
// (ErrShardsMismatch), or when its tags or name are malformed (ErrBadTags,
// ErrBadName). An empty ID or a zero count is "not known yet" and matches
// anything. The check runs on both the joining and the joined side, and on
// every alive message later on, so a member that switches to another
// cluster ID is ignored rather than merged. Join wraps the refusal, so
// errors.Is(err, ErrClusterMismatch) works on its result.
//
// While our own Join runs, a seed whose state shows our name alive at
// another address is refused too (ErrNameConflict). A conflict found
// later, outside Join, is left to serf's own resolution: the cluster votes
// and the minority side's serf shuts down (Done is closed).
//
// With EncryptKey or KeyringFile every gossip packet is encrypted and
// verified; a node without the key cannot join (Join fails within about
// memberlist's TCP timeout: 10s, 1s with Fast).
//
// # Backpressure
//
// Serf delivers events while holding its member lock, so it must never wait
// on the caller. A goroutine owned by the Gossip drains serf at once into a
// queue of up to QueueLimit events and hands them to the caller's channel
// in order as the caller receives. When the queue is full the oldest queued
// event is dropped, counted (Dropped) and logged: the caller is expected to
// recover by reconciling against Members.
//
// # Bounds
//
// Join waits at most memberlist's TCP timeout per seed address. Leave waits
// at most twice serf's broadcast timeout plus its leave propagation delay
// (about 11s, 2.1s with Fast). Shutdown stops every goroutine this package
// started and serf's own.
package gossip
