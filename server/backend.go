package server

import "github.com/coppice-kv/coppice/messages"

// Backend is what the client port needs of the node: the shards' Raft
// actors and state machines. Calls return at once; Wait blocks (bounded by
// the backend's own timeouts) for the outcome.
type Backend interface {
	// Shards is the number of shards.
	Shards() int
	// Propose commits a write command on shard's leader.
	Propose(shard int, cmd *messages.Command) Pending
	// Read runs a read-only command on shard after a read barrier: it sees
	// every write acknowledged before it was called.
	Read(shard int, cmd *messages.Command) Pending
	// Scan runs one step of SCAN on shard, with Read's guarantee; the
	// reply is an array: the key to go on after (null when the shard is
	// done), then the keys.
	Scan(shard int, req *messages.ScanShard) Pending
}

// Prober is a Backend that can answer a write that would change nothing
// without its shard's log, as Redis answers such a write without
// propagating it (kv.Probe).
type Prober interface {
	// Probe takes write command cmd on shard when it may change nothing.
	// settled: p's reply is known, and the write changed nothing. Not
	// settled, p may still write (and note its log index in to, when not
	// nil) when waited for: the commands after it on shard must wait for
	// it. p nil: cmd is the caller's to propose. Called only when the
	// connection has no write in flight on shard, or, with behind, none
	// but probes not settled, which p must then wait for: its answer
	// comes only once waited for, after theirs (never settled).
	Probe(shard int, cmd *messages.Command, to *LogIndexes, behind bool) (p Pending, settled bool)
}

// Pending is an operation under way.
type Pending interface {
	Wait() *messages.Reply
}

// done is a Pending that has its reply already.
type done struct{ r *messages.Reply }

func (d done) Wait() *messages.Reply { return d.r }
