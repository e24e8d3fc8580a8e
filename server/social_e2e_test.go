package server_test

import (
	"fmt"
	"testing"

	"clusterchat/internal/wiretest"
	"clusterchat/server"
)

// reqErr sends a native request and expects its error reply with errno.
func reqErr(c *wiretest.Conn, req, errno int, format string, args ...any) wiretest.Obj {
	c.TB.Helper()
	rid := c.Req(format, args...)
	return c.Expect(11, "req", req, "rid", rid, "errno", errno)
}

// expectPast reads objects, passing over PRESENCE events (whose timing
// against the logins of a test is not fixed), until the next other one,
// which must have msgid and kv.
func expectPast(c *wiretest.Conn, msgid int, kv ...any) wiretest.Obj {
	c.TB.Helper()
	for {
		if o := c.Next(); o.Int("msgid") != 12 {
			o.Check(c.TB, append([]any{"msgid", msgid}, kv...)...)
			return o
		}
	}
}

// friendsIn returns the friend ids of a classic login reply.
func friendsIn(tb testing.TB, rep wiretest.Obj) []int64 {
	tb.Helper()
	var ids []int64
	for _, f := range rep.List("friends") {
		ids = append(ids, wiretest.MustDecode(tb, f.(string)).Int("id"))
	}
	return ids
}

// TestClassicFriendsByConsent: with the default -friends consent, one
// classic ADD_FRIEND is only a request (no friend, no presence); when the
// other adds back, both are friends with live presence, in their logins.
func TestClassicFriendsByConsent(t *testing.T) {
	ts := wiretest.StartServer(t, nil)
	alice, bob := newUser(t, ts, "alice"), newUser(t, ts, "bob")
	a, _ := alice.classic(t, ts)
	a.Sendf(`{"msgid":7,"id":%d,"friendid":%d}`, alice.id, bob.id)
	a.Ping()
	b, rep := bob.classic(t, ts)
	if ids := friendsIn(t, rep); len(ids) != 0 {
		t.Fatalf("bob's friends after alice's add alone: %v", ids)
	}
	a.Sendf(`{"msgid":7,"id":%d,"friendid":%d}`, alice.id, bob.id) // again: already asked
	a.ExpectErr(7, 5)
	b.Sendf(`{"msgid":7,"id":%d,"friendid":%d}`, bob.id, alice.id)
	b.Ping()
	_, rep = alice.classic(t, ts)
	if ids := friendsIn(t, rep); len(ids) != 1 || ids[0] != bob.id {
		t.Fatalf("alice's friends after both added: %v (%s)", ids, rep.Raw)
	}
}

// TestSocialRules: the rules a single server enforces, one native client
// per user: DMs friends-only by flag, permissions of group roles, history
// visibility, search limits, renames and deletion.
func TestSocialRules(t *testing.T) {
	t.Run("DMFriendsOnly", func(t *testing.T) {
		ts := wiretest.StartServer(t, func(c *server.Config) { c.DM = server.DMFriends })
		alice, bob := newUser(t, ts, "alice"), newUser(t, ts, "bob")
		a, _ := alice.native(t, ts)
		b, _ := bob.native(t, ts)
		reqErr(a, 6, 6, `{"msgid":6,"to":%d,"msg":"hi","cmid":"x1"}`, bob.id).Check(t, "errmsg", "refused")
		a.Call(60, `{"msgid":60,"id":%d}`, bob.id).Check(t, "friend", false)
		b.Expect(80, "event", "request", "id", alice.id)
		b.Call(61, `{"msgid":61,"id":%d}`, alice.id).Check(t, "friend", true, "state", "online")
		a.Expect(13, "id", bob.id, "state", "online")
		a.Call(6, `{"msgid":6,"to":%d,"msg":"now we talk","cmid":"x2"}`, bob.id)
		b.Expect(6, "msg", "now we talk")
		// Ending the friendship ends the DMs again (the cache hears of it).
		b.Call(64, `{"msgid":64,"id":%d}`, alice.id)
		a.Expect(80, "event", "removed", "id", bob.id)
		reqErr(a, 6, 6, `{"msgid":6,"to":%d,"msg":"still?","cmid":"x3"}`, bob.id)
	})

	t.Run("GroupRoles", func(t *testing.T) {
		ts := wiretest.StartServer(t, nil)
		owner, adm, mem, out := newUser(t, ts, "owner"), newUser(t, ts, "adm"), newUser(t, ts, "mem"), newUser(t, ts, "out")
		o, _ := owner.native(t, ts)
		gid := o.Call(8, `{"msgid":8,"groupname":"club","groupdesc":"d","private":true}`).Int("groupid")
		for _, u := range []user{adm, mem} {
			o.Call(72, `{"msgid":72,"groupid":%d,"id":%d}`, gid, u.id)
		}
		ad, _ := adm.native(t, ts)
		m, _ := mem.native(t, ts)
		x, _ := out.native(t, ts)
		// The invitation lets them in; the members hear each join (awaited
		// before the next one, whose member must not hear the first).
		ad.Call(9, `{"msgid":9,"groupid":%d}`, gid).Check(t, "joined", true)
		o.Expect(19, "groupid", gid, "id", adm.id)
		m.Call(9, `{"msgid":9,"groupid":%d}`, gid).Check(t, "joined", true)
		o.Expect(19, "groupid", gid, "id", mem.id)
		ad.Expect(19, "groupid", gid, "id", mem.id)
		o.Call(77, `{"msgid":77,"groupid":%d,"id":%d,"role":"admin"}`, gid, adm.id)
		for _, c := range []*wiretest.Conn{ad, m} {
			c.Expect(81, "event", "role", "id", adm.id, "role", "admin")
		}
		errs := []struct {
			name      string
			c         *wiretest.Conn
			req, code int
			body      string
		}{
			{"outsider reads the info", x, 71, 6, fmt.Sprintf(`{"msgid":71,"groupid":%d}`, gid)},
			{"member invites to a private group", m, 72, 6, fmt.Sprintf(`{"msgid":72,"groupid":%d,"id":%d}`, gid, out.id)},
			{"member removes", m, 75, 6, fmt.Sprintf(`{"msgid":75,"groupid":%d,"id":%d}`, gid, adm.id)},
			{"admin removes the creator", ad, 75, 6, fmt.Sprintf(`{"msgid":75,"groupid":%d,"id":%d}`, gid, owner.id)},
			{"admin promotes", ad, 77, 6, fmt.Sprintf(`{"msgid":77,"groupid":%d,"id":%d,"role":"admin"}`, gid, mem.id)},
			{"admin deletes", ad, 79, 6, fmt.Sprintf(`{"msgid":79,"groupid":%d}`, gid)},
			{"creator leaves", o, 76, 6, fmt.Sprintf(`{"msgid":76,"groupid":%d}`, gid)},
			{"bad role", o, 77, 3, fmt.Sprintf(`{"msgid":77,"groupid":%d,"id":%d,"role":"king"}`, gid, mem.id)},
			{"bad history", o, 78, 3, fmt.Sprintf(`{"msgid":78,"groupid":%d,"groupname":"club","groupdesc":"","history":"some"}`, gid)},
			{"no such group", o, 71, 4, `{"msgid":71,"groupid":999}`},
			{"approve without a request", ad, 74, 4, fmt.Sprintf(`{"msgid":74,"groupid":%d,"id":%d}`, gid, out.id)},
			{"classic-style join of a private group", x, 9, 6, fmt.Sprintf(`{"msgid":9,"groupid":%d}`, gid)},
		}
		for _, tc := range errs {
			if o := reqErr(tc.c, tc.req, tc.code, "%s", tc.body); o.Str("errmsg") == "" {
				t.Errorf("%s: no error text", tc.name)
			}
		}
		// An admin removes a normal member; the creator sees roles.
		ad.Call(75, `{"msgid":75,"groupid":%d,"id":%d}`, gid, mem.id)
		m.Expect(81, "event", "removed", "groupid", gid, "id", mem.id)
		o.Expect(81, "event", "removed", "id", mem.id)
		info := o.Call(71, `{"msgid":71,"groupid":%d}`, gid)
		roles := map[int64]string{}
		for _, u := range info.List("users") {
			mm := u.(map[string]any)
			id, _ := mm["id"].(interface{ Int64() (int64, error) }).Int64()
			roles[id] = mm["role"].(string)
		}
		if len(roles) != 2 || roles[owner.id] != "creator" || roles[adm.id] != "admin" {
			t.Fatalf("roles after the removal: %v", roles)
		}
		// The creator deletes: members hear it, the group is gone.
		o.Call(79, `{"msgid":79,"groupid":%d}`, gid)
		ad.Expect(81, "event", "deleted", "groupid", gid)
		reqErr(o, 71, 4, `{"msgid":71,"groupid":%d}`, gid)
	})

	t.Run("HistorySetting", func(t *testing.T) {
		ts := wiretest.StartServer(t, nil)
		owner, late := newUser(t, ts, "owner"), newUser(t, ts, "late")
		o, _ := owner.native(t, ts)
		gid := o.Call(8, `{"msgid":8,"groupname":"open book","groupdesc":"","history":"all"}`).Int("groupid")
		o.Call(10, `{"msgid":10,"groupid":%d,"msg":"before","cmid":"h1"}`, gid)
		l, _ := late.native(t, ts)
		l.Call(9, `{"msgid":9,"groupid":%d}`, gid)
		o.Expect(19, "id", late.id)
		page := l.Call(14, `{"msgid":14,"conv":"g:%d","after":0}`, gid)
		if msgs := page.List("msgs"); len(msgs) != 1 || page.Has("from") {
			t.Fatalf("history all: a new member syncs %s", page.Raw)
		}
		// Switched to "from the join on": what came before is hidden, and
		// the page says where the view starts.
		o.Call(78, `{"msgid":78,"groupid":%d,"groupname":"open book","groupdesc":"","history":"joined"}`, gid)
		l.Expect(81, "event", "updated", "history", "joined")
		page = l.Call(14, `{"msgid":14,"conv":"g:%d","after":0}`, gid)
		if msgs := page.List("msgs"); len(msgs) != 0 || page.Int("from") != 1 {
			t.Fatalf("history joined: a new member syncs %s", page.Raw)
		}
	})

	t.Run("SearchRenamePassword", func(t *testing.T) {
		ts := wiretest.StartServer(t, nil)
		alice, bob := newUser(t, ts, "alice"), newUser(t, ts, "bob")
		newUser(t, ts, "albert")
		befriend(t, ts, alice, bob)
		a, _ := alice.native(t, ts)
		b, _ := bob.native(t, ts)
		// Friends' presence events come whenever the logins land: pass
		// over them.
		call := func(c *wiretest.Conn, req, errno int, format string, args ...any) wiretest.Obj {
			t.Helper()
			rid := c.Req(format, args...)
			return expectPast(c, 11, "req", req, "rid", rid, "errno", errno)
		}
		got := call(a, 68, 0, `{"msgid":68,"name":"al","limit":1}`).List("users")
		if len(got) != 1 || got[0].(map[string]any)["name"] != "albert" {
			t.Fatalf("search page 1: %v", got)
		}
		got = call(a, 68, 0, `{"msgid":68,"name":"al","cursor":"albert","limit":5}`).List("users")
		if len(got) != 1 || got[0].(map[string]any)["name"] != "alice" {
			t.Fatalf("search page 2: %v", got)
		}
		for range 8 {
			call(a, 68, 0, `{"msgid":68,"name":"b"}`)
		}
		call(a, 68, 12, `{"msgid":68,"name":"b"}`) // the 11th in 10 s
		call(a, 69, 0, `{"msgid":69,"name":"alicia"}`)
		expectPast(b, 82, "id", alice.id, "name", "alicia")
		call(a, 6, 0, `{"msgid":6,"to":%d,"msg":"renamed","cmid":"r1"}`, bob.id)
		expectPast(b, 6, "name", "alicia", "msg", "renamed")
		call(b, 69, 5, `{"msgid":69,"name":"alicia"}`)
		call(a, 70, 1, `{"msgid":70,"password":"wrong","newpassword":"pw2"}`)
		call(a, 70, 0, `{"msgid":70,"password":"%s","newpassword":"pw2"}`, alice.pw)
		c := wiretest.Dial(t, ts.TCP, readTimeout)
		c.ClassicLogin(alice.id, "pw2")
	})
}
