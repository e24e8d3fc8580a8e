package e2e

import (
	"fmt"
	"strings"
	"testing"

	"clusterchat/internal/testenv"
	"clusterchat/internal/wiretest"
)

// dialRawFrom connects to addr from the loopback address src, so
// per-address limits see another client.
func dialRawFrom(tb testing.TB, addr, src string) *wiretest.Conn {
	tb.Helper()
	return wiretest.New(tb, testenv.DialFrom(tb, addr, src, readTimeout), readTimeout)
}

// tokenLogin tries a native token login at addr; it returns the errno.
func tokenLogin(t *testing.T, addr, token string) int64 {
	t.Helper()
	r := dialRaw(t, addr)
	defer r.Close()
	r.Sendf(`{"msgid":1,"proto":2,"rid":1,"token":%q}`, token)
	return r.Expect(2, "rid", 1).Int("errno")
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
	a.NativeLogin(ua.id, ua.pw)
	b := dialRaw(t, n2)
	b.NativeLogin(ub.id, ub.pw)
	chats := 0
	bystanders := func() {
		t.Helper()
		chats++
		text := fmt.Sprintf("bystander %d", chats)
		a.Call(6, `{"msgid":6,"to":%d,"msg":%q,"cmid":"b%d"}`, ub.id, text, chats)
		b.Expect(6, "msg", text)
	}
	bystanders()

	t.Run("login failures count across servers", func(t *testing.T) {
		x1, x2 := dialRawFrom(t, n1, "127.0.0.2"), dialRawFrom(t, n2, "127.0.0.2")
		for _, x := range []*wiretest.Conn{x1, x2, x1} {
			x.Sendf(`{"msgid":1,"id":%d,"password":"guess"}`, owner.id)
			x.Expect(2, "errno", 1)
		}
		x2.Sendf(`{"msgid":1,"proto":2,"rid":7,"id":%d,"password":%q}`, owner.id, owner.pw)
		o := x2.Expect(2, "rid", 7, "errno", 12)
		if o.Int("retry_ms") <= 0 {
			t.Fatalf("no retry hint: %s", o.Raw)
		}
		// The owner, from another address, logs in on either server.
		r := dialRaw(t, n2)
		r.ClassicLogin(owner.id, owner.pw)
		bystanders()
	})

	t.Run("registrations count across servers", func(t *testing.T) {
		x1, x2 := dialRawFrom(t, n1, "127.0.0.3"), dialRawFrom(t, n2, "127.0.0.3")
		for i, x := range []*wiretest.Conn{x1, x2, x1, x2} {
			x.Sendf(`{"msgid":4,"name":%q,"password":"p"}`, c.name(fmt.Sprintf("bot%d-", i)))
			x.Expect(5, "errno", 0)
		}
		x1.Sendf(`{"msgid":4,"name":%q,"password":"p"}`, c.name("bot"))
		if o := x1.Expect(5, "errno", 12); !strings.Contains(o.Str("errmsg"), "try again in") {
			t.Fatalf("no retry hint in the classic errmsg: %s", o.Raw)
		}
		bystanders()
	})

	t.Run("logout revokes the token on every server", func(t *testing.T) {
		u := c.newUser(t, n2) // the fourth registration from 127.0.0.1
		s1 := dialRaw(t, n1)
		tok := s1.NativeLogin(u.id, u.pw).Str("token")
		// n2 validates the token (and caches it).
		if e := tokenLogin(t, n2, tok); e != 0 {
			t.Fatalf("token login on n2: errno %d", e)
		}
		s1.Call(3, `{"msgid":3}`)
		for _, addr := range []string{n2, n1} {
			if e := tokenLogin(t, addr, tok); e != 1 {
				t.Fatalf("token login at %s after logout on n1: errno %d, want 1", addr, e)
			}
		}
		bystanders()

		// Log out everywhere from n1 ends the sessions on n2.
		m1 := dialRaw(t, n1)
		m1.NativeLogin(u.id, u.pw)
		m2 := dialRaw(t, n2)
		tok2 := m2.NativeLogin(u.id, u.pw).Str("token")
		cl, _ := classicAt(t, n2, u)
		m1.Call(40, `{"msgid":40}`)
		if got := m2.ExpectClosed(); !strings.Contains(got, `"reason":"revoked"`) {
			t.Fatalf("native session on n2 got %q before its close, want a RECONNECT revoked", got)
		}
		cl.ExpectClosed()
		for _, addr := range []string{n1, n2} {
			if e := tokenLogin(t, addr, tok2); e != 1 {
				t.Fatalf("token login at %s after log out everywhere: errno %d, want 1", addr, e)
			}
		}
		bystanders()
	})
}
