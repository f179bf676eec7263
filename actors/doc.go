// Package actors holds the node's actors and declares its supervision tree
// in one place (tree.go). The full tree of DESIGN.md:
//
//	node                      rest_for_one   (root)
//	├── store                 worker         opens every shard's storage
//	├── shards                one_for_one
//	│   └── shard-<i>         rest_for_one
//	│       └── raft-<i>      worker         owns one raft.Raft
//	├── syncs                 simple_one_for_one, transient children
//	│   └── sync-<i>          worker         one shard's data sync
//	├── manager               worker         cluster manager
//	├── watcher               worker         owns serf
//	├── client                worker         RESP listener
//	└── user                  one_for_one    actors added by whoever embeds the node
//
// Children that do not exist yet are absent from Tree; today the tree holds
// the user supervisor only. Print the live declaration with
//
//	go run ./cmd/node --print-tree
//
// Whoever embeds the node adds plain protoactor-go actors under user through
// Config.User and tests them with actor message scripts
// (supervisor/actorscript).
package actors
