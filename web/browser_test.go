package web_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"clusterchat/internal/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.StopPostgres()
	os.Exit(code)
}

// cluster is two race-built chatservers on PostgreSQL and Redis with nginx's
// HTTP (WebSocket) proxy in front, rendered from deploy/nginx.
type cluster struct {
	servers []*testenv.Server
	nginx   *testenv.Nginx
}

func startCluster(t *testing.T) *cluster {
	bin := testenv.BuildServer(t)
	dsn := testenv.StartPostgres(t)
	redis := testenv.StartRedis(t)
	c := &cluster{}
	var httpAddrs []string
	for i := range 2 {
		// Rate limits on, as deployed, but every browser comes from
		// 127.0.0.1: allow the test's registrations and a fast classic
		// sender; the login limits stay.
		args := []string{"-store", dsn, "-broker", redis.URL(), "-node", fmt.Sprintf("n%d", i+1), "-bcrypt-cost", "4",
			"-rate-limits=true", "-register-rate", "1000/1h", "-msg-rate", "1000/1s", "-msg-burst", "1000"}
		s := testenv.StartServer(t, bin, append(args, testenv.UpstreamFlags...)...) // behind nginx

		c.servers = append(c.servers, s)
		httpAddrs = append(httpAddrs, s.HTTPAddr())
	}
	for _, s := range c.servers {
		waitReady(t, s)
	}
	c.nginx = testenv.StartNginx(t, nil, httpAddrs)
	return c
}

func waitReady(t *testing.T, s *testenv.Server) {
	testenv.WaitFor(t, waitTimeout, "/readyz on "+s.HTTPAddr(), func() bool {
		resp, err := http.Get("http://" + s.HTTPAddr() + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

func direct(a, b int64) string {
	if a > b {
		a, b = b, a
	}
	return fmt.Sprintf("d:%d:%d", a, b)
}

// TestBrowser drives the web client in headless Chromium the way people
// use it: typing, pressing Enter, reading what the page shows. One cluster
// and one browser serve every scenario (starting them is the slow part);
// each scenario has users of its own.
func TestBrowser(t *testing.T) {
	browser := startBrowser(t)
	c := startCluster(t)
	node := "http://" + c.servers[0].HTTPAddr() + "/"

	// Alice and bob chat on one node: 1:1, in a group, across two tabs.
	alice, bob := newPerson(t, browser, "alice"), newPerson(t, browser, "bob")
	var a, b *tab
	var conv string
	t.Run("OneNode", func(t *testing.T) {
		a, b = alice.open(node), bob.open(node)
		a.register()
		b.register()
		conv = direct(alice.id, bob.id)
		// Friendship by consent: alice asks, bob accepts from his People
		// panel; then each sees the other online.
		befriend(a, b)
		a.send("hi bob")
		b.waitJS("alice in bob's list with 1 unread", fmt.Sprintf(`document.querySelector('#convs [data-conv=%q] .badge')?.textContent === '1'`, conv))
		b.openConv(conv)
		b.waitTexts("hi bob")
		b.waitJS("the unread badge cleared", fmt.Sprintf(`!document.querySelector('#convs [data-conv=%q] .badge')`, conv))
		b.typeText("#text", "hi alice")
		b.do(chromedp.KeyEvent(kb.Enter, chromedp.KeyModifiers(chromedp.ModifierShift)))
		b.send("second line")
		a.waitTexts("hi bob", "hi alice\nsecond line")
		a.waitJS("own message marked", `document.querySelector('#messages .msg[data-seq="1"]').classList.contains('own') && !document.querySelector('#messages .msg[data-seq="2"]').classList.contains('own')`)

		// Read markers follow the user across tabs: alice's first tab
		// shows the new message unread until her second tab reads it.
		a.do(chromedp.KeyEvent(kb.Escape))
		a.waitJS("no conversation open", `!document.querySelector('#convs .active')`)
		b.send("are you there?")
		a.waitJS("1 unread in alice's first tab", fmt.Sprintf(`document.querySelector('#convs [data-conv=%q] .badge')?.textContent === '1'`, conv))
		a2 := alice.open(node)
		a2.openConv(conv)
		a2.waitTexts("hi bob", "hi alice\nsecond line", "are you there?")
		a.waitJS("the read marker moved to the first tab", fmt.Sprintf(`!document.querySelector('#convs [data-conv=%q] .badge')`, conv))
		a2.close()

		// A group: alice creates it, bob joins by id, both chat.
		groupWith(a, b, "devs", "the dev team")
		a.send("standup at 10")
		b.waitTexts("standup at 10")
		b.send("ok, see you there")
		a.waitTexts("standup at 10", "ok, see you there")
		a.waitJS("bob named as the sender", `document.querySelector('#messages .msg[data-seq="2"] .sender')?.textContent === 'bob'`)
		a.click("#members-toggle")
		a.waitJS("2 members listed", `document.querySelectorAll('#members li').length === 2`)
		a.click("#members-toggle")
		a.screenshot("desktop-group", 1200, 760, "web-client.png")
		a.openConv(conv)
		a.screenshot("phone-conversation", 390, 844, "web-client-phone.png")
		a.click("#back")
		a.screenshot("phone-list", 390, 844, "")
		a.do(chromedp.EmulateViewport(1200, 800))
	})
	if t.Failed() {
		return
	}

	// Friend requests, blocks, people search and group administration.
	t.Run("Social", func(t *testing.T) { testSocial(t, browser, node) })

	// Display name, password, log out everywhere; a group's settings.
	t.Run("Account", func(t *testing.T) { testAccount(t, browser, node) })

	// A name made of markup shows as text, and so do messages.
	t.Run("MarkupIsText", func(t *testing.T) {
		const evil = `<img src=x onerror=alert(1)>`
		mallory := newPerson(t, browser, evil)
		m := mallory.open(node)
		m.register()
		m.action("friend", strconv.FormatInt(alice.id, 10))
		m.send(`<script>alert(2)</script><b>bold?</b>`)
		mconv := direct(alice.id, mallory.id)
		a.openConv(mconv)
		a.waitTexts(`<script>alert(2)</script><b>bold?</b>`)
		var title string
		a.eval(fmt.Sprintf(`document.querySelector('#convs [data-conv=%q] .conv-name').textContent`, mconv), &title)
		if title != evil {
			t.Fatalf("name shown as %q, want the text %q", title, evil)
		}
		var injected int
		a.eval(`document.querySelectorAll('img, b, #messages script, #convs script').length`, &injected)
		if injected != 0 || alice.dialogs.Load() != 0 {
			t.Fatalf("markup became elements: %d elements, %d dialogs", injected, alice.dialogs.Load())
		}
	})

	// A browser user and a classic console client chat.
	t.Run("ClassicClient", func(t *testing.T) {
		con := dialClassic(t, c.servers[0].Addr())
		cid := con.register("carol")
		con.login(cid, "pw-carol")
		a.action("friend", strconv.FormatInt(cid, 10))
		a.send("hello console")
		got := con.next(6)
		if got["msg"] != "hello console" || got["name"] != "alice" {
			t.Fatalf("classic client got %v", got)
		}
		con.send(fmt.Sprintf(`{"msgid":6,"id":%d,"name":"carol","to":%d,"msg":"hello browser"}`, cid, alice.id))
		a.waitTexts("hello console", "hello browser")

		// 70 more: a fresh page shows the last 50 and loads the rest
		// (HISTORY) when scrolled to the top, each message once.
		want := []string{"hello console", "hello browser"}
		for i := range 70 {
			text := fmt.Sprintf("line %d", i+1)
			want = append(want, text)
			con.send(fmt.Sprintf(`{"msgid":6,"id":%d,"name":"carol","to":%d,"msg":%q}`, cid, alice.id, text))
		}
		a.waitJS("the 70 lines", `[...document.querySelectorAll('#messages .msg .text')].some(e => e.textContent === 'line 70')`)
		fresh := alice.open(node)
		fresh.openConv(direct(alice.id, cid))
		fresh.waitJS("the last page", `document.querySelectorAll('#messages .msg[data-seq]').length === 50`)
		fresh.eval(`document.getElementById('messages').scrollTop = 0`, new(int))
		fresh.waitTexts(want...)

		// Scrolled up reading, a new message does not pull the view down:
		// a "new messages" marker appears, and takes the reader there.
		fresh.eval(`document.getElementById('messages').scrollTop = 0`, new(int))
		fresh.waitJS("no marker before", `document.getElementById('new-below').hidden`)
		con.send(fmt.Sprintf(`{"msgid":6,"id":%d,"name":"carol","to":%d,"msg":"below the fold"}`, cid, alice.id))
		fresh.waitTexts(append(want, "below the fold")...)
		fresh.waitJS("the marker shown, the view left where it was", `!document.getElementById('new-below').hidden && document.getElementById('messages').scrollTop < 200`)
		fresh.screenshot("new-messages-marker", 1200, 760, "")
		// Carol never accepted alice's request: her presence is not shared,
		// so the page does not call her offline.
		fresh.waitJS("a stranger's presence not claimed", `document.getElementById('subtitle').textContent === 'not a friend'`)
		fresh.click("#new-below")
		fresh.waitJS("at the bottom, the marker gone", `document.getElementById('new-below').hidden && (m => m.scrollHeight - m.scrollTop - m.clientHeight < 40)(document.getElementById('messages'))`)
		// At the bottom, the next message scrolls into view without a marker.
		con.send(fmt.Sprintf(`{"msgid":6,"id":%d,"name":"carol","to":%d,"msg":"in view"}`, cid, alice.id))
		fresh.waitTexts(append(want, "below the fold", "in view")...)
		fresh.waitJS("still at the bottom, no marker", `document.getElementById('new-below').hidden && (m => m.scrollHeight - m.scrollTop - m.clientHeight < 40)(document.getElementById('messages'))`)
		fresh.close()
	})

	// Bob's page is closed while alice writes; reopened, it shows the
	// whole conversation once. A reload shows it once again.
	t.Run("ClosedPageAndReload", func(t *testing.T) {
		b.close()
		a.openConv(conv)
		a.send("while you were away")
		a.send("and one more")
		want := []string{"hi bob", "hi alice\nsecond line", "are you there?", "while you were away", "and one more"}
		b = bob.open(node)
		b.waitJS("logged in again from the saved token", `!document.getElementById('chat').hidden`)
		b.waitJS("alice's conversation with 2 unread", fmt.Sprintf(`document.querySelector('#convs [data-conv=%q] .badge')?.textContent === '2'`, conv))
		b.openConv(conv)
		b.waitTexts(want...)
		b.do(chromedp.Reload())
		b.waitJS("logged in after the reload", `!document.getElementById('chat').hidden && document.getElementById('me-id').textContent`)
		b.waitJS("the open conversation kept", `!document.getElementById('pane-main').hidden`)
		b.waitTexts(want...)
	})

	// Errors in words: wrong password, a taken group name, an unknown
	// group, too many failed logins.
	t.Run("Errors", func(t *testing.T) {
		frank := newPerson(t, browser, "frank")
		f := frank.open(node)
		f.register()
		f.submitAction("create", "devs")
		f.waitJS("taken group name explained", `document.querySelector('#action-form .error').textContent === 'That group name is taken; pick another.'`)
		f.click(`#action-form button.link`) // Cancel
		f.submitAction("join", "999999")
		f.waitJS("unknown group explained", `document.querySelector('#action-form .error').textContent.startsWith('Not found')`)
		f.click(`#action-form button.link`)

		g := newPerson(t, browser, "guest").open(node)
		g.waitJS("the login form", `!document.getElementById('login-form').hidden`)
		g.typeText("#login-id", strconv.FormatInt(frank.id, 10))
		for i := 0; ; i++ {
			g.eval(`document.getElementById('auth-error').textContent = ''`, new(string))
			g.typeText("#login-pw", "wrong\r")
			g.waitJS("an error shown", `document.getElementById('auth-error').textContent`)
			var msg string
			g.eval(`document.getElementById('auth-error').textContent`, &msg)
			if strings.HasPrefix(msg, "Too many attempts") {
				break
			}
			if msg != "Wrong user id or password." || i == 20 {
				t.Fatalf("attempt %d: %q", i+1, msg)
			}
			g.eval(`document.getElementById('login-pw').value = ''`, new(string))
		}
		g.screenshot("login-error", 1200, 760, "")
	})

	// A spent quota of message text is said in words a person reads, with
	// the wait in hours, on a server of its own with a tiny quota.
	t.Run("Quota", func(t *testing.T) {
		small := testenv.StartServer(t, testenv.BuildServer(t), "-store", "pebble:"+filepath.Join(t.TempDir(), "chat"),
			"-bcrypt-cost", "4", "-rate-limits=true", "-msg-quota", "20")
		waitReady(t, small)
		q := newPerson(t, browser, "writer").open("http://" + small.HTTPAddr() + "/")
		q.register()
		q.action("create", "notes", "mine")
		q.waitJS("the group open, its one member counted in words", `location.hash.startsWith('#g:') && document.getElementById('subtitle').textContent === '1 member'`)
		q.send("fifteen letters")
		q.typeText("#text", "and fifteen more\r")
		q.waitJS("the refusal in words", `(e => e && /^Not sent: you have sent a lot of text today; you can send more in \d+ h\.$/.test(e.textContent))(document.querySelector('#messages .msg.failed .error'))`)
		q.waitTexts("fifteen letters")
		q.screenshot("quota-spent", 390, 844, "")
	})

	// Through nginx: two users on different servers chat; a SIGTERM roll
	// of the recipient's server loses nothing and shows nothing twice.
	t.Run("NginxAndRoll", func(t *testing.T) {
		proxy := "http://" + c.nginx.HTTPAddr() + "/"
		dave, erin := newPerson(t, browser, "dave"), newPerson(t, browser, "erin")
		d := dave.open(proxy)
		d.register()
		e := erin.open(proxy)
		e.register()
		erinSrv := e.serverOf(t, c)
		if d.serverOf(t, c) == erinSrv {
			t.Fatalf("nginx put dave and erin on the same server n%d; the test needs them apart", erinSrv+1)
		}
		chatBothWays(d, e, "across servers", "got it")

		roll := c.servers[erinSrv]
		late := newPerson(t, browser, "late").open("http://" + roll.HTTPAddr() + "/")
		late.waitJS("the login form", `!document.getElementById('login-form').hidden`)
		if code := roll.Term(t); code != 0 {
			t.Fatalf("SIGTERM: exit code %d", code)
		}
		late.typeText("#login-id", "1")
		late.typeText("#login-pw", "whatever\r")
		late.waitJS("unreachable explained", `document.getElementById('auth-error').textContent === 'Cannot reach the server. Check that it is running.'`)
		d.send("during the roll 1")
		d.send("during the roll 2")
		roll.Restart(t)
		waitReady(t, roll)
		d.send("after the roll")
		want := []string{"across servers", "got it", "during the roll 1", "during the roll 2", "after the roll"}
		e.waitTexts(want...)
		e.waitJS("the banner gone", `document.getElementById('banner').hidden`)
		e.send("all here")
		want = append(want, "all here")
		d.waitTexts(want...)

		// Every server down: what erin types waits as "sending…" under the
		// reconnecting banner, and goes once they are back, exactly once.
		for _, s := range c.servers {
			if code := s.Term(t); code != 0 {
				t.Fatalf("SIGTERM: exit code %d", code)
			}
		}
		e.typeText("#text", "typed while down\r")
		e.waitJS("pending under the banner", `document.querySelector('#messages .msg.pending') && !document.getElementById('banner').hidden`)
		e.screenshot("reconnecting", 1200, 760, "")
		for _, s := range c.servers {
			s.Restart(t)
			waitReady(t, s)
		}
		e.waitJS("sent once back", `!document.querySelector('#messages .msg.pending, #messages .msg.failed')`)
		want = append(want, "typed while down")
		e.waitTexts(want...)
		d.waitTexts(want...)

		// The outbox outlives the page: typed while every server is down,
		// the tab closed before it could go; a page opened once they are
		// back sends it, exactly once.
		for _, s := range c.servers {
			if code := s.Term(t); code != 0 {
				t.Fatalf("SIGTERM: exit code %d", code)
			}
		}
		e.typeText("#text", "typed, then the tab closed\r")
		e.waitJS("pending", `document.querySelector('#messages .msg.pending')`)
		e.close()
		for _, s := range c.servers {
			s.Restart(t)
			waitReady(t, s)
		}
		// nginx may answer 502 for a few seconds more (its upstreams failed
		// while every server was down); a person would reload until the page
		// comes, so the test waits for it before opening one.
		testenv.WaitFor(t, waitTimeout, "the page through nginx", func() bool {
			resp, err := http.Get(proxy)
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		})
		e = erin.open(proxy)
		e.waitJS("logged in again from the saved token", `!document.getElementById('chat').hidden`)
		e.openConv(direct(dave.id, erin.id))
		want = append(want, "typed, then the tab closed")
		e.waitTexts(want...)
		e.waitJS("nothing left pending", `!document.querySelector('#messages .msg.pending, #messages .msg.failed')`)
		d.waitTexts(want...)
	})
}

// serverOf says which server the tab's user logged in on, from the
// servers' logs.
func (tb *tab) serverOf(t *testing.T, c *cluster) int {
	needle := fmt.Sprintf("msg=login node=n%%d user=%d ", tb.p.id)
	for i, s := range c.servers {
		if strings.Contains(s.Log(), fmt.Sprintf(needle, i+1)) {
			return i
		}
	}
	t.Fatalf("no server logged %s's login", tb.p.name)
	return -1
}

// classic is a console client speaking the classic protocol over TCP.
type classic struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func dialClassic(t *testing.T, addr string) *classic {
	nc, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { nc.Close() })
	return &classic{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (c *classic) send(obj string) {
	c.t.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(waitTimeout))
	if _, err := io.WriteString(c.nc, obj+"\x00"); err != nil {
		c.t.Fatalf("classic write: %v", err)
	}
}

// next reads objects until one with msgid arrives.
func (c *classic) next(msgid int) map[string]any {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(waitTimeout))
	for {
		line, err := c.br.ReadString('\n')
		line = strings.TrimLeft(line, "\x00") // a classic record's padding (docs/protocol.md)
		if err != nil {
			c.t.Fatalf("classic read: %v", err)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			c.t.Fatalf("classic read %q: %v", line, err)
		}
		if m["msgid"] == float64(msgid) {
			return m
		}
	}
}

func (c *classic) register(name string) int64 {
	c.t.Helper()
	c.send(fmt.Sprintf(`{"msgid":4,"name":%q,"password":"pw-%s"}`, name, name))
	r := c.next(5)
	if r["errno"] != float64(0) {
		c.t.Fatalf("classic register: %v", r)
	}
	return int64(r["id"].(float64))
}

func (c *classic) login(id int64, pw string) {
	c.t.Helper()
	c.send(fmt.Sprintf(`{"msgid":1,"id":%d,"password":%q}`, id, pw))
	if r := c.next(2); r["errno"] != float64(0) {
		c.t.Fatalf("classic login: %v", r)
	}
}
