package server

import (
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// Limits of the HTTP listener (/healthz, /readyz, /metrics and WebSocket
// upgrades), besides Config's timeouts (slow headers, a whole request, a
// whole response). None of its requests has a body, and a hijacked
// WebSocket connection is not subject to them: gorilla/websocket clears the
// deadlines net/http set before it hands the connection over, and the
// session's own deadlines (limits.go) apply from there.
const (
	httpIdleTimeout    = 120 * time.Second // a keep-alive connection between requests
	httpMaxHeaderBytes = 16 << 10          // request line and headers
)

func (s *Server) newHTTPServer() *http.Server {
	return &http.Server{
		Handler:           s.httpHandler(),
		ReadHeaderTimeout: s.cfg.HTTPReadHeaderTimeout,
		ReadTimeout:       s.cfg.HTTPReadTimeout,
		WriteTimeout:      s.cfg.HTTPWriteTimeout,
		IdleTimeout:       httpIdleTimeout,
		MaxHeaderBytes:    httpMaxHeaderBytes,
		// TLS handshake failures and the like: a scanner's noise, not
		// the operator's business at info.
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
}

// httpClientAddr is the real client address of an HTTP request: the peer's,
// unless the peer is a trusted proxy, in which case the nearest address in
// X-Forwarded-For that is not itself a trusted proxy (each proxy appends the
// address it saw, so the entries left of the last untrusted one could be
// made up by the client), or X-Real-IP when there is no X-Forwarded-For.
func (s *Server) httpClientAddr(r *http.Request) netip.Addr {
	peer := netip.Addr{}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		peer = ap.Addr().Unmap()
	}
	if !s.trusted(peer) {
		return peer
	}
	if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
		hops := strings.Split(strings.Join(xff, ","), ",")
		for i := len(hops) - 1; i >= 0; i-- {
			a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
			if err != nil {
				return peer // a hop we cannot read: trust nothing left of it
			}
			a = a.Unmap()
			if !s.trusted(a) {
				return a
			}
		}
		return peer
	}
	if a, err := netip.ParseAddr(strings.TrimSpace(r.Header.Get("X-Real-IP"))); err == nil {
		return a.Unmap()
	}
	return peer
}

// fromThisMachine tells whether r was made on the server's own machine: its
// peer is a loopback address and it was not passed on by a proxy. A proxy
// on the same machine (nginx in front of a single node) connects from
// loopback too, but says that it forwards: every proxy this repository
// configures sets X-Forwarded-For and X-Real-IP, and RFC 7239 proxies set
// Forwarded.
func fromThisMachine(r *http.Request) bool {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil || !ap.Addr().Unmap().IsLoopback() {
		return false
	}
	for _, h := range []string{"X-Forwarded-For", "X-Real-IP", "Forwarded"} {
		if len(r.Header.Values(h)) > 0 {
			return false
		}
	}
	return true
}

// operatorOnly serves h (the /debug/ endpoints) to requests made on the
// server's own machine only (fromThisMachine), and 403 to anyone else: a
// backup writes a copy of the whole store to disk and a CPU profile keeps a
// core busy for as long as it is asked to, so a stranger who could reach
// them could fill the disk or load the server at will. An operator
// elsewhere reaches them through ssh (`ssh -L`), which arrives on loopback.
func (s *Server) operatorOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !fromThisMachine(r) {
			s.log.Info("operator endpoint refused", "path", r.URL.Path, "remote", s.httpClientAddr(r))
			http.Error(w, "this endpoint answers requests from the server's own machine only, not through a proxy", http.StatusForbidden)
			return
		}
		h(w, r)
	}
}
