package server

import (
	"strings"

	"github.com/coppice-kv/coppice/kv"
	"github.com/coppice-kv/coppice/kv/luascript"
	"github.com/coppice-kv/coppice/messages"
)

// Functions: every shard keeps every library (kv/function.go), so FUNCTION
// LOAD, DELETE and FLUSH go to every shard, FUNCTION LIST and STATS read
// shard 0's, and FCALL runs on its keys' shard as EVAL does.

// fcallCommand is kv.PrepareFcall's command, owned.
func (c *conn) fcallCommand(name string, args [][]byte) ([][]byte, int, bool, *messages.Reply) {
	cmd, shard, read, r := kv.PrepareFcall(name, args, c.s.backend.Shards())
	if r != nil {
		return nil, 0, false, r
	}
	return cloneAll(cmd), shard, read, nil
}

// functionCmd is FUNCTION LOAD, DELETE, FLUSH, LIST, STATS, KILL, HELP
// (DUMP and RESTORE: Redis's payload of the libraries' codes).
func (c *conn) functionCmd(args [][]byte) {
	if r := kv.CheckSubcommand(args); r != nil {
		c.reply(r)
		return
	}
	fn := func(op string, rest ...[]byte) [][]byte {
		return cloneAll(append([][]byte{[]byte(kv.FunctionName), []byte(op)}, rest...))
	}
	switch strings.ToLower(string(args[1])) {
	case "load":
		replace, code := "0", args[len(args)-1]
		for _, opt := range args[2 : len(args)-1] { // as Redis reads them: REPLACE, any number of times
			if !strings.EqualFold(string(opt), "replace") {
				c.reply(errorf("ERR Unknown option given: " + string(opt)))
				return
			}
			replace = "1"
		}
		// Every shard checks it alike: a bad library changes none.
		c.everyShardOwned(fn("load", []byte(replace), code), true, func(rs []*messages.Reply) *messages.Reply {
			return firstErrorOr(rs[0])(rs) // the library's name
		})
	case "delete":
		c.everyShardOwned(fn("delete", args[2]), true, firstErrorOr(replyOK))
	case "flush":
		if len(args) > 3 {
			c.reply(subSyntaxError(args))
			return
		}
		if len(args) == 3 && !strings.EqualFold(string(args[2]), "sync") && !strings.EqualFold(string(args[2]), "async") {
			c.reply(errorf("ERR FUNCTION FLUSH only supports SYNC|ASYNC option"))
			return
		}
		c.everyShardOwned(fn("flush"), true, firstErrorOr(replyOK))
	case "list":
		var pattern []byte
		withCode := false
		for i := 2; i < len(args); i++ {
			switch {
			case strings.EqualFold(string(args[i]), "withcode") && !withCode:
				withCode = true
			case strings.EqualFold(string(args[i]), "libraryname") && pattern == nil:
				if i+1 == len(args) {
					c.reply(errorf("ERR library name argument was not given"))
					return
				}
				pattern = clone(args[i+1])
				i++
			default:
				c.reply(errorf("ERR Unknown argument " + string(args[i])))
				return
			}
		}
		c.libraries(func(libs []*luascript.Library) *messages.Reply { return listLibraries(libs, pattern, withCode) })
	case "stats":
		c.libraries(func(libs []*luascript.Library) *messages.Reply {
			funcs := 0
			for _, l := range libs {
				funcs += len(l.Funcs)
			}
			return mapReply(bulkString("running_script"), nullBulk(), bulkString("engines"),
				mapReply(bulkString("LUA"), mapReply(
					bulkString("libraries_count"), integer(int64(len(libs))),
					bulkString("functions_count"), integer(int64(funcs)))))
		})
	case "kill":
		c.reply(errorf("NOTBUSY No scripts in execution right now."))
	case "dump":
		c.libraries(func(libs []*luascript.Library) *messages.Reply {
			codes := make([][]byte, len(libs))
			for i, l := range libs {
				codes[i] = l.Code
			}
			return bulk(kv.FunctionDump(codes))
		})
	case "restore":
		// As Redis checks it: the arguments, the policy, the payload;
		// then every shard joins the libraries to its own alike.
		if len(args) > 4 {
			c.reply(subSyntaxError(args))
			return
		}
		policy := "append"
		if len(args) == 4 {
			policy = strings.ToLower(string(args[3]))
			if policy != "append" && policy != "replace" && policy != "flush" {
				c.reply(errorf("ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE."))
				return
			}
		}
		codes, r := kv.FunctionCodes(args[2])
		if r != nil {
			c.reply(r)
			return
		}
		c.everyShardOwned(fn("restore", append([][]byte{[]byte(policy)}, codes...)...), true, firstErrorOr(replyOK))
	case "help":
		lines := []string{
			"LOAD [REPLACE] <FUNCTION CODE>",
			"    Create a new library with the given library name and code.",
			"DELETE <LIBRARY NAME>",
			"    Delete the given library.",
			"LIST [LIBRARYNAME PATTERN] [WITHCODE]",
			"    Return general information on all the libraries:",
			"    * Library name",
			"    * The engine used to run the Library",
			"    * Library description",
			"    * Functions list",
			"    * Library code (if WITHCODE is given)",
			"    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
			"STATS",
			"    Return information about the current function running:",
			"    * Function name",
			"    * Command used to run the function",
			"    * Duration in MS that the function is running",
			"    If no function is running, return nil",
			"    In addition, returns a list of available engines.",
			"KILL",
			"    Kill the current running function.",
			"FLUSH [ASYNC|SYNC]",
			"    Delete all the libraries.",
			"    When called without the optional mode argument, the behavior is determined by the",
			"    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
			"    * ASYNC: Asynchronously flush the libraries.",
			"    * SYNC: Synchronously flush the libraries.",
			"DUMP",
			"    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
			"RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
			"    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
			"    control how to handle existing libraries (default APPEND):",
			"    * FLUSH: delete all existing libraries.",
			"    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
			"    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
			"      libraries with the new libraries (notice that even on this option there is a chance of failure",
			"      in case of functions name collision with another library).",
		}
		c.reply(kv.HelpReply("FUNCTION", lines...))
	}
}

// libraries answers with answer's reply to shard 0's libraries (every
// shard has the same).
func (c *conn) libraries(answer func([]*luascript.Library) *messages.Reply) {
	p := c.issueRead(0, cloneAll([][]byte{[]byte(kv.FunctionName), []byte("list")}))
	ch := make(chan *messages.Reply, 1)
	go func() {
		libs, e := decodeLibraries(p.Wait())
		if e != nil {
			ch <- e
			return
		}
		ch <- answer(libs)
	}()
	c.push(waiting(ch))
}

// decodeLibraries reads the libraries of a shard's FUNCTION LIST read
// (kv.FunctionName's "list"), or the error it or a library gave.
func decodeLibraries(r *messages.Reply) ([]*luascript.Library, *messages.Reply) {
	if r.GetError() != "" {
		return nil, r
	}
	items := r.GetArray().GetItems()
	var libs []*luascript.Library
	for i := 0; i+1 < len(items); i += 2 {
		lib, e := luascript.LoadLibrary(items[i+1].GetBulk())
		if e != nil {
			return nil, e
		}
		libs = append(libs, lib)
	}
	return libs, nil
}

// listLibraries is FUNCTION LIST's reply: the libraries whose name
// matches pattern (all when nil), in name order.
func listLibraries(libs []*luascript.Library, pattern []byte, withCode bool) *messages.Reply {
	var out []*messages.Reply
	for _, l := range libs {
		if pattern != nil && !kv.MatchGlob(pattern, []byte(l.Name)) {
			continue
		}
		funcs := make([]*messages.Reply, len(l.Funcs))
		for i, f := range l.Funcs {
			desc := nullBulk()
			if f.Description != "" {
				desc = bulkString(f.Description)
			}
			flags := make([]*messages.Reply, len(f.Flags))
			for j, fl := range f.Flags {
				flags[j] = status(fl)
			}
			funcs[i] = mapReply(bulkString("name"), bulkString(f.Name), bulkString("description"), desc,
				bulkString("flags"), &messages.Reply{Value: &messages.Reply_Set{Set: &messages.Replies{Items: flags}}})
		}
		item := []*messages.Reply{bulkString("library_name"), bulkString(l.Name), bulkString("engine"), bulkString("LUA"),
			bulkString("functions"), array(funcs...)}
		if withCode {
			item = append(item, bulkString("library_code"), bulk(l.Code))
		}
		out = append(out, mapReply(item...))
	}
	return array(out...)
}
