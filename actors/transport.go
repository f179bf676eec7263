package actors

// transport: supervised by node (rest_for_one), permanent worker. It owns
// the cluster listener that carries every shard's Raft traffic, and closes
// it when it stops.

import (
	"github.com/asynkron/protoactor-go/actor"
	"github.com/coppice-kv/coppice/transport"
)

type transportActor struct {
	rt  *Runtime
	mux *transport.Mux
}

func (t *transportActor) Receive(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *actor.Started:
		m, err := transport.Listen(t.rt.ClusterAddr, t.rt.Advertise, t.rt.logger())
		if err != nil {
			panic(err)
		}
		t.mux = m
		t.rt.setMux(m)
		t.rt.logger().Info("cluster listener", "addr", m.Addr().String())
	case *actor.Stopping:
		t.rt.setMux(nil)
		if t.mux != nil {
			t.mux.Close()
		}
	}
}
