package actors

// client: supervised by node (rest_for_one), permanent worker. It owns the
// RESP listener (package server) and is its Backend: writes go to the
// shard's raft actor as messages.Propose, reads after a messages.ReadBarrier
// (or directly while this node is the shard's only voter and leader).

import (
	"context"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coppice-kv/coppice/kv"
	"github.com/coppice-kv/coppice/messages"
	"github.com/coppice-kv/coppice/resp"
	"github.com/coppice-kv/coppice/server"
)

const (
	proposeTimeout = 15 * time.Second
	barrierTimeout = 10 * time.Second
)

// ClientPath is the client actor's path: peers send it messages.Forward.
const ClientPath = RootName + "/client"

type clientActor struct {
	rt  *Runtime
	srv *server.Server
	// local runs forwarded commands: it answers here or fails, and never
	// forwards again, so a stale leader hint cannot bounce a command around.
	local *backend
}

func (c *clientActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		b := newBackend(c.rt, ctx.ActorSystem())
		c.local = newBackend(c.rt, ctx.ActorSystem())
		c.local.local = true
		srv, err := server.Listen(server.Config{
			Addr: c.rt.ClientAddr, RequirePass: c.rt.RequirePass, Limits: resp.DefaultLimits(),
			NodeName: c.rt.Name, Version: c.rt.Version, Log: c.rt.logger(),
		}, b)
		if err != nil {
			panic(err)
		}
		c.srv = srv
		c.rt.setClientAddr(srv.Addr().String())
		c.rt.logger().Info("client port", "addr", srv.Addr().String())
	case *messages.Forward:
		// Waiting on the shard would block the mailbox: answer from a
		// goroutine (the sender is a future).
		to, root, b := ctx.Sender(), ctx.ActorSystem().Root, c.local
		go func() { root.Send(to, &messages.ForwardReply{Reply: b.forwarded(m).Wait()}) }()
	case *actor.Stopping:
		if c.srv != nil {
			c.srv.Close()
		}
	}
}

type backend struct {
	rt    *Runtime
	root  *actor.RootContext
	pids  []*actor.PID
	local bool
}

func newBackend(rt *Runtime, sys *actor.ActorSystem) *backend {
	b := &backend{rt: rt, root: sys.Root}
	for i := 0; i < rt.Shards; i++ {
		b.pids = append(b.pids, actor.NewPID(sys.Address(), RaftPath(i)))
	}
	return b
}

func (b *backend) Shards() int { return b.rt.Shards }

// forwarded runs a command a peer forwarded to this node.
func (b *backend) forwarded(m *messages.Forward) server.Pending {
	shard := int(m.Shard)
	switch {
	case shard < 0 || shard >= b.rt.Shards:
		return ready{errReply(fmt.Sprintf("ERR shard %d does not exist (this node has %d)", shard, b.rt.Shards))}
	case m.Scan != nil:
		return b.Scan(shard, m.Scan)
	case m.Command == nil:
		return ready{errReply("ERR forwarded request without a command")}
	case m.Write:
		return b.Propose(shard, m.Command)
	}
	return b.Read(shard, m.Command)
}

func (b *backend) Propose(shard int, cmd *messages.Command) server.Pending {
	return &proposal{b: b, shard: shard, cmd: cmd,
		f: b.root.RequestFuture(b.pids[shard], &messages.Propose{Command: cmd}, proposeTimeout)}
}

type proposal struct {
	b     *backend
	shard int
	cmd   *messages.Command
	f     *actor.Future
}

func (p *proposal) Wait() *messages.Reply {
	res, err := p.f.Result()
	if err != nil {
		return tryAgain(p.shard, err.Error())
	}
	pr, ok := res.(*messages.ProposeReply)
	switch {
	case !ok:
		return errReply(fmt.Sprintf("ERR shard %d answered %T", p.shard, res))
	case pr.Error == ErrNotLeader:
		return p.b.forward(p.shard, pr.LeaderId, pr.LeaderAddr, &messages.Forward{Write: true, Command: p.cmd})
	case pr.Error != "":
		return errReply("ERR shard " + fmt.Sprint(p.shard) + ": " + pr.Error)
	case pr.Reply == nil:
		return errReply(fmt.Sprintf("ERR shard %d: no reply", p.shard))
	}
	return pr.Reply
}

func (b *backend) Read(shard int, cmd *messages.Command) server.Pending {
	return b.read(shard, &messages.Forward{Command: cmd}, func(r kv.Reader) *messages.Reply {
		return kv.Read(r, cmd.Args, cmd.NowMs)
	})
}

func (b *backend) Scan(shard int, req *messages.ScanShard) server.Pending {
	return b.read(shard, &messages.Forward{Scan: req}, func(r kv.Reader) *messages.Reply {
		keys, next, err := kv.Scan(r, req.After, int(req.Count), req.Match, req.Type, req.NowMs)
		if err != nil {
			return errReply("ERR " + err.Error())
		}
		items := make([]*messages.Reply, 0, len(keys)+1)
		if next == nil {
			items = append(items, &messages.Reply{Value: &messages.Reply_NullBulk{NullBulk: true}})
		} else {
			items = append(items, &messages.Reply{Value: &messages.Reply_Bulk{Bulk: next}})
		}
		for _, k := range keys {
			items = append(items, &messages.Reply{Value: &messages.Reply_Bulk{Bulk: k}})
		}
		return &messages.Reply{Value: &messages.Reply_Array{Array: &messages.Replies{Items: items}}}
	})
}

// read runs fn on shard after a read barrier, or forwards fwd to the
// shard's leader when this node does not lead it.
func (b *backend) read(shard int, fwd *messages.Forward, fn func(r kv.Reader) *messages.Reply) server.Pending {
	if b.rt.soleLeader(shard) || b.rt.Role == messages.Role_ROLE_READONLY {
		// The only voter needs no barrier; a read-only node serves
		// what it has applied (a stale read, by its role).
		return ready{b.view(shard, fn)}
	}
	return &read{b: b, shard: shard, fwd: fwd, fn: fn, f: b.root.RequestFuture(b.pids[shard], &messages.ReadBarrier{}, barrierTimeout)}
}

// ready is a Pending whose reply is known already.
type ready struct{ r *messages.Reply }

func (r ready) Wait() *messages.Reply { return r.r }

type read struct {
	b     *backend
	shard int
	fwd   *messages.Forward
	fn    func(r kv.Reader) *messages.Reply
	f     *actor.Future
}

func (r *read) Wait() *messages.Reply {
	res, err := r.f.Result()
	if err != nil {
		return tryAgain(r.shard, err.Error())
	}
	rb, ok := res.(*messages.ReadBarrierReply)
	switch {
	case !ok:
		return errReply(fmt.Sprintf("ERR shard %d answered %T", r.shard, res))
	case rb.Error == ErrNotLeader:
		return r.b.forward(r.shard, rb.LeaderId, rb.LeaderAddr, r.fwd)
	case rb.Error != "":
		return tryAgain(r.shard, rb.Error)
	}
	return r.b.view(r.shard, r.fn)
}

// forward sends a command this node cannot run to the shard's leader, and
// waits for its reply. Without a known leader (an election), or on a
// forwarded command, the client gets a retryable error.
func (b *backend) forward(shard int, leaderID, leaderAddr string, fwd *messages.Forward) *messages.Reply {
	switch {
	case b.local:
		return tryAgain(shard, "leadership moved")
	case leaderAddr == "" || leaderID == b.rt.Name:
		return tryAgain(shard, "no leader known")
	}
	remote, err := b.rt.Remote()
	if err != nil {
		return tryAgain(shard, err.Error())
	}
	fwd.Shard = uint32(shard)
	ctx, cancel := context.WithTimeout(context.Background(), proposeTimeout)
	defer cancel()
	res, err := remote.Request(ctx, leaderAddr, ClientPath, fwd)
	if err != nil {
		return tryAgain(shard, fmt.Sprintf("leader %s: %v", leaderID, err))
	}
	fr, ok := res.(*messages.ForwardReply)
	if !ok || fr.Reply == nil {
		return errReply(fmt.Sprintf("ERR shard %d: leader %s answered %T", shard, leaderID, res))
	}
	return fr.Reply
}
func (b *backend) view(shard int, fn func(r kv.Reader) *messages.Reply) *messages.Reply {
	sh, _, err := b.rt.Shard(shard)
	if err != nil {
		return tryAgain(shard, err.Error())
	}
	var out *messages.Reply
	if err := sh.View(func(r kv.Reader) error { out = fn(r); return nil }); err != nil {
		return tryAgain(shard, err.Error())
	}
	return out
}

// tryAgain is the retryable error a client gets while a shard has no
// leader it can reach.
func tryAgain(shard int, why string) *messages.Reply {
	return errReply(fmt.Sprintf("TRYAGAIN shard %d is not available: %s", shard, why))
}

func errReply(s string) *messages.Reply {
	return &messages.Reply{Value: &messages.Reply_Error{Error: s}}
}
