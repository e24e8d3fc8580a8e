package server_test

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"clusterchat/internal/testenv"
	"clusterchat/internal/wiretest"
	"clusterchat/internal/wsnet"
	"clusterchat/server"
)

// The connection limits, each attacked through real sockets: the attacker
// sees the clear error reply and the cut connection, while a bystander pair
// keeps chatting and gets every message.

// bystanders are two logged-in classic users who chat across a test
// (classic sessions have no idle deadline, so they may sit between rounds).
type bystanders struct {
	tb   testing.TB
	a, b *wiretest.Conn
	ua   user
	ub   user
	n    int
}

func newBystanders(tb testing.TB, ts *wiretest.Server) *bystanders {
	tb.Helper()
	ua, ub := newUser(tb, ts, "by-a"), newUser(tb, ts, "by-b")
	a, _ := ua.classic(tb, ts)
	b, _ := ub.classic(tb, ts)
	p := &bystanders{tb: tb, a: a, b: b, ua: ua, ub: ub}
	p.chat()
	return p
}

// chat sends one message each way and checks it arrives, in order after
// every earlier one (any loss or reorder shows as the wrong text).
func (p *bystanders) chat() {
	p.tb.Helper()
	for _, d := range []struct {
		from, to *wiretest.Conn
		uto      user
	}{{p.a, p.b, p.ub}, {p.b, p.a, p.ua}} {
		p.n++
		d.from.TB, d.to.TB = p.tb, p.tb
		d.from.Sendf(`{"msgid":6,"to":%d,"msg":"bystander %d"}`, d.uto.id, p.n)
		d.to.Expect(6, "msg", fmt.Sprintf("bystander %d", p.n))
	}
}

// dialFrom connects to addr from the loopback address src (127.0.0.0/8 is
// all loopback on Linux), so per-address limits see another client.
func dialFrom(tb testing.TB, addr, src string) *wiretest.Conn {
	tb.Helper()
	nc := testenv.DialFrom(tb, addr, src, readTimeout)
	return wiretest.New(tb, nc, readTimeout)
}

// dialEither connects over TCP, or over a WebSocket when ws is set.
func dialEither(tb testing.TB, ts *wiretest.Server, ws bool) *wiretest.Conn {
	tb.Helper()
	if ws {
		return dialWS(tb, ts, "")
	}
	return wiretest.Dial(tb, ts.TCP, readTimeout)
}

// dialWSFrom opens /ws from the loopback address src, with an
// X-Forwarded-For header when xff is not empty (a proxy's word on the
// client).
func dialWSFrom(tb testing.TB, ts *wiretest.Server, src, xff string) *wiretest.Conn {
	tb.Helper()
	d := websocket.Dialer{
		HandshakeTimeout: readTimeout,
		NetDial: func(network, addr string) (net.Conn, error) {
			return (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}).Dial(network, addr)
		},
	}
	h := http.Header{}
	if xff != "" {
		h.Set("X-Forwarded-For", xff)
	}
	ws, _, err := d.Dial("ws://"+ts.HTTP+"/ws", h)
	if err != nil {
		tb.Fatalf("dial ws from %s: %v", src, err)
	}
	nc := wsnet.NewClient(ws)
	tb.Cleanup(func() { nc.Close() })
	return wiretest.New(tb, nc, readTimeout)
}

// waitAdmitted waits until a connection from src is served (its PING
// answered) rather than refused.
func waitAdmitted(tb testing.TB, ts *wiretest.Server, src string) {
	tb.Helper()
	testenv.WaitFor(tb, readTimeout, "a connection from "+src+" admitted", func() bool {
		c := dialFrom(tb, ts.TCP, src)
		defer c.NC.Close()
		c.Sendf(`{"msgid":18,"rid":1}`)
		l, err := c.ReadLine(readTimeout)
		return err == nil && strings.Contains(l, `"req":18`)
	})
}

// expectCut reads until the server closes c and checks that the first
// thing it said was an error reply with errno.
func expectCut(tb testing.TB, c *wiretest.Conn, errno int) {
	tb.Helper()
	c.TB = tb
	got := c.ExpectClosed()
	line, _, _ := strings.Cut(got, "\n")
	if line == "" {
		tb.Fatalf("connection closed without an error reply")
	}
	wiretest.MustDecode(tb, line).Check(tb, "msgid", 11, "errno", errno)
}

// limitCount is chat_conn_limits_total for one limit.
func limitCount(tb testing.TB, ts *wiretest.Server, limit string) float64 {
	tb.Helper()
	body, _ := httpGet(tb, ts.HTTP, "/metrics")
	return limitIn(tb, body, limit)
}

// wantLimit checks chat_conn_limits_total for one limit.
func wantLimit(tb testing.TB, ts *wiretest.Server, limit string, want int) {
	tb.Helper()
	if n := limitCount(tb, ts, limit); n != float64(want) {
		tb.Errorf("chat_conn_limits_total{limit=%q} = %v, want %d", limit, n, want)
	}
}

// limitIn reads chat_conn_limits_total for one limit from a /metrics body.
func limitIn(tb testing.TB, body, limit string) float64 {
	tb.Helper()
	want := `chat_conn_limits_total{limit="` + limit + `"} `
	for l := range strings.Lines(body) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), want); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	tb.Fatalf("/metrics has no %s", want)
	return 0
}

func TestLoginTimeout(t *testing.T) {
	ts := wiretest.StartServer(t, func(c *server.Config) { c.LoginTimeout = 500 * time.Millisecond })
	by := newBystanders(t, ts)
	eve := newUser(t, ts, "eve")
	tests := []struct {
		name   string
		ws     bool
		attack func(t *testing.T, c *wiretest.Conn)
	}{
		{"never logs in", false, func(t *testing.T, c *wiretest.Conn) {}},
		{"never logs in over websocket", true, func(t *testing.T, c *wiretest.Conn) {}},
		{"keeps asking but never logs in", false, func(t *testing.T, c *wiretest.Conn) {
			// Requests do not buy time: the deadline counts from connecting.
			for range 3 {
				c.Ping()
			}
		}},
		{"logs out and stays", false, func(t *testing.T, c *wiretest.Conn) {
			c.ClassicLogin(eve.id, eve.pw)
			c.Sendf(`{"msgid":3}`)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialEither(t, ts, tt.ws)
			tt.attack(t, c)
			by.tb = t
			by.chat()
			expectCut(t, c, 8)
			by.chat()
		})
	}
	wantLimit(t, ts, "login_timeout", len(tests))
}

func TestFrameTimeout(t *testing.T) {
	ts := wiretest.StartServer(t, func(c *server.Config) { c.FrameTimeout = 300 * time.Millisecond })
	by := newBystanders(t, ts)
	eve := newUser(t, ts, "eve")
	tests := []struct {
		name   string
		login  bool
		ws     bool
		attack func(c *wiretest.Conn, stop <-chan struct{})
	}{
		{"half a frame over websocket", true, true, func(c *wiretest.Conn, _ <-chan struct{}) {
			// One text message holding half an object: the stream reader
			// waits for the rest, as on TCP. (It stops outside a string:
			// the newline that ends a message is invalid in one.)
			c.NC.(*wsnet.Conn).WS().WriteMessage(websocket.TextMessage, []byte(`{"msgid":6,"to":1,"msg":`))
		}},
		{"half a frame before login", false, false, func(c *wiretest.Conn, _ <-chan struct{}) {
			c.Send(`{"msgid":1,"id":`)
		}},
		{"half a frame logged in", true, false, func(c *wiretest.Conn, _ <-chan struct{}) {
			c.Send(`{"msgid":6,"to":1,"msg":"never end`)
		}},
		{"one byte at a time", true, false, func(c *wiretest.Conn, stop <-chan struct{}) {
			// Slowloris: the bytes keep coming, the frame never ends in
			// time; each byte does not buy time.
			go func() {
				c.NC.Write([]byte(`{"msgid":6,"to":1,"msg":"`))
				t := time.NewTicker(20 * time.Millisecond)
				defer t.Stop()
				for range 1000 {
					select {
					case <-stop:
						return
					case <-t.C:
					}
					if _, err := c.NC.Write([]byte("x")); err != nil {
						return
					}
				}
			}()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialEither(t, ts, tt.ws)
			if tt.login {
				c.ClassicLogin(eve.id, eve.pw)
			}
			stop := make(chan struct{})
			defer close(stop)
			tt.attack(c, stop)
			by.tb = t
			by.chat()
			expectCut(t, c, 3)
			by.chat()
		})
	}
	wantLimit(t, ts, "frame_timeout", len(tests))
}

func TestIdleTimeout(t *testing.T) {
	const idle = 300 * time.Millisecond
	ts := wiretest.StartServer(t, func(c *server.Config) { c.IdleTimeout = idle })
	by := newBystanders(t, ts)
	silent, pinger, classic := newUser(t, ts, "silent"), newUser(t, ts, "pinger"), newUser(t, ts, "classic")

	quiet, _ := silent.native(t, ts)
	quietWS, _ := silent.wsNative(t, ts) // the WebSocket keepalive answers pings, but the session sends nothing
	alive, _ := pinger.native(t, ts)
	old, _ := classic.classic(t, ts) // sends nothing either: classic sessions have no idle deadline
	stop := make(chan struct{})
	pinged := make(chan error, 1)
	go func() {
		// A native client that pings stays, however long.
		defer close(pinged)
		for {
			select {
			case <-stop:
				return
			case <-time.After(idle / 6):
			}
			alive.NC.SetWriteDeadline(time.Now().Add(readTimeout))
			if _, err := alive.NC.Write([]byte(`{"msgid":18,"rid":1}`)); err != nil {
				pinged <- err
				return
			}
			l, err := alive.ReadLine(readTimeout)
			if err != nil || !strings.Contains(l, `"req":18`) {
				pinged <- fmt.Errorf("ping: %q, %v", l, err)
				return
			}
		}
	}()
	by.chat()
	expectCut(t, quiet, 3)
	expectCut(t, quietWS, 3)
	by.chat()
	// The pinging session outlives a few more idle periods.
	n := limitCount(t, ts, "idle_timeout")
	time.Sleep(3 * idle) // not waiting for a condition: time must pass to show what is NOT cut
	close(stop)
	if err := <-pinged; err != nil {
		t.Fatalf("the pinging native session was cut: %v", err)
	}
	old.Ping()
	by.chat()
	if got := limitCount(t, ts, "idle_timeout"); n != 2 || got != 2 {
		t.Errorf("chat_conn_limits_total{limit=idle_timeout} = %v then %v, want 2", n, got)
	}
}

func TestConnsPerAddr(t *testing.T) {
	const max = 5
	ts := wiretest.StartServer(t, func(c *server.Config) { c.MaxConnsPerAddr = max })
	by := newBystanders(t, ts) // from 127.0.0.1
	var held []*wiretest.Conn
	for range max {
		c := dialFrom(t, ts.TCP, "127.0.0.2")
		c.Ping() // admitted: answered (errno 8, not logged in)
		held = append(held, c)
	}
	by.chat()
	over := dialFrom(t, ts.TCP, "127.0.0.2")
	expectCut(t, over, 12)
	by.chat()
	// Another address is not affected.
	other := dialFrom(t, ts.TCP, "127.0.0.3")
	other.Ping()
	// A freed slot is taken again.
	held[0].NC.Close()
	waitAdmitted(t, ts, "127.0.0.2")
	by.chat()
	if n := limitCount(t, ts, "per_addr"); n < 1 {
		t.Errorf("chat_conn_limits_total{limit=per_addr} = %v", n)
	}
}

func TestPreloginCap(t *testing.T) {
	const max = 3
	ts := wiretest.StartServer(t, func(c *server.Config) { c.MaxPrelogin = max })
	by := newBystanders(t, ts)
	eve := newUser(t, ts, "eve")
	testenv.WaitFor(t, readTimeout, "no connection waiting to log in", func() bool {
		return metric(t, ts, "chat_connections_prelogin") == 0
	})
	var held []*wiretest.Conn
	for range max {
		c := dialFrom(t, ts.TCP, "127.0.0.4")
		c.Ping()
		held = append(held, c)
	}
	over := dialFrom(t, ts.TCP, "127.0.0.5")
	expectCut(t, over, 9)
	by.chat()
	// Logging in leaves the not-logged-in count: room for one more.
	held[0].ClassicLogin(eve.id, eve.pw)
	waitAdmitted(t, ts, "127.0.0.5")
	by.chat()
	if n := limitCount(t, ts, "prelogin"); n < 1 {
		t.Errorf("chat_conn_limits_total{limit=prelogin} = %v", n)
	}
}

// TestProxyProtocol: behind a trusted proxy (here 127.0.0.2) the client's
// address comes from the PROXY header (v1 and v2), and the per-address cap
// counts that address; nobody else can claim one, and the trusted proxy
// must send it.
func TestProxyProtocol(t *testing.T) {
	ts := wiretest.StartServer(t, func(c *server.Config) {
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}
		c.ProxyProtocol = true
		c.MaxConnsPerAddr = 2
	})
	by := newBystanders(t, ts) // direct, from 127.0.0.1: no header needed
	v1 := func(src string) string { return "PROXY TCP4 " + src + " 127.0.0.1 40000 6000\r\n" }
	v2 := func(src string) string {
		b := []byte("\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c")
		b = append(b, netip.MustParseAddr(src).AsSlice()...)
		b = append(b, 127, 0, 0, 1, 0x9c, 0x40, 0x17, 0x70)
		return string(b)
	}
	viaProxy := func(t *testing.T, header string) *wiretest.Conn {
		c := dialFrom(t, ts.TCP, "127.0.0.2")
		c.Send(header)
		return c
	}

	// Two connections of 203.0.113.7, one in each version, fill its cap.
	a1 := viaProxy(t, v1("203.0.113.7"))
	a1.Ping()
	a2 := viaProxy(t, v2("203.0.113.7"))
	a2.Ping()
	by.chat()
	expectCut(t, viaProxy(t, v1("203.0.113.7")+`{"msgid":18}`), 12)
	if !strings.Contains(ts.Logs.String(), "remote=203.0.113.7") {
		t.Errorf("the refusal is not logged with the client's address")
	}
	// Other clients of the same proxy are other addresses.
	viaProxy(t, v2("198.51.100.1")).Ping()
	viaProxy(t, v1("198.51.100.2")).Ping()
	by.chat()

	t.Run("trusted proxy without header", func(t *testing.T) {
		c := dialFrom(t, ts.TCP, "127.0.0.2")
		c.Sendf(`{"msgid":18,"rid":1}`)
		if got := c.ExpectClosed(); got != "" {
			t.Errorf("got %q before the close", got)
		}
	})
	t.Run("header from an untrusted peer", func(t *testing.T) {
		c := dialFrom(t, ts.TCP, "127.0.0.3")
		c.Send(v1("198.51.100.3"))
		c.ExpectClosed() // garbage to the JSON reader
	})
	t.Run("malformed header", func(t *testing.T) {
		viaProxy(t, "PROXY TCP4 nonsense\r\n").ExpectClosed()
	})
	by.chat()
	if n := limitCount(t, ts, "handshake"); n != 2 {
		t.Errorf("chat_conn_limits_total{limit=handshake} = %v, want 2", n)
	}
}

// TestConnsPerAddrWebSocket: WebSockets count against the per-address cap
// too, by the address a trusted proxy (here 127.0.0.1) names in
// X-Forwarded-For; another peer's X-Forwarded-For is not believed.
func TestConnsPerAddrWebSocket(t *testing.T) {
	ts := wiretest.StartServer(t, func(c *server.Config) {
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		c.MaxConnsPerAddr = 2
	})
	by := newBystanders(t, ts)
	for range 2 {
		dialWSFrom(t, ts, "127.0.0.1", "203.0.113.9").Ping()
	}
	expectCut(t, dialWSFrom(t, ts, "127.0.0.1", "203.0.113.9"), 12)
	by.chat()
	dialWSFrom(t, ts, "127.0.0.1", "198.51.100.1").Ping() // another client of the proxy
	// An untrusted peer cannot pose as a fresh address: its own counts.
	dialWSFrom(t, ts, "127.0.0.6", "192.0.2.1").Ping()
	dialWSFrom(t, ts, "127.0.0.6", "192.0.2.2").Ping()
	expectCut(t, dialWSFrom(t, ts, "127.0.0.6", "192.0.2.3"), 12)
	if !strings.Contains(ts.Logs.String(), "remote=203.0.113.9") {
		t.Errorf("the refusal is not logged with the client's address")
	}
	by.chat()
}

// TestHTTPLimits: the HTTP listener refuses oversized headers and drops a
// request whose headers trickle in, while a WebSocket session, long-lived
// by nature, outlives the read and write timeouts (they end at the upgrade).
func TestHTTPLimits(t *testing.T) {
	const timeout = 300 * time.Millisecond
	ts := wiretest.StartServer(t, func(c *server.Config) {
		c.HTTPReadHeaderTimeout, c.HTTPReadTimeout, c.HTTPWriteTimeout = timeout, timeout, timeout
	})
	alice, bob := newUser(t, ts, "alice"), newUser(t, ts, "bob")
	ws, _ := alice.wsNative(t, ts)
	tcp, _ := bob.native(t, ts)

	t.Run("headers over 16 KiB", func(t *testing.T) {
		req, _ := http.NewRequest("GET", "http://"+ts.HTTP+"/healthz", nil)
		req.Header.Set("X-Junk", strings.Repeat("j", 20<<10))
		resp, err := (&http.Client{Timeout: readTimeout}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("status %s, want 431", resp.Status)
		}
	})
	t.Run("headers never finished", func(t *testing.T) {
		c := wiretest.Dial(t, ts.HTTP, readTimeout)
		c.Send("GET /healthz HTTP/1.1\r\nHost: x\r\n")
		c.ExpectClosed()
	})
	time.Sleep(3 * timeout) // not waiting for a condition: time must pass to show what is NOT cut
	ws.Call(6, `{"msgid":6,"to":%d,"msg":"still here","cmid":"w1"}`, bob.id)
	tcp.Expect(6, "msg", "still here")
	tcp.Call(6, `{"msgid":6,"to":%d,"msg":"and back","cmid":"t1"}`, alice.id)
	ws.Expect(6, "msg", "and back")
}
