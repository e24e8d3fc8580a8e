package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"clusterchat"
	"clusterchat/proto"
)

// Connection limits: what a connection may hold before it has proved
// anything (logged in), and how long it may keep the server waiting.
//
//   - accept side: connections per client address (an IPv6 client counts
//     per /64, what one subscriber usually gets) and connections not logged
//     in, over all addresses;
//   - read side: a deadline to log in after connecting (or logging out), a
//     deadline to finish a frame once its first byte came (slowloris), and
//     an idle deadline for native sessions, whose clients ping. A logged-in
//     classic session has no read deadline: its client never sends anything
//     unprompted, so only TCP keepalive tells a dead peer.
//
// The read side is enforced by deadlineReader, which sits between the
// socket and proto.Reader and sets the read deadline before each read from
// what the connection is waiting for.

// Limit names: the "limit" label of chat_conn_limits_total.
const (
	limitPerAddr      = "per_addr"      // refused: too many connections from the address
	limitPrelogin     = "prelogin"      // refused: too many connections not logged in
	limitLoginTimeout = "login_timeout" // closed: not logged in in time
	limitFrameTimeout = "frame_timeout" // closed: a started frame was not finished in time
	limitIdleTimeout  = "idle_timeout"  // closed: a native session sent nothing for too long
	limitHandshake    = "handshake"     // closed: PROXY header or TLS handshake missing, bad or late
)

// limits is the accept-side bookkeeping of a Server.
type limits struct {
	cfg *Config

	mu        sync.Mutex
	perAddr   map[netip.Addr]int    // open connections by addrKey
	admitting map[net.Conn]struct{} // connections reading a PROXY header or shaking hands

	prelogin    prometheus.Gauge
	preloginN   int // guarded by mu
	limitEvents *prometheus.CounterVec
}

func newLimits(cfg *Config, reg *prometheus.Registry) *limits {
	l := &limits{
		cfg:       cfg,
		perAddr:   make(map[netip.Addr]int),
		admitting: make(map[net.Conn]struct{}),
		prelogin:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "chat_connections_prelogin", Help: "Open client connections not logged in."}),
		limitEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_conn_limits_total",
			Help: "Connections refused or closed by a connection limit, by limit: per_addr, prelogin, login_timeout, frame_timeout, idle_timeout, handshake.",
		}, []string{"limit"}),
	}
	reg.MustRegister(l.prelogin, l.limitEvents)
	for _, name := range []string{limitPerAddr, limitPrelogin, limitLoginTimeout, limitFrameTimeout, limitIdleTimeout, limitHandshake} {
		l.limitEvents.WithLabelValues(name) // present at 0, so a dashboard sees the series
	}
	return l
}

// addrKey is what per-address limits count by: the address itself, or its
// /64 for IPv6, since one subscriber is usually given a whole /64.
func addrKey(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// admit counts a new connection from addr, which is not logged in yet, or
// refuses it with the error to tell the client.
func (l *limits) admit(addr netip.Addr) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if max := l.cfg.MaxPrelogin; max > 0 && l.preloginN >= max {
		l.limitEvents.WithLabelValues(limitPrelogin).Inc()
		return clusterchat.Errorf(clusterchat.EUNAVAILABLE, "server busy: too many connections not logged in; try again later")
	}
	k := addrKey(addr)
	if max := l.cfg.MaxConnsPerAddr; max > 0 && addr.IsValid() && l.perAddr[k] >= max {
		l.limitEvents.WithLabelValues(limitPerAddr).Inc()
		return clusterchat.Errorf(clusterchat.ERATELIMIT, "too many connections from your address (at most %d)", max)
	}
	if addr.IsValid() {
		l.perAddr[k]++
	}
	l.preloginN++
	l.prelogin.Inc()
	return nil
}

// release undoes admit when the connection ends; prelogin says whether it
// was still counted as not logged in.
func (l *limits) release(addr netip.Addr, prelogin bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if addr.IsValid() {
		k := addrKey(addr)
		if l.perAddr[k] <= 1 {
			delete(l.perAddr, k)
		} else {
			l.perAddr[k]--
		}
	}
	if prelogin {
		l.preloginN--
		l.prelogin.Dec()
	}
}

// loggedIn moves a connection in or out of the not-logged-in count.
func (l *limits) loggedIn(in bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if in {
		l.preloginN--
		l.prelogin.Dec()
	} else {
		l.preloginN++
		l.prelogin.Inc()
	}
}

// trackAdmitting remembers a connection that is still being admitted, so
// Close can cut it; it reports false once closing has begun.
func (s *Server) trackAdmitting(nc net.Conn, on bool) bool {
	l := s.limits
	l.mu.Lock()
	defer l.mu.Unlock()
	if !on {
		delete(l.admitting, nc)
		return true
	}
	if s.closing.Load() {
		return false
	}
	l.admitting[nc] = struct{}{}
	return true
}

// closeAdmitting cuts the connections still being admitted (Close).
func (s *Server) closeAdmitting() {
	l := s.limits
	l.mu.Lock()
	defer l.mu.Unlock()
	for nc := range l.admitting {
		nc.Close()
	}
}

// acceptConn admits a freshly accepted TCP connection and serves it: the
// PROXY header from a trusted proxy (the client's real address), the
// accept-side limits, then the TLS handshake, so a connection that is
// still shaking hands already counts against them. It runs on the
// connection's own goroutine, so a slow client never holds up Accept.
func (s *Server) acceptConn(nc net.Conn) {
	if !s.trackAdmitting(nc, true) {
		nc.Close()
		return
	}
	defer s.trackAdmitting(nc, false)
	if s.cfg.FrameTimeout > 0 && (s.cfg.ProxyProtocol || s.tls != nil) {
		nc.SetDeadline(time.Now().Add(s.cfg.FrameTimeout))
	}
	pc, addr, err := s.proxyHeader(nc)
	if err != nil {
		s.handshakeFailed(nc, err)
		return
	}
	if err := s.limits.admit(addr); err != nil {
		s.refused(addr, err)
		if s.tls != nil {
			nc.Close() // no handshake spent on a refusal: the client sees the cut
		} else {
			refuse(pc, err, s.cfg.WriteWait)
		}
		return
	}
	final := pc
	if s.tls != nil {
		tc := tls.Server(pc, s.tls)
		if err := tc.Handshake(); err != nil {
			s.limits.release(addr, true)
			s.handshakeFailed(nc, fmt.Errorf("tls handshake: %w", err))
			return
		}
		final = tc
	}
	nc.SetDeadline(time.Time{})
	s.startConn(final, addr)
}

// admitConn applies the accept-side limits to a WebSocket from the client
// address addr and serves it, or tells the client why not and closes it.
func (s *Server) admitConn(nc net.Conn, addr netip.Addr) {
	if err := s.limits.admit(addr); err != nil {
		s.refused(addr, err)
		refuse(nc, err, s.cfg.WriteWait)
		return
	}
	s.startConn(nc, addr)
}

// startConn serves an admitted connection; admit's count is released when
// it ends.
func (s *Server) startConn(nc net.Conn, addr netip.Addr) {
	c := newConn(s, nc)
	c.addr = addr
	c.counted, c.prelogin = true, true
	if !s.serveConn(c) {
		s.limits.release(addr, true)
	}
}

func (s *Server) refused(addr netip.Addr, err error) {
	s.log.Debug("connection refused", "remote", addr.String(), "reason", err.Error())
	s.metrics.errors.WithLabelValues(errLabel(err)).Inc()
}

func (s *Server) handshakeFailed(nc net.Conn, err error) {
	s.limits.limitEvents.WithLabelValues(limitHandshake).Inc()
	s.log.Info("closing connection", "remote", nc.RemoteAddr().String(), "reason", err.Error())
	nc.Close()
}

// proxyHeader reads the PROXY header of a trusted proxy (with
// ProxyProtocol) and returns the connection to go on with and the
// client's address; otherwise the peer's.
func (s *Server) proxyHeader(nc net.Conn) (net.Conn, netip.Addr, error) {
	addr := addrOf(nc.RemoteAddr())
	if !s.cfg.ProxyProtocol || !s.trusted(addr) {
		return nc, addr, nil
	}
	pc, err := readProxyHeader(nc)
	if err != nil {
		return nil, addr, err
	}
	return pc, addrOf(pc.RemoteAddr()), nil
}

// refuse tells the client why it is turned away, in the classic error
// shape every client reads, and closes the connection.
//
// Before closing it half-closes and reads what the client sent meanwhile
// (a login already on its way), until the client closes too or refuseDrain
// passes: closing a socket with unread bytes makes the kernel send a reset,
// and a reset can destroy the error reply before the client has read it.
// At most maxDraining refusals drain at once, in the whole process; past
// that a refusal closes at once, so that a stranger opening connections
// past the caps as fast as it can holds at most that many sockets.
func refuse(nc net.Conn, err error, wait time.Duration) {
	nc.SetDeadline(time.Now().Add(wait))
	_, werr := nc.Write(append(proto.AppendError(nil, 0, 0, false, err), '\n'))
	if cw, ok := nc.(interface{ CloseWrite() error }); ok && werr == nil {
		if draining.Add(1) <= maxDraining && cw.CloseWrite() == nil {
			nc.SetReadDeadline(time.Now().Add(min(wait, refuseDrain)))
			io.Copy(io.Discard, io.LimitReader(nc, 64<<10))
		}
		draining.Add(-1)
	}
	nc.Close()
}

// refuseDrain bounds how long a refused connection is read after its
// error reply, and maxDraining how many are read at once (a variable for
// tests): a refused client must not hold sockets for long.
var (
	refuseDrain = time.Second
	maxDraining = int32(256)
	draining    atomic.Int32
)

// addrOf is the IP of a socket address (invalid if it has none).
func addrOf(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(ta.IP)
		return ip.Unmap()
	}
	if a == nil {
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// trusted reports whether addr is a configured proxy, whose PROXY header
// or X-Forwarded-For names the real client.
func (s *Server) trusted(addr netip.Addr) bool {
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// limitError is a read-side limit that ended a connection; its reply goes
// to the client before the connection closes.
type limitError struct {
	limit string
	err   *clusterchat.Error
}

func (e *limitError) Error() string { return e.err.Error() }
func (e *limitError) Unwrap() error { return e.err }

// isLimit reports whether err is a read-side limit (the read loop replies
// with it and closes).
func isLimit(err error) bool {
	var le *limitError
	return errors.As(err, &le)
}

// deadlineReader is the socket as proto.Reader sees it. Before each read it
// sets the read deadline from what the connection waits for: the rest of a
// started frame (FrameTimeout from its first byte), a login (LoginTimeout
// from connecting or logging out), or the next request of a native session
// (IdleTimeout); a logged-in classic session waits without a deadline. It
// runs on the read loop, which alone changes c.sess, so it reads c.sess
// without a lock, and keeps the not-logged-in count in step with it.
type deadlineReader struct {
	c          *conn
	r          *proto.Reader
	loggedIn   bool
	loginBy    time.Time // the login deadline while not logged in
	frameStart time.Time // when the frame being read was first seen unfinished
	armed      time.Time // the read deadline set on the socket
	kind       string    // the limit armed behind it
}

// newReader returns the connection's frame reader behind its deadlines.
func (c *conn) newReader() *proto.Reader {
	d := &deadlineReader{c: c, loginBy: time.Now().Add(c.srv.cfg.LoginTimeout)}
	d.r = proto.NewReader(d, 512, clusterchat.MaxFrame)
	return d.r
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	c, cfg := d.c, &d.c.srv.cfg
	now := time.Now()
	if in := c.sess != nil; in != d.loggedIn {
		d.loggedIn = in
		if c.counted {
			c.prelogin = !in
			c.srv.limits.loggedIn(in)
		}
		if !in { // logged out: a new login deadline
			d.loginBy = now.Add(cfg.LoginTimeout)
		}
	}
	var (
		deadline time.Time
		kind     string
	)
	if !d.loggedIn && cfg.LoginTimeout > 0 {
		deadline, kind = d.loginBy, limitLoginTimeout
	}
	if d.r.InFrame() && cfg.FrameTimeout > 0 {
		if d.frameStart.IsZero() {
			d.frameStart = now
		}
		if by := d.frameStart.Add(cfg.FrameTimeout); deadline.IsZero() || by.Before(deadline) {
			deadline, kind = by, limitFrameTimeout
		}
	} else {
		d.frameStart = time.Time{}
	}
	if d.loggedIn && kind == "" && c.sess.native && cfg.IdleTimeout > 0 {
		// Re-arming costs a timer update, so a deadline is moved on only
		// once it is closer than IdleTimeout, and then a little further:
		// the session is cut after between 1 and 1.125 IdleTimeouts of
		// silence.
		deadline, kind = d.armed, limitIdleTimeout
		if d.kind != limitIdleTimeout || d.armed.Before(now.Add(cfg.IdleTimeout)) {
			deadline = now.Add(cfg.IdleTimeout + cfg.IdleTimeout/8)
		}
	}
	if !deadline.Equal(d.armed) {
		c.nc.SetReadDeadline(deadline)
		d.armed = deadline
	}
	d.kind = kind
	n, err := c.nc.Read(p)
	// A timeout as net.Error: gorilla/websocket hides the deadline error
	// in its own type.
	var ne net.Error
	if err != nil && errors.As(err, &ne) && ne.Timeout() {
		if kind == "" || time.Now().Before(deadline) {
			// Not ours: a WebSocket's keepalive found the peer silent
			// (no pong); nobody is listening for a reply.
			c.srv.limits.limitEvents.WithLabelValues(limitIdleTimeout).Inc()
			return n, err
		}
		c.srv.limits.limitEvents.WithLabelValues(kind).Inc()
		return n, &limitError{limit: kind, err: limitReply(kind, cfg)}
	}
	return n, err
}

// limitReply is what the client is told when a read-side limit ends its
// connection.
func limitReply(kind string, cfg *Config) *clusterchat.Error {
	switch kind {
	case limitLoginTimeout:
		return clusterchat.Errorf(clusterchat.ENOTLOGGEDIN, "not logged in within %v; closing the connection", cfg.LoginTimeout)
	case limitFrameTimeout:
		return clusterchat.Errorf(clusterchat.EINVALID, "frame not finished within %v; closing the connection", cfg.FrameTimeout)
	default:
		return clusterchat.Errorf(clusterchat.EINVALID, "no request for %v (native clients send PING); closing the connection", cfg.IdleTimeout)
	}
}
