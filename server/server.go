package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"clusterchat/proto"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"clusterchat"
	"clusterchat/web"
)

// Server is one chatserver. Set Store, Broker and Presence, then Open; Close
// shuts it down once and waits for everything it started.
type Server struct {
	Store    clusterchat.Store
	Broker   clusterchat.Broker
	Presence clusterchat.Presence
	// Limiter counts logins and registrations (ratelimit.go); shared by a
	// cluster (redis.Limiter). nil: an in-process one.
	Limiter clusterchat.Limiter

	cfg     Config
	log     *slog.Logger
	metrics *metrics
	store   *storeState // the store's health as the committers see it
	hub     *hub
	cursors *cursors
	users   userCache
	tokens  tokenCache
	// friendCache: friend lists of users with a session here (caches.go)
	friendCache friendCache
	sec         security
	limits      *limits
	certs       *certReloader // nil without TLS
	tls         *tls.Config   // nil without TLS

	ln      net.Listener
	httpLn  net.Listener
	httpSrv *http.Server

	syncBroker bool        // the broker delivers within Publish (inmem): publish inline
	commits    []chan *job // one per committer
	commitWG   sync.WaitGroup
	pub        *publisher

	connMu sync.Mutex
	conns  map[*conn]struct{}

	backupMu sync.Mutex // held while a backup is written: one at a time

	wg        sync.WaitGroup // read loops, flushers and helpers
	bgCancel  context.CancelFunc
	bgWG      sync.WaitGroup
	sidSeq    atomic.Int64
	closing   atomic.Bool
	closeMu   sync.RWMutex // held by Close while it sets closing
	closeOnce sync.Once
}

// New returns a Server with cfg (defaults filled in) logging to logger.
func New(cfg Config, logger *slog.Logger) *Server {
	cfg.setDefaults()
	if logger == nil {
		logger = slog.Default()
	}
	m := newMetrics()
	s := &Server{
		cfg:     cfg,
		log:     logger.With("node", cfg.Node),
		metrics: m,
		store:   newStoreState(m),
		hub:     newHub(),
		cursors: newCursors(),
		conns:   make(map[*conn]struct{}),
	}
	s.limits = newLimits(&s.cfg, s.metrics.reg)
	return s
}

// Addr returns the TCP listener's address (useful with port 0).
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// HTTPAddr returns the HTTP listener's address, nil when disabled.
func (s *Server) HTTPAddr() net.Addr {
	if s.httpLn == nil {
		return nil
	}
	return s.httpLn.Addr()
}

// Open starts listening and serving.
func (s *Server) Open() error {
	if s.Store == nil || s.Broker == nil || s.Presence == nil {
		return errors.New("server: Store, Broker and Presence must be set")
	}
	if err := s.openSecurity(); err != nil {
		return fmt.Errorf("server: subscribe to token revocations: %w", err)
	}
	if s.cfg.TLSCert != "" || s.cfg.TLSKey != "" {
		certs, err := newCertReloader(s.cfg.TLSCert, s.cfg.TLSKey, s.log)
		if err != nil {
			return err
		}
		s.certs, s.tls = certs, certs.tlsConfig()
	}
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("server: listen %s: %w", s.cfg.Addr, err)
	}
	s.ln = ln
	if s.cfg.HTTPAddr != "" {
		hl, err := net.Listen("tcp", s.cfg.HTTPAddr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("server: listen http %s: %w", s.cfg.HTTPAddr, err)
		}
		s.httpLn = hl
		if s.tls != nil {
			hl = tls.NewListener(hl, s.tls)
		}
		s.httpSrv = s.newHTTPServer()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.httpSrv.Serve(hl); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("http server", "err", err)
			}
		}()
	}

	if n, ok := s.Presence.(clusterchat.OfflineNotifier); ok {
		n.OnOffline(s.reaped)
	}
	if n, ok := s.Presence.(clusterchat.RecoveringPresence); ok {
		n.OnRecovered(s.recovered)
	}
	if lb, ok := s.Broker.(clusterchat.InProcessBroker); ok && lb.InProcess() {
		s.syncBroker = true
	}
	if s.cfg.Committers <= 0 {
		// One batch in flight, on every store: measured on PostgreSQL
		// (BENCHMARKS.md, issue 12), two committers gained flood
		// throughput a little and lost ping-pong throughput and latency
		// (smaller batches, more commits for the same CPU).
		s.cfg.Committers = 1
	}
	s.commits = make([]chan *job, s.cfg.Committers)
	for i := range s.commits {
		s.commits[i] = make(chan *job, 4*maxBatch)
		s.commitWG.Add(1)
		go s.runCommitter(s.commits[i])
	}
	s.pub = newPublisher(s)
	ctx, cancel := context.WithCancel(context.Background())
	s.bgCancel = cancel
	s.bgWG.Add(2)
	go func() {
		defer s.bgWG.Done()
		s.runCursors(ctx, time.Second)
	}()
	go func() {
		defer s.bgWG.Done()
		s.runSweeps(ctx)
	}()

	s.wg.Add(1)
	go s.acceptLoop()
	attrs := []any{"addr", ln.Addr().String()}
	if s.httpLn != nil {
		attrs = append(attrs, "http", s.httpLn.Addr().String())
	}
	s.log.Info("listening", attrs...)
	return nil
}

func (s *Server) acceptLoop() {
	defer s.wg.Done()
	var delay time.Duration
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return
			}
			// Out of file descriptors and the like: back off, don't spin.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Warn("accept", "err", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		if tc, ok := nc.(*net.TCPConn); ok {
			tc.SetNoDelay(true)
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.acceptConn(nc)
		}()
	}
}

// serveConn serves an admitted connection (a TCP socket or a WebSocket) on
// its own goroutine until it ends. It returns false, closing it, when the
// server is closing.
func (s *Server) serveConn(c *conn) bool {
	s.connMu.Lock()
	if s.closing.Load() {
		s.connMu.Unlock()
		c.nc.Close()
		return false
	}
	s.conns[c] = struct{}{}
	// Under connMu: Close collects the connections under it before it
	// waits for s.wg, so no Add comes after that Wait.
	s.wg.Add(1)
	s.connMu.Unlock()
	s.metrics.conns.Inc()
	go func() {
		defer s.wg.Done()
		c.serve()
	}()
	return true
}

func (s *Server) dropConn(c *conn) {
	s.connMu.Lock()
	delete(s.conns, c)
	s.connMu.Unlock()
	s.metrics.conns.Dec()
}

// Close shuts the server down: it stops accepting, tells native sessions to
// reconnect elsewhere, closes every connection (ending their sessions),
// commits what was accepted, publishes it, saves cursors, and releases this
// server's presence. It runs once; later calls wait for nothing and return nil.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.closeMu.Lock()
		s.closing.Store(true)
		s.closeMu.Unlock()
		if s.ln != nil {
			s.ln.Close()
		}
		s.closeAdmitting()
		s.connMu.Lock()
		conns := make([]*conn, 0, len(s.conns))
		for c := range s.conns {
			conns = append(conns, c)
		}
		s.connMu.Unlock()
		notice := appendNL((&proto.ReconnectEvent{Reason: proto.ReasonShutdown}).AppendNative(nil))
		var cw sync.WaitGroup
		for _, c := range conns {
			cw.Add(1)
			go func() {
				defer cw.Done()
				c.mu.Lock()
				native := !c.classic
				c.mu.Unlock()
				if native {
					c.shutdown(notice)
				} else {
					c.shutdown(nil)
				}
			}()
		}
		cw.Wait()
		if s.httpSrv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), s.cfg.DrainWait)
			s.httpSrv.Shutdown(ctx)
			cancel()
		}
		s.wg.Wait() // read loops have ended their sessions; no new jobs
		if s.commits != nil {
			for _, c := range s.commits {
				close(c)
			}
			s.commitWG.Wait()
			s.pub.close()
			s.wg.Wait() // flushers started by the last deliveries
			s.bgCancel()
			s.bgWG.Wait()
		}
		s.log.Info("stopped")
	})
	return nil
}

func (s *Server) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		status := http.StatusOK
		report := ""
		if err := s.Store.Ping(ctx); err != nil {
			status = http.StatusServiceUnavailable
			report += "store: " + err.Error() + "\n"
		} else {
			report += "store: ok\n"
		}
		// The store may answer a ping while appends still fail (a standby
		// not yet promoted): the committers' view is reported too.
		if r, ok := s.store.status(s.cfg.StoreRetry); ok {
			report += r
		} else {
			status = http.StatusServiceUnavailable
			report += r
		}
		if err := s.Broker.Ready(ctx); err != nil {
			status = http.StatusServiceUnavailable
			report += "broker: " + err.Error() + "\n"
		} else {
			report += "broker: ok\n"
		}
		if r, ok := s.Presence.(clusterchat.ReadyPresence); ok {
			if err := r.Ready(ctx); err != nil {
				status = http.StatusServiceUnavailable
				report += "presence: " + err.Error() + "\n"
			} else {
				report += "presence: ok\n"
			}
		}
		w.WriteHeader(status)
		w.Write([]byte(report))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /ws", s.serveWS)
	mux.Handle("GET /", web.Handler())
	if b, ok := s.Store.(clusterchat.BackupStore); ok && s.cfg.BackupDir != "" {
		mux.HandleFunc("POST /debug/backup", s.operatorOnly(func(w http.ResponseWriter, r *http.Request) { s.serveBackup(w, r, b) }))
	}
	if s.cfg.Pprof {
		// With methods: a method-less "/debug/pprof/" conflicts with the
		// web client's "GET /" and the mux panics at start.
		mux.HandleFunc("GET /debug/pprof/", s.operatorOnly(pprof.Index))
		mux.HandleFunc("GET /debug/pprof/profile", s.operatorOnly(pprof.Profile))
		mux.HandleFunc("GET /debug/pprof/symbol", s.operatorOnly(pprof.Symbol))
		mux.HandleFunc("POST /debug/pprof/symbol", s.operatorOnly(pprof.Symbol))
		mux.HandleFunc("GET /debug/pprof/trace", s.operatorOnly(pprof.Trace))
	}
	return mux
}

// reaped announces users whose server died as offline to their friends. It
// is called from the presence heartbeat, so it hands the work on.
func (s *Server) reaped(uids []int64) { s.announceAll(uids, proto.Offline) }

// recovered announces online again this server's users whose presence had
// lapsed (a Redis outage long enough for another server to reap this one
// and tell their friends "offline") and is back: presence recovers to the
// truth. Users whose last session here ended meanwhile are left out.
func (s *Server) recovered(uids []int64) {
	here := uids[:0:0]
	for _, uid := range uids {
		if len(s.hub.localSessions(uid)) > 0 {
			here = append(here, uid)
		}
	}
	if len(here) > 0 {
		s.log.Info("presence recovered after an outage; announcing online again", "users", len(here))
		s.announceAll(here, proto.Online)
	}
}

// announceAll tells the friends of uids their state, off the caller's
// goroutine (a presence heartbeat). Before "offline" it asks presence once
// more and leaves out users online again by then: a reaped user's server
// may have been cut off rather than dead (a Redis outage longer than the
// TTL), put its sessions back since the reap and announced them online
// itself, and a late "offline" would leave friends with the wrong last word.
func (s *Server) announceAll(uids []int64, state proto.State) {
	s.background(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var online map[int64]bool
		if state == proto.Offline {
			online, _ = s.Presence.Online(ctx, uids) // unreadable: announce all, as before
		}
		for _, uid := range uids {
			if !online[uid] {
				s.announcePresence(ctx, uid, state)
			}
		}
	})
}

// background runs f on its own goroutine, counted in s.wg, unless the
// server is closing. Under closeMu so that Close, once it holds it, knows
// no new work joins s.wg behind its Wait.
func (s *Server) background(f func()) {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closing.Load() {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
}

func (s *Server) newSID() string {
	return s.cfg.Node + "/" + strconv.FormatInt(s.sidSeq.Add(1), 10)
}
