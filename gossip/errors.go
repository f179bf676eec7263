package gossip

import "errors"

var (
	ErrBadConfig       = errors.New("gossip: bad config")
	ErrBadName         = errors.New("gossip: bad node name")
	ErrBadTags         = errors.New("gossip: bad tags")
	ErrNoEvents        = errors.New("gossip: events channel is nil")
	ErrClusterMismatch = errors.New("gossip: cluster id mismatch")
	ErrShardsMismatch  = errors.New("gossip: shard count mismatch")
	ErrNameConflict    = errors.New("gossip: name conflict")
	ErrJoin            = errors.New("gossip: join failed")
	ErrKeyring         = errors.New("gossip: bad keyring file")
)
