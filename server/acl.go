package server

// ACL: Redis 7.0's users and permissions (kv.ACLUsers holds the rules).
// The users are the cluster's: ACL SETUSER and DELUSER on any node go
// through Config.ACLUpdate (the node's system Raft group) and reach every
// node's SetACL; a Server with no ACLUpdate keeps its users itself. The
// ACL log is each node's own, as in Redis Cluster.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coppice-kv/coppice/kv"
	"github.com/coppice-kv/coppice/messages"
)

// ErrACLChanged is what Config.ACLUpdate answers when the users changed
// since the version the update starts from: the change is made again on
// the new users.
var ErrACLChanged = errors.New("the ACL changed meanwhile")

// aclUpdateTries bounds how often a change is made again after a
// concurrent one (each time on the users that came first).
const aclUpdateTries = 20

// aclApplyWait bounds the wait for this node to apply its own change.
const aclApplyWait = 10 * time.Second

// SetACL makes us the node's users (an older version than the current
// one is ignored). Connections whose user is gone are closed, and
// subscribers whose channels their user may no longer use.
func (s *Server) SetACL(us *kv.ACLUsers) {
	s.aclMu.Lock()
	old, ok := s.swapACL(us)
	s.aclMu.Unlock()
	if ok {
		s.closeRevoked(old, us)
	}
}

// swapACL makes us the users, unless older than the current ones; called
// with aclMu held.
func (s *Server) swapACL(us *kv.ACLUsers) (old *kv.ACLUsers, ok bool) {
	old = s.acl.Load()
	if old != nil && us.Version < old.Version {
		return old, false
	}
	s.acl.Store(us)
	close(s.aclWake)
	s.aclWake = make(chan struct{})
	return old, old != nil
}

// closeRevoked closes the connections of users us no longer has, and the
// subscribers whose user changed and may no longer use one of their
// channels or patterns.
func (s *Server) closeRevoked(old, us *kv.ACLUsers) {
	victims := map[*conn]bool{}
	s.mu.Lock()
	for c := range s.conns {
		if us.Get(c.userName()) == nil {
			victims[c] = true
		}
	}
	s.mu.Unlock()
	s.hub.mu.RLock()
	for kind, byName := range s.hub.subs {
		for name, conns := range byName {
			for c := range conns {
				u := us.Get(c.userName())
				if u != nil && u != old.Get(c.userName()) && !u.ChannelAllowed([]byte(name), subKind(kind) == patternSub) {
					victims[c] = true
				}
			}
		}
	}
	s.hub.mu.RUnlock()
	for c := range victims {
		s.hub.forget(c)
		c.nc.Close()
	}
}

// updateACL makes a change to the users (change maps the current users
// to the new ones), through Config.ACLUpdate when set, and waits until
// this node has it. The change is made again, on the new users, when
// another came first.
func (s *Server) updateACL(change func(*kv.ACLUsers) (*kv.ACLUsers, error)) error {
	for try := 0; ; try++ {
		cur := s.acl.Load()
		next, err := change(cur)
		if err != nil {
			return err
		}
		if s.cfg.ACLUpdate == nil {
			s.aclMu.Lock()
			if s.acl.Load() != cur {
				s.aclMu.Unlock()
				continue // another change came first
			}
			next.Version = cur.Version + 1
			s.swapACL(next)
			s.aclMu.Unlock()
			s.closeRevoked(cur, next)
			return nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), aclApplyWait)
		version, err := s.cfg.ACLUpdate(ctx, cur.Version, next.List())
		cancel()
		if errors.Is(err, ErrACLChanged) && try < aclUpdateTries {
			// Made again once this node has the change that came
			// first (version: the users' version now).
			if err := s.awaitACL(max(version, cur.Version+1)); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("ERR ACL change not made: %v", err)
		}
		return s.awaitACL(version)
	}
}

// awaitACL waits until this node has the users' version v.
func (s *Server) awaitACL(v uint64) error {
	deadline := time.NewTimer(aclApplyWait)
	defer deadline.Stop()
	for {
		s.aclMu.Lock()
		cur, wake := s.acl.Load(), s.aclWake
		s.aclMu.Unlock()
		if cur.Version >= v {
			return nil
		}
		select {
		case <-wake:
		case <-deadline.C:
			return fmt.Errorf("ERR the ACL change was made, but this node has not applied it within %v", aclApplyWait)
		case <-s.done:
			return errors.New("ERR the node is stopping")
		}
	}
}

// aclLog is the node's ACL LOG: refused commands and logins, the latest
// first, a repeat within a minute counted in its entry.
type aclLog struct {
	mu      sync.Mutex
	entries []*aclLogEntry
	maxLen  atomic.Int64 // acllog-max-len
}

type aclLogEntry struct {
	count    int64
	reason   string // command, key, channel, auth
	context  string // toplevel, multi, lua
	object   string
	username string
	at       time.Time
	client   string
}

// aclLogMaxLen is acllog-max-len's default.
const aclLogMaxLen = 128

func (l *aclLog) add(e *aclLogEntry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, old := range l.entries[:min(10, len(l.entries))] {
		d := e.at.Sub(old.at)
		if old.reason == e.reason && old.context == e.context && old.object == e.object &&
			old.username == e.username && d < time.Minute && d > -time.Minute {
			old.count++
			old.at, old.client = e.at, e.client
			copy(l.entries[1:i+1], l.entries[:i])
			l.entries[0] = old
			return
		}
	}
	e.count = 1
	l.entries = append([]*aclLogEntry{e}, l.entries...)
	if n := l.maxLen.Load(); int64(len(l.entries)) > n {
		l.entries = l.entries[:n]
	}
}

// logDenied records a refusal of args for c (context: toplevel, multi).
func (c *conn) logDenied(result, pos int, args [][]byte, context string) {
	object := kv.ACLCommandName(args)
	if result == kv.ACLDeniedKey || result == kv.ACLDeniedChannel {
		object = string(args[pos])
	}
	c.logDeniedObject(result, object, context)
}

// logDeniedObject records a refusal (kv.ACLDenied*) of object, the
// command, key or channel refused, for c (context: toplevel, multi, lua).
func (c *conn) logDeniedObject(result int, object, context string) {
	e := &aclLogEntry{context: context, username: c.userName(), at: time.Now(),
		client: strings.TrimSuffix(c.info(), "\n"), object: object}
	switch result {
	case kv.ACLDeniedCmd:
		e.reason = "command"
	case kv.ACLDeniedKey:
		e.reason = "key"
	case kv.ACLDeniedChannel:
		e.reason = "channel"
	}
	c.s.aclLog.add(e)
}

// userName is the connection's user, for other goroutines too.
func (c *conn) userName() string {
	c.metaMu.Lock()
	defer c.metaMu.Unlock()
	return c.user
}

func (c *conn) setUser(name string) {
	c.metaMu.Lock()
	c.user = name
	c.metaMu.Unlock()
	c.aclSeen = nil
}

// aclUser is the connection's user as the node's users have it now; nil
// once the user is deleted (the connection is being closed).
func (c *conn) aclUser() *kv.ACLUser {
	if us := c.s.acl.Load(); us != c.aclSeen {
		c.aclSeen, c.aclUserNow = us, us.Get(c.user)
	}
	return c.aclUserNow
}

// authRequired tells whether the connection must log in first: the
// default user has a password (or is off) and nobody logged in.
func (c *conn) authRequired() bool {
	if c.authed {
		return false
	}
	def := c.s.acl.Load().Default()
	return !def.NoPass() || !def.Enabled()
}

// loginFree tells whether a new connection is logged in as the default
// user: it has no password and is on.
func (s *Server) loginFree() bool {
	def := s.acl.Load().Default()
	return def.NoPass() && def.Enabled()
}

// checkACL refuses a command the connection's user may not run (NOPERM,
// logged), after the command's arity and subcommand were found right.
func (c *conn) checkACL(u *kv.ACLUser, args [][]byte) bool {
	if c.spec == nil {
		return true // fails on its own
	}
	check := kv.CheckArity
	if len(c.spec.Subcommands) > 0 {
		check = kv.CheckSubcommand
	}
	if check(args) != nil {
		return true // fails on its own: the wrong arity, an unknown subcommand
	}
	result, pos := u.Check(args)
	if result == kv.ACLOK {
		return true
	}
	context := "toplevel"
	if c.tx != nil {
		context = "multi"
	}
	c.logDenied(result, pos, args, context)
	c.reject(args, kv.ACLDeniedText(result, kv.ACLCommandName(args)))
	return false
}

// reject refuses a command before it runs, as Redis's rejectCommand: a
// transaction being queued is aborted, and a refused EXEC ends it.
func (c *conn) reject(args [][]byte, text string) {
	if strings.EqualFold(string(args[0]), "exec") {
		c.tx, c.watch = nil, nil
		c.flag.Store(0)
		c.reply(errorf("EXECABORT Transaction discarded because of: " + text))
		return
	}
	c.reply(errorf(text))
	c.abortTx()
}

// execDenied is the error for a queued command the user may no longer
// run at EXEC, or nil.
func (c *conn) execDenied(u *kv.ACLUser, args [][]byte) *messages.Reply {
	result, pos := u.Check(args)
	if result == kv.ACLOK {
		return nil
	}
	c.logDenied(result, pos, args, "multi")
	reason := "no permission"
	switch result {
	case kv.ACLDeniedCmd:
		reason = "no permission to execute the command or subcommand"
	case kv.ACLDeniedKey:
		reason = "no permission to touch the specified keys"
	case kv.ACLDeniedChannel:
		reason = "no permission to access one of the channels used as arguments"
	}
	return errorf("NOPERM ACLs rules changed between the moment the transaction was accumulated and the EXEC call. This command is no longer allowed for the following reason: " + reason)
}

// login checks a user's password and logs the connection in as that
// user; a failure is logged (reason auth).
func (c *conn) login(user, pass []byte, command string) bool {
	u := c.s.acl.Load().Get(string(user))
	if !u.Authenticates(pass) {
		context := "toplevel"
		if c.tx != nil {
			context = "multi"
		}
		c.s.aclLog.add(&aclLogEntry{reason: "auth", context: context, object: command, username: string(user),
			at: time.Now(), client: strings.TrimSuffix(c.info(), "\n")})
		return false
	}
	c.authed = true
	c.setUser(string(user))
	return true
}

var errWrongPass = errorf("WRONGPASS invalid username-password pair or user is disabled.")

func (c *conn) auth(args [][]byte) {
	var user, pass []byte
	switch len(args) {
	case 2:
		if c.s.acl.Load().Default().NoPass() {
			c.reply(errorf("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"))
			return
		}
		user, pass = []byte("default"), args[1]
	case 3:
		user, pass = args[1], args[2]
	default:
		c.reply(errorf("ERR syntax error"))
		return
	}
	if !c.login(user, pass, string(args[0])) {
		c.reply(errWrongPass)
		return
	}
	c.reply(replyOK)
}

var aclHelp = []string{
	"CAT [<category>]",
	"    List all commands that belong to <category>, or all command categories",
	"    when no category is specified.",
	"DELUSER <username> [<username> ...]",
	"    Delete a list of users.",
	"DRYRUN <username> <command> [<arg> ...]",
	"    Returns whether the user can execute the given command without executing the command.",
	"GETUSER <username>",
	"    Get the user's details.",
	"GENPASS [<bits>]",
	"    Generate a secure 256-bit user password. The optional `bits` argument can",
	"    be used to specify a different size.",
	"LIST",
	"    Show users details in config file format.",
	"LOAD",
	"    Reload users from the ACL file.",
	"LOG [<count> | RESET]",
	"    Show the ACL log entries.",
	"SAVE",
	"    Save the current config to the ACL file.",
	"SETUSER <username> <attribute> [<attribute> ...]",
	"    Create or modify a user with the specified attributes.",
	"USERS",
	"    List all the registered usernames.",
	"WHOAMI",
	"    Return the current connection username.",
}

// acl answers ACL and its subcommands.
func (c *conn) acl(args [][]byte) {
	if r := kv.CheckSubcommand(args); r != nil {
		c.reply(r)
		return
	}
	s := c.s
	switch strings.ToLower(string(args[1])) {
	case "setuser":
		name := string(args[2])
		ops := make([]string, len(args)-3)
		for i, a := range args[3:] {
			ops[i] = string(a)
		}
		err := s.updateACL(func(us *kv.ACLUsers) (*kv.ACLUsers, error) { return us.SetUser(name, ops) })
		c.replyACLChange(err, replyOK)
	case "deluser":
		names := make([]string, len(args)-2)
		for i, a := range args[2:] {
			names[i] = string(a)
		}
		deleted := 0
		err := s.updateACL(func(us *kv.ACLUsers) (*kv.ACLUsers, error) {
			next, n, err := us.DelUsers(names)
			deleted = n
			return next, err
		})
		c.replyACLChange(err, integer(int64(deleted)))
	case "getuser":
		u := s.acl.Load().Get(string(args[2]))
		if u == nil {
			c.reply(nullBulk())
			return
		}
		c.reply(getUserReply(u))
	case "list", "users":
		us := s.acl.Load()
		lines := us.List()
		if strings.EqualFold(string(args[1]), "users") {
			lines = us.Names()
		}
		items := make([]*messages.Reply, len(lines))
		for i, l := range lines {
			items[i] = bulkString(l)
		}
		c.reply(array(items...))
	case "whoami":
		c.reply(bulkString(c.userName()))
	case "load", "save":
		c.reply(errorf("ERR This Redis instance is not configured to use an ACL file. You may want to specify users via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you have a Redis configuration file set) in order to store users in the Redis configuration."))
	case "cat":
		if len(args) > 3 {
			c.reply(subSyntaxError(args))
			return
		}
		names := kv.ACLCategories()
		if len(args) == 3 {
			var ok bool
			if names, ok = kv.ACLCategoryCommands(string(args[2])); !ok {
				c.reply(errorf(fmt.Sprintf("ERR Unknown category '%.128s'", args[2])))
				return
			}
		}
		items := make([]*messages.Reply, len(names))
		for i, n := range names {
			items[i] = bulkString(n)
		}
		c.reply(array(items...))
	case "genpass":
		if len(args) > 3 {
			c.reply(subSyntaxError(args))
			return
		}
		c.reply(genpass(args))
	case "log":
		c.reply(s.aclLogCmd(args))
	case "dryrun":
		u := s.acl.Load().Get(string(args[2]))
		if u == nil {
			c.reply(errorf(fmt.Sprintf("ERR User '%s' not found", args[2])))
			return
		}
		why, err := kv.ACLDryRun(u, args[3:])
		switch {
		case err != nil:
			c.reply(errorf(err.Error()))
		case why != "":
			c.reply(bulkString(why))
		default:
			c.reply(replyOK)
		}
	case "help":
		c.reply(kv.HelpReply("ACL", aclHelp...))
	}
}

// replyACLChange answers an ACL change: ok, or its error.
func (c *conn) replyACLChange(err error, ok *messages.Reply) {
	var rule *kv.ACLRuleError
	switch {
	case errors.As(err, &rule):
		c.reply(errorf(rule.Text))
	case err != nil:
		c.reply(errorf(err.Error()))
	default:
		c.reply(ok)
	}
}

// getUserReply is ACL GETUSER's answer.
func getUserReply(u *kv.ACLUser) *messages.Reply {
	flags := u.Flags()
	fl := make([]*messages.Reply, len(flags))
	for i, f := range flags {
		fl[i] = bulkString(f)
	}
	pw := u.Passwords()
	pws := make([]*messages.Reply, len(pw))
	for i, p := range pw {
		pws[i] = bulkString(p)
	}
	sels := u.Selectors()
	selector := func(s kv.ACLSelectorInfo) []*messages.Reply {
		return []*messages.Reply{bulkString("commands"), bulkString(s.Commands), bulkString("keys"), bulkString(s.Keys),
			bulkString("channels"), bulkString(s.Channels)}
	}
	more := make([]*messages.Reply, len(sels)-1)
	for i, s := range sels[1:] {
		more[i] = mapReply(selector(s)...)
	}
	items := []*messages.Reply{bulkString("flags"), {Value: &messages.Reply_Set{Set: &messages.Replies{Items: fl}}},
		bulkString("passwords"), array(pws...)}
	items = append(items, selector(sels[0])...)
	items = append(items, bulkString("selectors"), array(more...))
	return mapReply(items...)
}

// genpass: ACL GENPASS [bits], random hex.
func genpass(args [][]byte) *messages.Reply {
	bits := int64(256)
	if len(args) == 3 {
		n, ok := kv.ParseInt(args[2])
		if !ok {
			return errorf("ERR value is not an integer or out of range")
		}
		bits = n
	}
	if bits <= 0 || bits > 4096 {
		return errorf("ERR ACL GENPASS argument must be the number of bits for the output password, a positive number up to 4096")
	}
	chars := (bits + 3) / 4
	b := make([]byte, (chars+1)/2)
	if _, err := rand.Read(b); err != nil {
		return errorf("ERR " + err.Error())
	}
	return bulkString(hex.EncodeToString(b)[:chars])
}

// aclLogCmd: ACL LOG [count | RESET].
func (s *Server) aclLogCmd(args [][]byte) *messages.Reply {
	count := int64(10)
	l := &s.aclLog
	if len(args) > 3 {
		return subSyntaxError(args)
	}
	if len(args) == 3 {
		if strings.EqualFold(string(args[2]), "reset") {
			l.mu.Lock()
			l.entries = nil
			l.mu.Unlock()
			return replyOK
		}
		n, ok := kv.ParseInt(args[2])
		if !ok {
			return errorf("ERR value is not an integer or out of range")
		}
		count = max(n, 0)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	items := []*messages.Reply{}
	for _, e := range l.entries[:min(int(count), len(l.entries))] {
		items = append(items, mapReply(
			bulkString("count"), integer(e.count),
			bulkString("reason"), bulkString(e.reason),
			bulkString("context"), bulkString(e.context),
			bulkString("object"), bulkString(e.object),
			bulkString("username"), bulkString(e.username),
			bulkString("age-seconds"), &messages.Reply{Value: &messages.Reply_Double{Double: float64(now.Sub(e.at).Milliseconds()) / 1000}},
			bulkString("client-info"), bulkString(e.client)))
	}
	return array(items...)
}

// subSyntaxError is Redis's answer to a subcommand it takes apart itself
// with the wrong arguments (addReplySubcommandSyntaxError).
func subSyntaxError(args [][]byte) *messages.Reply {
	return errorf(fmt.Sprintf("ERR unknown subcommand or wrong number of arguments for '%.128s'. Try %s HELP.", args[1], strings.ToUpper(string(args[0]))))
}
