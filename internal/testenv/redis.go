package testenv

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Redis is a real redis-server on a loopback port, owned by one test. It
// persists nothing (--save "" --appendonly no), so Stop followed by Start is
// a restart that lost every key: exactly what fault tests want to survive.
type Redis struct {
	port int
	dir  string
	bin  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// StartRedis starts redis-server on a free port and registers its stop with
// tb.Cleanup (killed if it is still running then).
func StartRedis(tb testing.TB) *Redis {
	tb.Helper()
	r := &Redis{
		port: FreePort(tb),
		dir:  tb.TempDir(),
		bin:  LookPath(tb, "redis-server", "redis-server", "/usr/bin/redis-server"),
	}
	tb.Cleanup(func() { r.stop(tb, syscall.SIGKILL) })
	// FreePort's port is free when it returns, not when redis binds it:
	// another process (a parallel test package) may take it in between.
	// Only the first start may move to another port; a restart keeps it.
	for attempt := 1; ; attempt++ {
		err := r.start(tb)
		if err == nil {
			return r
		}
		if !errors.Is(err, errPortTaken) || attempt == 5 {
			tb.Fatalf("testenv: %v", err)
		}
		r.port = FreePort(tb)
	}
}

// errPortTaken is what start returns when the server could not bind its
// port because something else holds it.
var errPortTaken = errors.New("port taken")

// Addr is host:port of the server.
func (r *Redis) Addr() string { return Addr(r.port) }

// URL is the redis:// URL of the server.
func (r *Redis) URL() string { return "redis://" + r.Addr() }

// Start starts the server again on the same port (after Stop or Kill), with
// an empty data set, and waits until it accepts connections.
func (r *Redis) Start(tb testing.TB) {
	tb.Helper()
	if err := r.start(tb); err != nil {
		tb.Fatalf("testenv: %v", err)
	}
}

// start starts the server and waits until it says it is ready. A port that
// accepts connections is not enough: it may be another process's.
func (r *Redis) start(tb testing.TB) error {
	tb.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		return fmt.Errorf("redis on %s already running", r.Addr())
	}
	logPath := filepath.Join(r.dir, "redis.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("redis log: %v", err)
	}
	defer logf.Close() // the child holds its own descriptor
	before, _ := logf.Seek(0, io.SeekEnd)
	cmd := exec.Command(r.bin,
		"--port", strconv.Itoa(r.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", r.dir,
		"--daemonize", "no",
	)
	cmd.Stdout = logf
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	logSince := func() string {
		b, _ := os.ReadFile(logPath)
		if int64(len(b)) < before {
			return ""
		}
		return string(b[before:])
	}
	deadline := time.Now().Add(60 * time.Second)
	for delay := 2 * time.Millisecond; ; delay = min(delay*2, 50*time.Millisecond) {
		select {
		case <-done:
			out := logSince()
			if strings.Contains(out, "Address already in use") {
				return fmt.Errorf("redis on %s: %w", r.Addr(), errPortTaken)
			}
			return fmt.Errorf("redis on %s exited at start:\n%s", r.Addr(), out)
		default:
		}
		if strings.Contains(logSince(), "Ready to accept connections") {
			r.cmd, r.done = cmd, done
			return nil
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-done
			return fmt.Errorf("redis on %s not ready in 60s:\n%s", r.Addr(), logSince())
		}
		time.Sleep(delay)
	}
}

// Stop shuts the server down (SIGTERM) and waits for it to exit.
func (r *Redis) Stop(tb testing.TB) {
	tb.Helper()
	r.stop(tb, syscall.SIGTERM)
}

// Kill kills the server with SIGKILL, as a crash would, and waits for it.
func (r *Redis) Kill(tb testing.TB) {
	tb.Helper()
	r.stop(tb, syscall.SIGKILL)
}

func (r *Redis) stop(tb testing.TB, sig syscall.Signal) {
	tb.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Signal(sig)
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		// A server that ignores SIGTERM must still not outlive the test.
		r.cmd.Process.Kill()
		<-r.done
		if sig != syscall.SIGKILL {
			tb.Errorf("testenv: redis on %s ignored %v; killed", r.Addr(), sig)
		}
	}
	r.cmd, r.done = nil, nil
}

// String describes the server for test logs.
func (r *Redis) String() string { return fmt.Sprintf("redis(%s)", r.Addr()) }
