//go:build linux

package freeport

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// band is where ports are picked: from bandLow up to the start of the
// kernel's ephemeral range, read once.
const bandLow = 20000

var (
	bandHigh = ephemeralLow() // exclusive
	locks    = map[int]*os.File{}
	next     = -1
)

// ephemeralLow reads the low end of the ephemeral port range, 0 when it
// cannot be read.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0
	}
	low, err := strconv.Atoi(f[0])
	if err != nil {
		return 0
	}
	return low
}

// pick returns a listener on a port of the band that no other process
// holds the lock of, the lock taken and kept: the caller closes the
// listener, the lock stays until the process exits. Where the band is too
// narrow or every port in it is taken, the kernel picks.
func pick() (net.Listener, int, error) {
	size := bandHigh - bandLow
	if size < 1000 {
		return ephemeral()
	}
	if next < 0 {
		next = bandLow + rand.IntN(size)
	}
	dir := filepath.Join(os.TempDir(), "coppice-ports")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return ephemeral()
	}
	os.Chmod(dir, 0o777|os.ModeSticky) // shared by every user's tests, as /tmp is; fails unless ours
	for range size {
		port := next
		next++
		if next >= bandHigh {
			next = bandLow
		}
		if locks[port] != nil {
			continue
		}
		f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(port)), os.O_CREATE|os.O_RDONLY, 0o666) // flock needs no write access
		if errors.Is(err, fs.ErrPermission) {
			return ephemeral() // another user's lock dir or file: no locks for this process
		}
		if err != nil {
			continue
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
			f.Close() // another process has it
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			f.Close() // in use by something that takes no lock
			continue
		}
		locks[port] = f
		return l, port, nil
	}
	return nil, 0, fmt.Errorf("freeport: no free port in %d-%d", bandLow, bandHigh-1)
}
