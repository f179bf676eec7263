package actors

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coppice-kv/coppice/internal/testwait"
	"github.com/coppice-kv/coppice/kv"
	"github.com/coppice-kv/coppice/messages"
	"github.com/coppice-kv/coppice/server"
)

// Probe answers a write that changes nothing at once only where this node
// leads the shard as its only voter; where it leads with other voters
// (a hint the barrier confirms), after a read barrier and a second probe,
// and a write that changed something meanwhile is proposed then; where
// it does not lead (a follower, a read-only node, no leader), never.
func TestProbeByHowTheNodeLeads(t *testing.T) {
	rt := &Runtime{Name: "n1", DataDir: t.TempDir(), Shards: 1, ClusterAddr: "127.0.0.1:0", Exec: kv.ExecEvents}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := Start(ctx, Config{Runtime: rt}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop(ctx)
	b := newBackend(rt, n.System)
	cmd := func(args ...string) *messages.Command {
		c := &messages.Command{NowMs: time.Now().UnixMilli()}
		for _, a := range args {
			c.Args = append(c.Args, []byte(a))
		}
		return c
	}
	lastIndex := func() uint64 {
		res, err := n.System.Root.RequestFuture(actor.NewPID(n.System.Address(), RaftPath(0)), &messages.ShardStatus{}, 10*time.Second).Result()
		if err != nil {
			t.Fatal(err)
		}
		return res.(*messages.ShardStatusReply).LastIndex
	}
	testwait.For(t, 10*time.Second, 10*time.Millisecond, "the sole leader answering a DEL of a missing key", func() error {
		if p, settled := b.Probe(0, cmd("DEL", "missing"), nil, false); p == nil || !settled || p.Wait().GetInteger() != 0 {
			return errors.New("not answered")
		}
		return nil
	})
	// Behind probes that may write yet, even the sole leader answers
	// only when waited for, after them.
	if p, settled := b.Probe(0, cmd("DEL", "missing"), nil, true); p == nil || settled {
		t.Fatalf("a probe behind others: %v, settled %v; want one answered when waited for", p, settled)
	} else if r := p.Wait(); r.GetInteger() != 0 {
		t.Fatalf("a DEL of a missing key behind other probes: %v", r)
	}
	if r := b.Propose(0, cmd("SADD", "s", "a")).Wait(); r.GetInteger() != 1 {
		t.Fatalf("SADD s a: %v", r)
	}

	// Leading with other voters, as the hint says: the watch sets the
	// hint back every second, so it is set again before each probe.
	asLeader := func(c *messages.Command) (server.Pending, bool) {
		for range 100 {
			rt.setLead(0, shardLead{leads: true, voters: 3})
			if p, settled := b.Probe(0, c, nil, false); p == nil || !settled {
				return p, settled
			}
		}
		t.Fatal("the watch kept the node sole")
		return nil, false
	}
	before, counted := lastIndex(), rt.clients.Snapshot().Unlogged
	p, _ := asLeader(cmd("SADD", "s", "a"))
	if p == nil {
		t.Fatal("SADD of a member there declined by the leader")
	}
	if r := p.Wait(); r.GetInteger() != 0 {
		t.Fatalf("SADD of a member there, after the barrier: %v", r)
	}
	if after := lastIndex(); after != before {
		t.Fatalf("the confirmed probe reached the log: last index %d -> %d", before, after)
	}
	if got := rt.clients.Snapshot().Unlogged; got != counted+1 {
		t.Fatalf("writes counted as answered without the log: %d -> %d, want one more", counted, got)
	}
	// It changes nothing as probed, but something before its barrier
	// answers: it is proposed, and adds the member.
	p, _ = asLeader(cmd("SADD", "s", "a"))
	if p == nil {
		t.Fatal("SADD of a member there declined by the leader")
	}
	if r := b.Propose(0, cmd("SREM", "s", "a")).Wait(); r.GetInteger() != 1 {
		t.Fatalf("SREM s a: %v", r)
	}
	if r := p.Wait(); r.GetInteger() != 1 {
		t.Fatalf("SADD after the member was removed under it: %v, want 1", r)
	}
	if r := b.view(0, func(r kv.Reader) *messages.Reply {
		return kv.Read(r, [][]byte{[]byte("SISMEMBER"), []byte("s"), []byte("a")}, time.Now().UnixMilli())
	}); r.GetInteger() != 1 {
		t.Fatalf("SISMEMBER s a after the SADD: %v", r)
	}
	// A write that changes something is declined at once: proposed.
	rt.setLead(0, shardLead{leads: true, voters: 3})
	if p, _ := b.Probe(0, cmd("SADD", "s", "b"), nil, false); p != nil {
		t.Fatalf("SADD of a new member taken by the probe: %v", p.Wait())
	}
	if r := b.Propose(0, cmd("SADD", "s", "b")).Wait(); r.GetInteger() != 1 {
		t.Fatalf("SADD s b: %v", r)
	}

	// A write a peer forwarded: answered here when it changes nothing,
	// with no log index for the peer's WAIT; proposed when it writes.
	before = lastIndex()
	rt.setLead(0, shardLead{leads: true, voters: 3})
	fwd := func(args ...string) *messages.ForwardReply {
		return b.runForwarded(ctx, &messages.Forward{Shard: 0, Write: true, Command: cmd(args...)})
	}
	if r := fwd("SREM", "s", "nothere"); r.Reply.GetInteger() != 0 || r.Index != 0 || r.NotApplied {
		t.Fatalf("a forwarded SREM of a member not there: %+v", r)
	}
	if after := lastIndex(); after != before {
		t.Fatalf("the forwarded SREM reached the log: last index %d -> %d", before, after)
	}
	if r := fwd("SREM", "s", "b"); r.Reply.GetInteger() != 1 || r.Index <= before {
		t.Fatalf("a forwarded SREM of a member: %+v, want 1 and its log index", r)
	}

	// Not leading: declined.
	rt.setLead(0, shardLead{other: leaderRef{id: "n2", addr: "127.0.0.1:1"}, voters: 3})
	if p, _ := b.Probe(0, cmd("DEL", "missing"), nil, false); p != nil {
		t.Fatalf("a follower answered %v", p.Wait())
	}
}
