// Package benchkit holds what the benchmark programs share: one command to
// a Redis-protocol server without a client library, and running
// redis-benchmark and reading its figures.
package benchkit

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// Command sends one command to addr (host:port) on a new connection and
// returns its reply's first line, such as "+OK", ":42" or "-ERR ..."; an
// error reply is returned as an error too. The exchange is bounded by
// timeout.
func Command(addr string, timeout time.Duration, args ...string) (string, error) {
	nc, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(timeout))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := nc.Write([]byte(b.String())); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(nc).ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if strings.HasPrefix(line, "-") {
		return line, errors.New(line[1:])
	}
	return line, nil
}
