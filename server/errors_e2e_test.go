package server_test

import (
	"fmt"
	"strings"
	"testing"

	"clusterchat/internal/wiretest"
)

// TestErrors sends every recoverable bad request to a logged-in session,
// classic and native, and checks the error reply (errno, req, rid), that
// the connection goes on (the next request works) and that another session
// is undisturbed.
func TestErrors(t *testing.T) {
	ts := wiretest.StartServer(t, nil)
	alice, bob, eve := newUser(t, ts, "alice"), newUser(t, ts, "bob"), newUser(t, ts, "eve")
	befriend(t, ts, alice, bob)
	own := mkGroup(t, ts, alice, "alices")
	closed := mkGroup(t, ts, eve, "eves")
	const missing = 999999
	long := strings.Repeat("n", 51)

	// A bystander: eve (not alice's friend, so no presence events), native,
	// must see none of this and keep working.
	by, _ := eve.native(t, ts)

	// {rid} is replaced by a "rid" member in native runs (empty in classic);
	// ridKept says whether the server can still read the rid (not for
	// non-objects). Malformed JSON closes the connection: TestFatalFrames.
	cases := []struct {
		name    string
		frame   string
		req     int
		errno   int
		ridKept bool
	}{
		{"array", `[1,2,3]`, 0, 3, false},
		{"string", `"hello"`, 0, 3, false},
		{"number", `42`, 0, 3, false},
		{"true", `true`, 0, 3, false},
		{"null", `null`, 0, 3, false},
		{"empty object", `{{rid}}`, 0, 3, true},
		{"unknown msgid", `{{rid},"msgid":99}`, 99, 11, true},
		{"server msgid as request", `{{rid},"msgid":2}`, 2, 11, true},
		{"negative msgid", `{{rid},"msgid":-1}`, -1, 11, true},
		{"msgid as string", `{{rid},"msgid":"6"}`, 0, 3, true},
		{"msgid huge", `{{rid},"msgid":99999999999999999999}`, 0, 3, true},
		{"to as string", fmt.Sprintf(`{{rid},"msgid":6,"to":"%d","msg":"x"}`, bob.id), 6, 3, true},
		{"to missing", `{{rid},"msgid":6,"msg":"x"}`, 6, 3, true},
		{"to 1e30", `{{rid},"msgid":6,"to":1e30,"msg":"x"}`, 6, 3, true},
		{"to 99999999999999999999", `{{rid},"msgid":6,"to":99999999999999999999,"msg":"x"}`, 6, 3, true},
		{"to negative", `{{rid},"msgid":6,"to":-5,"msg":"x"}`, 6, 3, true},
		{"to fraction", `{{rid},"msgid":6,"to":1.5,"msg":"x"}`, 6, 3, true},
		{"toid missing user", fmt.Sprintf(`{{rid},"msgid":6,"toid":%d,"msg":"x"}`, missing), 6, 4, true},
		{"to missing user", fmt.Sprintf(`{{rid},"msgid":6,"to":%d,"msg":"x"}`, missing), 6, 4, true},
		{"to self", fmt.Sprintf(`{{rid},"msgid":6,"to":%d,"msg":"x"}`, alice.id), 6, 3, true},
		{"msg empty", fmt.Sprintf(`{{rid},"msgid":6,"to":%d,"msg":""}`, bob.id), 6, 3, true},
		{"msg number", fmt.Sprintf(`{{rid},"msgid":6,"to":%d,"msg":5}`, bob.id), 6, 3, true},
		{"msg over 4 KiB", fmt.Sprintf(`{{rid},"msgid":6,"to":%d,"msg":"%s"}`, bob.id, strings.Repeat("x", 4097)), 6, 7, true},
		{"cmid over 64", fmt.Sprintf(`{{rid},"msgid":6,"to":%d,"msg":"x","cmid":"%s"}`, bob.id, strings.Repeat("c", 65)), 6, 3, true},
		{"group missing", fmt.Sprintf(`{{rid},"msgid":10,"groupid":%d,"msg":"x"}`, missing), 10, 4, true},
		{"group not member", fmt.Sprintf(`{{rid},"msgid":10,"groupid":%d,"msg":"x"}`, closed), 10, 6, true},
		{"groupid missing", `{{rid},"msgid":10,"msg":"x"}`, 10, 3, true},
		{"groupid 1e30", `{{rid},"msgid":10,"groupid":1e30,"msg":"x"}`, 10, 3, true},
		{"group msg over 4 KiB", fmt.Sprintf(`{{rid},"msgid":10,"groupid":%d,"msg":"%s"}`, own, strings.Repeat("x", 4097)), 10, 7, true},
		{"friend missing user", fmt.Sprintf(`{{rid},"msgid":7,"friendid":%d}`, missing), 7, 4, true},
		{"friend self", fmt.Sprintf(`{{rid},"msgid":7,"friendid":%d}`, alice.id), 7, 3, true},
		{"friend existing", fmt.Sprintf(`{{rid},"msgid":7,"friendid":%d}`, bob.id), 7, 5, true},
		{"friendid missing", `{{rid},"msgid":7}`, 7, 3, true},
		{"friendid string", `{{rid},"msgid":7,"friendid":"x"}`, 7, 3, true},
		{"group name taken", `{{rid},"msgid":8,"groupname":"eves","groupdesc":""}`, 8, 5, true},
		{"group name empty", `{{rid},"msgid":8,"groupname":"","groupdesc":""}`, 8, 3, true},
		{"group name 51 chars", fmt.Sprintf(`{{rid},"msgid":8,"groupname":%q}`, long), 8, 3, true},
		{"group desc too long", fmt.Sprintf(`{{rid},"msgid":8,"groupname":"gd","groupdesc":%q}`, strings.Repeat("d", 201)), 8, 3, true},
		{"join missing group", fmt.Sprintf(`{{rid},"msgid":9,"groupid":%d}`, missing), 9, 4, true},
		{"join groupid missing", `{{rid},"msgid":9}`, 9, 3, true},
		{"register name taken", `{{rid},"msgid":4,"name":"bob","password":"x"}`, 4, 5, true},
		{"register name empty", `{{rid},"msgid":4,"name":"","password":"x"}`, 4, 3, true},
		{"register name 51 chars", fmt.Sprintf(`{{rid},"msgid":4,"name":%q,"password":"x"}`, long), 4, 3, true},
		{"register password empty", `{{rid},"msgid":4,"name":"newbie","password":""}`, 4, 3, true},
		{"register password missing", `{{rid},"msgid":4,"name":"newbie"}`, 4, 3, true},
		{"register password 73 bytes", fmt.Sprintf(`{{rid},"msgid":4,"name":"newbie","password":%q}`, strings.Repeat("p", 73)), 4, 3, true},
		{"login while logged in", fmt.Sprintf(`{{rid},"msgid":1,"id":%d,"password":%q}`, alice.id, alice.pw), 1, 3, true},
	}
	// Requests only native sessions make; a classic session gets the same
	// errors for them.
	cases = append(cases, []struct {
		name    string
		frame   string
		req     int
		errno   int
		ridKept bool
	}{
		{"sync other's 1:1", fmt.Sprintf(`{{rid},"msgid":14,"conv":"d:%d:%d","after":0}`, min(bob.id, eve.id), max(bob.id, eve.id)), 14, 6, true},
		{"sync group not member", fmt.Sprintf(`{{rid},"msgid":14,"conv":"g:%d"}`, closed), 14, 6, true},
		{"history group not member", fmt.Sprintf(`{{rid},"msgid":15,"groupid":%d}`, closed), 15, 6, true},
		{"sync missing group", fmt.Sprintf(`{{rid},"msgid":14,"conv":"g:%d"}`, missing), 14, 4, true},
		{"sync bad conv", `{{rid},"msgid":14,"conv":"bogus"}`, 14, 3, true},
		{"sync conv unordered", fmt.Sprintf(`{{rid},"msgid":14,"conv":"d:%d:%d"}`, max(alice.id, bob.id), min(alice.id, bob.id)), 14, 3, true},
		{"sync no conv", `{{rid},"msgid":14}`, 14, 3, true},
		{"sync limit 201", fmt.Sprintf(`{{rid},"msgid":14,"conv":"g:%d","limit":201}`, own), 14, 3, true},
		{"sync limit negative", fmt.Sprintf(`{{rid},"msgid":14,"conv":"g:%d","limit":-1}`, own), 14, 3, true},
		{"sync after negative", fmt.Sprintf(`{{rid},"msgid":14,"conv":"g:%d","after":-1}`, own), 14, 3, true},
		{"sync after 1e30", fmt.Sprintf(`{{rid},"msgid":14,"conv":"g:%d","after":1e30}`, own), 14, 3, true},
		{"read group not member", fmt.Sprintf(`{{rid},"msgid":16,"conv":"g:%d","seq":1}`, closed), 16, 6, true},
		{"read seq negative", fmt.Sprintf(`{{rid},"msgid":16,"conv":"g:%d","seq":-1}`, own), 16, 3, true},
	}...)

	for _, mode := range []string{"classic", "native"} {
		t.Run(mode, func(t *testing.T) {
			var c *wiretest.Conn
			if mode == "classic" {
				c, _ = alice.classic(t, ts)
			} else {
				c, _ = alice.native(t, ts)
			}
			for i, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					c.TB = t
					defer func() { c.TB = nil }()
					rid := int64(500 + i)
					ridField := ""
					if mode == "native" {
						ridField = fmt.Sprintf(`"rid":%d`, rid)
					}
					frame := strings.Replace(tc.frame, "{rid}", ridField, 1)
					frame = strings.Replace(frame, "{,", "{", 1) // classic: no rid member
					c.Send(frame + "\x00")
					o := c.ExpectErr(tc.req, tc.errno)
					switch {
					case mode == "classic" && o.Has("rid"):
						t.Errorf("classic error reply carries rid: %s", o.Raw)
					case mode == "native" && tc.ridKept:
						o.Check(t, "rid", rid)
					case mode == "native":
						o.Check(t, "rid", 0)
					}
					c.Ping() // the connection goes on, and there was one reply
				})
			}
		})
	}
	by.Ping()
	// The bystander still receives, and the failed requests stored nothing.
	c, _ := alice.native(t, ts)
	ack := c.Call(6, `{"msgid":6,"to":%d,"msg":"after the storm","cmid":"ok1"}`, eve.id)
	ack.Check(t, "seq", 1)
	by.Expect(6, "msg", "after the storm", "seq", 1)
	by.Ping()
}

// TestErrorsNotLoggedIn: every request that needs a session gets errno 8,
// login failures get the classic text, and the connection goes on.
func TestErrorsNotLoggedIn(t *testing.T) {
	ts := wiretest.StartServer(t, nil)
	alice := newUser(t, ts, "alice")
	c := wiretest.Dial(t, ts.TCP, readTimeout)
	for _, msgid := range []int{3, 6, 7, 8, 9, 10, 14, 15, 16, 18} {
		c.Sendf(`{"msgid":%d,"to":%d,"msg":"x","friendid":%d,"groupid":1,"groupname":"g","conv":"g:1"}`, msgid, alice.id, alice.id)
		c.ExpectErr(msgid, 8)
	}
	for _, tc := range []struct {
		name, frame string
		errno       int
	}{
		{"wrong password", fmt.Sprintf(`{"msgid":1,"id":%d,"password":"nope"}`, alice.id), 1},
		{"missing user", `{"msgid":1,"id":424242,"password":"x"}`, 1},
		{"id zero", `{"msgid":1,"id":0,"password":"x"}`, 1},
		{"empty password", fmt.Sprintf(`{"msgid":1,"id":%d,"password":""}`, alice.id), 1},
		{"native wrong password", fmt.Sprintf(`{"msgid":1,"proto":2,"id":%d,"password":"nope"}`, alice.id), 1},
		{"bad token", `{"msgid":1,"proto":2,"token":"0123456789abcdef"}`, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.TB = t
			c.Sendf("%s", tc.frame)
			o := c.ExpectErr(1, tc.errno)
			o.Check(t, "errmsg", "id or password is invalid!")
			c.Ping()
		})
	}
	c.TB = t
	c.Sendf(`{"msgid":1,"id":"1","password":"x"}`)
	c.ExpectErr(1, 3)
	c.ClassicLogin(alice.id, alice.pw)
}

// TestFatalFrames: a frame over 64 KiB gets an error reply (errno 7) and the
// connection is closed; so does invalid JSON (errno 3), and a stream of
// garbage is closed. Other sessions go on.
func TestFatalFrames(t *testing.T) {
	ts := wiretest.StartServer(t, nil)
	alice, bob := newUser(t, ts, "alice"), newUser(t, ts, "bob")
	by, _ := bob.native(t, ts)

	t.Run("frame over 64 KiB", func(t *testing.T) {
		for _, mode := range []string{"classic", "native"} {
			t.Run(mode, func(t *testing.T) {
				var c *wiretest.Conn
				if mode == "classic" {
					c, _ = alice.classic(t, ts)
				} else {
					c, _ = alice.native(t, ts)
				}
				// A complete, valid object of 70000 bytes.
				c.Sendf(`{"msgid":6,"to":%d,"msg":"%s"}`, bob.id, strings.Repeat("x", 70000))
				got := c.ExpectClosed()
				line, _, _ := strings.Cut(got, "\n")
				if line == "" {
					t.Fatalf("connection closed without an error reply")
				}
				o := wiretest.MustDecode(t, line)
				o.Check(t, "msgid", 11, "errno", 7)
			})
		}
	})
	t.Run("frame over 64 KiB never ending", func(t *testing.T) {
		c, _ := alice.native(t, ts)
		c.Send(`{"msgid":6,"msg":"` + strings.Repeat("y", 66000))
		got := c.ExpectClosed()
		if !strings.Contains(got, `"errno":7`) {
			t.Fatalf("no errno 7 reply before close: %q", got)
		}
	})
	for _, garbage := range []string{"hello\n", "}\x00", "\xff\xfe", "]"} {
		t.Run(fmt.Sprintf("garbage %q", garbage), func(t *testing.T) {
			c, _ := alice.classic(t, ts)
			c.Send(garbage)
			c.ExpectClosed()
		})
	}
	// Invalid JSON is refused at the byte that makes it so: the frame
	// never ends here, and the reply and the close come all the same.
	for _, frame := range []string{`{"msgid":6 "to":2`, `{"msgid":6,"to":}`, `{"msgid":6,"msg":"a` + "\x01"} {
		t.Run(fmt.Sprintf("invalid json %q", frame), func(t *testing.T) {
			c, _ := alice.native(t, ts)
			c.Send(frame)
			got := c.ExpectClosed()
			line, _, _ := strings.Cut(got, "\n")
			if line == "" {
				t.Fatalf("connection closed without an error reply")
			}
			wiretest.MustDecode(t, line).Check(t, "msgid", 11, "errno", 3)
		})
	}
	t.Run("garbage before login", func(t *testing.T) {
		c := wiretest.Dial(t, ts.TCP, readTimeout)
		c.Send("GET / HTTP/1.1\r\n\r\n")
		c.ExpectClosed()
	})
	by.Ping()
	c, _ := alice.native(t, ts)
	c.Call(6, `{"msgid":6,"to":%d,"msg":"still here","cmid":"s1"}`, bob.id)
	by.Expect(6, "msg", "still here")
}
