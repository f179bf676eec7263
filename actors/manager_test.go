package actors_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/coppice-kv/coppice/actors"
)

// With the manager's tick an hour long a node still joins, so every step
// of a join is prompted, none waits for the tick: the first node becoming
// the system group's leader makes its cluster, the second node's join
// event journals the add, the pass that journaled it runs the next one at
// once (the node joins the system group, the shard syncs start), and each
// shard synced drives the op on until the node is a member. The
// watcher's periodic resync, which changes nothing, prompts nothing.
// Taking out any one of these prompts fails the test.
func TestManagerActsOnEventsNotTheTick(t *testing.T) {
	slow := func(rt *actors.Runtime) { rt.ManagerTick = time.Hour }
	g1 := freeAddr(t)
	n1 := startClusterNodeWith(t, "n1", g1, slow)
	startClusterNodeWith(t, "n2", freeAddr(t), slow, g1)
	waitFor(t, 60*time.Second, "n2 added (a member, its op done)", func() error {
		st, err := nodeStatus(n1)
		if err != nil {
			return err
		}
		if len(st.Ops) > 0 {
			return fmt.Errorf("ops under way: %v", st.Ops)
		}
		for _, n := range st.Nodes {
			if n.Name == "n2" && n.Member {
				return nil
			}
		}
		return fmt.Errorf("nodes %v", st.Nodes)
	})
}
