// Package actorscript tests actors with scripts: txtar files run by
// github.com/rogpeppe/go-internal/testscript, with commands that spawn a
// supervision tree from a protobuf spec, send protobuf messages written as
// text, and wait (bounded) for replies and supervisor events that match a
// subset of fields.
//
// A test runs every script of a directory:
//
//	func TestScripts(t *testing.T) {
//		kinds := actorscript.StandardKinds()
//		kinds.Register("greeter", startGreeter)
//		testscript.Run(t, actorscript.Params("testdata", kinds))
//	}
//
// Each script gets its own actor system. Actor paths are PID ids: a root
// spawned as "app" with a child "db" is "app/db". Messages are named by
// their full protobuf name and written in prototext; the message's Go
// package must be linked into the test. Every wait is bounded (-timeout,
// default 5s); a failed expectation names the script's file and line and
// lists what arrived instead.
//
// The commands are listed in Commands; each one's comment has an example.
package actorscript

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/coppice-kv/coppice/messages"
	"github.com/coppice-kv/coppice/supervisor"
	"github.com/rogpeppe/go-internal/testscript"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// DefaultTimeout bounds every wait that does not say otherwise.
const DefaultTimeout = 5 * time.Second

type envKey struct{}

// env is one script's world: its actor system, trees, and what arrived.
type env struct {
	system *actor.ActorSystem
	kinds  *supervisor.Kinds
	specs  map[string]supervisor.Spec
	trees  map[string]*supervisor.Tree

	mu      sync.Mutex
	cond    chan struct{} // closed and replaced whenever something arrives
	events  []proto.Message
	replies []proto.Message
}

// Tree is a supervision tree declared in Go that scripts spawn by name
// (spawn NAME -tree TREE), such as the node's own tree with a user's actor
// added.
type Tree struct {
	Name string
	Spec supervisor.Spec
}

// Params returns testscript parameters that run the scripts in dir with
// the actorscript commands, starting actors from kinds and trees.
func Params(dir string, kinds *supervisor.Kinds, trees ...Tree) testscript.Params {
	return testscript.Params{
		Dir:   dir,
		Setup: func(e *testscript.Env) error { return Setup(e, kinds, trees...) },
		Cmds:  Commands(),
	}
}

// Setup gives a script its own actor system; use it from a Params.Setup of
// your own when you add commands.
func Setup(e *testscript.Env, kinds *supervisor.Kinds, trees ...Tree) error {
	sys := actor.NewActorSystem(actor.WithLoggerFactory(quietLogger))
	en := &env{system: sys, kinds: kinds, specs: map[string]supervisor.Spec{}, trees: map[string]*supervisor.Tree{}, cond: make(chan struct{})}
	for _, t := range trees {
		en.specs[t.Name] = t.Spec
	}
	sub := sys.EventStream.Subscribe(func(ev any) {
		if m, ok := ev.(*messages.SupervisorEvent); ok {
			en.arrive(&en.events, m)
		}
	})
	e.Values[envKey{}] = en
	e.Defer(func() {
		ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
		defer cancel()
		for _, t := range en.trees {
			_ = t.Stop(ctx)
		}
		sys.EventStream.Unsubscribe(sub)
		sys.Shutdown()
	})
	return nil
}

func (en *env) arrive(list *[]proto.Message, m proto.Message) {
	en.mu.Lock()
	*list = append(*list, m)
	close(en.cond)
	en.cond = make(chan struct{})
	en.mu.Unlock()
}

func getEnv(ts *testscript.TestScript) *env {
	en, _ := ts.Value(envKey{}).(*env)
	if en == nil {
		ts.Fatalf("actorscript: Setup did not run (use actorscript.Params or call actorscript.Setup)")
	}
	return en
}

// Commands are the script commands. Add them to your own Params.Cmds to mix
// them with commands of yours.
func Commands() map[string]func(ts *testscript.TestScript, neg bool, args []string) {
	return map[string]func(ts *testscript.TestScript, neg bool, args []string){
		"spawn":           cmdSpawn,
		"shutdown":        cmdShutdown,
		"exited":          cmdExited,
		"send":            cmdSend,
		"request":         cmdRequest,
		"expect":          cmdExpect,
		"crash":           cmdCrash,
		"stop-actor":      cmdStopActor,
		"children":        cmdChildren,
		"count":           cmdCount,
		"start-child":     cmdStartChild,
		"terminate-child": cmdTerminateChild,
		"restart-child":   cmdRestartChild,
		"delete-child":    cmdDeleteChild,
		"tree":            cmdTree,
	}
}

// spawn NAME SPECFILE starts a root supervisor NAME from a
// coppice.messages.SupervisorSpec in prototext, and waits until every child
// has started; spawn NAME -tree TREE starts a tree declared in Go (Tree).
// With !, expects the start to fail; the error goes to stderr.
//
//	spawn app app.spec
//	spawn node -tree node
//	! spawn app broken.spec
func cmdSpawn(ts *testscript.TestScript, neg bool, args []string) {
	en := getEnv(ts)
	var spec supervisor.Spec
	var err error
	switch {
	case len(args) == 3 && args[1] == "-tree":
		var ok bool
		if spec, ok = en.specs[args[2]]; !ok {
			ts.Fatalf("no tree named %q was given to actorscript.Params", args[2])
		}
	case len(args) == 2:
		var p messages.SupervisorSpec
		if err := prototext.Unmarshal([]byte(ts.ReadFile(args[1])), &p); err != nil {
			ts.Fatalf("%s: %v", args[1], err)
		}
		spec, err = en.kinds.Spec(&p)
	default:
		ts.Fatalf("usage: spawn NAME SPECFILE | spawn NAME -tree TREE")
	}
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
		defer cancel()
		var t *supervisor.Tree
		t, err = supervisor.Start(ctx, en.system, args[0], spec)
		if err == nil {
			en.trees[args[0]] = t
		}
	}
	switch {
	case err != nil && !neg:
		ts.Fatalf("spawn %s: %v", args[0], err)
	case err == nil && neg:
		ts.Fatalf("spawn %s succeeded, want a failure", args[0])
	case err != nil:
		fmt.Fprintln(ts.Stderr(), err)
	}
}

// shutdown [-timeout D] NAME stops a tree in order and waits for it
// (bounded).
//
//	shutdown app
func cmdShutdown(ts *testscript.TestScript, neg bool, args []string) {
	d := timeoutFlag(ts, &args)
	t := tree(ts, args, "shutdown [-timeout D] NAME")
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := t.Stop(ctx); err != nil {
		ts.Fatalf("shutdown %s: %v", args[0], err)
	}
	delete(getEnv(ts).trees, args[0])
}

// exited [-timeout D] NAME waits until tree NAME has stopped by itself (its
// root gave up) and prints why to stdout.
//
//	exited app
//	stdout 'reached maximum restart intensity'
func cmdExited(ts *testscript.TestScript, neg bool, args []string) {
	d := timeoutFlag(ts, &args)
	t := tree(ts, args, "exited [-timeout D] NAME")
	select {
	case <-t.Done():
		fmt.Fprintln(ts.Stdout(), t.Err())
		delete(getEnv(ts).trees, args[0])
	case <-time.After(d):
		ts.Fatalf("tree %s still running after %s", args[0], d)
	}
}

func tree(ts *testscript.TestScript, args []string, usage string) *supervisor.Tree {
	if len(args) != 1 {
		ts.Fatalf("usage: %s", usage)
	}
	t := getEnv(ts).trees[args[0]]
	if t == nil {
		ts.Fatalf("no tree named %q", args[0])
	}
	return t
}

// send PATH TYPE [TEXT...] sends a message (full protobuf name, prototext
// body) to the actor at PATH.
//
//	send app/echo coppice.messages.Crash reason: "boom"
func cmdSend(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 {
		ts.Fatalf("usage: send PATH TYPE [TEXT...]")
	}
	en := getEnv(ts)
	en.system.Root.Send(en.pid(args[0]), parseMessage(ts, args[1], args[2:]))
}

// request PATH TYPE [TEXT...] sends a request; its reply (or a timeout) is
// awaited later with expect reply.
//
//	request app/echo coppice.messages.WhichChildren
//	expect reply coppice.messages.WhichChildren
func cmdRequest(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 {
		ts.Fatalf("usage: request PATH TYPE [TEXT...]")
	}
	en := getEnv(ts)
	f := en.system.Root.RequestFuture(en.pid(args[0]), parseMessage(ts, args[1], args[2:]), DefaultTimeout)
	go func() {
		res, err := f.Result()
		if err != nil {
			en.arrive(&en.replies, &messages.ChildReply{Error: "request to " + args[0] + ": " + err.Error()})
			return
		}
		if m, ok := res.(proto.Message); ok {
			en.arrive(&en.replies, m)
		} else {
			en.arrive(&en.replies, &messages.ChildReply{Error: fmt.Sprintf("reply from %s is %T, not protobuf", args[0], res)})
		}
	}()
}

// expect reply|event [-timeout D] [-any|-next] TYPE [TEXT...] waits until
// a reply (to request) or a supervisor event of TYPE arrives whose fields
// include those in TEXT (a subset match). By default what arrived before
// the match is consumed too, so a sequence of expects checks order; -any
// consumes only the match; -next fails if anything else arrived before the
// match, so a sequence of expects -next checks the exact sequence. With !,
// expects that no such message arrives within the timeout.
//
//	expect event coppice.messages.SupervisorEvent kind: CHILD_STARTED child_id: "a"
//	expect event -next coppice.messages.SupervisorEvent kind: SUPERVISOR_STARTED
//	expect reply coppice.messages.ChildReply pid: "app/a"
func cmdExpect(ts *testscript.TestScript, neg bool, args []string) {
	const usage = "usage: expect reply|event [-timeout D] [-any|-next] TYPE [TEXT...]"
	if len(args) < 1 || (args[0] != "reply" && args[0] != "event") {
		ts.Fatalf(usage)
	}
	what := args[0]
	args = args[1:]
	d, anyOrder, next := DefaultTimeout, false, false
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		switch args[0] {
		case "-any":
			anyOrder, args = true, args[1:]
		case "-next":
			next, args = true, args[1:]
		case "-timeout":
			d = timeoutFlag(ts, &args)
		default:
			ts.Fatalf("expect: unknown flag %s", args[0])
		}
	}
	if len(args) < 1 {
		ts.Fatalf(usage)
	}
	if next && (anyOrder || neg) {
		ts.Fatalf("expect: -next goes with neither -any nor !")
	}
	en := getEnv(ts)
	list := &en.events
	if what == "reply" {
		list = &en.replies
	}
	want := parseMessage(ts, args[0], args[1:])
	deadline := time.After(d)
	for {
		en.mu.Lock()
		for i, m := range *list {
			if Match(want, m) {
				if neg {
					en.mu.Unlock()
					ts.Fatalf("unexpected %s arrived: %s", what, Text(m))
				}
				if anyOrder {
					*list = append((*list)[:i:i], (*list)[i+1:]...)
				} else {
					*list = (*list)[i+1:]
				}
				en.mu.Unlock()
				fmt.Fprintf(ts.Stdout(), "%s %s\n", what, Text(m))
				return
			}
			if next {
				en.mu.Unlock()
				ts.Fatalf("next %s is %s, want %s {%s}", what, Text(m), args[0], strings.Join(args[1:], " "))
			}
		}
		wait := en.cond
		seen := make([]string, len(*list))
		for i, m := range *list {
			seen[i] = "  " + Text(m)
		}
		en.mu.Unlock()
		select {
		case <-wait:
		case <-deadline:
			if neg {
				return
			}
			ts.Fatalf("no %s matching %s {%s} within %s; arrived instead:\n%s", what, args[0],
				strings.Join(args[1:], " "), d, strings.Join(seen, "\n"))
		}
	}
}

// crash PATH REASON... makes the actor at PATH panic with REASON.
//
//	crash app/echo disk on fire
func cmdCrash(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 {
		ts.Fatalf("usage: crash PATH REASON...")
	}
	en := getEnv(ts)
	en.system.Root.Send(en.pid(args[0]), &messages.Crash{Reason: strings.Join(args[1:], " ")})
}

// stop-actor PATH stops the actor at PATH from outside, without its
// supervisor: the supervisor sees a normal exit. (It is not called stop:
// testscript's builtin stop, which ends a script early as a pass, would win.)
//
//	stop-actor app/echo
func cmdStopActor(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: stop-actor PATH")
	}
	en := getEnv(ts)
	en.system.Root.Stop(en.pid(args[0]))
}

// children PATH prints which_children of the supervisor at PATH, a line a
// child: id, type, restart, state, restarts, pid (- when not running).
//
//	children app
//	cmp stdout want-children.txt
func cmdChildren(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: children PATH")
	}
	en := getEnv(ts)
	cs, err := supervisor.WhichChildren(en.system.Root, en.pid(args[0]), DefaultTimeout)
	if err != nil {
		ts.Fatalf("children %s: %v", args[0], err)
	}
	for _, c := range cs {
		pid := c.Pid
		if pid == "" {
			pid = "-"
		}
		fmt.Fprintf(ts.Stdout(), "%s %s %s %s restarts=%d %s\n", c.Id, lower(c.Type), lower(c.Restart), lower(c.State), c.Restarts, pid)
	}
}

// count PATH prints count_children of the supervisor at PATH.
//
//	count app
//	stdout 'specs=3 active=3 supervisors=1 workers=2'
func cmdCount(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: count PATH")
	}
	en := getEnv(ts)
	r, err := supervisor.CountChildren(en.system.Root, en.pid(args[0]), DefaultTimeout)
	if err != nil {
		ts.Fatalf("count %s: %v", args[0], err)
	}
	fmt.Fprintf(ts.Stdout(), "specs=%d active=%d supervisors=%d workers=%d\n", r.Specs, r.Active, r.Supervisors, r.Workers)
}

// start-child PATH -spec TEXT... starts a child of the supervisor at PATH
// from a coppice.messages.ChildSpec in prototext; start-child PATH [ARG...]
// starts a simple_one_for_one child with extra string arguments. Prints the
// new PID. With !, expects an error (printed to stderr).
//
//	start-child app -spec id: "extra" kind: "echo"
//	start-child pool job-7
func cmdStartChild(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 1 {
		ts.Fatalf("usage: start-child PATH [-spec TEXT... | ARG...]")
	}
	en := getEnv(ts)
	sup := en.pid(args[0])
	var pid *actor.PID
	var err error
	if len(args) > 1 && args[1] == "-spec" {
		var p messages.ChildSpec
		if perr := prototext.Unmarshal([]byte(strings.Join(args[2:], " ")), &p); perr != nil {
			ts.Fatalf("child spec: %v", perr)
		}
		var spec supervisor.ChildSpec
		if spec, err = en.kinds.Child(&p); err == nil {
			pid, err = supervisor.StartChild(en.system.Root, sup, spec, DefaultTimeout)
		}
	} else {
		extra := make([]any, 0, len(args)-1)
		for _, a := range args[1:] {
			extra = append(extra, a)
		}
		pid, err = supervisor.StartSimpleChild(en.system.Root, sup, DefaultTimeout, extra...)
	}
	result(ts, neg, "start-child", err)
	if pid != nil {
		fmt.Fprintln(ts.Stdout(), pid.Id)
	}
}

// terminate-child PATH ID stops a child within its shutdown time.
//
//	terminate-child app echo
func cmdTerminateChild(ts *testscript.TestScript, neg bool, args []string) {
	en, sup, id := childArgs(ts, args, "terminate-child")
	result(ts, neg, "terminate-child", supervisor.TerminateChild(en.system.Root, sup, id, DefaultTimeout))
}

// restart-child PATH ID starts a terminated child again and prints its PID.
//
//	restart-child app echo
func cmdRestartChild(ts *testscript.TestScript, neg bool, args []string) {
	en, sup, id := childArgs(ts, args, "restart-child")
	pid, err := supervisor.RestartChild(en.system.Root, sup, id, DefaultTimeout)
	result(ts, neg, "restart-child", err)
	if pid != nil {
		fmt.Fprintln(ts.Stdout(), pid.Id)
	}
}

// delete-child PATH ID removes a terminated child's spec.
//
//	delete-child app echo
func cmdDeleteChild(ts *testscript.TestScript, neg bool, args []string) {
	en, sup, id := childArgs(ts, args, "delete-child")
	result(ts, neg, "delete-child", supervisor.DeleteChild(en.system.Root, sup, id, DefaultTimeout))
}

func childArgs(ts *testscript.TestScript, args []string, name string) (*env, *actor.PID, string) {
	if len(args) != 2 {
		ts.Fatalf("usage: %s PATH ID", name)
	}
	en := getEnv(ts)
	return en, en.pid(args[0]), args[1]
}

func result(ts *testscript.TestScript, neg bool, name string, err error) {
	switch {
	case err != nil && !neg:
		ts.Fatalf("%s: %v", name, err)
	case err == nil && neg:
		ts.Fatalf("%s succeeded, want an error", name)
	case err != nil:
		fmt.Fprintln(ts.Stderr(), err)
	}
}

// tree PATH prints the live tree below the supervisor at PATH.
//
//	tree app
//	cmp stdout want-tree.txt
func cmdTree(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: tree PATH")
	}
	en := getEnv(ts)
	out, err := supervisor.FormatTree(en.system.Root, en.pid(args[0]), DefaultTimeout)
	if err != nil {
		ts.Fatalf("tree %s: %v", args[0], err)
	}
	fmt.Fprint(ts.Stdout(), out)
}

func (en *env) pid(path string) *actor.PID { return actor.NewPID(en.system.Address(), path) }

func timeoutFlag(ts *testscript.TestScript, args *[]string) time.Duration {
	a := *args
	if len(a) >= 2 && a[0] == "-timeout" {
		d, err := time.ParseDuration(a[1])
		if err != nil || d <= 0 {
			ts.Fatalf("bad -timeout %q: want a positive duration like 2s", a[1])
		}
		*args = a[2:]
		return d
	}
	return DefaultTimeout
}

func parseMessage(ts *testscript.TestScript, name string, text []string) proto.Message {
	mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(name))
	if err != nil {
		ts.Fatalf("unknown message type %q (is its Go package linked into the test?)", name)
	}
	m := mt.New().Interface()
	if err := prototext.Unmarshal([]byte(strings.Join(text, " ")), m); err != nil {
		ts.Fatalf("%s: %v", name, err)
	}
	return m
}

// Text renders a message on one line: its full name and prototext.
func Text(m proto.Message) string {
	b, _ := prototext.MarshalOptions{}.Marshal(m)
	return string(m.ProtoReflect().Descriptor().FullName()) + " {" + strings.Join(strings.Fields(string(b)), " ") + "}"
}

func lower(e interface{ String() string }) string { return strings.ToLower(e.String()) }
