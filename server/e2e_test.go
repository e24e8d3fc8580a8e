package server_test

import (
	"encoding/json"
	"fmt"
	"regexp"
	"testing"
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
	ts := startServer(t, nil)

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
	// Spoofed sender fields are overwritten with the session's user.
	a.sendf(`{"msgid":6,"id":999,"name":"mallory","to":%d,"msg":"hello \"bob\" <&>","time":"2024-01-02 03:04:05"}`, bid)
	a.sendf(`{"msgid":10,"id":999,"name":"mallory","groupid":%d,"msg":"group hi","time":"2024-01-02 03:04:06"}`, gid)
	a.ping()

	b.sendf(`{"msgid":1,"id":%d,"password":"pb"}`, bid)
	got := b.line()
	friend := jsonStr(t, map[string]any{"id": aid, "name": "alice", "state": "online"})
	users := []string{
		jsonStr(t, map[string]any{"id": aid, "name": "alice", "role": "creator", "state": "online"}),
		jsonStr(t, map[string]any{"id": bid, "name": "bob", "role": "normal", "state": "online"}),
	}
	group := jsonStr(t, map[string]any{"id": gid, "groupname": "g1", "groupdesc": "first group", "users": users})
	off1 := fmt.Sprintf(`{"id":%d,"msg":"hello \"bob\" <&>","msgid":6,"name":"alice","time":"2024-01-02 03:04:05","to":%d}`, aid, bid)
	off2 := fmt.Sprintf(`{"groupid":%d,"id":%d,"msg":"group hi","msgid":10,"name":"alice","time":"2024-01-02 03:04:06"}`, gid, aid)
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
	// ignored, time kept when sent and filled when not.
	a.sendf(`{"msgid":6,"id":%d,"name":"x","to":%d,"msg":"live","time":"2024-05-06 07:08:09"}`, bid, bid)
	if got, want := b.line(), fmt.Sprintf("{\"id\":%d,\"msg\":\"live\",\"msgid\":6,\"name\":\"alice\",\"time\":\"2024-05-06 07:08:09\",\"to\":%d}\n", aid, bid); got != want {
		t.Fatalf("live chat = %q, want %q", got, want)
	}
	a.sendf(`{"msgid":6,"toid":%d,"msg":"via toid"}`, bid)
	lo := b.expect(6, "id", aid, "name", "alice", "to", bid, "msg", "via toid")
	if !regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$`).MatchString(lo.str("time")) {
		t.Fatalf("server-filled time %q is not YYYY-MM-DD HH:MM:SS", lo.str("time"))
	}
	if want := fmt.Sprintf("{\"id\":%d,\"msg\":\"via toid\",\"msgid\":6,\"name\":\"alice\",\"time\":%q,\"to\":%d}\n", aid, lo.str("time"), bid); lo.raw != want {
		t.Fatalf("live chat = %q, want %q", lo.raw, want)
	}
	a.sendf(`{"msgid":10,"id":%d,"name":"x","groupid":%d,"msg":"g live","time":"2024-05-06 07:08:10"}`, bid, gid)
	if got, want := b.line(), fmt.Sprintf("{\"groupid\":%d,\"id\":%d,\"msg\":\"g live\",\"msgid\":10,\"name\":\"alice\",\"time\":\"2024-05-06 07:08:10\"}\n", gid, aid); got != want {
		t.Fatalf("live group chat = %q, want %q", got, want)
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
