// Package netfail tells network failures by their text, for the errors
// libraries log or wrap as text only (memberlist's log lines,
// hashicorp/raft's msgpack decode errors): a peer down, restarting,
// stopped or cut off (Text), or a connection this node closed (Closed).
package netfail

import (
	"net"
	"strings"
)

// endings are the texts such an error ends with (a firewall's drop makes
// a send fail with "operation not permitted").
var endings = []string{
	": i/o timeout", ": connection refused", ": connection reset by peer",
	": broken pipe", ": no route to host", ": network is unreachable",
	": operation not permitted", ": EOF",
}

// Text reports whether s ends with the text of a peer's network failure.
// A connection this node closed is not one (Closed).
func Text(s string) bool {
	for _, e := range endings {
		if strings.HasSuffix(s, e) {
			return true
		}
	}
	return false
}

// Closed reports whether s ends with the text of an operation on a
// connection or socket this node closed (net.ErrClosed's): it is
// stopping, or a group of its stops.
func Closed(s string) bool {
	return strings.HasSuffix(s, net.ErrClosed.Error())
}
