package client

import (
	"crypto/tls"
	"strings"
	"testing"

	"clusterchat"
	"clusterchat/internal/testenv"
	"clusterchat/server"
)

// TestTLSReconnect: with Options.TLS the client dials TLS, and so does every
// reconnect: the server restarts under two chatting clients, which resume
// with their tokens over TLS and lose nothing. A client that does not trust
// the certificate never gets a connection.
func TestTLSReconnect(t *testing.T) {
	ca := testenv.NewCA(t)
	cert, key := ca.Issue(t, "127.0.0.1")
	ts := startServerWith(t, func(c *server.Config) { c.TLSCert, c.TLSKey = cert, key })
	opts := Options{Reconnect: true, TLS: &tls.Config{RootCAs: ca.Pool()}}
	alice, acol, aid := user(t, ts.addr, "alice", opts)
	bob, bcol, bid := user(t, ts.addr, "bob", opts)
	conv := clusterchat.DirectConv(aid, bid)
	if _, err := alice.Send(ctxT(t), bid, "before"); err != nil {
		t.Fatal(err)
	}
	waitLog(t, bcol, conv, 1)
	ts.stop()
	ts.start()
	if _, err := bob.Send(ctxT(t), aid, "after the restart"); err != nil {
		t.Fatal(err)
	}
	waitLog(t, acol, conv, 2)
	if !acol.has(func(e Event) bool { return e.Kind == EventReconnected }) {
		t.Fatal("no reconnected event")
	}

	_, err := Dial(ctxT(t), ts.addr, Options{TLS: &tls.Config{}}) // the system's roots
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("dial trusting the system roots: %v, want a certificate error", err)
	}
}
