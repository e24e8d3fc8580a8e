package server_test

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"clusterchat/server"
)

// jsonStr encodes v compactly as encoding/json does (map keys sorted), for
// building the classic nested-string fields a test expects.
func jsonStr(tb testing.TB, v any) string {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// TestClassicWireBytes checks the classic replies byte for byte, as the
// classic client's parser sees them: compact, keys sorted, one object per
// line ending in "\n", nested values as arrays of JSON strings.
func TestClassicWireBytes(t *testing.T) {
	ts := startServer(t, openFriends) // the classic server's one-sided ADD_FRIEND

	a := dial(t, ts.addr)
	a.sendf(`{"msgid":4,"name":"alice","password":"pa"}`)
	ack := a.line()
	aid := decodeObj(t, ack).int("id")
	if want := fmt.Sprintf("{\"errno\":0,\"id\":%d,\"msgid\":5}\n", aid); ack != want || aid <= 0 {
		t.Fatalf("register ack = %q, want %q", ack, want)
	}
	a.sendf(`{"msgid":4,"name":"bob","password":"pb"}`)
	bid := a.expect(5, "errno", 0).int("id")

	// Login with nothing to report: only the four base fields.
	a.sendf(`{"msgid":1,"id":%d,"password":"pa"}`, aid)
	if got, want := a.line(), fmt.Sprintf("{\"errno\":0,\"id\":%d,\"msgid\":2,\"name\":\"alice\"}\n", aid); got != want {
		t.Fatalf("empty login ack = %q, want %q", got, want)
	}

	// Friends, a group, and messages for bob while he is offline. Classic
	// requests get no reply on success: the PING reply comes next.
	a.sendf(`{"msgid":7,"id":%d,"friendid":%d}`, aid, bid)
	a.sendf(`{"msgid":8,"id":%d,"groupname":"g1","groupdesc":"first group"}`, aid)
	a.ping()
	gid := ts.groupID(t, aid, "pa", "g1")
	b := dial(t, ts.addr)
	b.classicLogin(bid, "pb")
	b.sendf(`{"msgid":9,"id":%d,"groupid":%d}`, bid, gid)
	b.ping()
	b.sendf(`{"msgid":3,"id":%d}`, bid)
	b.ping() // the logout is done: what follows is offline for bob
	// Spoofed sender fields are overwritten with the session's user, and
	// the client's free-text time (here with a forged second line) is
	// replaced by the server's.
	a.sendf(`{"msgid":6,"id":999,"name":"mallory","to":%d,"msg":"hello \"bob\" <&>","time":"2024-01-02 03:04:05\n[2024-01-02 03:04:05] carol(3): hi"}`, bid)
	a.sendf(`{"msgid":10,"id":999,"name":"mallory","groupid":%d,"msg":"group hi","time":"2024-01-02 03:04:06"}`, gid)
	a.ping()
	ts.waitAccepted(t, 2)

	b.sendf(`{"msgid":1,"id":%d,"password":"pb"}`, bid)
	got := b.line()
	friend := jsonStr(t, map[string]any{"id": aid, "name": "alice", "state": "online"})
	users := []string{
		jsonStr(t, map[string]any{"id": aid, "name": "alice", "role": "creator", "state": "online"}),
		jsonStr(t, map[string]any{"id": bid, "name": "bob", "role": "normal", "state": "online"}),
	}
	group := jsonStr(t, map[string]any{"id": gid, "groupname": "g1", "groupdesc": "first group", "users": users})
	off1 := fmt.Sprintf(`{"id":%d,"msg":"hello \"bob\" <&>","msgid":6,"name":"alice","time":"TIME","to":%d}`, aid, bid)
	off2 := fmt.Sprintf(`{"groupid":%d,"id":%d,"msg":"group hi","msgid":10,"name":"alice","time":"TIME"}`, gid, aid)
	// The stamps are the server's clock in the classic layout: checked,
	// then set aside for the byte comparison.
	stamp := regexp.MustCompile(`(\\"time\\":\\")([^\\]*)(\\")`)
	for _, m := range stamp.FindAllStringSubmatch(got, -1) {
		if !regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$`).MatchString(m[2]) || strings.HasPrefix(m[2], "2024") {
			t.Fatalf("offline message time %q is not the server's YYYY-MM-DD HH:MM:SS", m[2])
		}
	}
	got = stamp.ReplaceAllString(got, "${1}TIME${3}")
	want := fmt.Sprintf(`{"errno":0,"friends":[%s],"groups":[%s],"id":%d,"msgid":2,"name":"bob","offlinemsg":[%s,%s]}`+"\n",
		jsonStr(t, friend), jsonStr(t, group), bid, jsonStr(t, off1), jsonStr(t, off2))
	if got != want {
		t.Fatalf("login ack:\n got %q\nwant %q", got, want)
	}
	// Every nested string is itself one JSON object, as the client parses it.
	o := decodeObj(t, got)
	for _, k := range []string{"friends", "groups", "offlinemsg"} {
		for _, s := range o.list(k) {
			str, ok := s.(string)
			if !ok || !json.Valid([]byte(str)) {
				t.Fatalf("%s entry %v is not a JSON string holding JSON", k, s)
			}
		}
	}

	// Live: 1:1 with "to", 1:1 with "toid", group; exact bytes, spoofing
	// ignored, time always the server's.
	a.sendf(`{"msgid":6,"id":%d,"name":"x","to":%d,"msg":"live","time":"2024-05-06 07:08:09"}`, bid, bid)
	lo := b.expect(6, "id", aid, "name", "alice", "to", bid, "msg", "live")
	if want := fmt.Sprintf("{\"id\":%d,\"msg\":\"live\",\"msgid\":6,\"name\":\"alice\",\"time\":%q,\"to\":%d}\n", aid, lo.str("time"), bid); lo.raw != want || strings.HasPrefix(lo.str("time"), "2024") {
		t.Fatalf("live chat = %q, want %q with the server's time", lo.raw, want)
	}
	a.sendf(`{"msgid":6,"toid":%d,"msg":"via toid"}`, bid)
	lo = b.expect(6, "id", aid, "name", "alice", "to", bid, "msg", "via toid")
	if !regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$`).MatchString(lo.str("time")) {
		t.Fatalf("server-filled time %q is not YYYY-MM-DD HH:MM:SS", lo.str("time"))
	}
	if want := fmt.Sprintf("{\"id\":%d,\"msg\":\"via toid\",\"msgid\":6,\"name\":\"alice\",\"time\":%q,\"to\":%d}\n", aid, lo.str("time"), bid); lo.raw != want {
		t.Fatalf("live chat = %q, want %q", lo.raw, want)
	}
	a.sendf(`{"msgid":10,"id":%d,"name":"x","groupid":%d,"msg":"g live","time":"2024-05-06 07:08:10"}`, bid, gid)
	lo = b.expect(10, "groupid", gid, "id", aid, "msg", "g live")
	if want := fmt.Sprintf("{\"groupid\":%d,\"id\":%d,\"msg\":\"g live\",\"msgid\":10,\"name\":\"alice\",\"time\":%q}\n", gid, aid, lo.str("time")); lo.raw != want || strings.HasPrefix(lo.str("time"), "2024") {
		t.Fatalf("live group chat = %q, want %q with the server's time", lo.raw, want)
	}
	// The sender (classic) got nothing back: no ack, no echo of its own group message.
	a.ping()
	b.ping()

	// Failed login and register, classic shapes.
	c := dial(t, ts.addr)
	c.sendf(`{"msgid":1,"id":%d,"password":"wrong"}`, aid)
	if got, want := c.line(), "{\"errmsg\":\"id or password is invalid!\",\"errno\":1,\"msgid\":2}\n"; got != want {
		t.Fatalf("bad login = %q, want %q", got, want)
	}
	c.sendf(`{"msgid":4,"name":"alice","password":"x"}`)
	if o := c.expectErr(4, 5); o.has("rid") {
		t.Fatalf("classic error reply carries rid: %s", o.raw)
	}
}

// groupID finds a group's id by name in a native login of a member on a
// second connection, as a classic client learns it from its next login.
func (ts *testServer) groupID(tb testing.TB, id int64, pw, name string) int64 {
	tb.Helper()
	c := dial(tb, ts.addr)
	defer c.nc.Close()
	rep := c.nativeLogin(id, pw)
	for _, g := range rep.list("groups") {
		g := g.(map[string]any)
		if g["groupname"] == name {
			n, _ := g["id"].(json.Number).Int64()
			return n
		}
	}
	tb.Fatalf("group %q not in %s", name, rep.raw)
	return 0
}

// TestFraming sends the same three requests (register, login, ping) with
// every separator the reader must accept, coalesced in one write, and also
// split into one write per byte.
func TestFraming(t *testing.T) {
	ts := startServer(t, nil)
	for i, tc := range []struct {
		name, sep string
		split     bool
	}{
		{"nul", "\x00", false},
		{"newline", "\n", false},
		{"crlf-and-spaces", " \r\n\t ", false},
		{"none", "", false},
		{"nul-split-bytewise", "\x00", true},
		{"none-split-bytewise", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := fmt.Sprintf("framing%d", i)
			c := dial(t, ts.addr)
			reqs := []string{
				fmt.Sprintf(`{"msgid":4,"name":%q,"password":"p{}\"x"}`, name),
				`{"msgid":18,"rid":5}`, // not logged in yet: errno 8
			}
			all := strings.Join(reqs, tc.sep) + tc.sep
			if tc.split {
				for j := 0; j < len(all); j++ {
					c.send(all[j : j+1])
				}
			} else {
				c.send(all)
			}
			id := c.expect(5, "errno", 0).int("id")
			c.expectErr(18, 8)
			// Login and ping coalesced in one write, no separator at all.
			c.send(fmt.Sprintf(`{"msgid":1,"proto":2,"rid":1,"id":%d,"password":"p{}\"x"}{"msgid":18,"rid":2}`, id))
			c.expect(2, "rid", 1, "errno", 0, "id", id, "name", name)
			c.expect(11, "req", 18, "rid", 2, "errno", 0)
		})
	}
}

// TestMsgIDs sends every request msgid once, classic and native, and checks
// that each gets exactly its one reply (native: with the rid echoed;
// classic: none on success for 3, 6-10) by requiring the PING reply next.
func TestMsgIDs(t *testing.T) {
	ts := startServer(t, openFriends)
	bob := newUser(t, ts, "bob")

	t.Run("classic", func(t *testing.T) {
		c := dial(t, ts.addr)
		id := c.register("carol", "pc")
		c.ping() // not logged in: the reply is errno 8, still the next object
		c.classicLogin(id, "pc")
		c.sendf(`{"msgid":7,"id":%d,"friendid":%d}`, id, bob.id)
		c.ping()
		c.sendf(`{"msgid":8,"id":%d,"groupname":"carols","groupdesc":"d"}`, id)
		c.ping()
		gid := ts.groupID(t, id, "pc", "carols")
		c.sendf(`{"msgid":9,"id":%d,"groupid":%d}`, id, gid) // already a member: no reply either
		c.ping()
		c.sendf(`{"msgid":6,"id":%d,"to":%d,"msg":"m","time":"t"}`, id, bob.id)
		c.ping()
		c.sendf(`{"msgid":10,"id":%d,"groupid":%d,"msg":"m","time":"t"}`, id, gid)
		c.ping()
		c.sendf(`{"msgid":3,"id":%d}`, id)
		c.sendf(`{"msgid":18}`)
		c.expectErr(18, 8) // logged out: the session ended, the connection did not
	})

	t.Run("native", func(t *testing.T) {
		c := dial(t, ts.addr)
		rid := c.req(`{"msgid":4,"proto":2,"name":"dave","password":"pd"}`)
		id := c.expect(5, "rid", rid, "errno", 0).int("id")
		c.ping()
		rep := c.nativeLogin(id, "pd")
		if rep.str("token") == "" || rep.list("friends") == nil || rep.list("groups") == nil || rep.list("convs") == nil {
			t.Fatalf("native login reply lacks token/friends/groups/convs: %s", rep.raw)
		}
		if rep.has("offlinemsg") {
			t.Fatalf("native login carries offlinemsg: %s", rep.raw)
		}
		c.ping()
		c.call(7, `{"msgid":7,"friendid":%d}`, bob.id).check(t, "id", bob.id, "name", "bob", "state", "offline")
		c.ping()
		gid := c.call(8, `{"msgid":8,"groupname":"daves","groupdesc":"d"}`).int("groupid")
		c.ping()
		c.call(9, `{"msgid":9,"groupid":%d}`, gid).check(t, "groupid", gid, "joined", false)
		c.ping()
		ack := c.call(6, `{"msgid":6,"to":%d,"msg":"m1","cmid":"c1"}`, bob.id)
		conv := ack.str("conv")
		ack.check(t, "seq", 1)
		c.ping()
		c.call(10, `{"msgid":10,"groupid":%d,"msg":"g1","cmid":"c2"}`, gid).check(t, "conv", fmt.Sprintf("g:%d", gid), "seq", 1)
		c.ping()
		c.call(14, `{"msgid":14,"conv":%q,"after":0}`, conv).check(t, "conv", conv, "last", 1)
		c.ping()
		c.call(15, `{"msgid":15,"to":%d,"before":0}`, bob.id).check(t, "conv", conv, "last", 1)
		c.ping()
		c.call(16, `{"msgid":16,"conv":%q,"seq":1}`, conv)
		c.ping()
		c.call(18, `{"msgid":18}`)
		c.call(3, `{"msgid":3}`)
		c.sendf(`{"msgid":18,"rid":77}`)
		c.expect(11, "req", 18, "errno", 8)
		// Logout revoked the login's token.
		rid = c.req(`{"msgid":1,"proto":2,"token":%q}`, rep.str("token"))
		c.expect(2, "rid", rid, "errno", 1)
		c.nativeLogin(id, "pd")
		c.ping()
	})
}

// TestSessions: two sessions of one user both receive; logout then login as
// another user on the same connection; -max-sessions 1.
func TestSessions(t *testing.T) {
	ts := startServer(t, nil)
	alice, bob, carol := newUser(t, ts, "alice"), newUser(t, ts, "bob"), newUser(t, ts, "carol")

	b1, _ := bob.classic(t, ts)
	b2, _ := bob.native(t, ts)
	a, _ := alice.classic(t, ts)
	a.sendf(`{"msgid":6,"to":%d,"msg":"to both"}`, bob.id)
	b1.expect(6, "id", alice.id, "msg", "to both")
	b2.expect(6, "id", alice.id, "msg", "to both", "seq", 1)

	// The classic client logs out and logs in as someone else on the same
	// connection; messages then go to the new user only.
	a.sendf(`{"msgid":3,"id":%d}`, alice.id)
	a.classicLogin(carol.id, carol.pw)
	b2.call(6, `{"msgid":6,"to":%d,"msg":"to alice","cmid":"x1"}`, alice.id)
	b2.call(6, `{"msgid":6,"to":%d,"msg":"to carol","cmid":"x2"}`, carol.id)
	a.expect(6, "id", bob.id, "to", carol.id, "msg", "to carol")
	// bob's native session sent "to carol"; his classic session hears nothing of it.
	b1.ping()
	a.ping()

	t.Run("max-sessions", func(t *testing.T) {
		ts := startServer(t, func(c *server.Config) { c.MaxSessions = 1 })
		u := newUser(t, ts, "solo")
		c1, _ := u.classic(t, ts)
		c2 := dial(t, ts.addr)
		c2.sendf(`{"msgid":1,"id":%d,"password":%q}`, u.id, u.pw)
		if got, want := c2.line(), "{\"errmsg\":\"this account is using, input another!\",\"errno\":2,\"msgid\":2}\n"; got != want {
			t.Fatalf("second login = %q, want %q", got, want)
		}
		c2.ping() // still connected, still not logged in
		c1.sendf(`{"msgid":3}`)
		c1.ping()
		c2.classicLogin(u.id, u.pw)
	})
}
