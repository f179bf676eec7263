package server

// CLIENT's subcommands beyond names and ids: HELP, NO-EVICT, REPLY,
// UNBLOCK, PAUSE and UNPAUSE, as Redis 7.0's.

import (
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coppice-kv/coppice/kv"
	"github.com/coppice-kv/coppice/messages"
)

var clientHelp = []string{
	"CACHING (YES|NO)",
	"    Enable/disable tracking of the keys for next command in OPTIN/OPTOUT modes.",
	"GETREDIR",
	"    Return the client ID we are redirecting to when tracking is enabled.",
	"GETNAME",
	"    Return the name of the current connection.",
	"ID",
	"    Return the ID of the current connection.",
	"INFO",
	"    Return information about the current client connection.",
	"KILL <ip:port>",
	"    Kill connection made from <ip:port>.",
	"KILL <option> <value> [<option> <value> [...]]",
	"    Kill connections. Options are:",
	"    * ADDR (<ip:port>|<unixsocket>:0)",
	"      Kill connections made from the specified address",
	"    * LADDR (<ip:port>|<unixsocket>:0)",
	"      Kill connections made to specified local address",
	"    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
	"      Kill connections by type.",
	"    * USER <username>",
	"      Kill connections authenticated by <username>.",
	"    * SKIPME (YES|NO)",
	"      Skip killing current connection (default: yes).",
	"LIST [options ...]",
	"    Return information about client connections. Options:",
	"    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
	"      Return clients of specified type.",
	"UNPAUSE",
	"    Stop the current client pause, resuming traffic.",
	"PAUSE <timeout> [WRITE|ALL]",
	"    Suspend all, or just write, clients for <timeout> milliseconds.",
	"REPLY (ON|OFF|SKIP)",
	"    Control the replies sent to the current connection.",
	"SETNAME <name>",
	"    Assign the name <name> to the current connection.",
	"UNBLOCK <clientid> [TIMEOUT|ERROR]",
	"    Unblock the specified blocked client.",
	"TRACKING (ON|OFF) [REDIRECT <id>] [BCAST] [PREFIX <prefix> [...]]",
	"         [OPTIN] [OPTOUT] [NOLOOP]",
	"    Control server assisted client side caching.",
	"TRACKINGINFO",
	"    Report tracking status for the current connection.",
	"NO-EVICT (ON|OFF)",
	"    Protect current client connection from eviction.",
}

// moreClient answers CLIENT HELP, NO-EVICT, REPLY, UNBLOCK, PAUSE and
// UNPAUSE; false for another subcommand or arity.
func (c *conn) moreClient(sub string, args [][]byte) bool {
	switch {
	case sub == "help" && len(args) == 2:
		c.reply(kv.HelpReply("CLIENT", clientHelp...))
	case sub == "no-evict" && len(args) == 3:
		// Nothing is evicted here: ON and OFF change nothing.
		switch strings.ToLower(string(args[2])) {
		case "on", "off":
			c.reply(replyOK)
		default:
			c.reply(errorf("ERR syntax error"))
		}
	case sub == "reply" && len(args) == 3:
		switch strings.ToLower(string(args[2])) {
		case "on":
			// ON's own reply is sent, even right after a SKIP.
			c.replyOff, c.skipNext, c.skipThis = false, false, false
			c.reply(replyOK)
		case "off":
			c.replyOff = true
		case "skip":
			if !c.replyOff {
				c.skipNext = true
			}
		default:
			c.reply(errorf("ERR syntax error"))
		}
	case sub == "unblock" && (len(args) == 3 || len(args) == 4):
		c.reply(c.s.unblock(args[2:]))
	case sub == "pause" && (len(args) == 3 || len(args) == 4):
		c.reply(c.s.pauseClients(args[2:]))
	case sub == "pause" && len(args) > 4:
		c.reply(errorf("ERR unknown subcommand or wrong number of arguments for '" + string(args[1]) + "'. Try CLIENT HELP."))
	case sub == "unpause" && len(args) == 2:
		c.s.pause.set(time.Time{}, false, true)
		c.reply(replyOK)
	default:
		return false
	}
	return true
}

// unblock: CLIENT UNBLOCK id [TIMEOUT|ERROR]: 1 if the client was blocked
// in a blocking command, which then answers as if timed out (TIMEOUT, the
// default) or with an UNBLOCKED error.
func (s *Server) unblock(args [][]byte) *messages.Reply {
	id, err := strconv.ParseInt(string(args[0]), 10, 64)
	if err != nil {
		return errorf("ERR value is not an integer or out of range")
	}
	how := blockTimedOut
	if len(args) == 2 {
		switch strings.ToLower(string(args[1])) {
		case "timeout":
		case "error":
			how = blockUnblocked
		default:
			return errorf("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR")
		}
	}
	c := s.connByID(id)
	if c == nil || c.flag.Load() != 'b' {
		return integer(0)
	}
	select {
	case c.unblocked <- how:
	default: // one already waiting
	}
	return integer(1)
}

// clientPause is CLIENT PAUSE's state: until when the node's clients wait
// before each command (all: every command; else the writes).
type clientPause struct {
	mu    sync.Mutex
	until time.Time
	all   bool
	wake  chan struct{} // closed when the pause is lifted or changed
}

// set makes the pause end at until (all its kind), or with lift end it
// now; a later end and ALL win over an earlier end and WRITE, as in Redis.
func (p *clientPause) set(until time.Time, all, lift bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if lift {
		p.until, p.all = time.Time{}, false
	} else {
		if until.After(p.until) {
			p.until = until
		}
		p.all = p.all || all
	}
	if p.wake != nil {
		close(p.wake)
	}
	p.wake = make(chan struct{})
}

// state is the pause now: its end (zero: none), kind and wake channel.
func (p *clientPause) state() (time.Time, bool, chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.until.IsZero() && !time.Now().Before(p.until) {
		p.until, p.all = time.Time{}, false
	}
	return p.until, p.all, p.wake
}

// Paused tells whether a CLIENT PAUSE (WRITE or ALL) holds this node's
// clients now: the node's shard leaders then delete no expired key
// (active expiry), as Redis expires none during a pause.
func (s *Server) Paused() bool {
	until, _, _ := s.pause.state()
	return !until.IsZero()
}

// pauseClients: CLIENT PAUSE timeout [WRITE|ALL].
func (s *Server) pauseClients(args [][]byte) *messages.Reply {
	ms, err := strconv.ParseInt(string(args[0]), 10, 64)
	if err != nil {
		return errorf("ERR timeout is not an integer or out of range")
	}
	if ms < 0 {
		return errorf("ERR timeout is negative")
	}
	all := true
	if len(args) == 2 {
		switch strings.ToLower(string(args[1])) {
		case "write":
			all = false
		case "all":
		default:
			return errorf("ERR CLIENT PAUSE mode must be WRITE or ALL")
		}
	}
	s.pause.set(time.Now().Add(time.Duration(ms)*time.Millisecond), all, false)
	return replyOK
}

// waitPause holds the command about to run while the node's clients are
// paused for it (write tells, when a WRITE pause is on, whether it may
// write), its earlier replies written first. CLIENT UNPAUSE waits too
// under an ALL pause, as in Redis. A held client counts as blocked (INFO's
// blocked_clients; 'b' in CLIENT LIST), as Redis's postponed clients do;
// CLIENT UNBLOCK does not end its wait.
func (c *conn) waitPause(write func() bool) {
	for {
		until, all, wake := c.s.pause.state()
		if until.IsZero() || (!all && !write()) {
			return
		}
		c.drain()
		c.flush()
		c.flag.Store('p')
		t := time.NewTimer(time.Until(until))
		select {
		case <-t.C:
		case <-wake:
		case <-c.s.done:
		}
		t.Stop()
		c.flag.Store(0)
		select {
		case <-c.s.done:
			return
		default:
		}
	}
}

// pausesAsWrite tells whether a command waits out a WRITE pause: a write
// or a command that may replicate (kv.Spec.MayWrite), or a script or
// function that may write (not one with no-writes, not EVAL_RO and its
// kin), as Redis decides from the script's flags.
func (c *conn) pausesAsWrite(name string, args [][]byte) bool {
	if kv.CheckArity(args) != nil {
		return false // refused at once, as in Redis
	}
	switch name {
	case "eval", "evalsha", "fcall":
		_, shard, read, r := c.scriptCommand(name, args)
		if r == nil && !read && name == "fcall" {
			return c.functionMayWrite(args[1], shard)
		}
		return r != nil || !read
	}
	return c.spec != nil && c.spec.MayWrite()
}

// functionMayWrite tells whether FCALL's function name may write, as the
// libraries of its shard (-1: shard 0, where FCALL with no key runs) say:
// the node does not keep functions' flags, so it reads them, only while
// a WRITE pause is on.
func (c *conn) functionMayWrite(name []byte, shard int) bool {
	list := c.issueRead(max(shard, 0), [][]byte{[]byte(kv.FunctionName), []byte("list")}).Wait()
	return kv.FunctionMayWrite(list, name)
}

// shutdown: SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT], Redis 7.0's
// checks. The node stops in order, as on SIGTERM (every write is durable
// already: SAVE and NOSAVE change nothing, nor do NOW and FORCE), and the
// connection closes with no answer, as Redis's. ABORT has nothing to
// abort: a stop, once begun, goes on.
func (c *conn) shutdown(args [][]byte) {
	var save, nosave, other, abort bool
	for _, a := range args[1:] {
		switch strings.ToLower(string(a)) {
		case "nosave":
			nosave = true
		case "save":
			save = true
		case "now", "force":
			other = true
		case "abort":
			abort = true
		default:
			c.reply(errorf("ERR syntax error"))
			return
		}
	}
	switch {
	case (abort && (save || nosave || other)) || (save && nosave):
		c.reply(errorf("ERR syntax error"))
	case abort:
		c.reply(errorf("ERR No shutdown in progress."))
	case c.s.cfg.Shutdown == nil:
		c.reply(errorf("ERR Errors trying to SHUTDOWN. Check logs."))
	default:
		c.drain()
		c.flush()
		c.s.cfg.Log.Warn("SHUTDOWN", "client", c.nc.RemoteAddr().String(), "id", c.id)
		c.s.cfg.Shutdown()
		c.quit = true
	}
}
