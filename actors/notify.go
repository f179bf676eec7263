package actors

import "github.com/coppice-kv/coppice/kv"

// keyspaceNotifier hands a shard's keyspace events to the client port,
// which publishes them to this node's subscribers (storage.Notifier).
// While the port is down (restarting) they go nowhere, as a message
// published then would.
type keyspaceNotifier struct{ rt *Runtime }

func (n keyspaceNotifier) Wanted() kv.Classes {
	if n.rt.Notify == nil {
		return 0
	}
	return n.rt.Notify.Load()
}

func (n keyspaceNotifier) Fire(events []kv.Event) {
	if port := n.rt.port.Load(); port != nil {
		port.Notify(events)
	}
}

// Tracking and Modified hand the client port what the shards' writes
// change, for its clients' CLIENT TRACKING.
func (n keyspaceNotifier) Tracking() bool {
	port := n.rt.port.Load()
	return port != nil && port.Tracking()
}

func (n keyspaceNotifier) Modified(mods []kv.Modification) {
	if port := n.rt.port.Load(); port != nil {
		port.Modified(mods)
	}
}
