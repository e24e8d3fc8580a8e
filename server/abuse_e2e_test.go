package server_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"clusterchat/internal/testenv"
	"clusterchat/internal/wiretest"
	"clusterchat/server"
)

// Every test here attacks one rule through real sockets from an attacker's
// address (127.0.0.2 and up: all of 127/8 is loopback on Linux; dialFrom)
// and checks the clear refusal, while a bystander pair on 127.0.0.1 keeps
// chatting (bystanders, limits_e2e_test.go).

// expectLimited reads a native rate-limit refusal of request req: errno 12,
// a retry hint, and the reason in errmsg.
func expectLimited(t *testing.T, c *wiretest.Conn, msgid int, kv ...any) wiretest.Obj {
	t.Helper()
	o := c.Expect(msgid, append([]any{"errno", 12}, kv...)...)
	if o.Int("retry_ms") <= 0 || !strings.Contains(o.Str("errmsg"), "try again in") {
		t.Fatalf("rate-limit reply without a retry hint: %s", o.Raw)
	}
	return o
}

// TestStrangerCannotLockOwnerOut: a stranger's wrong passwords lock the
// account for the stranger's address only; spraying from many addresses
// locks it only for addresses that never logged in to it; the owner logs
// in throughout, with the password and with a token.
func TestStrangerCannotLockOwnerOut(t *testing.T) {
	ts := wiretest.StartServer(t, limitsOn(func(c *server.Config) {
		c.LoginFailures = 3
		c.LoginWindow = time.Hour
		c.AccountFailRate = server.Rate{N: 5, Per: time.Hour}
	}))
	by := newBystanders(t, ts)
	owner := newUser(t, ts, "owner")
	// The owner has logged in from home (127.0.0.1) before.
	home, rep := owner.native(t, ts)
	token := rep.Str("token")

	// A stranger guesses from 127.0.0.2 until locked out, and stays out
	// even with the right password.
	x := dialFrom(t, ts.TCP, "127.0.0.2")
	for range 3 {
		x.Sendf(`{"msgid":1,"id":%d,"password":"guess"}`, owner.id)
		x.Expect(2, "errno", 1)
	}
	x.Sendf(`{"msgid":1,"proto":2,"rid":1,"id":%d,"password":%q}`, owner.id, owner.pw)
	expectLimited(t, x, 2, "rid", 1)
	by.chat()

	// The owner, from home, is not locked out.
	o := wiretest.Dial(t, ts.TCP, readTimeout)
	o.NativeLogin(owner.id, owner.pw)
	by.chat()

	// Spraying from more addresses reaches the account-wide limit (5):
	// a fresh address is then refused even with the right password...
	y := dialFrom(t, ts.TCP, "127.0.0.3")
	for range 2 { // 3 + 2 = 5
		y.Sendf(`{"msgid":1,"id":%d,"password":"guess"}`, owner.id)
		y.Expect(2, "errno", 1)
	}
	fresh := dialFrom(t, ts.TCP, "127.0.0.5")
	fresh.Sendf(`{"msgid":1,"id":%d,"password":%q}`, owner.id, owner.pw)
	if o := fresh.Expect(2, "errno", 12); !strings.Contains(o.Str("errmsg"), "try again in") {
		t.Fatalf("classic rate-limit reply without the hint in errmsg: %s", o.Raw)
	}
	// ...but home, where the owner logged in before, still works, and so
	// does the owner's token from anywhere.
	o2 := wiretest.Dial(t, ts.TCP, readTimeout)
	o2.ClassicLogin(owner.id, owner.pw)
	tk := dialFrom(t, ts.TCP, "127.0.0.6")
	tk.Sendf(`{"msgid":1,"proto":2,"rid":1,"token":%q}`, token)
	tk.Expect(2, "rid", 1, "errno", 0, "id", owner.id)
	by.chat()
	home.Ping()
	logs := ts.Logs.String()
	if !strings.Contains(logs, "addr=127.0.0.2") || !strings.Contains(logs, "login locked") {
		t.Errorf("failed logins and the lock are not logged with the client's address")
	}
	if strings.Contains(logs, "guess") || strings.Contains(logs, owner.pw) {
		t.Errorf("a password reached the log")
	}
	if metric(t, ts, "chat_rate_limited_total") < 2 {
		t.Errorf("chat_rate_limited_total = %v, want the refusals counted", metric(t, ts, "chat_rate_limited_total"))
	}
}

// TestRegisterRateLimit: registrations per address.
func TestRegisterRateLimit(t *testing.T) {
	ts := wiretest.StartServer(t, limitsOn(func(c *server.Config) {
		c.RegisterRate = server.Rate{N: 3, Per: time.Hour}
	}))
	by := newBystanders(t, ts)
	x := dialFrom(t, ts.TCP, "127.0.0.2")
	for i := range 3 {
		x.Sendf(`{"msgid":4,"name":"bot%d","password":"p"}`, i)
		x.Expect(5, "errno", 0)
	}
	x.Sendf(`{"msgid":4,"proto":2,"rid":9,"name":"bot9","password":"p"}`)
	expectLimited(t, x, 5, "rid", 9)
	x.Sendf(`{"msgid":4,"name":"bot10","password":"p"}`)
	x.Expect(5, "errno", 12) // classic shape: no rid, the hint in errmsg
	// Another address registers.
	y := dialFrom(t, ts.TCP, "127.0.0.3")
	y.Register("human", "p")
	by.chat()
}

// TestLoginAddrRateLimit: password logins per address, whatever the
// accounts (guessing across accounts).
func TestLoginAddrRateLimit(t *testing.T) {
	ts := wiretest.StartServer(t, limitsOn(func(c *server.Config) {
		c.LoginRate = server.Rate{N: 5, Per: time.Hour}
	}))
	by := newBystanders(t, ts)
	x := dialFrom(t, ts.TCP, "127.0.0.2")
	for id := range 5 {
		x.Sendf(`{"msgid":1,"id":%d,"password":"guess"}`, id+1)
		x.Expect(2, "errno", 1)
	}
	x.Sendf(`{"msgid":1,"proto":2,"rid":3,"id":1,"password":"guess"}`)
	expectLimited(t, x, 2, "rid", 3)
	by.chat()
}

// TestMessageRateLimit: a user's messages (burst, then the sustained
// rate); refused messages are not stored; other users are unaffected.
func TestMessageRateLimit(t *testing.T) {
	ts := wiretest.StartServer(t, limitsOn(func(c *server.Config) {
		c.MsgRate = server.Rate{N: 1, Per: time.Hour}
		c.MsgBurst = 5
	}))
	by := newBystanders(t, ts)
	stored := metric(t, ts, "chat_messages_accepted_total")
	spammer, victim := newUser(t, ts, "spammer"), newUser(t, ts, "victim")
	s, _ := spammer.native(t, ts)
	v, _ := victim.native(t, ts)
	for i := range 5 {
		s.Call(6, `{"msgid":6,"to":%d,"msg":"spam %d","cmid":"s%d"}`, victim.id, i, i)
		v.Expect(6, "msg", fmt.Sprintf("spam %d", i))
	}
	rid := s.Req(`{"msgid":6,"to":%d,"msg":"spam 5","cmid":"s5"}`, victim.id)
	expectLimited(t, s, 11, "req", 6, "rid", rid)
	// A classic session of the same user shares the bucket.
	c, _ := spammer.classic(t, ts)
	c.Sendf(`{"msgid":6,"to":%d,"msg":"classic spam"}`, victim.id)
	if o := c.ExpectErr(6, 12); !strings.Contains(o.Str("errmsg"), "try again in") {
		t.Fatalf("classic rate-limit reply without the hint: %s", o.Raw)
	}
	by.chat()
	v.Ping() // nothing past the burst reached the victim
	if n := metric(t, ts, "chat_messages_accepted_total") - stored; n != 5+2 {
		t.Errorf("%v messages stored, want 5 from the spammer and 2 from the bystanders", n)
	}
}

// TestMessageQuota: a user's message text in bytes (Config.MsgQuota), on
// top of the message count: what bounds the disk an account can fill.
// Refused text is not stored; other users are unaffected.
func TestMessageQuota(t *testing.T) {
	ts := wiretest.StartServer(t, limitsOn(func(c *server.Config) { c.MsgQuota = 100 }))
	by := newBystanders(t, ts)
	stored := metric(t, ts, "chat_messages_accepted_total")
	filler, victim := newUser(t, ts, "filler"), newUser(t, ts, "victim")
	f, _ := filler.native(t, ts)
	v, _ := victim.native(t, ts)
	forty := strings.Repeat("x", 40)
	for range 2 {
		f.Call(6, `{"msgid":6,"to":%d,"msg":%q}`, victim.id, forty)
		v.Expect(6, "msg", forty)
	}
	rid := f.Req(`{"msgid":6,"to":%d,"msg":%q}`, victim.id, forty)
	if o := expectLimited(t, f, 11, "req", 6, "rid", rid); !strings.Contains(o.Str("errmsg"), "quota") {
		t.Errorf("quota refusal says %q", o.Str("errmsg"))
	}
	// What is left (20 bytes) may still be used.
	f.Call(6, `{"msgid":6,"to":%d,"msg":%q}`, victim.id, forty[:20])
	v.Expect(6, "msg", forty[:20])
	by.chat()
	v.Ping() // the refused one never reached the victim
	if n := metric(t, ts, "chat_messages_accepted_total") - stored; n != 3+2 {
		t.Errorf("%v messages stored, want 3 from the filler and 2 from the bystanders", n)
	}
}

// TestSocialRateLimit: requests that store something or reach other
// people (new groups, friend requests, renames...) take the user's message
// tokens like chat messages, so an account cannot create groups or send
// friend requests at the request rate; answers and blocks do not.
func TestSocialRateLimit(t *testing.T) {
	ts := wiretest.StartServer(t, limitsOn(func(c *server.Config) {
		c.MsgRate = server.Rate{N: 1, Per: time.Hour}
		c.MsgBurst = 4
	}))
	by := newBystanders(t, ts)
	spammer := newUser(t, ts, "spammer")
	var victims []user
	for i := range 3 {
		victims = append(victims, newUser(t, ts, fmt.Sprintf("victim%d", i)))
	}
	s, _ := spammer.native(t, ts)
	for i := range 2 {
		s.Call(8, `{"msgid":8,"groupname":"spam%d","groupdesc":""}`, i)
	}
	s.Call(60, `{"msgid":60,"id":%d}`, victims[0].id)
	s.Call(69, `{"msgid":69,"name":"spammer2"}`)
	// The bucket is empty: each kind is refused with the hint, and nothing
	// was done (no group, no request on the victim's side).
	for _, tc := range []struct {
		req  int
		body string
	}{
		{8, fmt.Sprintf(`{"msgid":8,"groupname":"spam%d","groupdesc":""}`, 9)},
		{60, fmt.Sprintf(`{"msgid":60,"id":%d}`, victims[1].id)},
		{72, `{"msgid":72,"groupid":1,"id":2}`},
		{69, `{"msgid":69,"name":"spammer3"}`},
		{6, fmt.Sprintf(`{"msgid":6,"to":%d,"msg":"and a message"}`, victims[2].id)},
	} {
		rid := s.Req("%s", tc.body)
		o := expectLimited(t, s, 11, "req", tc.req, "rid", rid)
		if want := "doing that too often"; tc.req != 6 && !strings.Contains(o.Str("errmsg"), want) {
			t.Errorf("msgid %d refused with %q, want %q", tc.req, o.Str("errmsg"), want)
		}
	}
	v, _ := victims[1].native(t, ts)
	v.Call(67, `{"msgid":67}`).Check(t, "requests", []any{})
	// Blocking and reading one's state still work with an empty bucket.
	s.Call(65, `{"msgid":65,"id":%d}`, victims[2].id)
	s.Call(67, `{"msgid":67}`)
	by.chat()
}

// TestRequestRateLimit: requests per connection.
func TestRequestRateLimit(t *testing.T) {
	ts := wiretest.StartServer(t, limitsOn(func(c *server.Config) {
		c.ReqRate = server.Rate{N: 1, Per: time.Hour}
		c.ReqBurst = 10
	}))
	by := newBystanders(t, ts) // their requests come out of their own connections' buckets
	// Before login: classic replies, the hint in errmsg.
	x := dialFrom(t, ts.TCP, "127.0.0.2")
	for range 10 {
		x.Sendf(`{"msgid":18,"rid":1}`)
		x.Expect(11, "req", 18, "errno", 8) // not logged in, but answered
	}
	x.Sendf(`{"msgid":18,"rid":2}`)
	if o := x.ExpectErr(18, 12); !strings.Contains(o.Str("errmsg"), "try again in") {
		t.Fatalf("rate-limit reply without the hint: %s", o.Raw)
	}
	// A native session: retry_ms.
	u := newUser(t, ts, "chatty")
	n := dialFrom(t, ts.TCP, "127.0.0.3")
	n.NativeLogin(u.id, u.pw)
	for range 9 {
		n.Call(18, `{"msgid":18}`)
	}
	rid := n.Req(`{"msgid":18}`)
	expectLimited(t, n, 11, "req", 18, "rid", rid)
	by.chat()
}

// TestLoginLimitsBehindNginx: through nginx (TLS, PROXY protocol) the
// login and registration limits count each client's own address: a guesser
// and a bot behind the same nginx are refused, the owner and another
// newcomer are not, and bystanders chat through it all.
func TestLoginLimitsBehindNginx(t *testing.T) {
	ca := testenv.NewCA(t)
	cert, key := ca.Issue(t, "127.0.0.1")
	ts := wiretest.StartServer(t, limitsOn(func(c *server.Config) {
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")} // nginx
		c.ProxyProtocol = true
		c.LoginFailures = 2
		c.LoginWindow = time.Hour
		c.RegisterRate = server.Rate{N: 3, Per: time.Hour}
	}))
	ng := testenv.StartNginxTLS(t, []string{ts.TCP}, []string{ts.HTTP}, cert, key)
	by, more := bystandersVia(t, ng, ca, "owner")
	owner := more[0]

	// 127.0.0.1 has used its 3 registrations; 127.0.0.2 has its own.
	a2 := dialTLSFrom(t, ng.StreamAddr(), "127.0.0.1", ca)
	a2.Sendf(`{"msgid":4,"name":"one-too-many","password":"p"}`)
	a2.Expect(5, "errno", 12)
	dialTLSFrom(t, ng.StreamAddr(), "127.0.0.2", ca).Register("newcomer", "p")
	by.chat()

	x := dialTLSFrom(t, ng.StreamAddr(), "127.0.0.3", ca)
	for range 2 {
		x.Sendf(`{"msgid":1,"id":%d,"password":"guess"}`, owner.id)
		x.Expect(2, "errno", 1)
	}
	x.Sendf(`{"msgid":1,"id":%d,"password":%q}`, owner.id, owner.pw)
	x.Expect(2, "errno", 12)
	dialTLSFrom(t, ng.StreamAddr(), "127.0.0.4", ca).ClassicLogin(owner.id, owner.pw)
	if !strings.Contains(ts.Logs.String(), "addr=127.0.0.3") {
		t.Errorf("the failed logins are not logged with the client's address")
	}
	by.chat()
}
