package storage

import "errors"

// Errors of the storage package; wrapped errors carry the detail.
var (
	ErrBadIdentity     = errors.New("storage: bad node.json")
	ErrOtherNode       = errors.New("storage: data dir belongs to another node")
	ErrShardCount      = errors.New("storage: data dir has a different shard count")
	ErrOtherCluster    = errors.New("storage: data dir belongs to another cluster")
	ErrBadSnapshot     = errors.New("storage: bad snapshot")
	ErrSnapshotMissing = errors.New("storage: snapshot not found")
	ErrClosed          = errors.New("storage: shard is closed")
	ErrRestoring       = errors.New("storage: data dir is being restored")
	// ErrCorrupt is on-disk corruption Pebble found (a block whose
	// checksum does not match): this node's copy of the data is damaged.
	ErrCorrupt = errors.New("storage: on-disk corruption")
)
