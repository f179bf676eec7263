// Package testwait is the bounded wait the tests share: poll a condition
// until it holds, and fail the test with the condition's last error when a
// deadline passes first.
package testwait

import (
	"testing"
	"time"
)

// For polls cond every interval until it returns nil, or fails t after
// timeout with what and cond's last error.
func For(t testing.TB, timeout, interval time.Duration, what string, cond func() error) {
	t.Helper()
	if err := Until(timeout, interval, cond); err != nil {
		t.Fatalf("%s: not within %v: %v", what, timeout, err)
	}
}

// Until polls cond every interval until it returns nil (Until returns nil)
// or timeout passes (Until returns cond's last error).
func Until(timeout, interval time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(interval)
	}
}

// Recv receives from ch, or fails t ("no <what> within <d>") if nothing
// comes in d.
func Recv[T any](t testing.TB, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("no %s within %v", what, d)
		panic("unreachable")
	}
}
