package gossip

import (
	"errors"
	"fmt"
)

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

// NameConflictError is a refusal to join: a member of the cluster that has
// not left (alive, or failed and not yet forgotten) has our name at another
// address. It is ErrNameConflict (errors.Is). Addr and
// ClusterAddr are the member's: whoever holds the name can tell a live twin
// from its own earlier run, not yet seen to fail, by asking there.
type NameConflictError struct {
	Name, Addr, ClusterAddr, Self string
}

func (e *NameConflictError) Error() string {
	return fmt.Sprintf("%v: %q is already a member at %s, we are at %s", ErrNameConflict, e.Name, e.Addr, e.Self)
}

func (e *NameConflictError) Unwrap() error { return ErrNameConflict }
