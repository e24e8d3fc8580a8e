package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"clusterchat/internal/testenv"
	"clusterchat/internal/wiretest"
	"clusterchat/internal/wsnet"
	"clusterchat/server"
)

// dialWS opens /ws on the server's HTTP listener with the given Origin
// header ("" for none) and returns it as a raw protocol client: one object
// per text message each way, read back as lines.
func dialWS(tb testing.TB, ts *wiretest.Server, origin string) *wiretest.Conn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	nc, err := wsnet.Dial(ctx, "ws://"+ts.HTTP+"/ws", origin)
	if err != nil {
		tb.Fatalf("dial ws: %v", err)
	}
	tb.Cleanup(func() { nc.Close() })
	return wiretest.New(tb, nc, readTimeout)
}

// isReset reports whether err is the peer's reset (or a write into a
// connection it has closed): how a server's close reaches a client whose
// data it did not read.
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// wsNative connects over WebSocket and logs u in with the native protocol.
func (u user) wsNative(tb testing.TB, ts *wiretest.Server) (*wiretest.Conn, wiretest.Obj) {
	tb.Helper()
	c := dialWS(tb, ts, "")
	return c, c.NativeLogin(u.id, u.pw)
}

// TestWSChatsWithTCP: a WebSocket user and a TCP user (classic or native)
// chat both ways as if both were on TCP.
func TestWSChatsWithTCP(t *testing.T) {
	ts := wiretest.StartServer(t, nil)
	for _, peer := range []string{"classic", "native", "ws"} {
		t.Run(peer, func(t *testing.T) {
			alice, bob := newUser(t, ts, "wa-"+peer), newUser(t, ts, "wb-"+peer)
			befriend(t, ts, alice, bob)
			a, _ := alice.wsNative(t, ts)
			var b *wiretest.Conn
			switch peer {
			case "classic":
				b, _ = bob.classic(t, ts)
			case "native":
				b, _ = bob.native(t, ts)
			case "ws":
				b, _ = bob.wsNative(t, ts)
			}
			a.Expect(12, "id", bob.id, "state", "online")
			ack := a.Call(6, `{"msgid":6,"to":%d,"msg":"hi <b>%s</b>","cmid":"c1"}`, bob.id, peer)
			ack.Check(t, "seq", 1)
			b.Expect(6, "id", alice.id, "name", alice.name, "msg", "hi <b>"+peer+"</b>")
			if peer == "classic" {
				b.Sendf(`{"msgid":6,"id":%d,"name":%q,"to":%d,"msg":"back"}`, bob.id, bob.name, alice.id)
			} else {
				b.Call(6, `{"msgid":6,"to":%d,"msg":"back","cmid":"c2"}`, alice.id)
			}
			a.Expect(6, "id", bob.id, "name", bob.name, "msg", "back", "seq", 2)
			// The same cmid again: the original ack, nothing stored twice.
			a.Call(6, `{"msgid":6,"to":%d,"msg":"hi","cmid":"c1"}`, bob.id).Check(t, "dup", true, "seq", 1, "mid", ack.Int("mid"))
			a.Ping()
		})
	}
}

// TestWSSession: tokens, SYNC, HISTORY, READ across devices and groups work
// over WebSocket exactly as over TCP, with one device on each.
func TestWSSession(t *testing.T) {
	ts := wiretest.StartServer(t, nil)
	alice, bob := newUser(t, ts, "alice"), newUser(t, ts, "bob")
	befriend(t, ts, alice, bob)
	gid := mkGroup(t, ts, alice, "devs", bob)

	w, login := alice.wsNative(t, ts)
	token := login.Str("token")
	if token == "" {
		t.Fatalf("no token in %s", login.Raw)
	}
	tcp, _ := alice.native(t, ts) // alice's second device, on TCP
	b, _ := bob.native(t, ts)
	w.Expect(12, "id", bob.id, "state", "online")
	tcp.Expect(12, "id", bob.id, "state", "online")
	for i := range 3 {
		b.Call(6, `{"msgid":6,"to":%d,"msg":"m%d","cmid":"b%d"}`, alice.id, i, i)
	}
	b.Call(10, `{"msgid":10,"groupid":%d,"msg":"to the group","cmid":"g1"}`, gid)
	for i := range 3 {
		w.Expect(6, "msg", "m"+string(rune('0'+i)), "seq", i+1)
		tcp.Expect(6, "seq", i+1)
	}
	w.Expect(10, "groupid", gid, "msg", "to the group")
	tcp.Expect(10, "groupid", gid)
	conv := w.Call(14, `{"msgid":14,"to":%d,"after":1}`, bob.id)
	conv.Check(t, "last", 3)
	if n := len(conv.List("msgs")); n != 2 {
		t.Fatalf("SYNC after 1: %d messages, want 2: %s", n, conv.Raw)
	}
	hist := w.Call(15, `{"msgid":15,"to":%d,"before":3,"limit":1}`, bob.id)
	if msgs := hist.List("msgs"); len(msgs) != 1 || msgs[0].(map[string]any)["msg"] != "m1" {
		t.Fatalf("HISTORY before 3 limit 1: %s", hist.Raw)
	}
	// A read marker set on the browser moves on the other device.
	w.Call(16, `{"msgid":16,"conv":%q,"seq":3}`, conv.Str("conv"))
	tcp.Expect(16, "conv", conv.Str("conv"), "seq", 3)
	// A reload: a new WebSocket resumes with the token, nothing unread.
	w.NC.Close()
	w2 := dialWS(t, ts, "")
	rid := w2.Req(`{"msgid":1,"proto":2,"token":%q}`, token)
	re := w2.Expect(2, "rid", rid, "errno", 0, "id", alice.id)
	for _, c := range re.List("convs") {
		m := c.(map[string]any)
		if m["conv"] == conv.Str("conv") && m["unread"].(json.Number).String() != "0" {
			t.Fatalf("unread after READ: %v", m)
		}
	}
	w2.Call(3, `{"msgid":3}`) // logout answers; the connection stays, without a session
	w2.Req(`{"msgid":6,"to":%d,"msg":"x","cmid":"x"}`, bob.id)
	w2.ExpectErr(6, 8)
}

// TestWSOrigin: browsers from other sites are refused at the upgrade; the
// page's own origin, configured origins and non-browser clients are not.
func TestWSOrigin(t *testing.T) {
	ts := wiretest.StartServer(t, func(c *server.Config) { c.AllowedOrigins = []string{"https://chat.example.com"} })
	for _, tc := range []struct {
		origin string
		ok     bool
	}{
		{"", true},
		{"http://" + ts.HTTP, true},
		{"https://chat.example.com", true},
		{"https://chat.example.com.evil.test", false},
		{"http://evil.test", false},
		{"null", false},
	} {
		t.Run(tc.origin, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
			defer cancel()
			nc, err := wsnet.Dial(ctx, "ws://"+ts.HTTP+"/ws", tc.origin)
			if tc.ok != (err == nil) {
				t.Fatalf("origin %q: err %v, want ok=%v", tc.origin, err, tc.ok)
			}
			if err == nil {
				nc.Close()
			} else if !strings.Contains(err.Error(), "403") {
				t.Fatalf("refusal without 403: %v", err)
			}
		})
	}
}

// TestWSLimits: the frame limit and bad input behave as on TCP; a binary
// message closes the connection.
func TestWSLimits(t *testing.T) {
	ts := wiretest.StartServer(t, nil)
	t.Run("frame over 64 KiB", func(t *testing.T) {
		c := dialWS(t, ts, "")
		// The server refuses the message once past the limit and closes
		// while the rest may still be arriving: a close with unread data
		// is a reset, which can cut the client's write short and drop the
		// error reply with it. Both ends are the refusal; anything else
		// (the message taken, the connection left open) fails.
		if err := c.TrySend(`{"msgid":4,"name":"` + strings.Repeat("x", 70<<10) + `"}` + "\n"); err != nil && !isReset(err) {
			t.Fatalf("write: %v", err)
		}
		l, err := c.ReadLine(readTimeout)
		switch {
		case err == nil:
			wiretest.MustDecode(t, l).Check(t, "msgid", 11, "req", 0, "errno", 7)
			c.ExpectClosed()
		case !isReset(err):
			t.Fatalf("want the errno 7 reply or a reset, got %q, %v", l, err)
		}
	})
	t.Run("not an object", func(t *testing.T) {
		c := dialWS(t, ts, "")
		c.Send("[1]\n")
		c.ExpectErr(0, 3)
		c.Ping()
	})
	t.Run("binary", func(t *testing.T) {
		c := dialWS(t, ts, "")
		ws := c.NC.(*wsnet.Conn).WS()
		if err := ws.WriteMessage(websocket.BinaryMessage, []byte(`{"msgid":18}`)); err != nil {
			t.Fatal(err)
		}
		c.ExpectClosed()
	})
}

// TestWSShutdown: closing the server tells a WebSocket native session to
// reconnect (RECONNECT), then closes it.
func TestWSShutdown(t *testing.T) {
	ts := wiretest.StartServer(t, nil)
	alice := newUser(t, ts, "alice")
	c, _ := alice.wsNative(t, ts)
	go ts.Server().Close()
	c.Expect(17, "reason", "shutdown")
	c.ExpectClosed()
}

// TestWSKeepalive: the server pings; a client that answers stays, one that
// does not is cut after WSPing+WSPongWait.
func TestWSKeepalive(t *testing.T) {
	ts := wiretest.StartServer(t, func(c *server.Config) {
		c.WSPing = 100 * time.Millisecond
		c.WSPongWait = 2 * time.Second // generous: a loaded box must not cut the live one
	})
	alice := newUser(t, ts, "alice")

	live, _ := alice.wsNative(t, ts)
	pings := make(chan struct{}, 100)
	ws := live.NC.(*wsnet.Conn).WS()
	ws.SetPingHandler(func(data string) error {
		pings <- struct{}{}
		return ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	// A reader must run for control frames to be handled.
	for got := 0; got < 5; {
		live.Ping()
		select {
		case <-pings:
			got++
		default:
		}
	}
	live.Ping()

	dead := dialWS(t, ts, "")
	dead.NC.(*wsnet.Conn).WS().SetPingHandler(func(string) error { return nil })
	dead.ExpectClosed()
}

// TestWSSlowConsumer: a WebSocket client that stops reading is cut at the
// byte bound like a TCP one.
func TestWSSlowConsumer(t *testing.T) {
	ts := wiretest.StartServer(t, func(c *server.Config) {
		c.MaxQueue = 64 << 10
		c.MaxBody = 60000
	})
	alice, bob := newUser(t, ts, "alice"), newUser(t, ts, "bob")
	slow, _ := bob.wsNative(t, ts)
	slow.NC.(*wsnet.Conn).WS().NetConn().(*net.TCPConn).SetReadBuffer(4096)
	a, _ := alice.native(t, ts)
	floodUntilCut(t, ts, a, bob)
	testenv.WaitFor(t, readTimeout, "the slow WebSocket closed", func() bool {
		return metric(t, ts, "chat_connections") == 1
	})
	a.Ping()
}

// TestWSNotFoundWithoutUpgrade: a plain GET on /ws is a clear 400, not a
// hang.
func TestWSNotFoundWithoutUpgrade(t *testing.T) {
	ts := wiretest.StartServer(t, nil)
	_, code := httpGet(t, ts.HTTP, "/ws")
	if code != http.StatusBadRequest {
		t.Fatalf("GET /ws without upgrade: %d, want 400", code)
	}
}
