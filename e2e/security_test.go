package e2e

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"clusterchat/internal/testenv"
)

// dialRawFrom connects to addr from the loopback address src, so
// per-address limits see another client.
func dialRawFrom(tb testing.TB, addr, src string) *raw {
	tb.Helper()
	nc := testenv.DialFrom(tb, addr, src, readTimeout)
	return &raw{tb: tb, nc: nc, br: bufio.NewReaderSize(nc, 64<<10)}
}

// expectClosed reads until the server closes the connection and returns
// what came before.
func (r *raw) expectClosed() string {
	r.tb.Helper()
	var got strings.Builder
	deadline := time.Now().Add(readTimeout)
	for time.Now().Before(deadline) {
		o, err := r.readObj(time.Until(deadline))
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				break
			}
			return got.String()
		}
		got.WriteString(o.raw + "\n")
	}
	r.tb.Fatalf("connection to %s still open; got %q", r.nc.RemoteAddr(), got.String())
	return ""
}

// tokenLogin tries a native token login at addr; it returns the errno.
func tokenLogin(t *testing.T, addr, token string) int64 {
	t.Helper()
	r := dialRaw(t, addr)
	defer r.close()
	r.sendf(`{"msgid":1,"proto":2,"rid":1,"token":%q}`, token)
	return r.expect(2, "rid", 1).int("errno")
}

// TestClusterSecurity: across two servers sharing Redis and PostgreSQL,
// the login and registration limits hold cluster-wide (counted in Redis),
// a stranger still cannot lock the owner out, and token revocations (logout,
// log out everywhere) reach the other server's token cache and sessions at
// once; a bystander pair chatting across the servers is never disturbed.
func TestClusterSecurity(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	c := startCluster(t, 2, "-rate-limits=true", "-login-failures", "3", "-login-window", "1h",
		"-register-rate", "4/1h", "-account-fail-rate", "off")
	n1, n2 := c.servers[0].Addr(), c.servers[1].Addr()

	// Three registrations from 127.0.0.1 (of its 4 per hour).
	owner, ua, ub := c.newUser(t, n1), c.newUser(t, n1), c.newUser(t, n2)
	a := dialRaw(t, n1)
	a.nativeLogin(ua)
	b := dialRaw(t, n2)
	b.nativeLogin(ub)
	chats := 0
	bystanders := func() {
		t.Helper()
		chats++
		text := fmt.Sprintf("bystander %d", chats)
		a.call(6, `{"msgid":6,"to":%d,"msg":%q,"cmid":"b%d"}`, ub.id, text, chats)
		b.expect(6, "msg", text)
	}
	bystanders()

	t.Run("login failures count across servers", func(t *testing.T) {
		x1, x2 := dialRawFrom(t, n1, "127.0.0.2"), dialRawFrom(t, n2, "127.0.0.2")
		for _, x := range []*raw{x1, x2, x1} {
			x.sendf(`{"msgid":1,"id":%d,"password":"guess"}`, owner.id)
			x.expect(2, "errno", 1)
		}
		x2.sendf(`{"msgid":1,"proto":2,"rid":7,"id":%d,"password":%q}`, owner.id, owner.pw)
		o := x2.expect(2, "rid", 7, "errno", 12)
		if o.int("retry_ms") <= 0 {
			t.Fatalf("no retry hint: %s", o.raw)
		}
		// The owner, from another address, logs in on either server.
		r := dialRaw(t, n2)
		r.classicLogin(owner)
		bystanders()
	})

	t.Run("registrations count across servers", func(t *testing.T) {
		x1, x2 := dialRawFrom(t, n1, "127.0.0.3"), dialRawFrom(t, n2, "127.0.0.3")
		for i, x := range []*raw{x1, x2, x1, x2} {
			x.sendf(`{"msgid":4,"name":%q,"password":"p"}`, c.name(fmt.Sprintf("bot%d-", i)))
			x.expect(5, "errno", 0)
		}
		x1.sendf(`{"msgid":4,"name":%q,"password":"p"}`, c.name("bot"))
		if o := x1.expect(5, "errno", 12); !strings.Contains(o.str("errmsg"), "try again in") {
			t.Fatalf("no retry hint in the classic errmsg: %s", o.raw)
		}
		bystanders()
	})

	t.Run("logout revokes the token on every server", func(t *testing.T) {
		u := c.newUser(t, n2) // the fourth registration from 127.0.0.1
		s1 := dialRaw(t, n1)
		tok := s1.nativeLogin(u).str("token")
		// n2 validates the token (and caches it).
		if e := tokenLogin(t, n2, tok); e != 0 {
			t.Fatalf("token login on n2: errno %d", e)
		}
		s1.call(3, `{"msgid":3}`)
		for _, addr := range []string{n2, n1} {
			if e := tokenLogin(t, addr, tok); e != 1 {
				t.Fatalf("token login at %s after logout on n1: errno %d, want 1", addr, e)
			}
		}
		bystanders()

		// Log out everywhere from n1 ends the sessions on n2.
		m1 := dialRaw(t, n1)
		m1.nativeLogin(u)
		m2 := dialRaw(t, n2)
		tok2 := m2.nativeLogin(u).str("token")
		cl, _ := classicAt(t, n2, u)
		m1.call(40, `{"msgid":40}`)
		if got := m2.expectClosed(); !strings.Contains(got, `"reason":"revoked"`) {
			t.Fatalf("native session on n2 got %q before its close, want a RECONNECT revoked", got)
		}
		cl.expectClosed()
		for _, addr := range []string{n1, n2} {
			if e := tokenLogin(t, addr, tok2); e != 1 {
				t.Fatalf("token login at %s after log out everywhere: errno %d, want 1", addr, e)
			}
		}
		bystanders()
	})
}
