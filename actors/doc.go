// Package actors holds the node's actors and declares its supervision tree
// in one place (tree.go):
//
//	node                      rest_for_one   (root)
//	├── store                 worker         opens every shard's storage
//	├── transport             worker         the cluster port: Raft streams and peer requests
//	├── shards                one_for_one
//	│   └── shard-<i>         rest_for_one
//	│       └── raft-<i>      worker         owns one raft.Raft
//	├── system                worker         the system Raft group: cluster ID, members, op journal
//	├── syncs                 simple_one_for_one, transient children
//	│   └── sync-<n>          worker         one shard's sync to one node; restarts alone
//	├── manager               worker         cluster manager; coordinates on the system leader
//	├── client                worker         RESP listener; forwards to shard leaders
//	├── user                  one_for_one    actors added by whoever embeds the node
//	└── watcher               worker         owns serf; last, so its crash restarts nothing else
//
// rest_for_one at the root restarts every child after one that crashed:
// the order puts what others need first (storage, then the cluster port,
// then Raft), and the watcher last. A crash of a sync restarts that sync
// only. Print the live declaration with
//
//	go run ./cmd/node --print-tree
//
// Whoever embeds the node adds plain protoactor-go actors under user through
// Config.User and tests them with actor message scripts
// (supervisor/actorscript).
package actors
