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
	"clusterchat/server"
)

// offlineMsgs returns the offlinemsg entries of a classic login reply,
// each decoded.
func offlineMsgs(tb testing.TB, rep obj) []obj {
	tb.Helper()
	var out []obj
	for _, s := range rep.list("offlinemsg") {
		out = append(out, decodeObj(tb, s.(string)))
	}
	return out
}

// relogin logs the classic session out and in again on the same connection.
func (c *client) relogin(u user) obj {
	c.tb.Helper()
	c.sendf(`{"msgid":3,"id":%d}`, u.id)
	return c.classicLogin(u.id, u.pw)
}

func TestOfflineMessages(t *testing.T) {
	ts := startServer(t, nil)
	alice, bob := newUser(t, ts, "alice"), newUser(t, ts, "bob")
	gid := mkGroup(t, ts, alice, "team", bob)

	a, rep := alice.classic(t, ts)
	if rep.has("offlinemsg") {
		t.Fatalf("alice has offline messages before anyone wrote: %s", rep.raw)
	}
	a.sendf(`{"msgid":6,"to":%d,"msg":"one","time":"t1"}`, bob.id)
	a.sendf(`{"msgid":10,"groupid":%d,"msg":"two","time":"t2"}`, gid)
	a.sendf(`{"msgid":6,"toid":%d,"msg":"three","time":"t3"}`, bob.id)
	a.ping()
	ts.waitAccepted(t, 3)

	b, rep := bob.classic(t, ts)
	got := offlineMsgs(t, rep)
	if len(got) != 3 {
		t.Fatalf("offlinemsg has %d entries, want 3: %s", len(got), rep.raw)
	}
	got[0].check(t, "msgid", 6, "id", alice.id, "name", "alice", "to", bob.id, "msg", "one")
	got[1].check(t, "msgid", 10, "id", alice.id, "name", "alice", "groupid", gid, "msg", "two")
	for _, m := range got {
		if tm := m.str("time"); len(tm) != len(clusterchat.TimeFormat) || tm[0] == 't' {
			t.Errorf("offline message time %q: want the server's stamp, not the client's", tm)
		}
	}
	got[2].check(t, "msgid", 6, "msg", "three")
	b.ping() // and none of them comes again live

	// Never twice: not at the next login, not on another connection.
	if rep := b.relogin(bob); rep.has("offlinemsg") {
		t.Fatalf("offline messages repeated at the second login: %s", rep.raw)
	}
	if _, rep := bob.classic(t, ts); rep.has("offlinemsg") {
		t.Fatalf("offline messages repeated on a second connection: %s", rep.raw)
	}
	// The sender's own messages are never its offline messages.
	if rep := a.relogin(alice); rep.has("offlinemsg") {
		t.Fatalf("alice got her own messages as offline: %s", rep.raw)
	}

	// A message written live to a classic session is not offline later,
	// even when the user logs out and in at once.
	a.sendf(`{"msgid":6,"to":%d,"msg":"live","time":"t4"}`, bob.id)
	b.expect(6, "msg", "live")
	a.sendf(`{"msgid":10,"groupid":%d,"msg":"live group","time":"t5"}`, gid)
	b.expect(10, "msg", "live group")
	if rep := b.relogin(bob); rep.has("offlinemsg") {
		t.Fatalf("a message delivered live came back as offline: %s", rep.raw)
	}

	// What a native device fetched with SYNC is not offline for classic.
	b.sendf(`{"msgid":3}`)
	b.ping()
	a.sendf(`{"msgid":6,"to":%d,"msg":"synced","time":"t6"}`, bob.id)
	a.ping()
	ts.waitAccepted(t, 6)
	n, _ := bob.native(t, ts)
	n.call(14, `{"msgid":14,"to":%d,"after":0}`, alice.id)
	n.nc.Close()
	if _, rep := bob.classic(t, ts); rep.has("offlinemsg") {
		t.Fatalf("a message fetched by SYNC came back as offline: %s", rep.raw)
	}
}

func TestFriendsAndPresence(t *testing.T) {
	ts := startServer(t, openFriends) // one ADD_FRIEND befriends, as the classic server did
	alice, bob, carol := newUser(t, ts, "alice"), newUser(t, ts, "bob"), newUser(t, ts, "carol")

	a1, _ := alice.native(t, ts)
	a2, _ := alice.native(t, ts)
	b, _ := bob.native(t, ts)
	c, _ := carol.classic(t, ts)

	// alice adds bob: bob hears of alice, alice's other session of bob.
	a1.call(7, `{"msgid":7,"friendid":%d}`, bob.id).check(t, "id", bob.id, "name", "bob", "state", "online")
	b.expect(13, "id", alice.id, "name", "alice", "state", "online")
	a2.expect(13, "id", bob.id, "name", "bob", "state", "online")
	a1.ping()
	// Classic: carol adds alice, no reply; alice hears it, carol hears nothing.
	c.sendf(`{"msgid":7,"id":%d,"friendid":%d}`, carol.id, alice.id)
	c.ping()
	a1.expect(13, "id", carol.id, "name", "carol", "state", "online")
	a2.expect(13, "id", carol.id)

	// Both ways, with live state, in the next logins.
	friends := func(rep obj) map[int64]string {
		m := map[int64]string{}
		for _, f := range rep.list("friends") {
			var fo obj
			switch f := f.(type) {
			case string: // classic
				fo = decodeObj(t, f)
			case map[string]any:
				fo = obj{m: f}
			}
			m[fo.int("id")] = fo.str("state")
		}
		return m
	}
	bCheck, rep := bob.native(t, ts)
	if got := friends(rep); len(got) != 1 || got[alice.id] != "online" {
		t.Fatalf("bob's friends = %v, want alice online: %s", got, rep.raw)
	}
	a1.ping() // bob's second session started no presence event
	c.ping()  // a classic session never gets presence events
	rep = c.relogin(carol)
	if got := friends(rep); len(got) != 1 || got[alice.id] != "online" {
		t.Fatalf("carol's friends = %v, want alice online: %s", got, rep.raw)
	}
	aCheck, rep := alice.native(t, ts)
	if got := friends(rep); len(got) != 2 || got[bob.id] != "online" || got[carol.id] != "online" {
		t.Fatalf("alice's friends = %v: %s", got, rep.raw)
	}
	for _, x := range []*client{a1, a2} { // carol's relogin: offline, then online
		x.expect(12, "id", carol.id, "state", "offline")
		x.expect(12, "id", carol.id, "state", "online")
	}

	// bob's last session ends -> offline; he comes back -> online.
	b.call(3, `{"msgid":3}`)
	a1.ping() // bob still has bCheck: nothing yet
	bCheck.nc.Close()
	a1.expect(12, "id", bob.id, "state", "offline")
	a2.expect(12, "id", bob.id, "state", "offline")
	b.nativeLogin(bob.id, bob.pw)
	a1.expect(12, "id", bob.id, "state", "online")
	a2.expect(12, "id", bob.id, "state", "online")
	c.ping()
	// Offline friends show as such.
	a1.call(3, `{"msgid":3}`)
	a2.nc.Close()
	aCheck.nc.Close()
	b.expect(12, "id", alice.id, "state", "offline")
	_, rep = bob.native(t, ts)
	if got := friends(rep); got[alice.id] != "offline" {
		t.Fatalf("bob's friends = %v, want alice offline: %s", got, rep.raw)
	}
}

func TestGroups(t *testing.T) {
	ts := startServer(t, openFriends)
	alice, bob, carol, eve := newUser(t, ts, "alice"), newUser(t, ts, "bob"), newUser(t, ts, "carol"), newUser(t, ts, "eve")

	a1, _ := alice.native(t, ts)
	a2, _ := alice.native(t, ts)
	gid := a1.call(8, `{"msgid":8,"groupname":"club","groupdesc":"the club"}`).int("groupid")
	b, _ := bob.classic(t, ts)
	b.sendf(`{"msgid":9,"id":%d,"groupid":%d}`, bob.id, gid)
	b.ping()
	a1.expect(19, "groupid", gid, "id", bob.id, "name", "bob")
	a2.expect(19, "groupid", gid, "id", bob.id, "name", "bob")
	// Joining twice changes nothing and tells no one.
	b.sendf(`{"msgid":9,"id":%d,"groupid":%d}`, bob.id, gid)
	b.ping()
	cn, _ := carol.native(t, ts)
	cn.call(9, `{"msgid":9,"groupid":%d}`, gid).check(t, "joined", true)
	cn.call(9, `{"msgid":9,"groupid":%d}`, gid).check(t, "joined", false)
	a1.expect(19, "id", carol.id)
	a2.expect(19, "id", carol.id)
	a1.ping()
	cn.nc.Close() // carol goes offline

	// Roles in the login reply.
	_, rep := alice.native(t, ts)
	var roles map[int64]string
	for _, g := range rep.list("groups") {
		g := obj{m: g.(map[string]any)}
		if g.int("id") != gid {
			continue
		}
		g.check(t, "groupname", "club", "groupdesc", "the club")
		roles = map[int64]string{}
		for _, u := range g.list("users") {
			u := obj{m: u.(map[string]any)}
			roles[u.int("id")] = u.str("role")
		}
	}
	if roles[alice.id] != "creator" || roles[bob.id] != "normal" || roles[carol.id] != "normal" || len(roles) != 3 {
		t.Fatalf("roles = %v: %s", roles, rep.raw)
	}

	// Group chat reaches every other member now (bob classic, alice's other
	// device) or at next login (carol), not the sender's own session.
	ack := a1.call(10, `{"msgid":10,"groupid":%d,"msg":"hello club","cmid":"g1"}`, gid)
	ack.check(t, "conv", fmt.Sprintf("g:%d", gid), "seq", 1)
	b.expect(10, "groupid", gid, "id", alice.id, "name", "alice", "msg", "hello club")
	a2.expect(10, "groupid", gid, "id", alice.id, "msg", "hello club", "seq", 1, "mid", ack.int("mid"))
	a1.ping()
	b.ping()
	_, crep := carol.classic(t, ts)
	off := offlineMsgs(t, crep)
	if len(off) != 1 {
		t.Fatalf("carol's offlinemsg = %s", crep.raw)
	}
	off[0].check(t, "msgid", 10, "groupid", gid, "id", alice.id, "msg", "hello club")

	// A non-member can neither post nor read; a member joining later reads
	// from their join on (the default history setting, issue 11).
	e, _ := eve.native(t, ts)
	rid := e.req(`{"msgid":10,"groupid":%d,"msg":"let me in","cmid":"e1"}`, gid)
	e.expect(11, "req", 10, "rid", rid, "errno", 6)
	rid = e.req(`{"msgid":14,"conv":"g:%d","after":0}`, gid)
	e.expect(11, "req", 14, "rid", rid, "errno", 6)
	rid = e.req(`{"msgid":15,"groupid":%d,"before":0}`, gid)
	e.expect(11, "req", 15, "rid", rid, "errno", 6)
	b.ping() // eve's attempt reached no one
	e.call(9, `{"msgid":9,"groupid":%d}`, gid)
	msgs := e.call(14, `{"msgid":14,"conv":"g:%d","after":0}`, gid).list("msgs")
	if len(msgs) != 0 {
		t.Fatalf("eve after joining syncs %d messages from before her join, want 0", len(msgs))
	}
	e.call(10, `{"msgid":10,"groupid":%d,"msg":"hi all","cmid":"e2"}`, gid).check(t, "seq", 2)
	b.expect(10, "id", eve.id, "msg", "hi all")
}

func TestNativeChat(t *testing.T) {
	ts := startServer(t, nil)
	alice, bob, eve := newUser(t, ts, "alice"), newUser(t, ts, "bob"), newUser(t, ts, "eve")
	a, _ := alice.native(t, ts)
	b1, _ := bob.native(t, ts)
	b2, _ := bob.native(t, ts)

	before := time.Now().UnixMilli()
	ack := a.call(6, `{"msgid":6,"to":%d,"msg":"m1","cmid":"dev-1"}`, bob.id)
	conv := fmt.Sprintf("d:%d:%d", min(alice.id, bob.id), max(alice.id, bob.id))
	ack.check(t, "conv", conv, "seq", 1)
	if ack.int("mid") <= 0 || ack.int("ts") < before-1000 || ack.str("time") == "" || ack.has("dup") {
		t.Fatalf("bad ack %s", ack.raw)
	}
	for _, b := range []*client{b1, b2} {
		b.expect(6, "mid", ack.int("mid"), "conv", conv, "seq", 1, "id", alice.id, "name", "alice", "to", bob.id, "msg", "m1", "ts", ack.int("ts"))
	}

	// Resending the same cmid: same mid/seq, dup:true, nothing new stored or delivered.
	dup := a.call(6, `{"msgid":6,"to":%d,"msg":"m1","cmid":"dev-1"}`, bob.id)
	dup.check(t, "mid", ack.int("mid"), "seq", 1, "conv", conv, "dup", true)
	b1.ping()
	// Spoofed id/name in native requests are ignored too.
	for i := 2; i <= 5; i++ {
		a.call(6, `{"msgid":6,"id":%d,"name":"bob","to":%d,"msg":"m%d","cmid":"dev-%d"}`, bob.id, bob.id, i, i).check(t, "seq", i)
		b1.expect(6, "seq", i, "id", alice.id, "name", "alice")
		b2.expect(6, "seq", i)
	}

	// SYNC pages.
	seqs := func(o obj) []int64 {
		var out []int64
		for _, m := range o.list("msgs") {
			out = append(out, obj{m: m.(map[string]any)}.int("seq"))
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
			b1.tb = t
			defer func() { b1.tb = nil }()
			o := b1.call(tc.id, tc.format, conv)
			o.check(t, "conv", conv, "last", tc.last)
			if got := seqs(o); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("seqs = %v, want %v: %s", got, tc.want, o.raw)
			}
		})
	}
	b1.tb = t
	// The dup stored nothing: five messages, "m1" once.
	all := b1.call(14, `{"msgid":14,"conv":%q,"after":0}`, conv)
	if n := strings.Count(all.raw, `"msg":"m1"`); n != 1 {
		t.Fatalf("m1 stored %d times: %s", n, all.raw)
	}
	// HISTORY may name the peer instead of the conv.
	b1.call(15, `{"msgid":15,"to":%d}`, alice.id).check(t, "conv", conv)
	// A stranger cannot read it.
	e, _ := eve.native(t, ts)
	rid := e.req(`{"msgid":14,"conv":%q,"after":0}`, conv)
	e.expect(11, "req", 14, "rid", rid, "errno", 6)
	rid = e.req(`{"msgid":15,"conv":%q}`, conv)
	e.expect(11, "req", 15, "rid", rid, "errno", 6)

	// READ: ack, event to the other session, unread counts at next login.
	b1.call(16, `{"msgid":16,"conv":%q,"seq":3}`, conv)
	b2.expect(16, "conv", conv, "seq", 3)
	b1.ping()
	convState := func(rep obj) obj {
		for _, c := range rep.list("convs") {
			c := obj{m: c.(map[string]any)}
			if c.str("conv") == conv {
				return c
			}
		}
		t.Fatalf("conv %s not in %s", conv, rep.raw)
		return obj{}
	}
	_, rep := bob.native(t, ts)
	convState(rep).check(t, "last", 5, "read", 3, "unread", 2)
	// The sender has read its own messages.
	_, rep = alice.native(t, ts)
	convState(rep).check(t, "last", 5, "unread", 0)
}

// TestAbruptClose: a client that vanishes (reset, or mid-frame) ends its
// session: its friend hears it go offline, and with -max-sessions 1 the
// account can log in again at once.
func TestAbruptClose(t *testing.T) {
	ts := startServer(t, func(c *server.Config) { c.MaxSessions = 1; openFriends(c) })
	alice, bob := newUser(t, ts, "alice"), newUser(t, ts, "bob")
	befriend(t, ts, alice, bob)
	w, _ := alice.native(t, ts)

	for _, tc := range []struct {
		name string
		kill func(c *client)
	}{
		{"reset", func(c *client) {
			c.nc.(*net.TCPConn).SetLinger(0) // close sends RST
			c.nc.Close()
		}},
		{"half frame then close", func(c *client) {
			c.send(`{"msgid":6,"to":1,"msg":"unfinish`)
			c.nc.Close()
		}},
		{"half frame then reset", func(c *client) {
			c.send(`{"msgid":10,"groupid":`)
			c.nc.(*net.TCPConn).SetLinger(0)
			c.nc.Close()
		}},
		{"classic close", func(c *client) { c.nc.Close() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w.tb = t
			b := dial(t, ts.addr)
			if strings.HasPrefix(tc.name, "classic") {
				b.classicLogin(bob.id, bob.pw)
			} else {
				b.nativeLogin(bob.id, bob.pw)
			}
			w.expect(12, "id", bob.id, "state", "online")
			tc.kill(b)
			w.expect(12, "id", bob.id, "state", "offline")
			// The session is gone: one allowed session, and it is free.
			b2 := dial(t, ts.addr)
			b2.classicLogin(bob.id, bob.pw)
			w.expect(12, "id", bob.id, "state", "online")
			b2.nc.Close()
			w.expect(12, "id", bob.id, "state", "offline")
		})
	}
	w.tb = t
	w.ping()
	testenv.WaitFor(t, 10*time.Second, "chat_sessions back to 1", func() bool {
		return ts.metric(t, "chat_sessions") == 1
	})
}

// floodUntilCut sends 60000-byte messages from a to the user to (whose
// connection does not read) until the server counts a slow-consumer
// disconnect, and returns how many it sent.
func floodUntilCut(t *testing.T, ts *testServer, a *client, to user) int {
	t.Helper()
	body := strings.Repeat("z", 60000)
	sent := 0
	for ts.metric(t, "chat_slow_consumer_disconnects_total") == 0 {
		if sent >= 2000 { // 120 MB: far past any socket buffer
			t.Fatalf("no slow-consumer disconnect after %d messages of 60000 bytes", sent)
		}
		for range 10 {
			sent++
			a.call(6, `{"msgid":6,"to":%d,"msg":%q,"cmid":"f%d"}`, to.id, body, sent)
		}
	}
	return sent
}

// TestSlowConsumer: a native client that stops reading while another user
// floods it is disconnected once its queue passes MaxQueue; the sender is
// undisturbed.
func TestSlowConsumer(t *testing.T) {
	ts := startServer(t, func(c *server.Config) {
		c.MaxQueue = 64 << 10
		c.MaxBody = 60000
	})
	alice, bob := newUser(t, ts, "alice"), newUser(t, ts, "bob")
	slow, _ := bob.native(t, ts)
	slow.nc.(*net.TCPConn).SetReadBuffer(4096) // fill up sooner
	a, _ := alice.native(t, ts)
	sent := floodUntilCut(t, ts, a, bob)
	// The server let go of the connection (what the kernel still holds
	// trickles out slowly through the tiny receive window, so the test does
	// not drain it): alice's is the only connection left.
	testenv.WaitFor(t, readTimeout, "the slow connection closed", func() bool {
		return ts.metric(t, "chat_connections") == 1
	})
	slow.nc.Close()
	a.ping()
	a.call(6, `{"msgid":6,"to":%d,"msg":"after","cmid":"after"}`, bob.id)
	if n := ts.metric(t, "chat_slow_consumer_disconnects_total"); n != 1 {
		t.Fatalf("slow consumer disconnects = %v, want 1 (the sender must not be one)", n)
	}
	// bob can come back and catch up.
	b, _ := bob.native(t, ts)
	b.call(14, `{"msgid":14,"to":%d,"after":%d}`, alice.id, sent).check(t, "last", sent+1)
}

func TestHTTP(t *testing.T) {
	ts := startServer(t, nil)
	for _, tc := range []struct {
		path, want string
	}{
		{"/healthz", "ok"},
		{"/readyz", "store: ok"},
		{"/metrics", "chat_sessions"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			body, code := httpGet(t, ts.http, tc.path)
			if code != http.StatusOK || !strings.Contains(body, tc.want) {
				t.Fatalf("GET %s = %d %.200q, want 200 containing %q", tc.path, code, body, tc.want)
			}
		})
	}
	u := newUser(t, ts, "metered")
	u.classic(t, ts)
	testenv.WaitFor(t, 10*time.Second, "chat_sessions 1", func() bool { return ts.metric(t, "chat_sessions") == 1 })
}

// TestPprof: -pprof serves the profiles beside the web client's "GET /"
// (a method-less pattern made the server panic at start).
func TestPprof(t *testing.T) {
	ts := startServer(t, func(c *server.Config) { c.Pprof = true })
	for _, tc := range []struct{ path, want string }{
		{"/debug/pprof/", "allocs"},
		{"/debug/pprof/allocs?debug=1", "heap profile"},
		{"/", "<html"},
	} {
		body, code := httpGet(t, ts.http, tc.path)
		if code != http.StatusOK || !strings.Contains(strings.ToLower(body), strings.ToLower(tc.want)) {
			t.Errorf("GET %s = %d %.200q, want 200 containing %q", tc.path, code, body, tc.want)
		}
	}
}
