// Package bench is chatbench's engine: it drives chat servers over real
// loopback TCP connections with a lean codec of its own (a load generator
// must not cost more CPU than the server it measures, since they share the
// box), checks that every message arrives exactly once and in order, and
// reports throughput, latency percentiles and server memory.
//
// Concurrency: one reader goroutine per connection owns that connection's
// counters and histogram; writers (a sender goroutine per flood sender, or
// the reader itself in pingpong) serialise on the connection's mutex and
// write whole batches. Totals the drain needs are atomics on the engine.
package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"clusterchat"
)

// Config is one chatbench run.
type Config struct {
	Scenario string        // pingpong, flood, group, idle, storm
	Addrs    []string      // servers; users are spread round-robin
	Duration time.Duration // measured time
	N        int           // pairs (pingpong), senders (flood), connections (idle, storm)
	W        int           // messages in flight per sender (flood, group); 0 = scenario default
	Groups   int           // group: number of groups
	Members  int           // group: members per group
	Size     int           // message text bytes
	Rate     float64       // offered msgs/s in total (flood, group); 0 = closed loop
	Proto    string        // native or classic
	// Transport is how clients connect: "tcp" (Addrs are -addr ports) or
	// "ws" (Addrs are -http ports; each client opens ws://ADDR/ws).
	Transport string
	PID       int           // server pid, for /proc/PID/status memory
	Metrics   string        // server /metrics URL, for memory when PID is 0
	Users     int           // distinct accounts (group, idle, storm); 0 = scenario default
	SrcIPs    int           // idle, storm: spread connections over 127.0.0.1..127.0.0.N
	PerProc   int           // idle: connections per process; more are spread over child processes
	Grace     time.Duration // drain time after Duration for late deliveries
	Setup     int           // parallel setup connections (registration is slow: password hashing)
	Exe       string        // executable for idle child processes (default: this one)
	Log       *slog.Logger
}

// Result is what a run measured. Line renders the machine-readable line.
type Result struct {
	Scenario      string
	MsgsPerSec    float64
	P50, P99      int64 // microseconds
	P999          int64
	Lost, Dup     int64
	Reorder       int64
	Errors        int64
	Conns         int     // idle
	RSSKiBPerConn float64 // idle
	LoginsPerSec  float64 // idle, storm
	Summary       []string
	ErrSample     string // the first error seen, for people
}

// Line is the machine-readable RESULT line.
func (r *Result) Line() string {
	s := fmt.Sprintf("RESULT scenario=%s msgs_per_s=%.0f p50_us=%d p99_us=%d p999_us=%d lost=%d dup=%d reorder=%d errors=%d",
		r.Scenario, r.MsgsPerSec, r.P50, r.P99, r.P999, r.Lost, r.Dup, r.Reorder, r.Errors)
	switch r.Scenario {
	case "idle":
		s += fmt.Sprintf(" conns=%d rss_kib_per_conn=%.1f logins_per_s=%.0f", r.Conns, r.RSSKiBPerConn, r.LoginsPerSec)
	case "storm":
		s += fmt.Sprintf(" conns=%d logins_per_s=%.0f", r.Conns, r.LoginsPerSec)
	}
	return s
}

// OK reports whether the run saw no loss, duplicate, reordering or error.
func (r *Result) OK() bool { return r.Lost == 0 && r.Dup == 0 && r.Reorder == 0 && r.Errors == 0 }

// Scenarios lists the scenario names.
var Scenarios = []string{"pingpong", "flood", "group", "idle", "storm"}

func (cfg *Config) defaults() error {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if len(cfg.Addrs) == 0 {
		cfg.Addrs = []string{"127.0.0.1:6000"}
	}
	for _, a := range cfg.Addrs {
		if err := CheckLoopback(a); err != nil {
			return err
		}
	}
	if cfg.Metrics != "" {
		u, err := url.Parse(cfg.Metrics)
		if err != nil {
			return clusterchat.Errorf(clusterchat.EINVALID, "metrics URL: %v", err)
		}
		if err := CheckLoopback(u.Host); err != nil {
			return err
		}
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 10 * time.Second
	}
	if cfg.N <= 0 {
		cfg.N = 1
	}
	if cfg.W <= 0 {
		cfg.W = 1
		if cfg.Scenario == "flood" {
			cfg.W = 50
		}
	}
	if cfg.Groups <= 0 {
		cfg.Groups = 1
	}
	if cfg.Members < 2 {
		cfg.Members = 2
	}
	if cfg.Size <= 0 {
		cfg.Size = 64
	}
	if cfg.Grace <= 0 {
		cfg.Grace = 5 * time.Second
	}
	if cfg.Setup <= 0 {
		cfg.Setup = 16
	}
	if cfg.SrcIPs <= 0 {
		cfg.SrcIPs = 1
	}
	if cfg.PerProc <= 0 {
		cfg.PerProc = 15000
	}
	switch cfg.Proto {
	case "", "native":
		cfg.Proto = "native"
	case "classic":
		if cfg.Scenario != "pingpong" {
			return clusterchat.Errorf(clusterchat.EINVALID, "-proto classic supports only the pingpong scenario")
		}
	default:
		return clusterchat.Errorf(clusterchat.EINVALID, "-proto must be native or classic, not %q", cfg.Proto)
	}
	switch cfg.Transport {
	case "", "tcp":
		cfg.Transport = "tcp"
	case "ws":
		if cfg.Scenario != "pingpong" && cfg.Scenario != "flood" && cfg.Scenario != "group" {
			return clusterchat.Errorf(clusterchat.EINVALID, "-transport ws supports pingpong, flood and group")
		}
	default:
		return clusterchat.Errorf(clusterchat.EINVALID, "-transport must be tcp or ws, not %q", cfg.Transport)
	}
	return nil
}

// CheckLoopback refuses any address outside 127.0.0.0/8: chatbench floods
// what it points at, so it must only ever point at this machine.
func CheckLoopback(hostport string) error {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || ip.To4() == nil || ip.To4()[0] != 127 {
		return clusterchat.Errorf(clusterchat.EFORBIDDEN, "%q is not a 127.0.0.0/8 address: chatbench runs against loopback only", hostport)
	}
	return nil
}

// Run runs cfg.Scenario, writes a human summary to out and returns the
// result (the caller prints Result.Line last).
func Run(ctx context.Context, cfg Config, out io.Writer) (*Result, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	r := &Result{Scenario: cfg.Scenario}
	var err error
	switch cfg.Scenario {
	case "pingpong", "flood", "group":
		err = runChat(ctx, &cfg, r)
	case "idle":
		err = runIdle(ctx, &cfg, r)
	case "storm":
		err = runStorm(ctx, &cfg, r)
	default:
		return nil, clusterchat.Errorf(clusterchat.EINVALID, "unknown scenario %q (want one of %s)", cfg.Scenario, strings.Join(Scenarios, ", "))
	}
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "chatbench %s against %s, %s protocol over %s, %v\n", cfg.Scenario, strings.Join(cfg.Addrs, ","), cfg.Proto, cfg.Transport, cfg.Duration)
	for _, s := range r.Summary {
		fmt.Fprintf(out, "  %s\n", s)
	}
	fmt.Fprintf(out, "  throughput %.0f msgs/s; latency p50 %d us, p99 %d us, p99.9 %d us\n", r.MsgsPerSec, r.P50, r.P99, r.P999)
	fmt.Fprintf(out, "  lost %d, duplicated %d, out of order %d, errors %d\n", r.Lost, r.Dup, r.Reorder, r.Errors)
	if r.ErrSample != "" {
		fmt.Fprintf(out, "  first error: %s\n", r.ErrSample)
	}
	return r, nil
}

// runID makes this run's user names unique, so runs never collide.
func runID() string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// users registers n fresh accounts (user i on Addrs[i%len]) and logs each
// in on its connection, cfg.Setup at a time. keep=false closes the
// connections once the session token is known.
func users(ctx context.Context, cfg *Config, n int, keep bool) ([]*conn, error) {
	id := runID()
	conns := make([]*conn, n)
	errs := make(chan error, cfg.Setup)
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < min(cfg.Setup, n); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := setupUser(ctx, cfg, id, i, conns, keep); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	start := time.Now()
loop:
	for i := 0; i < n; i++ {
		select {
		case next <- i:
		case <-ctx.Done():
			break loop
		case err := <-errs:
			errs <- err
			break loop
		}
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		for _, c := range conns {
			if c != nil && keep {
				c.close()
			}
		}
		return nil, err
	default:
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cfg.Log.Info("users ready", "n", n, "took", time.Since(start).Round(time.Millisecond))
	return conns, nil
}

func setupUser(ctx context.Context, cfg *Config, run string, i int, conns []*conn, keep bool) error {
	var c *conn
	var err error
	if cfg.Transport == "ws" {
		c, err = dialWS(ctx, cfg.Addrs[i%len(cfg.Addrs)], 16<<10)
	} else {
		c, err = dial(ctx, cfg.Addrs[i%len(cfg.Addrs)], "", 16<<10)
	}
	if err != nil {
		return fmt.Errorf("user %d: dial: %w", i, err)
	}
	c.classic = cfg.Proto == "classic"
	name := fmt.Sprintf("cb%s_%d", run, i)
	pass := "pw" + run
	if err := c.register(name, pass); err != nil {
		c.close()
		return fmt.Errorf("user %d: register: %w", i, err)
	}
	if err := c.login(c.user, pass, ""); err != nil {
		c.close()
		return fmt.Errorf("user %d: login: %w", i, err)
	}
	if !keep {
		c.close()
		c.fr = nil
	}
	conns[i] = c
	return nil
}

// runChat sets up pingpong, flood or group and runs the engine.
func runChat(ctx context.Context, cfg *Config, r *Result) error {
	var nUsers int
	switch cfg.Scenario {
	case "pingpong", "flood":
		nUsers = 2 * cfg.N
	case "group":
		nUsers = cfg.Users
		if nUsers <= 0 {
			nUsers = min(cfg.Groups*cfg.Members, 1000)
		}
		nUsers = max(nUsers, cfg.Members)
	}
	conns, err := users(ctx, cfg, nUsers, true)
	if err != nil {
		return err
	}
	e := newEngine(cfg, conns)
	switch cfg.Scenario {
	case "pingpong", "flood":
		for i := 0; i < cfg.N; i++ {
			a, b := e.peers[2*i], e.peers[2*i+1]
			e.addStream(a, b.c.user, false, []*peer{b})
			if cfg.Scenario == "pingpong" {
				e.addStream(b, a.c.user, false, []*peer{a})
			}
		}
		r.Summary = append(r.Summary, fmt.Sprintf("%d pairs over %d servers, window %d, %d-byte texts", cfg.N, len(cfg.Addrs), cfg.W, cfg.Size))
	case "group":
		if err := setupGroups(ctx, cfg, e, nUsers); err != nil {
			for _, c := range conns {
				c.close()
			}
			return err
		}
		r.Summary = append(r.Summary, fmt.Sprintf("%d groups of %d members (%d users over %d servers), window %d per sender; msgs/s counts deliveries",
			cfg.Groups, cfg.Members, nUsers, len(cfg.Addrs), cfg.W))
	}
	if cfg.Rate > 0 {
		r.Summary = append(r.Summary, fmt.Sprintf("open loop: %.0f msgs/s offered, latency from the scheduled send time", cfg.Rate))
	}
	e.run(ctx, cfg.Scenario, r)
	return nil
}

// setupGroups creates the groups (member 0 creates and is the sender) and
// joins the other members. Member j of group g is user (g*K+j) mod U.
func setupGroups(ctx context.Context, cfg *Config, e *engine, nUsers int) error {
	k := cfg.Members
	member := func(g, j int) *peer { return e.peers[(g*k+j)%nUsers] }
	ids := make([]int64, cfg.Groups)
	run := runID()
	// Creators and joiners work per user, users in parallel, so that no
	// connection has two requests at once.
	perUser := func(work func(u int) error) error {
		var wg sync.WaitGroup
		errc := make(chan error, 1)
		sem := make(chan struct{}, 64)
		for u := range e.peers {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				if err := work(u); err != nil {
					select {
					case errc <- err:
					default:
					}
				}
			}()
		}
		wg.Wait()
		select {
		case err := <-errc:
			return err
		default:
			return ctx.Err()
		}
	}
	err := perUser(func(u int) error {
		for g := range cfg.Groups {
			if member(g, 0) == e.peers[u] {
				id, err := e.peers[u].c.createGroup(fmt.Sprintf("cbg%s_%d", run, g))
				if err != nil {
					return fmt.Errorf("create group %d: %w", g, err)
				}
				ids[g] = id
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	err = perUser(func(u int) error {
		for g := range cfg.Groups {
			for j := 1; j < k; j++ {
				if member(g, j) == e.peers[u] {
					if err := e.peers[u].c.joinGroup(ids[g]); err != nil {
						return fmt.Errorf("join group %d: %w", g, err)
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for g := range cfg.Groups {
		var rcv []*peer
		for j := 1; j < k; j++ {
			rcv = append(rcv, member(g, j))
		}
		e.addStream(member(g, 0), ids[g], true, rcv)
	}
	return nil
}
