// Package greeter is the README's example of a user's actor under the
// node's user supervisor.
package greeter

import (
	"fmt"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coppice-kv/coppice/supervisor"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Greeter is a plain protoactor-go actor: it answers a name with a
// greeting and counts how many it gave since it started.
type Greeter struct{ greeted int }

func (g *Greeter) Receive(ctx actor.Context) {
	if name, ok := ctx.Message().(*wrapperspb.StringValue); ok {
		g.greeted++
		ctx.Respond(wrapperspb.String(fmt.Sprintf("hello, %s (greeting %d)", name.Value, g.greeted)))
	}
}

// Spec is how the greeter is started: add it to actors.Config.User.
func Spec() supervisor.ChildSpec {
	return supervisor.Worker("greeter", func() actor.Actor { return &Greeter{} })
}
