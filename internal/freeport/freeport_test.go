package freeport

import (
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
)

func TestLoopbackAddressesAreDistinctAndBindable(t *testing.T) {
	seen := map[string]bool{}
	for range 3 {
		addrs, err := Loopback(4)
		if err != nil {
			t.Fatal(err)
		}
		if len(addrs) != 4 {
			t.Fatalf("got %d addresses, want 4", len(addrs))
		}
		for _, a := range addrs {
			if seen[a] {
				t.Fatalf("%s handed out twice", a)
			}
			seen[a] = true
			l, err := net.Listen("tcp", a)
			if err != nil {
				t.Fatalf("handed-out %s cannot be bound: %v", a, err)
			}
			l.Close()
			if runtime.GOOS == "linux" && bandHigh-bandLow >= 1000 {
				_, p, _ := net.SplitHostPort(a)
				port, _ := strconv.Atoi(p)
				if port < bandLow || port >= bandHigh {
					t.Fatalf("%s is outside %d-%d, below the ephemeral range", a, bandLow, bandHigh-1)
				}
			}
		}
	}
}

// TestLockedPortIsSkipped locks the port the next pick would take, as
// another process would hold it (flock locks belong to an open file, so a
// second open in this process conflicts as another process's would). A
// test process running beside this one may hold that port's lock already:
// the first port from there whose lock this test can take is the one.
func TestLockedPortIsSkipped(t *testing.T) {
	if runtime.GOOS != "linux" || bandHigh-bandLow < 1000 {
		t.Skip("ports are locked on Linux only, below its ephemeral range")
	}
	if _, err := Loopback(1); err != nil { // sets next
		t.Fatal(err)
	}
	handed.mu.Lock()
	want := next
	handed.mu.Unlock()
	var f *os.File
	for ; f == nil && want < bandHigh; want++ {
		g, err := os.OpenFile(filepath.Join(os.TempDir(), "coppice-ports", strconv.Itoa(want)), os.O_CREATE|os.O_RDONLY, 0o666)
		if err != nil {
			t.Fatal(err)
		}
		if syscall.Flock(int(g.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
			g.Close()
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(want)))
		if err != nil {
			g.Close() // bound by something: pick would skip it for that
			continue
		}
		l.Close()
		f = g
		break
	}
	if f == nil {
		t.Fatal("no port of the band left to lock")
	}
	defer f.Close()
	addrs, err := Loopback(1)
	if err != nil {
		t.Fatal(err)
	}
	if addrs[0] == net.JoinHostPort("127.0.0.1", strconv.Itoa(want)) {
		t.Fatalf("got %s, whose lock another holder has", addrs[0])
	}
}
