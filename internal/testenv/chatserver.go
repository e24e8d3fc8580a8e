package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Server is a chatserver binary running as a child process on loopback.
// Its combined output is kept and logged if the test fails.
type Server struct {
	bin  string
	args []string // the caller's args, reused by Restart

	mu       sync.Mutex
	cmd      *exec.Cmd
	done     chan struct{} // closed when the current process has exited
	exitCode int           // valid once done is closed
	log      bytes.Buffer  // output of every run, in order
	partial  []byte        // the current run's unterminated last line
	ready    chan struct{} // closed when the listening line is seen
	addr     string
	httpAddr string
}

// serverStartTimeout bounds how long a chatserver may take to log that it
// listens; a race-built binary opening a store can be slow on a busy box.
const serverStartTimeout = 60 * time.Second

var buildServer struct {
	once sync.Once
	path string
	err  error
}

// BuildServer builds ./cmd/chatserver with the race detector into tmp/ at
// the module root, once per test process, and returns the binary's path.
// Concurrent test processes may build at the same time: each builds under a
// name of its own and renames it into place, so none runs a half-written file.
func BuildServer(tb testing.TB) string {
	tb.Helper()
	root := ModuleRoot(tb)
	buildServer.once.Do(func() {
		dir := filepath.Join(root, "tmp")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			buildServer.err = err
			return
		}
		final := filepath.Join(dir, "chatserver")
		own := fmt.Sprintf("%s.%d", final, os.Getpid())
		cmd := exec.Command("go", "build", "-race", "-o", own, "./cmd/chatserver")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildServer.err = fmt.Errorf("go build -race ./cmd/chatserver: %v\n%s", err, out)
			return
		}
		if err := os.Rename(own, final); err != nil {
			buildServer.err = err
			return
		}
		buildServer.path = final
	})
	if buildServer.err != nil {
		tb.Fatalf("testenv: %v", buildServer.err)
	}
	return buildServer.path
}

// StartServer starts the chatserver binary bin with -addr and -http on free
// loopback ports (fixedPort) followed by args (a later -addr or -http in args wins,
// as with any Go flag), waits for its "msg=listening" log line, and learns
// the addresses from it. The process is stopped when the test ends.
func StartServer(tb testing.TB, bin string, args ...string) *Server {
	tb.Helper()
	s := &Server{bin: bin, args: args}
	// Rate limits off: tests and benchmarks register many users and send
	// bursts from one loopback address; a test of the limits passes
	// -rate-limits=true (a later flag wins). The ports are picked outside
	// the kernel's ephemeral range (fixedPort) so that Restart can bind
	// them again; one another process happened to hold is picked again.
	for attempt := 1; ; attempt++ {
		argv := []string{"-addr", Addr(fixedPort(tb)), "-http", Addr(fixedPort(tb)), "-rate-limits=false"}
		err := s.start(append(argv, args...))
		if err == nil {
			break
		}
		if !errors.Is(err, errAddrInUse) || attempt == 5 {
			tb.Fatalf("testenv: %v", err)
		}
	}
	tb.Cleanup(func() {
		s.stop(10 * time.Second)
		// The binary is race-built; a race it reports must fail the test
		// even when the test never looks at its exit code.
		if strings.Contains(s.Log(), "WARNING: DATA RACE") {
			tb.Errorf("testenv: chatserver %s reported a data race", bin)
		}
		if tb.Failed() {
			tb.Logf("testenv: chatserver %s output:\n%s", bin, s.Log())
		}
	})
	return s
}

// listeningAddrs matches the slog text fields of the listening line; values
// may be quoted.
var (
	listeningRE = regexp.MustCompile(`(?:^|\s)msg="?listening"?(?:\s|$)`)
	addrRE      = regexp.MustCompile(`(?:^|\s)addr="?([^\s"]+)`)
	httpRE      = regexp.MustCompile(`(?:^|\s)http="?([^\s"]+)`)
)

// errAddrInUse is a start that failed because a listen address was taken.
var errAddrInUse = errors.New("address already in use")

// start runs the binary with argv and waits for its listening line. It
// wraps errAddrInUse when the process exited because it could not bind.
func (s *Server) start(argv []string) error {
	cmd := exec.Command(s.bin, argv...)
	cmd.Stdout, cmd.Stderr = (*serverOutput)(s), (*serverOutput)(s)
	// If the test binary dies without running cleanups, take the server with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	// Output is copied by goroutines exec owns; do not let Wait hang on
	// them if the server leaves a child holding the pipe.
	cmd.WaitDelay = 5 * time.Second

	s.mu.Lock()
	s.cmd, s.done, s.ready = cmd, make(chan struct{}), make(chan struct{})
	s.addr, s.httpAddr, s.partial = "", "", nil
	done, ready := s.done, s.ready
	fmt.Fprintf(&s.log, "=== testenv: start %s %q\n", s.bin, argv)
	runStart := s.log.Len()
	s.mu.Unlock()

	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start chatserver: %w", err)
	}
	go func() {
		err := cmd.Wait()
		code := cmd.ProcessState.ExitCode()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal()) // as a shell reports it
		}
		s.mu.Lock()
		s.exitCode = code
		fmt.Fprintf(&s.log, "=== testenv: exited: %v (code %d)\n", err, code)
		s.mu.Unlock()
		close(done)
	}()

	select {
	case <-ready:
		return nil
	case <-done:
		log := s.Log()
		if strings.Contains(log[runStart:], "address already in use") {
			return fmt.Errorf("chatserver exited before listening: %w:\n%s", errAddrInUse, log)
		}
		return fmt.Errorf("chatserver exited before listening:\n%s", log)
	case <-time.After(serverStartTimeout):
		s.stop(5 * time.Second)
		return fmt.Errorf("chatserver did not log msg=listening within %v:\n%s", serverStartTimeout, s.Log())
	}
}

// fixedPort returns a loopback port that was free a moment ago, chosen
// below the kernel's ephemeral range: the kernel never hands such a port
// to another socket (a listener on port 0, an outgoing connection's
// source port), so a server stopped by Restart finds its ports free again
// although a busy box opens thousands of connections meanwhile. Only an
// explicit bind by another process can take one; start then picks again.
func fixedPort(tb testing.TB) int {
	tb.Helper()
	lo := ephemeralLow()
	const base = 10000 // above the well-known and registered services tests might run
	for range 100 {
		p := base + rand.IntN(lo-base)
		l, err := net.Listen("tcp", Addr(p))
		if err != nil {
			continue
		}
		l.Close()
		return p
	}
	return FreePort(tb)
}

// ephemeralLow is the lowest port of the kernel's ephemeral range (Linux
// ip_local_port_range), 32768 when it cannot be read or leaves no room.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	lo, err := strconv.Atoi(f[0])
	if err != nil || lo < 20000 {
		return 32768
	}
	return lo
}

// serverOutput is the process's stdout and stderr: it keeps the output and
// looks for the listening line.
type serverOutput Server

func (o *serverOutput) Write(p []byte) (int, error) {
	s := (*Server)(o)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log.Write(p)
	s.partial = append(s.partial, p...)
	for {
		i := bytes.IndexByte(s.partial, '\n')
		if i < 0 {
			break
		}
		line := s.partial[:i]
		s.partial = s.partial[i+1:]
		if s.addr != "" || !listeningRE.Match(line) {
			continue
		}
		a, h := addrRE.FindSubmatch(line), httpRE.FindSubmatch(line)
		if a == nil || h == nil {
			continue
		}
		s.addr, s.httpAddr = string(a[1]), string(h[1])
		close(s.ready)
	}
	return len(p), nil
}

// Addr is the TCP (classic and native protocol) address the server listens on.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// HTTPAddr is the HTTP (WebSocket, /healthz, /metrics) address.
func (s *Server) HTTPAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.httpAddr
}

// Log returns everything the server has written so far, across restarts.
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// Kill sends SIGKILL, as a crash would, and waits for the process to go.
func (s *Server) Kill(tb testing.TB) {
	tb.Helper()
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	_ = cmd.Process.Kill()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		tb.Fatalf("testenv: chatserver still running 30s after SIGKILL")
	}
}

// Term sends SIGTERM and waits for a clean shutdown, returning the exit code
// (0 is a clean shutdown). It fails the test if the server does not exit
// within 30s, and then kills it.
func (s *Server) Term(tb testing.TB) int {
	tb.Helper()
	if err := s.stop(30 * time.Second); err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.exitCode
}

// Restart starts the server again after Kill or Term (stopping it with
// SIGTERM first if it still runs), with the same arguments and on the same
// addresses as before, so clients can reconnect where they were.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	if err := s.stop(30 * time.Second); err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	s.mu.Lock()
	addr, httpAddr := s.addr, s.httpAddr
	s.mu.Unlock()
	argv := append([]string{"-addr", "127.0.0.1:0", "-http", "127.0.0.1:0"}, s.args...)
	argv = append(argv, "-addr", addr, "-http", httpAddr)
	// The ports are outside the ephemeral range (fixedPort), but a socket
	// may still hold one for a moment (another test's explicit bind that
	// will fail and move on): try again for a bounded time.
	deadline := time.Now().Add(serverStartTimeout)
	for delay := 10 * time.Millisecond; ; delay = min(2*delay, time.Second) {
		err := s.start(argv)
		if err == nil {
			return
		}
		if !errors.Is(err, errAddrInUse) || time.Now().After(deadline) {
			tb.Fatalf("testenv: %v", err)
		}
		time.Sleep(delay)
	}
}

// Running reports whether the process is still alive.
func (s *Server) Running() bool {
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// PID is the current process's id.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd.Process.Pid
}

// stop sends SIGTERM unless the process already exited and waits up to
// timeout, then kills it and reports that it had to.
func (s *Server) stop(timeout time.Duration) error {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	select {
	case <-done:
		return nil
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		return nil
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
		return errors.New("chatserver did not exit within " + timeout.String() + " of SIGTERM; killed")
	}
}
