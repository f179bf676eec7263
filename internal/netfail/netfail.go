// Package netfail tells a network failure by its text, for the errors
// libraries log or wrap as text only (memberlist's log lines,
// hashicorp/raft's msgpack decode errors): a peer down, restarting,
// stopped or cut off.
package netfail

import "strings"

// endings are the texts such an error ends with (a firewall's drop makes
// a send fail with "operation not permitted").
var endings = []string{
	": i/o timeout", ": connection refused", ": connection reset by peer",
	": broken pipe", ": no route to host", ": network is unreachable",
	": operation not permitted", ": use of closed network connection", ": EOF",
}

// Text reports whether s ends with the text of a network failure.
func Text(s string) bool {
	for _, e := range endings {
		if strings.HasSuffix(s, e) {
			return true
		}
	}
	return false
}
