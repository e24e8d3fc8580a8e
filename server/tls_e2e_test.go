package server_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	chat "clusterchat/client"
	"clusterchat/internal/testenv"
	"clusterchat/internal/wiretest"
	"clusterchat/internal/wsnet"
	"clusterchat/server"
)

// dialTLS connects a raw client over TLS trusting ca.
func dialTLS(tb testing.TB, addr string, ca *testenv.CA) *wiretest.Conn {
	tb.Helper()
	nc, err := tls.DialWithDialer(&net.Dialer{Timeout: readTimeout}, "tcp", addr, &tls.Config{RootCAs: ca.Pool()})
	if err != nil {
		tb.Fatalf("tls dial %s: %v", addr, err)
	}
	tb.Cleanup(func() { nc.Close() })
	return wiretest.New(tb, nc, readTimeout)
}

// serialAt is the serial number of the certificate the server at addr
// presents now.
func serialAt(tb testing.TB, addr string, ca *testenv.CA) *big.Int {
	tb.Helper()
	c := dialTLS(tb, addr, ca)
	defer c.NC.Close()
	return c.NC.(*tls.Conn).ConnectionState().PeerCertificates[0].SerialNumber
}

// goClient is a Go client (package client) over TLS, registered and
// logged in as name.
func goClient(tb testing.TB, addr string, ca *testenv.CA, name string) (*chat.Client, int64) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	c, err := chat.Dial(ctx, addr, chat.Options{TLS: &tls.Config{RootCAs: ca.Pool()}})
	if err != nil {
		tb.Fatalf("client.Dial over TLS: %v", err)
	}
	tb.Cleanup(func() { c.Close() })
	id, err := c.Register(ctx, name, "pw-"+name)
	if err != nil {
		tb.Fatalf("register %s: %v", name, err)
	}
	if _, err := c.Login(ctx, id, "pw-"+name); err != nil {
		tb.Fatalf("login %s: %v", name, err)
	}
	return c, id
}

// expectMessage waits for the next chat message event of c and checks its text.
func expectMessage(tb testing.TB, c *chat.Client, text string) {
	tb.Helper()
	timeout := time.After(readTimeout)
	for {
		select {
		case ev := <-c.Events():
			if ev.Kind != chat.EventMessage || ev.Sent {
				continue
			}
			if ev.Message.Body != text {
				tb.Fatalf("got message %q, want %q", ev.Message.Body, text)
			}
			return
		case <-timeout:
			tb.Fatalf("no message %q", text)
		}
	}
}

// TestTLS: the chat port speaks TLS (the Go client and a raw client chat
// over it), the HTTP port HTTPS; plain TCP is cut at the handshake; a new
// certificate is served after ReloadTLS (chatserver's SIGHUP) and after the
// files change, and a broken one never replaces a good one.
func TestTLS(t *testing.T) {
	ca := testenv.NewCA(t)
	certFile, keyFile := ca.Issue(t, "127.0.0.1")
	ts := wiretest.StartServer(t, func(c *server.Config) { c.TLSCert, c.TLSKey = certFile, keyFile })
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()

	alice, aid := goClient(t, ts.TCP, ca, "alice")
	bob, bid := goClient(t, ts.TCP, ca, "bob")
	if _, err := alice.Send(ctx, bid, "over tls"); err != nil {
		t.Fatalf("send: %v", err)
	}
	expectMessage(t, bob, "over tls")
	if _, err := bob.Send(ctx, aid, "and back"); err != nil {
		t.Fatalf("send: %v", err)
	}
	expectMessage(t, alice, "and back")

	// A raw native session over TLS gets the same protocol.
	raw := dialTLS(t, ts.TCP, ca)
	raw.NativeLogin(bid, "pw-bob")
	if _, err := alice.Send(ctx, bid, "to every device"); err != nil {
		t.Fatalf("send: %v", err)
	}
	raw.Expect(6, "msg", "to every device")
	expectMessage(t, bob, "to every device")
	hc := &http.Client{Timeout: readTimeout, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	httpsGet := func(t *testing.T, path string) string {
		resp, err := hc.Get("https://" + ts.HTTP + path)
		if err != nil {
			t.Fatalf("GET https %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET https %s: %s", path, resp.Status)
		}
		return string(b)
	}

	t.Run("plain TCP to the TLS port", func(t *testing.T) {
		c := wiretest.Dial(t, ts.TCP, readTimeout)
		c.Sendf(`{"msgid":4,"name":"plain","password":"x"}`)
		c.ExpectClosed()
		testenv.WaitFor(t, readTimeout, "the handshake failure counted", func() bool {
			return limitIn(t, httpsGet(t, "/metrics"), "handshake") >= 1
		})
	})
	t.Run("HTTPS", func(t *testing.T) {
		httpsGet(t, "/healthz")
		resp, err := (&http.Client{Timeout: readTimeout}).Get("http://" + ts.HTTP + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Fatalf("plain HTTP served on the HTTPS port")
			}
		}
	})
	t.Run("reload", func(t *testing.T) {
		first := serialAt(t, ts.TCP, ca)
		// SIGHUP's path: the new pair serves new connections at once.
		second := ca.IssueTo(t, certFile, keyFile, "127.0.0.1")
		if err := ts.Server().ReloadTLS(); err != nil {
			t.Fatalf("ReloadTLS: %v", err)
		}
		if got := serialAt(t, ts.TCP, ca); got.Cmp(second) != 0 || got.Cmp(first) == 0 {
			t.Fatalf("after ReloadTLS the server presents serial %v, want %v", got, second)
		}
		// Open sessions keep going on the old handshake.
		if _, err := alice.Send(ctx, bid, "after rotation"); err != nil {
			t.Fatalf("send: %v", err)
		}
		expectMessage(t, bob, "after rotation")
		// A change on disk is picked up by itself.
		third := ca.IssueTo(t, certFile, keyFile, "127.0.0.1")
		testenv.WaitFor(t, readTimeout, "the changed certificate served", func() bool {
			return serialAt(t, ts.TCP, ca).Cmp(third) == 0
		})
		// A broken pair is refused and the good one stays.
		if err := os.WriteFile(certFile, []byte("not a certificate"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := ts.Server().ReloadTLS(); err == nil {
			t.Fatalf("ReloadTLS took a broken certificate")
		}
		if got := serialAt(t, ts.TCP, ca); got.Cmp(third) != 0 {
			t.Fatalf("after a failed reload the server presents %v, want %v", got, third)
		}
	})
}

// dialTLSFrom is dialTLS from the loopback address src.
func dialTLSFrom(tb testing.TB, addr, src string, ca *testenv.CA) *wiretest.Conn {
	tb.Helper()
	d := &net.Dialer{Timeout: readTimeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	nc, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{RootCAs: ca.Pool()})
	if err != nil {
		tb.Fatalf("tls dial %s from %s: %v", addr, src, err)
	}
	tb.Cleanup(func() { nc.Close() })
	return wiretest.New(tb, nc, readTimeout)
}

// dialWSSFrom opens wss://addr/ws from the loopback address src.
func dialWSSFrom(tb testing.TB, addr, src string, ca *testenv.CA) *wiretest.Conn {
	tb.Helper()
	d := websocket.Dialer{
		HandshakeTimeout: readTimeout,
		TLSClientConfig:  &tls.Config{RootCAs: ca.Pool()},
		NetDial: func(network, addr string) (net.Conn, error) {
			return (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}).Dial(network, addr)
		},
	}
	ws, _, err := d.Dial("wss://"+addr+"/ws", nil)
	if err != nil {
		tb.Fatalf("dial wss %s from %s: %v", addr, src, err)
	}
	nc := wsnet.NewClient(ws)
	tb.Cleanup(func() { nc.Close() })
	return wiretest.New(tb, nc, readTimeout)
}

// bystandersVia makes a bystander pair that chats through nginx's TLS
// stream proxy from 127.0.0.1. One connection registers both (and the
// users named in more, returned with "pw-" passwords) and stays as the
// first of the pair, so the pair holds two connections of the address.
func bystandersVia(tb testing.TB, ng *testenv.Nginx, ca *testenv.CA, more ...string) (*bystanders, []user) {
	tb.Helper()
	reg := func(c *wiretest.Conn, name string) user {
		return user{id: c.Register(name, "pw-"+name), name: name, pw: "pw-" + name}
	}
	a := dialTLSFrom(tb, ng.StreamAddr(), "127.0.0.1", ca)
	ua, ub := reg(a, "by-a"), reg(a, "by-b")
	var others []user
	for _, name := range more {
		others = append(others, reg(a, name))
	}
	a.ClassicLogin(ua.id, ua.pw)
	b := dialTLSFrom(tb, ng.StreamAddr(), "127.0.0.1", ca)
	b.ClassicLogin(ub.id, ub.pw)
	by := &bystanders{tb: tb, a: a, b: b, ua: ua, ub: ub}
	by.chat()
	return by, others
}

// TestBehindNginxTLS runs a chatserver behind deploy/nginx/nginx-tls.conf.tmpl:
// clients speak TLS (chat) and WSS to nginx; nginx sends the PROXY header
// and X-Forwarded-For, so the server's per-address cap counts each client
// by its own address across both transports, and logs it; a bystander
// pair chats through nginx all along.
func TestBehindNginxTLS(t *testing.T) {
	ca := testenv.NewCA(t)
	cert, key := ca.Issue(t, "127.0.0.1")
	ts := wiretest.StartServer(t, func(c *server.Config) {
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")} // nginx
		c.ProxyProtocol = true
		c.MaxConnsPerAddr = 3
	})
	ng := testenv.StartNginxTLS(t, []string{ts.TCP}, []string{ts.HTTP}, cert, key)

	by, _ := bystandersVia(t, ng, ca)

	// 127.0.0.2 fills its cap with two chat connections and a WSS one...
	for range 2 {
		dialTLSFrom(t, ng.StreamAddr(), "127.0.0.2", ca).Ping()
	}
	dialWSSFrom(t, ng.HTTPAddr(), "127.0.0.2", ca).Ping()
	by.chat()
	// ...and is refused on either, with the reply through nginx.
	expectCut(t, dialTLSFrom(t, ng.StreamAddr(), "127.0.0.2", ca), 12)
	expectCut(t, dialWSSFrom(t, ng.HTTPAddr(), "127.0.0.2", ca), 12)
	by.chat()
	// Another client of the same nginx is not.
	dialTLSFrom(t, ng.StreamAddr(), "127.0.0.3", ca).Ping()
	dialWSSFrom(t, ng.HTTPAddr(), "127.0.0.3", ca).Ping()
	if !strings.Contains(ts.Logs.String(), "remote=127.0.0.2") {
		t.Errorf("the refusal is not logged with the client's address")
	}
	// The operator's endpoints are not served to the internet.
	hc := &http.Client{Timeout: readTimeout, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	for path, want := range map[string]int{"/healthz": http.StatusOK, "/metrics": http.StatusForbidden, "/debug/pprof/": http.StatusForbidden} {
		resp, err := hc.Get("https://" + ng.HTTPAddr() + path)
		if err != nil {
			t.Fatalf("GET %s through nginx: %v", path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s through nginx: %s, want %d", path, resp.Status, want)
		}
	}
	by.chat()
}

// TestTLSHandshakesCount: connections still shaking hands (or never
// starting to) count against the per-address cap, and one over the cap is
// cut before any handshake is spent on it.
func TestTLSHandshakesCount(t *testing.T) {
	ca := testenv.NewCA(t)
	cert, key := ca.Issue(t, "127.0.0.1")
	ts := wiretest.StartServer(t, func(c *server.Config) {
		c.TLSCert, c.TLSKey = cert, key
		c.MaxConnsPerAddr = 2
	})
	hc := &http.Client{Timeout: readTimeout, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	for i := range 2 { // TCP connections that never say hello
		dialFrom(t, ts.TCP, "127.0.0.2")
		testenv.WaitFor(t, readTimeout, "the silent connection counted", func() bool {
			resp, err := hc.Get("https://" + ts.HTTP + "/metrics")
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return strings.Contains(string(b), fmt.Sprintf("\nchat_connections_prelogin %d\n", i+1))
		})
	}
	tlsFrom := func(src string) error {
		d := &net.Dialer{Timeout: readTimeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		c, err := tls.DialWithDialer(d, "tcp", ts.TCP, &tls.Config{RootCAs: ca.Pool()})
		if err == nil {
			c.Close()
		}
		return err
	}
	testenv.WaitFor(t, readTimeout, "the third connection of 127.0.0.2 cut", func() bool { return tlsFrom("127.0.0.2") != nil })
	if err := tlsFrom("127.0.0.3"); err != nil {
		t.Fatalf("another address: %v", err)
	}
}
