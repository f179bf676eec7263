package actors

// TrustStores: an operator's way out of the wait the Raft fork's
// LostStoreGuard imposes on a group that started on empty stores (a lost
// data dir), for when no leader can ever end it: the group's other voters
// lost their stores too. See raft.Raft.TrustStores: it is unsafe.

import (
	"context"
	"errors"
	"fmt"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/hashicorp/raft"
)

// trustStores asks a group's actor to end its LostStoreGuard wait; it
// answers trusted.
type trustStores struct{}

// trusted answers trustStores: whether the group was withholding its
// votes.
type trusted struct{ was bool }

// answerTrust ends r's wait off the actor's mailbox (it writes the
// stable store) and answers to, if there is one to answer.
func answerTrust(root *actor.RootContext, to *actor.PID, r *raft.Raft) {
	go func() {
		was := r.TrustStores()
		if to != nil {
			root.Send(to, trusted{was: was})
		}
	}()
}

// TrustStores ends the LostStoreGuard wait of every Raft group of the node
// running in sys (its system group and its shards' groups) that withholds
// its votes, and returns those groups ("system", "shard 2"; empty, not
// nil, when none did).
func TrustStores(ctx context.Context, sys *actor.ActorSystem, shards int) ([]string, error) {
	names := []string{"system"}
	for i := range shards {
		names = append(names, fmt.Sprintf("shard %d", i))
	}
	out := []string{}
	var errs []error
	for i, p := range groupPaths(shards) {
		res, err := Ask(ctx, sys, actor.NewPID(sys.Address(), p), trustStores{}, askTimeout)
		t, ok := res.(trusted)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", names[i], err))
		case !ok:
			errs = append(errs, fmt.Errorf("%s answered %T", names[i], res))
		case t.was:
			out = append(out, names[i])
		}
	}
	return out, errors.Join(errs...)
}
