package server_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"clusterchat/internal/wiretest"
	"clusterchat/server"
)

// tokenLogin tries a native token login on a fresh connection and returns
// the reply's errno.
func tokenLogin(t *testing.T, ts *wiretest.Server, token string) int64 {
	t.Helper()
	c := wiretest.Dial(t, ts.TCP, readTimeout)
	defer c.NC.Close()
	c.Sendf(`{"msgid":1,"proto":2,"rid":1,"token":%q}`, token)
	return c.Expect(2, "rid", 1).Int("errno")
}

// TestLogoutRevokesToken: after LOGOUT the session's token no longer logs
// in, also when this server had it cached; other tokens of the user stay.
func TestLogoutRevokesToken(t *testing.T) {
	ts := wiretest.StartServer(t, nil)
	by := newBystanders(t, ts)
	u := newUser(t, ts, "u")
	_, r1 := u.native(t, ts)
	_, r2 := u.native(t, ts)
	t1, t2 := r1.Str("token"), r2.Str("token")
	// Resume with t1 (now in the cache) and log that session out.
	c := wiretest.Dial(t, ts.TCP, readTimeout)
	c.Sendf(`{"msgid":1,"proto":2,"rid":1,"token":%q}`, t1)
	c.Expect(2, "rid", 1, "errno", 0)
	c.Call(3, `{"msgid":3}`)
	if e := tokenLogin(t, ts, t1); e != 1 {
		t.Fatalf("token login after its logout: errno %d, want 1", e)
	}
	if e := tokenLogin(t, ts, t2); e != 0 {
		t.Fatalf("another session's token after a logout: errno %d, want 0", e)
	}
	by.chat()
}

// TestLogoutAll: LOGOUT_ALL revokes every token of the user and ends every
// session (native ones are told why); the password still works.
func TestLogoutAll(t *testing.T) {
	ts := wiretest.StartServer(t, nil)
	by := newBystanders(t, ts)
	u := newUser(t, ts, "u")
	n1, others := threeSessions(t, ts, u)
	n1.Call(40, `{"msgid":40}`)
	n1.Sendf(`{"msgid":18,"rid":5}`)
	n1.Expect(11, "req", 18, "errno", 8) // logged out, connection open
	others.expectRevoked(t, ts)
	_, r := u.native(t, ts)
	if e := tokenLogin(t, ts, r.Str("token")); e != 0 {
		t.Fatalf("a new token after LOGOUT_ALL: errno %d", e)
	}
	by.chat()
}

// TestTokenExpiry: a token in use slides past its TTL; unused, it expires
// and the sweep deletes it.
func TestTokenExpiry(t *testing.T) {
	const ttl = 2 * time.Second
	ts := wiretest.StartServer(t, func(c *server.Config) {
		c.TokenTTL = ttl
		c.TokenSweep = 50 * time.Millisecond
	})
	u := newUser(t, ts, "u")
	_, r := u.native(t, ts)
	tok := r.Str("token")
	for start := time.Now(); time.Since(start) < 2*ttl; time.Sleep(ttl / 10) {
		if e := tokenLogin(t, ts, tok); e != 0 {
			t.Fatalf("token in use refused after %v: errno %d", time.Since(start), e)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for metric(t, ts, "chat_tokens_swept_total") < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the unused token was never swept")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if e := tokenLogin(t, ts, tok); e != 1 {
		t.Fatalf("expired token: errno %d, want 1", e)
	}
}

// TestDisplayText: names are cleaned or refused (errno 3), message text
// refuses control characters but keeps newlines, and what is received
// carries exactly what was accepted.
func TestDisplayText(t *testing.T) {
	ts := wiretest.StartServer(t, nil)
	by := newBystanders(t, ts)
	c := wiretest.Dial(t, ts.TCP, readTimeout)
	for _, name := range []string{
		"", "   ", "evil\nname", "nul\x00", "\x1b[2Jwipe", "\u202egnp.exe", "a\u2066b\u2069",
		"a\u200fb", "\u200b", "\u3164", strings.Repeat("x", 51),
	} {
		c.Sendf(`{"msgid":4,"name":%s,"password":"p"}`, jsonQ(t, name))
		c.Expect(5, "errno", 3)
	}
	// Invalid UTF-8 on the wire, and a lone surrogate escape: refused,
	// not turned into U+FFFD.
	c.Send("{\"msgid\":4,\"name\":\"bad\xffutf8\",\"password\":\"p\"}\x00")
	c.ExpectErr(4, 3)
	c.Send(`{"msgid":4,"name":"sur\ud800rogate","password":"p"}` + "\x00")
	c.Expect(5, "errno", 3)
	c.Sendf(`{"msgid":4,"proto":2,"rid":1,"name":" e\u0301mile ","password":"p"}`)
	id := c.Expect(5, "rid", 1, "errno", 0).Int("id")
	rep := c.NativeLogin(id, "p")
	rep.Check(t, "name", "\u00e9mile")

	peer := newUser(t, ts, "peer")
	p, _ := peer.native(t, ts)
	for _, msg := range []string{"bell\a", "cr\rforged", "\x1b[31mred", "tab\t", "nel\u0085"} {
		rid := c.Req(`{"msgid":6,"to":%d,"msg":%s,"cmid":"x"}`, peer.id, jsonQ(t, msg))
		c.Expect(11, "req", 6, "rid", rid, "errno", 3)
	}
	multi := "line one\nline two"
	c.Call(6, `{"msgid":6,"to":%d,"msg":%q,"cmid":"ok","time":"1999-01-01 00:00:00\n[fake]"}`, peer.id, multi)
	got := p.Expect(6, "msg", multi)
	if tm := got.Str("time"); strings.Contains(tm, "\n") || strings.HasPrefix(tm, "1999") {
		t.Fatalf("client-sent time delivered: %q", tm)
	}
	for _, g := range []string{"\u202egroup", "grp\n2", ""} {
		rid := c.Req(`{"msgid":8,"groupname":%s,"groupdesc":"d"}`, jsonQ(t, g))
		c.Expect(11, "req", 8, "rid", rid, "errno", 3)
	}
	rid := c.Req(`{"msgid":8,"groupname":"ok group","groupdesc":"two\nlines"}`)
	c.Expect(11, "req", 8, "rid", rid, "errno", 3)
	c.Call(8, `{"msgid":8,"groupname":"  ok group ","groupdesc":"fine"}`)
	by.chat()
}

// TestReadMarkerClamp: a read marker beyond the conversation's last
// message is stored as the last seq, so later messages still count unread.
func TestReadMarkerClamp(t *testing.T) {
	ts := wiretest.StartServer(t, nil)
	a, b := newUser(t, ts, "a"), newUser(t, ts, "b")
	ca, _ := a.native(t, ts)
	cb, _ := b.native(t, ts)
	conv := ca.Call(6, `{"msgid":6,"to":%d,"msg":"one","cmid":"1"}`, b.id).Str("conv")
	ca.Call(6, `{"msgid":6,"to":%d,"msg":"two","cmid":"2"}`, b.id)
	cb.Expect(6, "msg", "one")
	cb.Expect(6, "msg", "two")
	cb.Call(16, `{"msgid":16,"conv":%q,"seq":1000000}`, conv).Check(t, "seq", 2)
	ca.Call(6, `{"msgid":6,"to":%d,"msg":"three","cmid":"3"}`, b.id)
	cb.Expect(6, "msg", "three")
	_, rep := b.native(t, ts)
	for _, cv := range rep.List("convs") {
		m := cv.(map[string]any)
		if m["conv"] == conv && (fmt.Sprint(m["read"]) != "2" || fmt.Sprint(m["unread"]) != "1") {
			t.Fatalf("after marking 1000000 read and one more message: %v, want read 2 unread 1", m)
		}
	}
}

// jsonQ quotes s as a JSON string (Go's %q escapes are not all JSON).
func jsonQ(t *testing.T, s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestPasswordChangeRevokes: a new password revokes every token of the
// user and ends its other sessions (told "revoked"); the session that
// changed it stays, with a new token; a wrong current password counts as
// a failed login.
func TestPasswordChangeRevokes(t *testing.T) {
	ts := wiretest.StartServer(t, nil)
	by := newBystanders(t, ts)
	u := newUser(t, ts, "u")
	n1, others := threeSessions(t, ts, u)
	rid := n1.Req(`{"msgid":70,"password":"wrong","newpassword":"new-pw"}`)
	n1.Expect(11, "req", 70, "rid", rid, "errno", 1)
	fresh := n1.Call(70, `{"msgid":70,"password":%q,"newpassword":"new-pw"}`, u.pw).Str("token")
	if fresh == "" || fresh == others.tokens[0] {
		t.Fatalf("password change reply without a new token: %q", fresh)
	}
	n1.Ping() // still logged in
	others.expectRevoked(t, ts)
	if e := tokenLogin(t, ts, fresh); e != 0 {
		t.Fatalf("the new token: errno %d", e)
	}
	c := wiretest.Dial(t, ts.TCP, readTimeout)
	c.Sendf(`{"msgid":1,"id":%d,"password":%q}`, u.id, u.pw)
	c.Expect(2, "errno", 1)
	c.ClassicLogin(u.id, "new-pw")
	by.chat()
}

// sessions are a user's other sessions in the revocation tests, and the
// tokens of all its sessions.
type sessions struct {
	native, classic *wiretest.Conn
	tokens          []string
}

// threeSessions logs u in three times: the returned native session acts,
// the others (one native, one classic) watch.
func threeSessions(t *testing.T, ts *wiretest.Server, u user) (*wiretest.Conn, *sessions) {
	t.Helper()
	n1, r1 := u.native(t, ts)
	n2, r2 := u.native(t, ts)
	c3, _ := u.classic(t, ts)
	return n1, &sessions{native: n2, classic: c3, tokens: []string{r1.Str("token"), r2.Str("token")}}
}

// expectRevoked checks that the other sessions were ended (the native one
// told why) and that no token of before works.
func (o *sessions) expectRevoked(t *testing.T, ts *wiretest.Server) {
	t.Helper()
	if got := o.native.ExpectClosed(); !strings.Contains(got, `{"msgid":17,"reason":"revoked"}`) {
		t.Fatalf("other native session got %q before the close, want a RECONNECT revoked", got)
	}
	o.classic.ExpectClosed()
	for _, tok := range o.tokens {
		if e := tokenLogin(t, ts, tok); e != 1 {
			t.Fatalf("a token of before: errno %d, want 1", e)
		}
	}
}
