package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"clusterchat"
)

// ChildEnv, set to 1, makes a chatbench process (or a test binary's
// TestMain) act as an idle-scenario child: see RunChild.
const ChildEnv = "CHATBENCH_CHILD"

// loginJob is what an idle child is told to do, on its stdin.
type loginJob struct {
	Addrs   []string `json:"addrs"`
	Tokens  []string `json:"tokens"`
	N       int      `json:"n"`
	Offset  int      `json:"offset"`
	SrcIPs  int      `json:"src_ips"`
	Workers int      `json:"workers"`
}

// loginReport is what a child answers once its connections are in, and
// again (Dead filled) after its stdin closes.
type loginReport struct {
	OK     int64          `json:"ok"`
	Errors int64          `json:"errors"`
	Secs   float64        `json:"secs"`
	Hist   map[int]uint64 `json:"hist,omitempty"`
	Err    string         `json:"err,omitempty"`
	Dead   int64          `json:"dead"`
}

// srcAddr spreads connection i over 127.0.0.1 .. 127.0.0.n (n > 1), so that
// many connections do not exhaust one source address's ephemeral ports.
func srcAddr(i, n int) string {
	if n <= 1 {
		return ""
	}
	return fmt.Sprintf("127.0.0.%d", 1+i%min(n, 254))
}

// loginMany opens job.N connections and logs each in with a session token,
// job.Workers at a time. The codec buffer is dropped after login: an idle
// connection on this side is only its socket.
func loginMany(ctx context.Context, job loginJob) ([]net.Conn, *loginReport, *Histogram) {
	conns := make([]net.Conn, job.N)
	rep := &loginReport{}
	var h Histogram
	var mu sync.Mutex
	next := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < min(job.Workers, job.N); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lh Histogram
			var ok, bad int64
			var first string
			for i := range next {
				g := job.Offset + i
				t := time.Now()
				c, err := dial(ctx, job.Addrs[g%len(job.Addrs)], srcAddr(g, job.SrcIPs), 1024)
				if err == nil {
					if err = c.login(0, "", job.Tokens[g%len(job.Tokens)]); err != nil {
						c.close()
					}
				}
				if err != nil {
					bad++
					if first == "" {
						first = fmt.Sprintf("conn %d: %v", g, err)
					}
					continue
				}
				lh.Record(time.Since(t).Microseconds())
				c.fr = nil
				conns[i] = c.nc
				ok++
			}
			mu.Lock()
			h.Merge(&lh)
			rep.OK += ok
			rep.Errors += bad
			if rep.Err == "" {
				rep.Err = first
			}
			mu.Unlock()
		}()
	}
	for i := 0; i < job.N; i++ {
		select {
		case next <- i:
		case <-ctx.Done():
		}
	}
	close(next)
	wg.Wait()
	rep.Secs = time.Since(start).Seconds()
	return conns, rep, &h
}

// deadConns counts connections the server has closed, by peeking each
// socket without blocking (an idle connection must still be open).
func deadConns(conns []net.Conn) int64 {
	var dead int64
	buf := make([]byte, 1)
	for _, c := range conns {
		tc, ok := c.(*net.TCPConn)
		if !ok {
			continue
		}
		rc, err := tc.SyscallConn()
		if err != nil {
			dead++
			continue
		}
		var n int
		var rerr error
		_ = rc.Read(func(fd uintptr) bool {
			n, _, rerr = syscall.Recvfrom(int(fd), buf, syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			return true
		})
		if (n == 0 && rerr == nil) || (rerr != nil && !errors.Is(rerr, syscall.EAGAIN)) {
			dead++
		}
	}
	return dead
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		if c != nil {
			_ = c.Close()
		}
	}
}

// tokens registers the accounts idle and storm log in as: many connections
// share an account (sessions of one user are unlimited by default), because
// registering means a password hash each, which would dominate the run.
func tokens(ctx context.Context, cfg *Config) ([]string, error) {
	u := cfg.Users
	if u <= 0 {
		u = min(cfg.N, 100)
	}
	conns, err := users(ctx, cfg, u, false)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(conns))
	for i, c := range conns {
		if c.token == "" {
			return nil, clusterchat.Errorf(clusterchat.EINVALID, "login reply carried no session token")
		}
		out[i] = c.token
	}
	return out, nil
}

func (h *Histogram) sparse() map[int]uint64 {
	m := map[int]uint64{}
	for i, c := range h.counts {
		if c > 0 {
			m[i] = c
		}
	}
	return m
}

func (h *Histogram) addSparse(m map[int]uint64) {
	if h.counts == nil {
		h.counts = make([]uint64, histBuckets)
	}
	for i, c := range m {
		if i >= 0 && i < histBuckets {
			h.counts[i] += c
			h.n += c
			h.max = max(h.max, bucketValue(i))
		}
	}
}

// child is a running idle child process.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

func startChild(ctx context.Context, exe string, job loginJob) (*child, error) {
	cmd := exec.CommandContext(ctx, exe, "-child")
	cmd.Env = append(os.Environ(), ChildEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	if err := json.NewEncoder(stdin).Encode(job); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, err
	}
	return &child{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}, nil
}

func (c *child) report() (*loginReport, error) {
	line, err := c.out.ReadBytes('\n')
	if err != nil {
		return nil, fmt.Errorf("idle child: %w", err)
	}
	var r loginReport
	if err := json.Unmarshal(line, &r); err != nil {
		return nil, fmt.Errorf("idle child said %q: %w", line, err)
	}
	return &r, nil
}

// RunChild is an idle child: it reads a job on in, logs its connections in,
// reports on out, holds them until in closes, reports how many the server
// closed meanwhile, and exits. It returns the process exit code.
func RunChild(in io.Reader, out io.Writer) int {
	dec := json.NewDecoder(in)
	var job loginJob
	if err := dec.Decode(&job); err != nil {
		fmt.Fprintf(os.Stderr, "chatbench child: %v\n", err)
		return 2
	}
	conns, rep, h := loginMany(context.Background(), job)
	rep.Hist = h.sparse()
	enc := json.NewEncoder(out)
	_ = enc.Encode(rep)
	var rest json.RawMessage
	_ = dec.Decode(&rest) // returns at EOF: the parent is done
	fin := &loginReport{OK: rep.OK, Dead: deadConns(conns)}
	_ = enc.Encode(fin)
	closeAll(conns)
	return 0
}

// runIdle holds cfg.N logged-in idle connections and reports the server's
// memory per connection and the login rate.
func runIdle(ctx context.Context, cfg *Config, r *Result) error {
	toks, err := tokens(ctx, cfg)
	if err != nil {
		return err
	}
	before, memOK, err := serverMem(ctx, cfg)
	if err != nil {
		return fmt.Errorf("server memory: %w", err)
	}
	start := time.Now()
	var h Histogram
	var conns []net.Conn
	var children []*child
	var loginSecs float64
	var ok int64
	base := loginJob{Addrs: cfg.Addrs, Tokens: toks, SrcIPs: cfg.SrcIPs, Workers: 128}
	if cfg.N <= cfg.PerProc {
		job := base
		job.N = cfg.N
		var rep *loginReport
		var lh *Histogram
		conns, rep, lh = loginMany(ctx, job)
		h.Merge(lh)
		ok, loginSecs = rep.OK, rep.Secs
		r.Errors += rep.Errors
		r.ErrSample = rep.Err
		defer closeAll(conns)
	} else {
		exe := cfg.Exe
		if exe == "" {
			if exe, err = os.Executable(); err != nil {
				return err
			}
		}
		k := (cfg.N + cfg.PerProc - 1) / cfg.PerProc
		for i := 0; i < k; i++ {
			job := base
			job.Offset = i * cfg.N / k
			job.N = (i+1)*cfg.N/k - job.Offset
			job.Workers = max(1, 128/k)
			c, err := startChild(ctx, exe, job)
			if err != nil {
				for _, c := range children {
					_ = c.stdin.Close()
					_ = c.cmd.Wait()
				}
				return fmt.Errorf("idle child: %w", err)
			}
			children = append(children, c)
		}
		defer func() {
			for _, c := range children {
				_ = c.stdin.Close()
				_ = c.cmd.Wait()
			}
		}()
		for _, c := range children {
			rep, err := c.report()
			if err != nil {
				return err
			}
			h.addSparse(rep.Hist)
			ok += rep.OK
			r.Errors += rep.Errors
			loginSecs = max(loginSecs, rep.Secs)
			if r.ErrSample == "" {
				r.ErrSample = rep.Err
			}
		}
		r.Summary = append(r.Summary, fmt.Sprintf("connections spread over %d child processes", k))
	}
	afterLogin, _, _ := serverMem(ctx, cfg)
	if rest := cfg.Duration - time.Since(start); rest > 0 {
		select {
		case <-time.After(rest):
		case <-ctx.Done():
		}
	}
	after, _, _ := serverMem(ctx, cfg)
	var dead int64
	if children == nil {
		dead = deadConns(conns)
	} else {
		for _, c := range children {
			_ = c.stdin.Close()
			rep, err := c.report()
			if err != nil {
				return err
			}
			dead += rep.Dead
		}
	}
	if dead > 0 {
		r.Errors += dead
		if r.ErrSample == "" {
			r.ErrSample = fmt.Sprintf("server closed %d idle connections", dead)
		}
	}
	r.Conns = int(ok)
	if loginSecs > 0 {
		r.LoginsPerSec = float64(ok) / loginSecs
	}
	r.P50, r.P99, r.P999 = h.Quantile(0.50), h.Quantile(0.99), h.Quantile(0.999)
	r.Summary = append(r.Summary, fmt.Sprintf("%d of %d connections logged in (%d accounts, %d source addresses) in %.2fs: %.0f logins/s; latency is per login",
		ok, cfg.N, len(toks), max(1, min(cfg.SrcIPs, 254)), loginSecs, r.LoginsPerSec))
	if memOK && ok > 0 {
		r.RSSKiBPerConn = float64(after-before) / float64(ok)
		r.Summary = append(r.Summary, fmt.Sprintf("server RSS %d KiB before, %d KiB after login, %d KiB after %v idle: %.1f KiB per connection",
			before, afterLogin, after, cfg.Duration, r.RSSKiBPerConn))
	} else {
		r.Summary = append(r.Summary, "server memory unknown: give -pid or -metrics")
	}
	return nil
}

// runStorm logs cfg.N clients in, then repeatedly drops them all and has
// them reconnect at once with their session tokens, for cfg.Duration.
func runStorm(ctx context.Context, cfg *Config, r *Result) error {
	if cfg.N > cfg.PerProc {
		return clusterchat.Errorf(clusterchat.EINVALID, "storm holds all its clients in one process: -n at most %d", cfg.PerProc)
	}
	toks, err := tokens(ctx, cfg)
	if err != nil {
		return err
	}
	job := loginJob{Addrs: cfg.Addrs, Tokens: toks, N: cfg.N, SrcIPs: cfg.SrcIPs, Workers: 128}
	conns, rep, _ := loginMany(ctx, job)
	r.Errors += rep.Errors
	r.ErrSample = rep.Err
	var h Histogram
	var logins int64
	var secs float64
	rounds := 0
	start := time.Now()
	job.Workers = cfg.N // everyone at once
	for rounds == 0 || (time.Since(start) < cfg.Duration && ctx.Err() == nil) {
		closeAll(conns)
		var lh *Histogram
		conns, rep, lh = loginMany(ctx, job)
		h.Merge(lh)
		logins += rep.OK
		secs += rep.Secs
		r.Errors += rep.Errors
		if r.ErrSample == "" {
			r.ErrSample = rep.Err
		}
		rounds++
	}
	closeAll(conns)
	r.Conns = cfg.N
	if secs > 0 {
		r.LoginsPerSec = float64(logins) / secs
	}
	r.P50, r.P99, r.P999 = h.Quantile(0.50), h.Quantile(0.99), h.Quantile(0.999)
	r.Summary = append(r.Summary, fmt.Sprintf("%d rounds of %d clients reconnecting at once (%d accounts): %d logins in %.2fs of storms, %.0f logins/s; latency is dial to login ack",
		rounds, cfg.N, len(toks), logins, secs, r.LoginsPerSec))
	return nil
}
