package server

import (
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"clusterchat"
	"clusterchat/internal/wsnet"
)

// wsReadLimit bounds one WebSocket message. The stream reader refuses any
// object over MaxFrame with an error reply (errno 7) as on TCP, and it sees
// that after MaxFrame+1 bytes; the library's own limit (close 1009) only
// catches a message packed with many small objects.
const wsReadLimit = 2 * clusterchat.MaxFrame

// wsWriteBuffers lends write buffers to WebSockets only while they write,
// so an idle connection holds none.
var wsWriteBuffers sync.Pool

// upgrader returns the WebSocket upgrader of s: origin checked, no
// compression (chat objects are small and compression costs memory per
// connection).
func (s *Server) upgrader() *websocket.Upgrader {
	return &websocket.Upgrader{
		HandshakeTimeout: 10 * time.Second,
		WriteBufferSize:  4096,
		WriteBufferPool:  &wsWriteBuffers,
		CheckOrigin:      s.checkOrigin,
		Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
			s.log.Info("websocket upgrade refused", "remote", s.httpClientAddr(r).String(), "origin", r.Header.Get("Origin"), "status", status, "reason", reason.Error())
			http.Error(w, reason.Error(), status)
		},
	}
}

// serveWS upgrades a request on /ws to a WebSocket and serves it as one
// more connection: the same sessions, limits and queue as a TCP socket,
// one JSON object per text message.
func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	if s.closing.Load() {
		http.Error(w, "server shutting down", http.StatusServiceUnavailable)
		return
	}
	ws, err := s.upgrader().Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	ws.SetReadLimit(wsReadLimit)
	nc := wsnet.New(ws)
	s.keepAlive(nc)
	s.admitConn(behind(nc, s.httpClientAddr(r)), s.httpClientAddr(r))
}

// keepAlive pings the client every WSPing and cuts it when neither a pong
// nor anything else proves it alive within WSPing+WSPongWait: a browser
// that vanished (laptop lid closed, network gone) must not keep a session
// online for ever.
func (s *Server) keepAlive(nc *wsnet.Conn) {
	ws := nc.WS()
	// The alive deadline, not the read deadline: that one is the
	// session's (login, frame and idle deadlines, limits.go).
	alive := func() { nc.SetAliveDeadline(time.Now().Add(s.cfg.WSPing + s.cfg.WSPongWait)) }
	alive()
	ws.SetPongHandler(func(string) error { alive(); return nil })
	var t *time.Timer
	t = time.AfterFunc(s.cfg.WSPing, func() {
		if err := ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(s.cfg.WSPongWait)); err != nil {
			return // closed, or not writable: the read deadline ends it
		}
		t.Reset(s.cfg.WSPing)
	})
	nc.OnClose(func() { t.Stop() })
}

// checkOrigin allows requests without an Origin header (programs, not
// browsers), the page's own origin, and the configured AllowedOrigins.
// Anything else is refused so that another site's page cannot act for a
// user of this one.
func (s *Server) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	for _, o := range s.cfg.AllowedOrigins {
		if o == "*" || strings.EqualFold(strings.TrimSuffix(o, "/"), origin) {
			return true
		}
	}
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	return strings.EqualFold(u.Host, r.Host)
}
