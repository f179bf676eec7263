package kv

import (
	"bytes"
	"encoding/binary"
	"sync/atomic"

	"github.com/coppice-kv/coppice/messages"
)

// Keyspace notifications: the events Redis's notifyKeyspaceEvent fires,
// fired by the same commands at the same points, with the same names.
// The engine only collects them (ExecEvents); the node publishes them on
// its own pub/sub channels "__keyspace@0__:<key>" and
// "__keyevent@0__:<event>" once the shard's batch has committed. Every
// replica applies every write, so every node fires each event once, to
// its own subscribers, as a Redis Cluster node fires its own writes'.

// Classes is a set of event classes: notify-keyspace-events' letters.
type Classes uint16

// The classes, in the order of Redis's flags (server.h's NOTIFY_*).
const (
	ClassKeyspace Classes = 1 << iota // K: publish on __keyspace@0__:<key>
	ClassKeyevent                     // E: publish on __keyevent@0__:<event>
	ClassGeneric                      // g: DEL, EXPIRE, RENAME...
	ClassString                       // $
	ClassList                         // l
	ClassSet                          // s
	ClassHash                         // h
	ClassZset                         // z
	ClassExpired                      // x: a key deleted at its expiry
	ClassEvicted                      // e: never fired (no eviction)
	ClassStream                       // t
	ClassKeyMiss                      // m: a key a read did not find (TraceMisses)
	ClassModule                       // d: never fired (no modules)
	ClassNew                          // n: a key added
)

// ClassAll is "A": every class but K, E, m and n, as in Redis.
const ClassAll = ClassGeneric | ClassString | ClassList | ClassSet | ClassHash | ClassZset |
	ClassExpired | ClassEvicted | ClassStream | ClassModule

// BadEventClass is Redis's reason for refusing a notify-keyspace-events
// value (CONFIG SET's error carries it).
const BadEventClass = "Invalid event class character. Use 'Ag$lshzxeKEtmdn'."

var classLetters = []struct {
	c Classes
	l byte
}{
	{ClassGeneric, 'g'}, {ClassString, '$'}, {ClassList, 'l'}, {ClassSet, 's'}, {ClassHash, 'h'},
	{ClassZset, 'z'}, {ClassExpired, 'x'}, {ClassEvicted, 'e'}, {ClassStream, 't'}, {ClassModule, 'd'},
	{ClassNew, 'n'}, {ClassKeyspace, 'K'}, {ClassKeyevent, 'E'}, {ClassKeyMiss, 'm'},
}

// ParseClasses reads notify-keyspace-events' value, as Redis's
// keyspaceEventsStringToFlags: any letters of "KEg$lshzxetdmnA", in any
// order and repeated; an empty string turns notifications off. Any other
// character makes it refuse the value (ok false; see BadEventClass).
func ParseClasses(s string) (c Classes, ok bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == 'A' {
			c |= ClassAll
			continue
		}
		found := false
		for _, cl := range classLetters {
			if cl.l == s[i] {
				c, found = c|cl.c, true
				break
			}
		}
		if !found {
			return 0, false
		}
	}
	return c, true
}

// String is the value CONFIG GET answers, as Redis's
// keyspaceEventsFlagsToString: "A" for every class of ClassAll, then K, E
// and m. Redis 7.0 leaves n out after an A (its "n" is in the branch of
// the other classes): so does String, though n stays set.
func (c Classes) String() string {
	var b []byte
	all := c&ClassAll == ClassAll
	if all {
		b = append(b, 'A')
	}
	for _, cl := range classLetters {
		if all && cl.c&(ClassAll|ClassNew) != 0 {
			continue
		}
		if c&cl.c != 0 {
			b = append(b, cl.l)
		}
	}
	return string(b)
}

// NotifyConfig is a node's notify-keyspace-events: set by CONFIG SET (or
// the node's flag), read by its shards at every batch they apply. The zero
// value is "" (off).
type NotifyConfig struct{ c atomic.Uint32 }

// Load returns the classes set.
func (n *NotifyConfig) Load() Classes { return Classes(n.c.Load()) }

// Store sets the classes.
func (n *NotifyConfig) Store(c Classes) { n.c.Store(uint32(c)) }

// Fires reports whether c fires anything: a class of events, and
// somewhere to publish them (K or E).
func (c Classes) Fires() bool {
	return c&(ClassKeyspace|ClassKeyevent) != 0 && c&^(ClassKeyspace|ClassKeyevent) != 0
}

// Event is one keyspace event: a command's class, its name ("set",
// "expired", "hdel"...) and the key.
type Event struct {
	Class Classes
	Name  string
	Key   []byte
}

// EventLog collects the events of the classes in Want that the commands
// ExecEvents runs fire, in the order Redis fires them.
type EventLog struct {
	Want   Classes
	Events []Event
}

// ExecEvents is Exec that adds the events the command fires to ev (nil:
// none are collected).
func ExecEvents(w Writer, cmd *messages.Command, ev *EventLog) *messages.Reply {
	if ev != nil && !ev.Want.Fires() {
		ev = nil
	}
	return exec(w, cmd, ev)
}

// notify records an event of class c named name on key, if wanted.
func (t *txn) notify(c Classes, name string, key []byte) {
	if t.ev != nil && t.ev.Want&c != 0 {
		t.ev.Events = append(t.ev.Events, Event{Class: c, Name: name, Key: key})
	}
}

// Modification is what one write command changed, for CLIENT TRACKING:
// the keys it wrote (from the store keys it set and deleted: UserKey,
// RangeKey; a key may come more than once), or every key (All: FLUSHALL,
// a store replaced by a snapshot), and the client that sent it
// (messages.Command.Origin).
type Modification struct {
	Origin string
	Keys   []string
	All    bool
}

// UserKey is the key a store key of the engine belongs to: a key's
// record, one of its fields (a hash's, a list's...) or its expiry index
// entry. ok is false for a store key of no key (the applied index, a
// function library).
func UserKey(stored string) (key string, ok bool) {
	if stored == "" {
		return "", false
	}
	switch stored[0] {
	case prefixMeta:
		return stored[1:], true
	case prefixField:
		n, k := binary.Uvarint([]byte(stored[1:min(len(stored), 1+binary.MaxVarintLen64)]))
		if k <= 0 || uint64(len(stored)-1-k) < n {
			return "", false
		}
		return stored[1+k : 1+k+int(n)], true
	case prefixExpiry:
		if len(stored) < 9 {
			return "", false
		}
		return stored[9:], true
	}
	return "", false
}

// RangeKey is the key a range the engine deleted belongs to: a big
// hash's (or list's...) fields, [fieldPrefix(key), its successor). ok is
// false for any other range (FLUSHDB and FLUSHALL's: every key).
func RangeKey(lower, upper []byte) (key string, ok bool) {
	k, ok := UserKey(string(lower))
	if !ok || lower[0] != prefixField || !bytes.Equal(upper, successor(lower)) ||
		!bytes.Equal(lower, fieldPrefix([]byte(k))) {
		return "", false
	}
	return k, true
}
