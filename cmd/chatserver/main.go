// Command chatserver runs a clusterchat server. With no flags it is a
// working single node: TCP on 127.0.0.1:6000, HTTP on 127.0.0.1:8080, an
// embedded Pebble store in clusterchat.pebble and an in-process broker
// (`chatserver backup` and `chatserver export` copy and show its data). In a
// cluster, give it -store postgres://... and -broker redis://host:port.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"clusterchat"
	"clusterchat/inmem"
	"clusterchat/pebble"
	"clusterchat/server"
	"clusterchat/sqlite"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	args := os.Args[1:]
	var err error
	if len(args) > 0 && (args[0] == "backup" || args[0] == "export") {
		err = runData(ctx, args, os.Stdout, os.Stderr)
	} else {
		err = run(ctx, args, os.Stderr)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "chatserver:", err)
		os.Exit(1)
	}
}

// options are the command line, each flag with an environment equivalent.
type options struct {
	addr, http, store, broker, node, logLevel string
	allowedOrigins                            string
	maxSessions, maxBody, bcryptCost          int
	committers                                int
	backupDir                                 string
	pprof                                     bool

	// The network edge: TLS, proxies, connection limits.
	tlsCert, tlsKey                         string
	trustedProxies                          []netip.Prefix
	proxyProtocol                           bool
	loginTimeout, frameTimeout, idleTimeout time.Duration
	maxConnsPerAddr, maxPrelogin            int
	storeRetry                              time.Duration
	storeRetryBytes                         int
	security                                *securityFlags
	friends, dm                             string
}

func parse(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("chatserver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	env := func(name, def string) string {
		if v, ok := os.LookupEnv(name); ok {
			return v
		}
		return def
	}
	envInt := func(name string, def int) int {
		if v, ok := os.LookupEnv(name); ok {
			if n, err := strconv.Atoi(v); err == nil {
				return n
			}
		}
		return def
	}
	envDur := func(name string, def time.Duration) time.Duration {
		if v, ok := os.LookupEnv(name); ok {
			if d, err := time.ParseDuration(v); err == nil {
				return d
			}
		}
		return def
	}
	o := &options{}
	fs.StringVar(&o.addr, "addr", env("CHAT_ADDR", "127.0.0.1:6000"), "TCP listen address (env CHAT_ADDR)")
	fs.StringVar(&o.http, "http", env("CHAT_HTTP", "127.0.0.1:8080"), "HTTP listen address for /healthz /readyz /metrics, empty to disable (env CHAT_HTTP)")
	fs.StringVar(&o.store, "store", defaultStore(), "store: pebble:DIR, sqlite:PATH or postgres://... (env CHAT_STORE; default pebble:clusterchat.pebble, or sqlite:clusterchat.db where only that file exists)")
	fs.StringVar(&o.broker, "broker", env("CHAT_BROKER", "memory"), "broker: memory or redis://host:port (env CHAT_BROKER)")
	fs.StringVar(&o.node, "node", env("CHAT_NODE", "node1"), "this server's name in the cluster (env CHAT_NODE)")
	fs.IntVar(&o.maxSessions, "max-sessions", envInt("CHAT_MAX_SESSIONS", 0), "sessions per account, 0 = unlimited (env CHAT_MAX_SESSIONS)")
	fs.IntVar(&o.maxBody, "max-body", envInt("CHAT_MAX_BODY", clusterchat.DefaultMaxBody), "longest chat message in bytes (env CHAT_MAX_BODY)")
	fs.IntVar(&o.bcryptCost, "bcrypt-cost", envInt("CHAT_BCRYPT_COST", 10), "bcrypt cost for new passwords, 4-31 (env CHAT_BCRYPT_COST)")
	fs.StringVar(&o.logLevel, "log-level", env("CHAT_LOG_LEVEL", "info"), "debug, info, warn or error (env CHAT_LOG_LEVEL)")
	fs.IntVar(&o.committers, "committers", envInt("CHAT_COMMITTERS", 1), "store appends (group commits) in flight at once, each owning a share of the conversations; more than 1 traded ping-pong latency for flood throughput on PostgreSQL here (BENCHMARKS.md) (env CHAT_COMMITTERS)")
	fs.StringVar(&o.allowedOrigins, "allowed-origins", env("CHAT_ALLOWED_ORIGINS", ""), "comma-separated browser origins (https://chat.example.com, or *) allowed to open /ws besides the page's own (env CHAT_ALLOWED_ORIGINS)")
	fs.DurationVar(&o.storeRetry, "store-retry", envDur("CHAT_STORE_RETRY", 15*time.Second), "how long to retry a message batch through a store outage (restart, failover) before refusing with errno 9; negative: no retry (env CHAT_STORE_RETRY)")
	fs.IntVar(&o.storeRetryBytes, "store-retry-bytes", envInt("CHAT_STORE_RETRY_BYTES", 64<<20), "bytes of messages held during a store outage before new ones are refused (env CHAT_STORE_RETRY_BYTES)")
	fs.StringVar(&o.backupDir, "backup-dir", env("CHAT_BACKUP_DIR", ""), "enable POST /debug/backup (chatserver backup -http ADDR): copies of the embedded store go under this directory (env CHAT_BACKUP_DIR; empty: off)")
	fs.BoolVar(&o.pprof, "pprof", os.Getenv("CHAT_PPROF") == "1", "serve /debug/pprof on the HTTP listener (env CHAT_PPROF=1)")
	fs.StringVar(&o.tlsCert, "tls-cert", env("CHAT_TLS_CERT", ""), "PEM certificate (chain) file: TLS on the TCP listener, HTTPS/WSS on the HTTP one; reloaded on SIGHUP and when it changes (env CHAT_TLS_CERT)")
	fs.StringVar(&o.tlsKey, "tls-key", env("CHAT_TLS_KEY", ""), "PEM private key file for -tls-cert (env CHAT_TLS_KEY)")
	proxies := fs.String("trusted-proxies", env("CHAT_TRUSTED_PROXIES", ""), "comma-separated CIDRs or IPs of proxies whose PROXY header and X-Forwarded-For/X-Real-IP name the client (env CHAT_TRUSTED_PROXIES)")
	fs.BoolVar(&o.proxyProtocol, "proxy-protocol", os.Getenv("CHAT_PROXY_PROTOCOL") == "1", "require a PROXY protocol header (v1 or v2) on TCP connections from -trusted-proxies, as nginx sends with proxy_protocol on (env CHAT_PROXY_PROTOCOL=1)")
	fs.DurationVar(&o.loginTimeout, "login-timeout", envDur("CHAT_LOGIN_TIMEOUT", time.Minute), "close a connection not logged in this long after connecting or logging out; 0 = never (env CHAT_LOGIN_TIMEOUT)")
	fs.DurationVar(&o.frameTimeout, "frame-timeout", envDur("CHAT_FRAME_TIMEOUT", 30*time.Second), "close a connection that does not finish a started frame (or its PROXY header or TLS handshake) within this; 0 = never (env CHAT_FRAME_TIMEOUT)")
	fs.DurationVar(&o.idleTimeout, "idle-timeout", envDur("CHAT_IDLE_TIMEOUT", 3*time.Minute), "close a native session that sends nothing (not even PING) this long; 0 = never (env CHAT_IDLE_TIMEOUT)")
	fs.IntVar(&o.maxConnsPerAddr, "max-conns-per-addr", envInt("CHAT_MAX_CONNS_PER_ADDR", 100), "open connections per client address (IPv6: per /64); 0 = no cap (env CHAT_MAX_CONNS_PER_ADDR)")
	fs.IntVar(&o.maxPrelogin, "max-prelogin", envInt("CHAT_MAX_PRELOGIN", 1000), "open connections not logged in, over all addresses; 0 = no cap (env CHAT_MAX_PRELOGIN)")
	o.security = addSecurityFlags(fs)
	fs.StringVar(&o.friends, "friends", env("CHAT_FRIENDS", "consent"), "consent: a friendship needs a request and an accept (two classic add-friends make one); open: add-friend befriends both ways at once (env CHAT_FRIENDS)")
	fs.StringVar(&o.dm, "dm", env("CHAT_DM", "all"), "all: anyone not blocked may send direct messages (classic); friends: friends only (env CHAT_DM)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if o.bcryptCost < 4 || o.bcryptCost > 31 {
		return nil, fmt.Errorf("-bcrypt-cost must be 4-31")
	}
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return nil, fmt.Errorf("-tls-cert and -tls-key go together")
	}
	var err error
	if o.trustedProxies, err = parsePrefixes(*proxies); err != nil {
		return nil, fmt.Errorf("-trusted-proxies: %w", err)
	}
	if o.proxyProtocol && len(o.trustedProxies) == 0 {
		return nil, fmt.Errorf("-proxy-protocol needs -trusted-proxies")
	}
	for _, v := range []struct {
		name string
		bad  bool
	}{
		{"-login-timeout", o.loginTimeout < 0}, {"-frame-timeout", o.frameTimeout < 0}, {"-idle-timeout", o.idleTimeout < 0},
		{"-max-conns-per-addr", o.maxConnsPerAddr < 0}, {"-max-prelogin", o.maxPrelogin < 0},
	} {
		if v.bad {
			return nil, fmt.Errorf("%s must not be negative (0 turns it off)", v.name)
		}
	}
	if err := (&server.Config{Friends: o.friends, DM: o.dm}).Validate(); err != nil {
		return nil, fmt.Errorf("-friends/-dm: %v", clusterchat.ErrorMessage(err))
	}
	return o, nil
}

// run starts the server and blocks until ctx ends, then shuts down cleanly.
func run(ctx context.Context, args []string, stderr io.Writer) error {
	o, err := parse(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	cfg := server.Config{
		Addr: o.addr, HTTPAddr: o.http, Node: o.node,
		MaxSessions: o.maxSessions, MaxBody: o.maxBody, BcryptCost: o.bcryptCost, Pprof: o.pprof, Committers: o.committers, BackupDir: o.backupDir,
		AllowedOrigins: splitList(o.allowedOrigins),
		TLSCert:        o.tlsCert, TLSKey: o.tlsKey, TrustedProxies: o.trustedProxies, ProxyProtocol: o.proxyProtocol,
		// The flags say 0 for off; Config says 0 for the default.
		LoginTimeout: offIfZero(o.loginTimeout), FrameTimeout: offIfZero(o.frameTimeout), IdleTimeout: offIfZero(o.idleTimeout),
		MaxConnsPerAddr: offIfZero(o.maxConnsPerAddr), MaxPrelogin: offIfZero(o.maxPrelogin),
		StoreRetry: o.storeRetry, StoreRetryBytes: o.storeRetryBytes,
		Friends: o.friends, DM: o.dm,
	}
	o.security.apply(&cfg)
	srv := server.New(cfg, logger)

	store, err := openStore(ctx, o.store, logger)
	if err != nil {
		return err
	}
	defer store.Close()
	srv.Store = store

	broker, presence, err := openBroker(ctx, o.broker, o.node, srv, logger)
	if err != nil {
		return err
	}
	defer broker.Close()
	defer presence.Close()
	srv.Broker, srv.Presence = broker, presence
	limiter, closeLimiter, err := openLimiter(o.broker)
	if err != nil {
		return err
	}
	defer closeLimiter()
	srv.Limiter = limiter

	if err := srv.Open(); err != nil {
		return err
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-hup:
			// Certificate rotation: the new files serve new connections.
			if o.tlsCert == "" {
				logger.Info("SIGHUP ignored: TLS is off")
			} else if err := srv.ReloadTLS(); err != nil {
				logger.Error("SIGHUP: TLS certificate not reloaded; keeping the old one", "err", err)
			} else {
				logger.Info("SIGHUP: TLS certificate reloaded")
			}
		}
	}
	logger.Info("shutting down")
	// Deferred in reverse: server first (sessions end, commits finish),
	// then presence, broker and store.
	return srv.Close()
}

// offIfZero maps a flag's 0 (off) to Config's negative (off).
func offIfZero[T int | time.Duration](v T) T {
	if v == 0 {
		return -1
	}
	return v
}

// parsePrefixes reads comma-separated CIDRs or bare IPs.
func parsePrefixes(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for f := range strings.SplitSeq(list, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, err
			}
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, err
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func openStore(ctx context.Context, spec string, logger *slog.Logger) (clusterchat.Store, error) {
	switch {
	case strings.HasPrefix(spec, "sqlite:"):
		return sqlite.Open(strings.TrimPrefix(spec, "sqlite:"), logger)
	case strings.HasPrefix(spec, "pebble:"):
		return pebble.Open(strings.TrimPrefix(spec, "pebble:"), logger)
	case strings.HasPrefix(spec, "postgres://"), strings.HasPrefix(spec, "postgresql://"):
		return openPostgres(ctx, spec, logger)
	}
	return nil, fmt.Errorf("-store %q: want sqlite:PATH, pebble:DIR or postgres://URL", spec)
}

func openBroker(ctx context.Context, spec, node string, h clusterchat.BrokerHandler, logger *slog.Logger) (clusterchat.Broker, clusterchat.Presence, error) {
	switch {
	case spec == "memory":
		return inmem.NewBroker(h), inmem.NewPresence(), nil
	case strings.HasPrefix(spec, "redis://"):
		return openRedis(ctx, spec, node, h, logger)
	}
	return nil, nil, fmt.Errorf("-broker %q: want memory or redis://host:port", spec)
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(v string) []string {
	var out []string
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
