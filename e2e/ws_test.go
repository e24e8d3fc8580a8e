package e2e

import (
	"context"
	"testing"

	"clusterchat/internal/wiretest"
	"clusterchat/internal/wsnet"
)

// dialWS opens a WebSocket to ws://httpAddr/ws (a chatserver's HTTP port
// or nginx's HTTP proxy) as a raw protocol client.
func dialWS(tb testing.TB, httpAddr string) *wiretest.Conn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	nc, err := wsnet.Dial(ctx, "ws://"+httpAddr+"/ws", "")
	if err != nil {
		tb.Fatalf("dial ws %s: %v", httpAddr, err)
	}
	tb.Cleanup(func() { nc.Close() })
	return wiretest.New(tb, nc, readTimeout)
}

// testWebSocket: WebSocket users on one server, on another and through
// nginx's HTTP proxy chat with a classic TCP user on a third server, as if
// all were on TCP.
func testWebSocket(t *testing.T, c *cluster) {
	for _, rt := range []struct {
		name string
		ws   func(*cluster) string // where the WebSocket user connects (HTTP)
	}{
		{"ws-n1", func(c *cluster) string { return c.servers[0].HTTPAddr() }},
		{"ws-nginx", func(c *cluster) string { return c.nginx.HTTPAddr() }},
	} {
		t.Run(rt.name, func(t *testing.T) {
			tcpAddr := c.servers[1].Addr()
			ua, ub := c.newUser(t, tcpAddr), c.newUser(t, tcpAddr)
			w := dialWS(t, rt.ws(c))
			w.NativeLogin(ua.id, ua.pw)
			rb, _ := classicAt(t, tcpAddr, ub)
			ack := w.Call(6, `{"msgid":6,"to":%d,"msg":"from the browser","cmid":"w1"}`, ub.id)
			rb.Expect(6, "id", ua.id, "name", ua.name, "msg", "from the browser")
			rb.Sendf(`{"msgid":6,"id":%d,"name":%q,"to":%d,"msg":"from the console"}`, ub.id, ub.name, ua.id)
			w.Expect(6, "id", ub.id, "msg", "from the console", "conv", ack.Str("conv"), "seq", 2)
			// Nothing else arrived on either side.
			w.Ping()
			rb.Ping()
		})
	}
}
