package server_test

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"clusterchat/internal/wiretest"
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
	ts := wiretest.StartServer(t, openFriends) // the classic server's one-sided ADD_FRIEND

	a := wiretest.Dial(t, ts.TCP, readTimeout)
	a.Sendf(`{"msgid":4,"name":"alice","password":"pa"}`)
	ack := a.Line()
	aid := wiretest.MustDecode(t, ack).Int("id")
	if want := fmt.Sprintf("{\"errno\":0,\"id\":%d,\"msgid\":5}\n", aid); ack != want || aid <= 0 {
		t.Fatalf("register ack = %q, want %q", ack, want)
	}
	a.Sendf(`{"msgid":4,"name":"bob","password":"pb"}`)
	bid := a.Expect(5, "errno", 0).Int("id")

	// Login with nothing to report: only the four base fields.
	a.Sendf(`{"msgid":1,"id":%d,"password":"pa"}`, aid)
	if got, want := a.Line(), fmt.Sprintf("{\"errno\":0,\"id\":%d,\"msgid\":2,\"name\":\"alice\"}\n", aid); got != want {
		t.Fatalf("empty login ack = %q, want %q", got, want)
	}

	// Friends, a group, and messages for bob while he is offline. Classic
	// requests get no reply on success: the PING reply comes next.
	a.Sendf(`{"msgid":7,"id":%d,"friendid":%d}`, aid, bid)
	a.Sendf(`{"msgid":8,"id":%d,"groupname":"g1","groupdesc":"first group"}`, aid)
	a.Ping()
	gid := groupID(t, ts, aid, "pa", "g1")
	b := wiretest.Dial(t, ts.TCP, readTimeout)
	b.ClassicLogin(bid, "pb")
	b.Sendf(`{"msgid":9,"id":%d,"groupid":%d}`, bid, gid)
	b.Ping()
	b.Sendf(`{"msgid":3,"id":%d}`, bid)
	b.Ping() // the logout is done: what follows is offline for bob
	// Spoofed sender fields are overwritten with the session's user, and
	// the client's free-text time (here with a forged second line) is
	// replaced by the server's.
	a.Sendf(`{"msgid":6,"id":999,"name":"mallory","to":%d,"msg":"hello \"bob\" <&>","time":"2024-01-02 03:04:05\n[2024-01-02 03:04:05] carol(3): hi"}`, bid)
	a.Sendf(`{"msgid":10,"id":999,"name":"mallory","groupid":%d,"msg":"group hi","time":"2024-01-02 03:04:06"}`, gid)
	a.Ping()
	waitAccepted(t, ts, 2)

	b.Sendf(`{"msgid":1,"id":%d,"password":"pb"}`, bid)
	got := b.Line()
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
	o := wiretest.MustDecode(t, got)
	for _, k := range []string{"friends", "groups", "offlinemsg"} {
		for _, s := range o.List(k) {
			str, ok := s.(string)
			if !ok || !json.Valid([]byte(str)) {
				t.Fatalf("%s entry %v is not a JSON string holding JSON", k, s)
			}
		}
	}

	// Live: 1:1 with "to", 1:1 with "toid", group; exact bytes, spoofing
	// ignored, time always the server's.
	a.Sendf(`{"msgid":6,"id":%d,"name":"x","to":%d,"msg":"live","time":"2024-05-06 07:08:09"}`, bid, bid)
	lo := b.Expect(6, "id", aid, "name", "alice", "to", bid, "msg", "live")
	if want := fmt.Sprintf("{\"id\":%d,\"msg\":\"live\",\"msgid\":6,\"name\":\"alice\",\"time\":%q,\"to\":%d}\n", aid, lo.Str("time"), bid); lo.Raw != want || strings.HasPrefix(lo.Str("time"), "2024") {
		t.Fatalf("live chat = %q, want %q with the server's time", lo.Raw, want)
	}
	a.Sendf(`{"msgid":6,"toid":%d,"msg":"via toid"}`, bid)
	lo = b.Expect(6, "id", aid, "name", "alice", "to", bid, "msg", "via toid")
	if !regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$`).MatchString(lo.Str("time")) {
		t.Fatalf("server-filled time %q is not YYYY-MM-DD HH:MM:SS", lo.Str("time"))
	}
	if want := fmt.Sprintf("{\"id\":%d,\"msg\":\"via toid\",\"msgid\":6,\"name\":\"alice\",\"time\":%q,\"to\":%d}\n", aid, lo.Str("time"), bid); lo.Raw != want {
		t.Fatalf("live chat = %q, want %q", lo.Raw, want)
	}
	a.Sendf(`{"msgid":10,"id":%d,"name":"x","groupid":%d,"msg":"g live","time":"2024-05-06 07:08:10"}`, bid, gid)
	lo = b.Expect(10, "groupid", gid, "id", aid, "msg", "g live")
	if want := fmt.Sprintf("{\"groupid\":%d,\"id\":%d,\"msg\":\"g live\",\"msgid\":10,\"name\":\"alice\",\"time\":%q}\n", gid, aid, lo.Str("time")); lo.Raw != want || strings.HasPrefix(lo.Str("time"), "2024") {
		t.Fatalf("live group chat = %q, want %q with the server's time", lo.Raw, want)
	}
	// The sender (classic) got nothing back: no ack, no echo of its own group message.
	a.Ping()
	b.Ping()

	// Failed login and register, classic shapes.
	c := wiretest.Dial(t, ts.TCP, readTimeout)
	c.Sendf(`{"msgid":1,"id":%d,"password":"wrong"}`, aid)
	if got, want := c.Line(), "{\"errmsg\":\"id or password is invalid!\",\"errno\":1,\"msgid\":2}\n"; got != want {
		t.Fatalf("bad login = %q, want %q", got, want)
	}
	c.Sendf(`{"msgid":4,"name":"alice","password":"x"}`)
	if o := c.ExpectErr(4, 5); o.Has("rid") {
		t.Fatalf("classic error reply carries rid: %s", o.Raw)
	}
}

// groupID finds a group's id by name in a native login of a member on a
// second connection, as a classic client learns it from its next login.
func groupID(tb testing.TB, ts *wiretest.Server, id int64, pw, name string) int64 {
	tb.Helper()
	c := wiretest.Dial(tb, ts.TCP, readTimeout)
	defer c.NC.Close()
	rep := c.NativeLogin(id, pw)
	for _, g := range rep.List("groups") {
		g := g.(map[string]any)
		if g["groupname"] == name {
			n, _ := g["id"].(json.Number).Int64()
			return n
		}
	}
	tb.Fatalf("group %q not in %s", name, rep.Raw)
	return 0
}

// TestFraming sends the same three requests (register, login, ping) with
// every separator the reader must accept, coalesced in one write, and also
// split into one write per byte.
func TestFraming(t *testing.T) {
	ts := wiretest.StartServer(t, nil)
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
			c := wiretest.Dial(t, ts.TCP, readTimeout)
			reqs := []string{
				fmt.Sprintf(`{"msgid":4,"name":%q,"password":"p{}\"x"}`, name),
				`{"msgid":18,"rid":5}`, // not logged in yet: errno 8
			}
			all := strings.Join(reqs, tc.sep) + tc.sep
			if tc.split {
				for j := 0; j < len(all); j++ {
					c.Send(all[j : j+1])
				}
			} else {
				c.Send(all)
			}
			id := c.Expect(5, "errno", 0).Int("id")
			c.ExpectErr(18, 8)
			// Login and ping coalesced in one write, no separator at all.
			c.Send(fmt.Sprintf(`{"msgid":1,"proto":2,"rid":1,"id":%d,"password":"p{}\"x"}{"msgid":18,"rid":2}`, id))
			c.Expect(2, "rid", 1, "errno", 0, "id", id, "name", name)
			c.Expect(11, "req", 18, "rid", 2, "errno", 0)
		})
	}
}

// TestMsgIDs sends every request msgid once, classic and native, and checks
// that each gets exactly its one reply (native: with the rid echoed;
// classic: none on success for 3, 6-10) by requiring the PING reply next.
func TestMsgIDs(t *testing.T) {
	ts := wiretest.StartServer(t, openFriends)
	bob := newUser(t, ts, "bob")

	t.Run("classic", func(t *testing.T) {
		c := wiretest.Dial(t, ts.TCP, readTimeout)
		id := c.Register("carol", "pc")
		c.Ping() // not logged in: the reply is errno 8, still the next object
		c.ClassicLogin(id, "pc")
		c.Sendf(`{"msgid":7,"id":%d,"friendid":%d}`, id, bob.id)
		c.Ping()
		c.Sendf(`{"msgid":8,"id":%d,"groupname":"carols","groupdesc":"d"}`, id)
		c.Ping()
		gid := groupID(t, ts, id, "pc", "carols")
		c.Sendf(`{"msgid":9,"id":%d,"groupid":%d}`, id, gid) // already a member: no reply either
		c.Ping()
		c.Sendf(`{"msgid":6,"id":%d,"to":%d,"msg":"m","time":"t"}`, id, bob.id)
		c.Ping()
		c.Sendf(`{"msgid":10,"id":%d,"groupid":%d,"msg":"m","time":"t"}`, id, gid)
		c.Ping()
		c.Sendf(`{"msgid":3,"id":%d}`, id)
		c.Sendf(`{"msgid":18}`)
		c.ExpectErr(18, 8) // logged out: the session ended, the connection did not
	})

	t.Run("native", func(t *testing.T) {
		c := wiretest.Dial(t, ts.TCP, readTimeout)
		rid := c.Req(`{"msgid":4,"proto":2,"name":"dave","password":"pd"}`)
		id := c.Expect(5, "rid", rid, "errno", 0).Int("id")
		c.Ping()
		rep := c.NativeLogin(id, "pd")
		if rep.Str("token") == "" || rep.List("friends") == nil || rep.List("groups") == nil || rep.List("convs") == nil {
			t.Fatalf("native login reply lacks token/friends/groups/convs: %s", rep.Raw)
		}
		if rep.Has("offlinemsg") {
			t.Fatalf("native login carries offlinemsg: %s", rep.Raw)
		}
		c.Ping()
		c.Call(7, `{"msgid":7,"friendid":%d}`, bob.id).Check(t, "id", bob.id, "name", "bob", "state", "offline")
		c.Ping()
		gid := c.Call(8, `{"msgid":8,"groupname":"daves","groupdesc":"d"}`).Int("groupid")
		c.Ping()
		c.Call(9, `{"msgid":9,"groupid":%d}`, gid).Check(t, "groupid", gid, "joined", false)
		c.Ping()
		ack := c.Call(6, `{"msgid":6,"to":%d,"msg":"m1","cmid":"c1"}`, bob.id)
		conv := ack.Str("conv")
		ack.Check(t, "seq", 1)
		c.Ping()
		c.Call(10, `{"msgid":10,"groupid":%d,"msg":"g1","cmid":"c2"}`, gid).Check(t, "conv", fmt.Sprintf("g:%d", gid), "seq", 1)
		c.Ping()
		c.Call(14, `{"msgid":14,"conv":%q,"after":0}`, conv).Check(t, "conv", conv, "last", 1)
		c.Ping()
		c.Call(15, `{"msgid":15,"to":%d,"before":0}`, bob.id).Check(t, "conv", conv, "last", 1)
		c.Ping()
		c.Call(16, `{"msgid":16,"conv":%q,"seq":1}`, conv)
		c.Ping()
		c.Call(18, `{"msgid":18}`)
		c.Call(3, `{"msgid":3}`)
		c.Sendf(`{"msgid":18,"rid":77}`)
		c.Expect(11, "req", 18, "errno", 8)
		// Logout revoked the login's token.
		rid = c.Req(`{"msgid":1,"proto":2,"token":%q}`, rep.Str("token"))
		c.Expect(2, "rid", rid, "errno", 1)
		c.NativeLogin(id, "pd")
		c.Ping()
	})
}

// TestSessions: two sessions of one user both receive; logout then login as
// another user on the same connection; -max-sessions 1.
func TestSessions(t *testing.T) {
	ts := wiretest.StartServer(t, nil)
	alice, bob, carol := newUser(t, ts, "alice"), newUser(t, ts, "bob"), newUser(t, ts, "carol")

	b1, _ := bob.classic(t, ts)
	b2, _ := bob.native(t, ts)
	a, _ := alice.classic(t, ts)
	a.Sendf(`{"msgid":6,"to":%d,"msg":"to both"}`, bob.id)
	b1.Expect(6, "id", alice.id, "msg", "to both")
	b2.Expect(6, "id", alice.id, "msg", "to both", "seq", 1)

	// The classic client logs out and logs in as someone else on the same
	// connection; messages then go to the new user only.
	a.Sendf(`{"msgid":3,"id":%d}`, alice.id)
	a.ClassicLogin(carol.id, carol.pw)
	b2.Call(6, `{"msgid":6,"to":%d,"msg":"to alice","cmid":"x1"}`, alice.id)
	b2.Call(6, `{"msgid":6,"to":%d,"msg":"to carol","cmid":"x2"}`, carol.id)
	a.Expect(6, "id", bob.id, "to", carol.id, "msg", "to carol")
	// bob's native session sent "to carol"; his classic session hears nothing of it.
	b1.Ping()
	a.Ping()

	t.Run("max-sessions", func(t *testing.T) {
		ts := wiretest.StartServer(t, func(c *server.Config) { c.MaxSessions = 1 })
		u := newUser(t, ts, "solo")
		c1, _ := u.classic(t, ts)
		c2 := wiretest.Dial(t, ts.TCP, readTimeout)
		c2.Sendf(`{"msgid":1,"id":%d,"password":%q}`, u.id, u.pw)
		if got, want := c2.Line(), "{\"errmsg\":\"this account is using, input another!\",\"errno\":2,\"msgid\":2}\n"; got != want {
			t.Fatalf("second login = %q, want %q", got, want)
		}
		c2.Ping() // still connected, still not logged in
		c1.Sendf(`{"msgid":3}`)
		c1.Ping()
		c2.ClassicLogin(u.id, u.pw)
	})
}
