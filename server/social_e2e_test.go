package server_test

import (
	"fmt"
	"testing"

	"clusterchat/server"
)

// reqErr sends a native request and expects its error reply with errno.
func (c *client) reqErr(req, errno int, format string, args ...any) obj {
	c.tb.Helper()
	rid := c.req(format, args...)
	return c.expect(11, "req", req, "rid", rid, "errno", errno)
}

// expectPast reads objects, passing over PRESENCE events (whose timing
// against the logins of a test is not fixed), until the next other one,
// which must have msgid and kv.
func (c *client) expectPast(msgid int, kv ...any) obj {
	c.tb.Helper()
	for {
		if o := c.next(); o.int("msgid") != 12 {
			o.check(c.tb, append([]any{"msgid", msgid}, kv...)...)
			return o
		}
	}
}

// friendsIn returns the friend ids of a classic login reply.
func friendsIn(tb testing.TB, rep obj) []int64 {
	tb.Helper()
	var ids []int64
	for _, f := range rep.list("friends") {
		ids = append(ids, decodeObj(tb, f.(string)).int("id"))
	}
	return ids
}

// TestClassicFriendsByConsent: with the default -friends consent, one
// classic ADD_FRIEND is only a request (no friend, no presence); when the
// other adds back, both are friends with live presence, in their logins.
func TestClassicFriendsByConsent(t *testing.T) {
	ts := startServer(t, nil)
	alice, bob := newUser(t, ts, "alice"), newUser(t, ts, "bob")
	a, _ := alice.classic(t, ts)
	a.sendf(`{"msgid":7,"id":%d,"friendid":%d}`, alice.id, bob.id)
	a.ping()
	b, rep := bob.classic(t, ts)
	if ids := friendsIn(t, rep); len(ids) != 0 {
		t.Fatalf("bob's friends after alice's add alone: %v", ids)
	}
	a.sendf(`{"msgid":7,"id":%d,"friendid":%d}`, alice.id, bob.id) // again: already asked
	a.expectErr(7, 5)
	b.sendf(`{"msgid":7,"id":%d,"friendid":%d}`, bob.id, alice.id)
	b.ping()
	_, rep = alice.classic(t, ts)
	if ids := friendsIn(t, rep); len(ids) != 1 || ids[0] != bob.id {
		t.Fatalf("alice's friends after both added: %v (%s)", ids, rep.raw)
	}
}

// TestSocialRules: the rules a single server enforces, one native client
// per user: DMs friends-only by flag, permissions of group roles, history
// visibility, search limits, renames and deletion.
func TestSocialRules(t *testing.T) {
	t.Run("DMFriendsOnly", func(t *testing.T) {
		ts := startServer(t, func(c *server.Config) { c.DM = server.DMFriends })
		alice, bob := newUser(t, ts, "alice"), newUser(t, ts, "bob")
		a, _ := alice.native(t, ts)
		b, _ := bob.native(t, ts)
		a.reqErr(6, 6, `{"msgid":6,"to":%d,"msg":"hi","cmid":"x1"}`, bob.id).check(t, "errmsg", "refused")
		a.call(60, `{"msgid":60,"id":%d}`, bob.id).check(t, "friend", false)
		b.expect(80, "event", "request", "id", alice.id)
		b.call(61, `{"msgid":61,"id":%d}`, alice.id).check(t, "friend", true, "state", "online")
		a.expect(13, "id", bob.id, "state", "online")
		a.call(6, `{"msgid":6,"to":%d,"msg":"now we talk","cmid":"x2"}`, bob.id)
		b.expect(6, "msg", "now we talk")
		// Ending the friendship ends the DMs again (the cache hears of it).
		b.call(64, `{"msgid":64,"id":%d}`, alice.id)
		a.expect(80, "event", "removed", "id", bob.id)
		a.reqErr(6, 6, `{"msgid":6,"to":%d,"msg":"still?","cmid":"x3"}`, bob.id)
	})

	t.Run("GroupRoles", func(t *testing.T) {
		ts := startServer(t, nil)
		owner, adm, mem, out := newUser(t, ts, "owner"), newUser(t, ts, "adm"), newUser(t, ts, "mem"), newUser(t, ts, "out")
		o, _ := owner.native(t, ts)
		gid := o.call(8, `{"msgid":8,"groupname":"club","groupdesc":"d","private":true}`).int("groupid")
		for _, u := range []user{adm, mem} {
			o.call(72, `{"msgid":72,"groupid":%d,"id":%d}`, gid, u.id)
		}
		ad, _ := adm.native(t, ts)
		m, _ := mem.native(t, ts)
		x, _ := out.native(t, ts)
		// The invitation lets them in; the members hear each join (awaited
		// before the next one, whose member must not hear the first).
		ad.call(9, `{"msgid":9,"groupid":%d}`, gid).check(t, "joined", true)
		o.expect(19, "groupid", gid, "id", adm.id)
		m.call(9, `{"msgid":9,"groupid":%d}`, gid).check(t, "joined", true)
		o.expect(19, "groupid", gid, "id", mem.id)
		ad.expect(19, "groupid", gid, "id", mem.id)
		o.call(77, `{"msgid":77,"groupid":%d,"id":%d,"role":"admin"}`, gid, adm.id)
		for _, c := range []*client{ad, m} {
			c.expect(81, "event", "role", "id", adm.id, "role", "admin")
		}
		errs := []struct {
			name      string
			c         *client
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
			if o := tc.c.reqErr(tc.req, tc.code, "%s", tc.body); o.str("errmsg") == "" {
				t.Errorf("%s: no error text", tc.name)
			}
		}
		// An admin removes a normal member; the creator sees roles.
		ad.call(75, `{"msgid":75,"groupid":%d,"id":%d}`, gid, mem.id)
		m.expect(81, "event", "removed", "groupid", gid, "id", mem.id)
		o.expect(81, "event", "removed", "id", mem.id)
		info := o.call(71, `{"msgid":71,"groupid":%d}`, gid)
		roles := map[int64]string{}
		for _, u := range info.list("users") {
			mm := u.(map[string]any)
			id, _ := mm["id"].(interface{ Int64() (int64, error) }).Int64()
			roles[id] = mm["role"].(string)
		}
		if len(roles) != 2 || roles[owner.id] != "creator" || roles[adm.id] != "admin" {
			t.Fatalf("roles after the removal: %v", roles)
		}
		// The creator deletes: members hear it, the group is gone.
		o.call(79, `{"msgid":79,"groupid":%d}`, gid)
		ad.expect(81, "event", "deleted", "groupid", gid)
		o.reqErr(71, 4, `{"msgid":71,"groupid":%d}`, gid)
	})

	t.Run("HistorySetting", func(t *testing.T) {
		ts := startServer(t, nil)
		owner, late := newUser(t, ts, "owner"), newUser(t, ts, "late")
		o, _ := owner.native(t, ts)
		gid := o.call(8, `{"msgid":8,"groupname":"open book","groupdesc":"","history":"all"}`).int("groupid")
		o.call(10, `{"msgid":10,"groupid":%d,"msg":"before","cmid":"h1"}`, gid)
		l, _ := late.native(t, ts)
		l.call(9, `{"msgid":9,"groupid":%d}`, gid)
		o.expect(19, "id", late.id)
		page := l.call(14, `{"msgid":14,"conv":"g:%d","after":0}`, gid)
		if msgs := page.list("msgs"); len(msgs) != 1 || page.has("from") {
			t.Fatalf("history all: a new member syncs %s", page.raw)
		}
		// Switched to "from the join on": what came before is hidden, and
		// the page says where the view starts.
		o.call(78, `{"msgid":78,"groupid":%d,"groupname":"open book","groupdesc":"","history":"joined"}`, gid)
		l.expect(81, "event", "updated", "history", "joined")
		page = l.call(14, `{"msgid":14,"conv":"g:%d","after":0}`, gid)
		if msgs := page.list("msgs"); len(msgs) != 0 || page.int("from") != 1 {
			t.Fatalf("history joined: a new member syncs %s", page.raw)
		}
	})

	t.Run("SearchRenamePassword", func(t *testing.T) {
		ts := startServer(t, nil)
		alice, bob := newUser(t, ts, "alice"), newUser(t, ts, "bob")
		newUser(t, ts, "albert")
		befriend(t, ts, alice, bob)
		a, _ := alice.native(t, ts)
		b, _ := bob.native(t, ts)
		// Friends' presence events come whenever the logins land: pass
		// over them.
		call := func(c *client, req, errno int, format string, args ...any) obj {
			t.Helper()
			rid := c.req(format, args...)
			return c.expectPast(11, "req", req, "rid", rid, "errno", errno)
		}
		got := call(a, 68, 0, `{"msgid":68,"name":"al","limit":1}`).list("users")
		if len(got) != 1 || got[0].(map[string]any)["name"] != "albert" {
			t.Fatalf("search page 1: %v", got)
		}
		got = call(a, 68, 0, `{"msgid":68,"name":"al","cursor":"albert","limit":5}`).list("users")
		if len(got) != 1 || got[0].(map[string]any)["name"] != "alice" {
			t.Fatalf("search page 2: %v", got)
		}
		for range 8 {
			call(a, 68, 0, `{"msgid":68,"name":"b"}`)
		}
		call(a, 68, 12, `{"msgid":68,"name":"b"}`) // the 11th in 10 s
		call(a, 69, 0, `{"msgid":69,"name":"alicia"}`)
		b.expectPast(82, "id", alice.id, "name", "alicia")
		call(a, 6, 0, `{"msgid":6,"to":%d,"msg":"renamed","cmid":"r1"}`, bob.id)
		b.expectPast(6, "name", "alicia", "msg", "renamed")
		call(b, 69, 5, `{"msgid":69,"name":"alicia"}`)
		call(a, 70, 1, `{"msgid":70,"password":"wrong","newpassword":"pw2"}`)
		call(a, 70, 0, `{"msgid":70,"password":"%s","newpassword":"pw2"}`, alice.pw)
		c := dial(t, ts.addr)
		c.classicLogin(alice.id, "pw2")
	})
}
