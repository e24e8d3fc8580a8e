package testenv

import (
	"syscall"
	"testing"
)

// Pause stops the server (SIGSTOP) without closing anything: connections
// stay open and every command waits, as in a network partition or a Redis
// stalled by the machine. Resume undoes it.
func (r *Redis) Pause(tb testing.TB) { r.signal(tb, syscall.SIGSTOP) }

// Resume continues a paused server (SIGCONT).
func (r *Redis) Resume(tb testing.TB) { r.signal(tb, syscall.SIGCONT) }

func (r *Redis) signal(tb testing.TB, sig syscall.Signal) {
	tb.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		tb.Fatalf("testenv: redis on %s is not running", r.Addr())
	}
	if err := r.cmd.Process.Signal(sig); err != nil {
		tb.Fatalf("testenv: signal redis: %v", err)
	}
}
