package wiretest

import (
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"clusterchat"

	"clusterchat/inmem"
	"clusterchat/server"
	"clusterchat/sqlite"
)

// Server is a server of package server running in the test's process on
// loopback ports, with a SQLite file in the test's temp folder (kept across
// Stop and Start), the in-memory broker and presence. Its log is kept and
// shown when the test fails.
type Server struct {
	TCP   string // chat address (host:port)
	HTTP  string // HTTP address (host:port)
	DB    string // SQLite file
	Store *sqlite.Store
	Logs  *LogBuffer

	tb     testing.TB
	cfg    server.Config
	logger *slog.Logger
	wrap   func(clusterchat.Store) clusterchat.Store
	wrapB  func(clusterchat.Broker) clusterchat.Broker

	mu       sync.Mutex
	srv      *server.Server
	broker   *inmem.Broker
	presence *inmem.Presence
}

// StartServer starts a server for the test, stopped when it ends; edit, if
// not nil, adjusts its Config. By default both listeners are on loopback
// port 0, bcrypt cost is 4, and rate limits are off: tests register many
// users and send bursts from one address (rate-limit tests turn them on).
func StartServer(tb testing.TB, edit func(*server.Config)) *Server {
	tb.Helper()
	return StartServerStore(tb, edit, nil)
}

// StartServerStore is StartServer with the server's store wrapped by wrap
// (a store that fails on demand, say) when wrap is not nil; Store stays the
// SQLite store underneath.
func StartServerStore(tb testing.TB, edit func(*server.Config), wrap func(clusterchat.Store) clusterchat.Store) *Server {
	tb.Helper()
	return startServer(tb, edit, wrap, nil)
}

func startServer(tb testing.TB, edit func(*server.Config), wrap func(clusterchat.Store) clusterchat.Store,
	wrapB func(clusterchat.Broker) clusterchat.Broker) *Server {
	tb.Helper()
	cfg := server.Config{Addr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", BcryptCost: 4, RateLimitsOff: true}
	if edit != nil {
		edit(&cfg)
	}
	logs := &LogBuffer{ch: make(chan []byte, 4096)}
	s := &Server{tb: tb, cfg: cfg, Logs: logs, DB: filepath.Join(tb.TempDir(), "chat.db"), wrap: wrap, wrapB: wrapB,
		logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	store, err := sqlite.Open(s.DB, s.logger)
	if err != nil {
		tb.Fatalf("sqlite.Open: %v", err)
	}
	s.Store = store
	tb.Cleanup(func() {
		s.Stop()
		store.Close()
		if tb.Failed() {
			tb.Logf("server log:\n%s", logs.String())
		}
	})
	s.Start()
	return s
}

// StartServerBroker is StartServer with the server's broker (the
// in-memory one) wrapped by wrap: a broker that is slow on demand, say. A
// wrapper that does not implement clusterchat.InProcessBroker makes the
// server publish as it does to Redis (marshalled envelopes, the publisher).
func StartServerBroker(tb testing.TB, edit func(*server.Config), wrap func(clusterchat.Broker) clusterchat.Broker) *Server {
	tb.Helper()
	return startServer(tb, edit, nil, wrap)
}

// Server returns the running server (nil after Stop).
func (s *Server) Server() *server.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.srv
}

// Start starts the server again after Stop, on the same chat address.
func (s *Server) Start() {
	s.tb.Helper()
	cfg := s.cfg
	if s.TCP != "" {
		cfg.Addr = s.TCP
	}
	srv := server.New(cfg, s.logger)
	broker, presence := inmem.NewBroker(srv), inmem.NewPresence()
	srv.Store, srv.Broker, srv.Presence = s.Store, broker, presence
	if s.wrap != nil {
		srv.Store = s.wrap(s.Store)
	}
	if s.wrapB != nil {
		srv.Broker = s.wrapB(broker)
	}
	var err error
	for range 100 { // a closed listener's port may linger a moment
		if err = srv.Open(); err == nil || !strings.Contains(err.Error(), "address already in use") {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		s.tb.Fatalf("server.Open: %v", err)
	}
	s.mu.Lock()
	s.srv, s.broker, s.presence = srv, broker, presence
	s.TCP = srv.Addr().String()
	if a := srv.HTTPAddr(); a != nil {
		s.HTTP = a.String()
	}
	s.mu.Unlock()
}

// Stop closes the server (it tells native sessions to reconnect), its broker
// and presence; the store stays open for Start.
func (s *Server) Stop() {
	s.mu.Lock()
	srv, broker, presence := s.srv, s.broker, s.presence
	s.srv = nil
	s.mu.Unlock()
	if srv == nil {
		return
	}
	srv.Close()
	presence.Close()
	broker.Close()
}

// LogBuffer collects a server's log without ever blocking it.
type LogBuffer struct {
	ch chan []byte
}

// Write keeps a copy of p, or drops it when full: the log is only a
// debugging aid.
func (b *LogBuffer) Write(p []byte) (int, error) {
	select {
	case b.ch <- append([]byte(nil), p...):
	default:
	}
	return len(p), nil
}

// String drains what was collected.
func (b *LogBuffer) String() string {
	var sb strings.Builder
	for {
		select {
		case p := <-b.ch:
			sb.Write(p)
		default:
			return sb.String()
		}
	}
}
