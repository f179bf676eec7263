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

// Pending is an operation under way.
type Pending interface {
	Wait() *messages.Reply
}

// done is a Pending that has its reply already.
type done struct{ r *messages.Reply }

func (d done) Wait() *messages.Reply { return d.r }
