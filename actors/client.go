package actors

// client: supervised by node (rest_for_one), permanent worker. It owns the
// RESP listener (package server) and is its Backend: writes go to the
// shard's raft actor as messages.Propose, reads after a messages.ReadBarrier
// (or directly while this node is the shard's only voter and leader).

import (
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

type clientActor struct {
	rt  *Runtime
	srv *server.Server
}

func (c *clientActor) Receive(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *actor.Started:
		b := &backend{rt: c.rt, root: ctx.ActorSystem().Root}
		for i := 0; i < c.rt.Shards; i++ {
			b.pids = append(b.pids, actor.NewPID(ctx.ActorSystem().Address(), RaftPath(i)))
		}
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
	case *actor.Stopping:
		if c.srv != nil {
			c.srv.Close()
		}
	}
}

type backend struct {
	rt   *Runtime
	root *actor.RootContext
	pids []*actor.PID
}

func (b *backend) Shards() int { return b.rt.Shards }

func (b *backend) Propose(shard int, cmd *messages.Command) server.Pending {
	return &proposal{shard: shard, f: b.root.RequestFuture(b.pids[shard], &messages.Propose{Command: cmd}, proposeTimeout)}
}

type proposal struct {
	shard int
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
		return tryAgain(p.shard, "no leader here")
	case pr.Error != "":
		return errReply("ERR shard " + fmt.Sprint(p.shard) + ": " + pr.Error)
	case pr.Reply == nil:
		return errReply(fmt.Sprintf("ERR shard %d: no reply", p.shard))
	}
	return pr.Reply
}

func (b *backend) Read(shard int, fn func(r kv.Reader) *messages.Reply) server.Pending {
	if b.rt.soleLeader(shard) {
		return readNow{b.view(shard, fn)}
	}
	return &read{b: b, shard: shard, fn: fn, f: b.root.RequestFuture(b.pids[shard], &messages.ReadBarrier{}, barrierTimeout)}
}

type readNow struct{ r *messages.Reply }

func (r readNow) Wait() *messages.Reply { return r.r }

type read struct {
	b     *backend
	shard int
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
		return tryAgain(r.shard, "no leader here")
	case rb.Error != "":
		return tryAgain(r.shard, rb.Error)
	}
	return r.b.view(r.shard, r.fn)
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
