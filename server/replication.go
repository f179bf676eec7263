package server

// Redis's modules and master-replica replication, which coppice does not
// have, answered as a Redis Cluster node without modules answers them
// (coppice reports cluster_enabled:1): MODULE LIST is empty and loading
// one is refused as enable-module-command "no" refuses it; REPLICAOF,
// SLAVEOF and FAILOVER get Redis Cluster's refusals; SYNC, PSYNC and
// REPLCONF, a Redis replica's handshake, are refused with the reason.

import (
	"strings"

	"github.com/coppice-kv/coppice/kv"
)

var moduleHelp = []string{
	"LIST",
	"    Return a list of loaded modules.",
	"LOAD <path> [<arg> ...]",
	"    Load a module library from <path>, passing to it any optional arguments.",
	"LOADEX <path> [[CONFIG NAME VALUE] [CONFIG NAME VALUE]] [ARGS ...]",
	"    Load a module library from <path>, while passing it module configurations and optional arguments.",
	"UNLOAD <name>",
	"    Unload a module.",
}

// module answers MODULE: no module is loaded, and none can be.
func (c *conn) module(args [][]byte) {
	if r := kv.CheckSubcommand(args); r != nil {
		c.reply(r)
		return
	}
	switch c.lower(args[1]) {
	case "help":
		c.reply(kv.HelpReply("MODULE", moduleHelp...))
	case "list":
		c.reply(array())
	default: // LOAD, LOADEX, UNLOAD
		c.reply(errorf(`ERR MODULE command not allowed. If the enable-module-command option is set to "local", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server.`))
	}
}

// replication answers REPLICAOF, SLAVEOF, FAILOVER, SYNC, PSYNC and
// REPLCONF.
func (c *conn) replication(name string, args [][]byte) {
	if r := kv.CheckArity(args); r != nil {
		c.reply(r)
		return
	}
	switch name {
	case "replicaof", "slaveof":
		c.reply(errorf("ERR REPLICAOF not allowed in cluster mode."))
	case "failover":
		c.reply(errorf("ERR FAILOVER not allowed in cluster mode. Use CLUSTER FAILOVER command instead."))
	default:
		c.reply(errorf("ERR " + strings.ToUpper(name) + " is not served: coppice replicates each shard through its own Raft group, not as a Redis replica; start a node with --join to add it"))
	}
}
