// Package testenv starts the real parts that integration tests need
// (PostgreSQL, Redis, nginx, chatserver processes) on loopback ports, and
// stops them when the test ends. It never mocks: a missing binary fails the
// test with the command that installs it (make deps).
package testenv

import (
	"fmt"
	"net"
	"os/exec"
	"testing"
	"time"
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("testenv: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// WaitFor polls cond every few milliseconds until it returns true or timeout
// passes, then fails the test with what.
func WaitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for delay := time.Millisecond; ; delay = min(delay*2, 100*time.Millisecond) {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("testenv: timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(delay)
	}
}

// WaitTCP waits until addr accepts TCP connections.
func WaitTCP(tb testing.TB, addr string, timeout time.Duration) {
	tb.Helper()
	WaitFor(tb, timeout, "tcp "+addr, func() bool {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

// LookPath finds a binary among the given candidates (names or absolute
// paths) or fails the test, saying how to install it.
func LookPath(tb testing.TB, pkg string, candidates ...string) string {
	tb.Helper()
	for _, c := range candidates {
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	tb.Fatalf("testenv: none of %v found; install Debian package %q (make deps does)", candidates, pkg)
	return ""
}

// Addr formats a loopback address.
func Addr(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }
