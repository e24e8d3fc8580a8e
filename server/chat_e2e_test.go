package server_test

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"clusterchat"
	"clusterchat/internal/testenv"
	"clusterchat/internal/wiretest"
	"clusterchat/server"
)

// offlineMsgs returns the offlinemsg entries of a classic login reply,
// each decoded.
func offlineMsgs(tb testing.TB, rep wiretest.Obj) []wiretest.Obj {
	tb.Helper()
	var out []wiretest.Obj
	for _, s := range rep.List("offlinemsg") {
		out = append(out, wiretest.MustDecode(tb, s.(string)))
	}
	return out
}

// relogin logs the classic session out and in again on the same connection.
func relogin(c *wiretest.Conn, u user) wiretest.Obj {
	c.TB.Helper()
	c.Sendf(`{"msgid":3,"id":%d}`, u.id)
	return c.ClassicLogin(u.id, u.pw)
}

func TestOfflineMessages(t *testing.T) {
	ts := wiretest.StartServer(t, nil)
	alice, bob := newUser(t, ts, "alice"), newUser(t, ts, "bob")
	gid := mkGroup(t, ts, alice, "team", bob)

	a, rep := alice.classic(t, ts)
	if rep.Has("offlinemsg") {
		t.Fatalf("alice has offline messages before anyone wrote: %s", rep.Raw)
	}
	a.Sendf(`{"msgid":6,"to":%d,"msg":"one","time":"t1"}`, bob.id)
	a.Sendf(`{"msgid":10,"groupid":%d,"msg":"two","time":"t2"}`, gid)
	a.Sendf(`{"msgid":6,"toid":%d,"msg":"three","time":"t3"}`, bob.id)
	a.Ping()
	waitAccepted(t, ts, 3)

	b, rep := bob.classic(t, ts)
	got := offlineMsgs(t, rep)
	if len(got) != 3 {
		t.Fatalf("offlinemsg has %d entries, want 3: %s", len(got), rep.Raw)
	}
	got[0].Check(t, "msgid", 6, "id", alice.id, "name", "alice", "to", bob.id, "msg", "one")
	got[1].Check(t, "msgid", 10, "id", alice.id, "name", "alice", "groupid", gid, "msg", "two")
	for _, m := range got {
		if tm := m.Str("time"); len(tm) != len(clusterchat.TimeFormat) || tm[0] == 't' {
			t.Errorf("offline message time %q: want the server's stamp, not the client's", tm)
		}
	}
	got[2].Check(t, "msgid", 6, "msg", "three")
	b.Ping() // and none of them comes again live

	// Never twice: not at the next login, not on another connection.
	if rep := relogin(b, bob); rep.Has("offlinemsg") {
		t.Fatalf("offline messages repeated at the second login: %s", rep.Raw)
	}
	if _, rep := bob.classic(t, ts); rep.Has("offlinemsg") {
		t.Fatalf("offline messages repeated on a second connection: %s", rep.Raw)
	}
	// The sender's own messages are never its offline messages.
	if rep := relogin(a, alice); rep.Has("offlinemsg") {
		t.Fatalf("alice got her own messages as offline: %s", rep.Raw)
	}

	// A message written live to a classic session is not offline later,
	// even when the user logs out and in at once.
	a.Sendf(`{"msgid":6,"to":%d,"msg":"live","time":"t4"}`, bob.id)
	b.Expect(6, "msg", "live")
	a.Sendf(`{"msgid":10,"groupid":%d,"msg":"live group","time":"t5"}`, gid)
	b.Expect(10, "msg", "live group")
	if rep := relogin(b, bob); rep.Has("offlinemsg") {
		t.Fatalf("a message delivered live came back as offline: %s", rep.Raw)
	}

	// What a native device fetched with SYNC is not offline for classic.
	b.Sendf(`{"msgid":3}`)
	b.Ping()
	a.Sendf(`{"msgid":6,"to":%d,"msg":"synced","time":"t6"}`, bob.id)
	a.Ping()
	waitAccepted(t, ts, 6)
	n, _ := bob.native(t, ts)
	n.Call(14, `{"msgid":14,"to":%d,"after":0}`, alice.id)
	n.NC.Close()
	if _, rep := bob.classic(t, ts); rep.Has("offlinemsg") {
		t.Fatalf("a message fetched by SYNC came back as offline: %s", rep.Raw)
	}
}

func TestFriendsAndPresence(t *testing.T) {
	ts := wiretest.StartServer(t, openFriends) // one ADD_FRIEND befriends, as the classic server did
	alice, bob, carol := newUser(t, ts, "alice"), newUser(t, ts, "bob"), newUser(t, ts, "carol")

	a1, _ := alice.native(t, ts)
	a2, _ := alice.native(t, ts)
	b, _ := bob.native(t, ts)
	c, _ := carol.classic(t, ts)

	// alice adds bob: bob hears of alice, alice's other session of bob.
	a1.Call(7, `{"msgid":7,"friendid":%d}`, bob.id).Check(t, "id", bob.id, "name", "bob", "state", "online")
	b.Expect(13, "id", alice.id, "name", "alice", "state", "online")
	a2.Expect(13, "id", bob.id, "name", "bob", "state", "online")
	a1.Ping()
	// Classic: carol adds alice, no reply; alice hears it, carol hears nothing.
	c.Sendf(`{"msgid":7,"id":%d,"friendid":%d}`, carol.id, alice.id)
	c.Ping()
	a1.Expect(13, "id", carol.id, "name", "carol", "state", "online")
	a2.Expect(13, "id", carol.id)

	// Both ways, with live state, in the next logins.
	friends := func(rep wiretest.Obj) map[int64]string {
		m := map[int64]string{}
		for _, f := range rep.List("friends") {
			var fo wiretest.Obj
			switch f := f.(type) {
			case string: // classic
				fo = wiretest.MustDecode(t, f)
			case map[string]any:
				fo = wiretest.Obj{M: f}
			}
			m[fo.Int("id")] = fo.Str("state")
		}
		return m
	}
	bCheck, rep := bob.native(t, ts)
	if got := friends(rep); len(got) != 1 || got[alice.id] != "online" {
		t.Fatalf("bob's friends = %v, want alice online: %s", got, rep.Raw)
	}
	a1.Ping() // bob's second session started no presence event
	c.Ping()  // a classic session never gets presence events
	rep = relogin(c, carol)
	if got := friends(rep); len(got) != 1 || got[alice.id] != "online" {
		t.Fatalf("carol's friends = %v, want alice online: %s", got, rep.Raw)
	}
	aCheck, rep := alice.native(t, ts)
	if got := friends(rep); len(got) != 2 || got[bob.id] != "online" || got[carol.id] != "online" {
		t.Fatalf("alice's friends = %v: %s", got, rep.Raw)
	}
	for _, x := range []*wiretest.Conn{a1, a2} { // carol's relogin: offline, then online
		x.Expect(12, "id", carol.id, "state", "offline")
		x.Expect(12, "id", carol.id, "state", "online")
	}

	// bob's last session ends -> offline; he comes back -> online.
	b.Call(3, `{"msgid":3}`)
	a1.Ping() // bob still has bCheck: nothing yet
	bCheck.NC.Close()
	a1.Expect(12, "id", bob.id, "state", "offline")
	a2.Expect(12, "id", bob.id, "state", "offline")
	b.NativeLogin(bob.id, bob.pw)
	a1.Expect(12, "id", bob.id, "state", "online")
	a2.Expect(12, "id", bob.id, "state", "online")
	c.Ping()
	// Offline friends show as such.
	a1.Call(3, `{"msgid":3}`)
	a2.NC.Close()
	aCheck.NC.Close()
	b.Expect(12, "id", alice.id, "state", "offline")
	_, rep = bob.native(t, ts)
	if got := friends(rep); got[alice.id] != "offline" {
		t.Fatalf("bob's friends = %v, want alice offline: %s", got, rep.Raw)
	}
}

func TestGroups(t *testing.T) {
	ts := wiretest.StartServer(t, openFriends)
	alice, bob, carol, eve := newUser(t, ts, "alice"), newUser(t, ts, "bob"), newUser(t, ts, "carol"), newUser(t, ts, "eve")

	a1, _ := alice.native(t, ts)
	a2, _ := alice.native(t, ts)
	gid := a1.Call(8, `{"msgid":8,"groupname":"club","groupdesc":"the club"}`).Int("groupid")
	b, _ := bob.classic(t, ts)
	b.Sendf(`{"msgid":9,"id":%d,"groupid":%d}`, bob.id, gid)
	b.Ping()
	a1.Expect(19, "groupid", gid, "id", bob.id, "name", "bob")
	a2.Expect(19, "groupid", gid, "id", bob.id, "name", "bob")
	// Joining twice changes nothing and tells no one.
	b.Sendf(`{"msgid":9,"id":%d,"groupid":%d}`, bob.id, gid)
	b.Ping()
	cn, _ := carol.native(t, ts)
	cn.Call(9, `{"msgid":9,"groupid":%d}`, gid).Check(t, "joined", true)
	cn.Call(9, `{"msgid":9,"groupid":%d}`, gid).Check(t, "joined", false)
	a1.Expect(19, "id", carol.id)
	a2.Expect(19, "id", carol.id)
	a1.Ping()
	cn.NC.Close() // carol goes offline

	// Roles in the login reply.
	_, rep := alice.native(t, ts)
	var roles map[int64]string
	for _, g := range rep.List("groups") {
		g := wiretest.Obj{M: g.(map[string]any)}
		if g.Int("id") != gid {
			continue
		}
		g.Check(t, "groupname", "club", "groupdesc", "the club")
		roles = map[int64]string{}
		for _, u := range g.List("users") {
			u := wiretest.Obj{M: u.(map[string]any)}
			roles[u.Int("id")] = u.Str("role")
		}
	}
	if roles[alice.id] != "creator" || roles[bob.id] != "normal" || roles[carol.id] != "normal" || len(roles) != 3 {
		t.Fatalf("roles = %v: %s", roles, rep.Raw)
	}

	// Group chat reaches every other member now (bob classic, alice's other
	// device) or at next login (carol), not the sender's own session.
	ack := a1.Call(10, `{"msgid":10,"groupid":%d,"msg":"hello club","cmid":"g1"}`, gid)
	ack.Check(t, "conv", fmt.Sprintf("g:%d", gid), "seq", 1)
	b.Expect(10, "groupid", gid, "id", alice.id, "name", "alice", "msg", "hello club")
	a2.Expect(10, "groupid", gid, "id", alice.id, "msg", "hello club", "seq", 1, "mid", ack.Int("mid"))
	a1.Ping()
	b.Ping()
	_, crep := carol.classic(t, ts)
	off := offlineMsgs(t, crep)
	if len(off) != 1 {
		t.Fatalf("carol's offlinemsg = %s", crep.Raw)
	}
	off[0].Check(t, "msgid", 10, "groupid", gid, "id", alice.id, "msg", "hello club")

	// A non-member can neither post nor read; a member joining later reads
	// from their join on (the default history setting, issue 11).
	e, _ := eve.native(t, ts)
	rid := e.Req(`{"msgid":10,"groupid":%d,"msg":"let me in","cmid":"e1"}`, gid)
	e.Expect(11, "req", 10, "rid", rid, "errno", 6)
	rid = e.Req(`{"msgid":14,"conv":"g:%d","after":0}`, gid)
	e.Expect(11, "req", 14, "rid", rid, "errno", 6)
	rid = e.Req(`{"msgid":15,"groupid":%d,"before":0}`, gid)
	e.Expect(11, "req", 15, "rid", rid, "errno", 6)
	b.Ping() // eve's attempt reached no one
	e.Call(9, `{"msgid":9,"groupid":%d}`, gid)
	msgs := e.Call(14, `{"msgid":14,"conv":"g:%d","after":0}`, gid).List("msgs")
	if len(msgs) != 0 {
		t.Fatalf("eve after joining syncs %d messages from before her join, want 0", len(msgs))
	}
	e.Call(10, `{"msgid":10,"groupid":%d,"msg":"hi all","cmid":"e2"}`, gid).Check(t, "seq", 2)
	b.Expect(10, "id", eve.id, "msg", "hi all")
}

func TestNativeChat(t *testing.T) {
	ts := wiretest.StartServer(t, nil)
	alice, bob, eve := newUser(t, ts, "alice"), newUser(t, ts, "bob"), newUser(t, ts, "eve")
	a, _ := alice.native(t, ts)
	b1, _ := bob.native(t, ts)
	b2, _ := bob.native(t, ts)

	before := time.Now().UnixMilli()
	ack := a.Call(6, `{"msgid":6,"to":%d,"msg":"m1","cmid":"dev-1"}`, bob.id)
	conv := fmt.Sprintf("d:%d:%d", min(alice.id, bob.id), max(alice.id, bob.id))
	ack.Check(t, "conv", conv, "seq", 1)
	if ack.Int("mid") <= 0 || ack.Int("ts") < before-1000 || ack.Str("time") == "" || ack.Has("dup") {
		t.Fatalf("bad ack %s", ack.Raw)
	}
	for _, b := range []*wiretest.Conn{b1, b2} {
		b.Expect(6, "mid", ack.Int("mid"), "conv", conv, "seq", 1, "id", alice.id, "name", "alice", "to", bob.id, "msg", "m1", "ts", ack.Int("ts"))
	}

	// Resending the same cmid: same mid/seq, dup:true, nothing new stored or delivered.
	dup := a.Call(6, `{"msgid":6,"to":%d,"msg":"m1","cmid":"dev-1"}`, bob.id)
	dup.Check(t, "mid", ack.Int("mid"), "seq", 1, "conv", conv, "dup", true)
	b1.Ping()
	// Spoofed id/name in native requests are ignored too.
	for i := 2; i <= 5; i++ {
		a.Call(6, `{"msgid":6,"id":%d,"name":"bob","to":%d,"msg":"m%d","cmid":"dev-%d"}`, bob.id, bob.id, i, i).Check(t, "seq", i)
		b1.Expect(6, "seq", i, "id", alice.id, "name", "alice")
		b2.Expect(6, "seq", i)
	}

	// SYNC pages.
	seqs := func(o wiretest.Obj) []int64 {
		var out []int64
		for _, m := range o.List("msgs") {
			out = append(out, wiretest.Obj{M: m.(map[string]any)}.Int("seq"))
		}
		return out
	}
	for _, tc := range []struct {
		req, format string
		id          int
		want        []int64
		last        int64
	}{
		{"sync all", `{"msgid":14,"conv":%q,"after":0}`, 14, []int64{1, 2, 3, 4, 5}, 5},
		{"sync page 1", `{"msgid":14,"conv":%q,"after":0,"limit":2}`, 14, []int64{1, 2}, 5},
		{"sync page 2", `{"msgid":14,"conv":%q,"after":2,"limit":2}`, 14, []int64{3, 4}, 5},
		{"sync page 3", `{"msgid":14,"conv":%q,"after":4,"limit":2}`, 14, []int64{5}, 5},
		{"sync past end", `{"msgid":14,"conv":%q,"after":5,"limit":2}`, 14, nil, 5},
		{"history newest", `{"msgid":15,"conv":%q,"before":0,"limit":2}`, 15, []int64{4, 5}, 5},
		{"history before 4", `{"msgid":15,"conv":%q,"before":4,"limit":2}`, 15, []int64{2, 3}, 5},
		{"history before 2", `{"msgid":15,"conv":%q,"before":2,"limit":2}`, 15, []int64{1}, 5},
	} {
		t.Run(tc.req, func(t *testing.T) {
			b1.TB = t
			defer func() { b1.TB = nil }()
			o := b1.Call(tc.id, tc.format, conv)
			o.Check(t, "conv", conv, "last", tc.last)
			if got := seqs(o); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("seqs = %v, want %v: %s", got, tc.want, o.Raw)
			}
		})
	}
	b1.TB = t
	// The dup stored nothing: five messages, "m1" once.
	all := b1.Call(14, `{"msgid":14,"conv":%q,"after":0}`, conv)
	if n := strings.Count(all.Raw, `"msg":"m1"`); n != 1 {
		t.Fatalf("m1 stored %d times: %s", n, all.Raw)
	}
	// HISTORY may name the peer instead of the conv.
	b1.Call(15, `{"msgid":15,"to":%d}`, alice.id).Check(t, "conv", conv)
	// A stranger cannot read it.
	e, _ := eve.native(t, ts)
	rid := e.Req(`{"msgid":14,"conv":%q,"after":0}`, conv)
	e.Expect(11, "req", 14, "rid", rid, "errno", 6)
	rid = e.Req(`{"msgid":15,"conv":%q}`, conv)
	e.Expect(11, "req", 15, "rid", rid, "errno", 6)

	// READ: ack, event to the other session, unread counts at next login.
	b1.Call(16, `{"msgid":16,"conv":%q,"seq":3}`, conv)
	b2.Expect(16, "conv", conv, "seq", 3)
	b1.Ping()
	convState := func(rep wiretest.Obj) wiretest.Obj {
		for _, c := range rep.List("convs") {
			c := wiretest.Obj{M: c.(map[string]any)}
			if c.Str("conv") == conv {
				return c
			}
		}
		t.Fatalf("conv %s not in %s", conv, rep.Raw)
		return wiretest.Obj{}
	}
	_, rep := bob.native(t, ts)
	convState(rep).Check(t, "last", 5, "read", 3, "unread", 2)
	// The sender has read its own messages.
	_, rep = alice.native(t, ts)
	convState(rep).Check(t, "last", 5, "unread", 0)
}

// TestAbruptClose: a client that vanishes (reset, or mid-frame) ends its
// session: its friend hears it go offline, and with -max-sessions 1 the
// account can log in again at once.
func TestAbruptClose(t *testing.T) {
	ts := wiretest.StartServer(t, func(c *server.Config) { c.MaxSessions = 1; openFriends(c) })
	alice, bob := newUser(t, ts, "alice"), newUser(t, ts, "bob")
	befriend(t, ts, alice, bob)
	w, _ := alice.native(t, ts)

	for _, tc := range []struct {
		name string
		kill func(c *wiretest.Conn)
	}{
		{"reset", func(c *wiretest.Conn) {
			c.NC.(*net.TCPConn).SetLinger(0) // close sends RST
			c.NC.Close()
		}},
		{"half frame then close", func(c *wiretest.Conn) {
			c.Send(`{"msgid":6,"to":1,"msg":"unfinish`)
			c.NC.Close()
		}},
		{"half frame then reset", func(c *wiretest.Conn) {
			c.Send(`{"msgid":10,"groupid":`)
			c.NC.(*net.TCPConn).SetLinger(0)
			c.NC.Close()
		}},
		{"classic close", func(c *wiretest.Conn) { c.NC.Close() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w.TB = t
			b := wiretest.Dial(t, ts.TCP, readTimeout)
			if strings.HasPrefix(tc.name, "classic") {
				b.ClassicLogin(bob.id, bob.pw)
			} else {
				b.NativeLogin(bob.id, bob.pw)
			}
			w.Expect(12, "id", bob.id, "state", "online")
			tc.kill(b)
			w.Expect(12, "id", bob.id, "state", "offline")
			// The session is gone: one allowed session, and it is free.
			b2 := wiretest.Dial(t, ts.TCP, readTimeout)
			b2.ClassicLogin(bob.id, bob.pw)
			w.Expect(12, "id", bob.id, "state", "online")
			b2.NC.Close()
			w.Expect(12, "id", bob.id, "state", "offline")
		})
	}
	w.TB = t
	w.Ping()
	testenv.WaitFor(t, 10*time.Second, "chat_sessions back to 1", func() bool {
		return metric(t, ts, "chat_sessions") == 1
	})
}

// floodUntilCut sends 60000-byte messages from a to the user to (whose
// connection does not read) until the server counts a slow-consumer
// disconnect, and returns how many it sent.
func floodUntilCut(t *testing.T, ts *wiretest.Server, a *wiretest.Conn, to user) int {
	t.Helper()
	body := strings.Repeat("z", 60000)
	sent := 0
	for metric(t, ts, "chat_slow_consumer_disconnects_total") == 0 {
		if sent >= 2000 { // 120 MB: far past any socket buffer
			t.Fatalf("no slow-consumer disconnect after %d messages of 60000 bytes", sent)
		}
		for range 10 {
			sent++
			a.Call(6, `{"msgid":6,"to":%d,"msg":%q,"cmid":"f%d"}`, to.id, body, sent)
		}
	}
	return sent
}

// TestSlowConsumer: a native client that stops reading while another user
// floods it is disconnected once its queue passes MaxQueue; the sender is
// undisturbed.
func TestSlowConsumer(t *testing.T) {
	ts := wiretest.StartServer(t, func(c *server.Config) {
		c.MaxQueue = 64 << 10
		c.MaxBody = 60000
	})
	alice, bob := newUser(t, ts, "alice"), newUser(t, ts, "bob")
	slow, _ := bob.native(t, ts)
	slow.NC.(*net.TCPConn).SetReadBuffer(4096) // fill up sooner
	a, _ := alice.native(t, ts)
	sent := floodUntilCut(t, ts, a, bob)
	// The server let go of the connection (what the kernel still holds
	// trickles out slowly through the tiny receive window, so the test does
	// not drain it): alice's is the only connection left.
	testenv.WaitFor(t, readTimeout, "the slow connection closed", func() bool {
		return metric(t, ts, "chat_connections") == 1
	})
	slow.NC.Close()
	a.Ping()
	a.Call(6, `{"msgid":6,"to":%d,"msg":"after","cmid":"after"}`, bob.id)
	if n := metric(t, ts, "chat_slow_consumer_disconnects_total"); n != 1 {
		t.Fatalf("slow consumer disconnects = %v, want 1 (the sender must not be one)", n)
	}
	// bob can come back and catch up.
	b, _ := bob.native(t, ts)
	b.Call(14, `{"msgid":14,"to":%d,"after":%d}`, alice.id, sent).Check(t, "last", sent+1)
}

func TestHTTP(t *testing.T) {
	ts := wiretest.StartServer(t, nil)
	for _, tc := range []struct {
		path, want string
	}{
		{"/healthz", "ok"},
		{"/readyz", "store: ok"},
		{"/metrics", "chat_sessions"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			body, code := httpGet(t, ts.HTTP, tc.path)
			if code != http.StatusOK || !strings.Contains(body, tc.want) {
				t.Fatalf("GET %s = %d %.200q, want 200 containing %q", tc.path, code, body, tc.want)
			}
		})
	}
	u := newUser(t, ts, "metered")
	u.classic(t, ts)
	testenv.WaitFor(t, 10*time.Second, "chat_sessions 1", func() bool { return metric(t, ts, "chat_sessions") == 1 })
}

// TestPprof: -pprof serves the profiles beside the web client's "GET /"
// (a method-less pattern made the server panic at start).
func TestPprof(t *testing.T) {
	ts := wiretest.StartServer(t, func(c *server.Config) { c.Pprof = true })
	for _, tc := range []struct{ path, want string }{
		{"/debug/pprof/", "allocs"},
		{"/debug/pprof/allocs?debug=1", "heap profile"},
		{"/", "<html"},
	} {
		body, code := httpGet(t, ts.HTTP, tc.path)
		if code != http.StatusOK || !strings.Contains(strings.ToLower(body), strings.ToLower(tc.want)) {
			t.Errorf("GET %s = %d %.200q, want 200 containing %q", tc.path, code, body, tc.want)
		}
	}
}
