package e2e

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"clusterchat"
	"clusterchat/client"
	"clusterchat/internal/testenv"
	"clusterchat/internal/wiretest"
	"clusterchat/proto"
)

// TestCluster runs every cluster scenario on one cluster (starting one costs
// tens of seconds under -race), each subtest with fresh users. They run one
// after another: the fault scenarios at the end kill a server and restart
// Redis, and each leaves the cluster whole again.
func TestCluster(t *testing.T) {
	c := startCluster(t, 3)
	t.Run("Health", func(t *testing.T) { testHealth(t, c) })
	t.Run("ClassicOneToOne", func(t *testing.T) { testClassicOneToOne(t, c) })
	t.Run("NativeOneToOne", func(t *testing.T) { testNativeOneToOne(t, c) })
	t.Run("GroupOnAllServers", func(t *testing.T) { testGroup(t, c) })
	t.Run("OfflineClassic", func(t *testing.T) { testOfflineClassic(t, c) })
	t.Run("ClassicOriginalClient", func(t *testing.T) { testClassicOriginal(t, c) })
	t.Run("OfflineNativeSync", func(t *testing.T) { testOfflineNative(t, c) })
	t.Run("Presence", func(t *testing.T) { testPresence(t, c) })
	t.Run("WebSocket", func(t *testing.T) { testWebSocket(t, c) })
	t.Run("MaxSessionsRace", func(t *testing.T) { testMaxSessions(t, c) })
	t.Run("Throughput", func(t *testing.T) { measureThroughput(t, c) })
	t.Run("KillServer", func(t *testing.T) { testKillServer(t, c) })
	t.Run("RedisRestart", func(t *testing.T) { testRedisRestart(t, c) })
}

// route is where two users connect: a server's address or nginx.
type route struct {
	name string
	a, b func(c *cluster) string
}

func srv(i int) func(*cluster) string { return func(c *cluster) string { return c.servers[i].Addr() } }
func viaNginx() func(*cluster) string { return func(c *cluster) string { return c.nginx.StreamAddr() } }

// routes pairs servers so that every pair of servers, and nginx, carries
// traffic. Through nginx both users may land on the same server: that still
// has to work.
var routes = []route{
	{"n1-n2", srv(0), srv(1)},
	{"n2-n3", srv(1), srv(2)},
	{"n3-n1", srv(2), srv(0)},
	{"nginx-n2", viaNginx(), srv(1)},
	{"nginx-nginx", viaNginx(), viaNginx()},
}

func testHealth(t *testing.T, c *cluster) {
	for i, s := range c.servers {
		t.Run(fmt.Sprintf("n%d", i+1), func(t *testing.T) {
			body, code, err := httpGet(s.HTTPAddr(), "/healthz")
			if err != nil || code != http.StatusOK {
				t.Fatalf("/healthz: %d %q %v", code, body, err)
			}
			body, code, err = httpGet(s.HTTPAddr(), "/readyz")
			if err != nil || code != http.StatusOK || !strings.Contains(body, "store: ok") || !strings.Contains(body, "broker: ok") {
				t.Fatalf("/readyz: %d %q %v", code, body, err)
			}
			// A session on this server shows in its gauge.
			u := c.newUser(t, s.Addr())
			r, _ := classicAt(t, s.Addr(), u)
			m := metrics(t, s.HTTPAddr())
			for _, name := range []string{"chat_sessions", "chat_connections", "chat_logins_total",
				"chat_messages_accepted_total", "chat_messages_delivered_total", "go_goroutines"} {
				if _, ok := m[name]; !ok {
					t.Errorf("/metrics lacks %s", name)
				}
			}
			if m["chat_sessions"] < 1 || m["chat_connections"] < 1 || m["chat_logins_total"] < 1 {
				t.Errorf("with a session logged in: chat_sessions=%v chat_connections=%v chat_logins_total=%v",
					m["chat_sessions"], m["chat_connections"], m["chat_logins_total"])
			}
			r.Close()
		})
	}
}

// classicChatKeys are exactly the fields a classic recipient gets.
var classicChatKeys = []string{"id", "msg", "msgid", "name", "time", "to"}

func keys(o wiretest.Obj) []string {
	var k []string
	for key := range o.M {
		k = append(k, key)
	}
	slices.Sort(k)
	return k
}

func testClassicOneToOne(t *testing.T, c *cluster) {
	for _, rt := range routes {
		t.Run(rt.name, func(t *testing.T) {
			aAddr, bAddr := rt.a(c), rt.b(c)
			ua, ub := c.newUser(t, aAddr), c.newUser(t, bAddr)
			ra, _ := classicAt(t, aAddr, ua)
			rb, _ := classicAt(t, bAddr, ub)
			// The classic client's own fields, spoofed sender and time
			// included: the server must stamp the session's user and its
			// own time.
			ra.Sendf(`{"msgid":6,"id":999999,"name":"mallory","to":%d,"msg":"hello b: from a","time":"2024-01-02 03:04:05"}`, ub.id)
			o := rb.Expect(6, "id", ua.id, "name", ua.name, "to", ub.id, "msg", "hello b: from a")
			if tm := o.Str("time"); len(tm) != len(clusterchat.TimeFormat) || strings.HasPrefix(tm, "2024") {
				t.Errorf("classic chat time %q: want the server's stamp, not the client's", tm)
			}
			if got := keys(o); !slices.Equal(got, classicChatKeys) {
				t.Errorf("classic chat fields %v, want %v: %s", got, classicChatKeys, o.Raw)
			}
			// Some copies of the client name the recipient "toid"; and no time.
			rb.Sendf(`{"msgid":6,"id":%d,"name":%q,"toid":%d,"msg":"hi a"}`, ub.id, ub.name, ua.id)
			o = ra.Expect(6, "id", ub.id, "name", ub.name, "msg", "hi a")
			if len(o.Str("time")) != len("2006-01-02 15:04:05") {
				t.Errorf("server-filled time %q", o.Str("time"))
			}
			// Nothing else arrived (a duplicate would come before the reply).
			ra.Ping()
			rb.Ping()
		})
	}
}

func testNativeOneToOne(t *testing.T, c *cluster) {
	for _, rt := range routes {
		t.Run(rt.name, func(t *testing.T) {
			aAddr, bAddr := rt.a(c), rt.b(c)
			ua, ub := c.newUser(t, aAddr), c.newUser(t, bAddr)
			a := nativeAt(t, aAddr, ua, client.Options{})
			b := nativeAt(t, bAddr, ub, client.Options{})
			conv := clusterchat.DirectConv(ua.id, ub.id)
			for i := range 3 {
				ack, err := a.Send(ctx(t), ub.id, fmt.Sprintf("a->b %d", i))
				if err != nil {
					t.Fatalf("send: %v", err)
				}
				if ack.Conv != conv || ack.Seq != int64(2*i+1) {
					t.Fatalf("ack %+v, want conv %s seq %d", ack, conv, 2*i+1)
				}
				m := b.waitMessage(t, ua.id, fmt.Sprintf("a->b %d", i))
				if m.Seq != ack.Seq || m.ID != ack.MID || m.FromName != ua.name || m.To != ub.id {
					t.Fatalf("b got %+v for ack %+v", m, ack)
				}
				if _, err := b.Send(ctx(t), ua.id, fmt.Sprintf("b->a %d", i)); err != nil {
					t.Fatalf("send: %v", err)
				}
				a.waitMessage(t, ub.id, fmt.Sprintf("b->a %d", i))
			}
			// Both devices hold the whole conversation once, in order.
			for _, n := range []*native{a, b} {
				testenv.WaitFor(t, readTimeout, "6 messages in the log", func() bool { return len(n.messages(conv)) >= 6 })
				checkSeqs(t, n.messages(conv), 6)
			}
		})
	}
}

// checkSeqs requires msgs to be seq 1..n, in order, once each.
func checkSeqs(tb testing.TB, msgs []*clusterchat.Message, n int) {
	tb.Helper()
	if len(msgs) != n {
		tb.Fatalf("%d messages, want %d: %v", len(msgs), n, bodies(msgs))
	}
	for i, m := range msgs {
		if m.Seq != int64(i+1) {
			tb.Fatalf("message %d has seq %d: %v", i, m.Seq, bodies(msgs))
		}
	}
}

func bodies(msgs []*clusterchat.Message) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, fmt.Sprintf("%d:%q", m.Seq, m.Body))
	}
	return out
}

// member is one group member with whatever client it uses.
type member struct {
	u   user
	n   *native        // Go client
	r   *wiretest.Conn // classic or hand-made native socket
	raw bool           // r speaks proto 2
}

func testGroup(t *testing.T, c *cluster) {
	s := c.servers
	creator := c.newUser(t, s[0].Addr())
	cn := nativeAt(t, s[0].Addr(), creator, client.Options{})
	gid, err := cn.CreateGroup(ctx(t), c.name("g"), "members everywhere")
	if err != nil {
		t.Fatalf("create group: %v", err)
	}
	members := []*member{{u: creator, n: cn}}
	// Classic members on n2 and n3, a Go client on n2 and through nginx, a
	// hand-made native socket on n3.
	for _, addr := range []string{s[1].Addr(), s[2].Addr()} {
		u := c.newUser(t, addr)
		r, _ := classicAt(t, addr, u)
		r.Sendf(`{"msgid":9,"id":%d,"groupid":%d}`, u.id, gid)
		r.Ping() // classic join has no reply: the barrier says it was handled
		members = append(members, &member{u: u, r: r})
	}
	for _, addr := range []string{s[1].Addr(), c.nginx.StreamAddr()} {
		u := c.newUser(t, addr)
		n := nativeAt(t, addr, u, client.Options{})
		if joined, err := n.JoinGroup(ctx(t), gid); err != nil || !joined {
			t.Fatalf("join: %v %v", joined, err)
		}
		members = append(members, &member{u: u, n: n})
	}
	{
		u := c.newUser(t, s[2].Addr())
		r := dialRaw(t, s[2].Addr())
		r.NativeLogin(u.id, u.pw)
		r.Call(9, `{"msgid":9,"groupid":%d}`, gid)
		members = append(members, &member{u: u, r: r, raw: true})
	}

	// Everyone speaks once.
	text := func(m *member) string { return "group hello from " + m.u.name }
	for _, m := range members {
		switch {
		case m.n != nil:
			if _, err := m.n.SendGroup(ctx(t), gid, text(m)); err != nil {
				t.Fatalf("send group: %v", err)
			}
		case m.raw:
			m.r.Sendf(`{"msgid":10,"rid":777,"groupid":%d,"msg":%q,"cmid":"raw-1"}`, gid, text(m))
		default:
			m.r.Sendf(`{"msgid":10,"id":%d,"name":%q,"groupid":%d,"msg":%q,"time":"2024-05-06 07:08:09"}`, m.u.id, m.u.name, gid, text(m))
		}
	}

	// Every member gets every other member's message exactly once.
	conv := clusterchat.GroupConv(gid)
	for _, m := range members {
		want := map[string]int{}
		for _, o := range members {
			if o != m {
				want[text(o)] = 1
			}
		}
		got := map[string]int{}
		switch {
		case m.n != nil:
			testenv.WaitFor(t, readTimeout, fmt.Sprintf("%s: all %d group messages", m.u.name, len(members)), func() bool {
				return len(m.n.messages(conv)) >= len(members)
			})
			msgs := m.n.messages(conv)
			checkSeqs(t, msgs, len(members)) // its own one included, in its place
			for _, msg := range msgs {
				if msg.From != m.u.id {
					got[msg.Body]++
				}
			}
		default:
			acked := !m.raw
			for len(got) < len(want) || !acked {
				o := m.r.Next()
				switch o.Int("msgid") {
				case 10:
					if o.Int("groupid") != gid || o.Int("id") == m.u.id {
						t.Fatalf("%s: unexpected group message %s", m.u.name, o.Raw)
					}
					got[o.Str("msg")]++
					if m.raw && o.Int("seq") <= 0 {
						t.Errorf("native group message without seq: %s", o.Raw)
					}
				case 11:
					if !m.raw || o.Int("rid") != 777 || o.Int("errno") != 0 {
						t.Fatalf("%s: unexpected reply %s", m.u.name, o.Raw)
					}
					acked = true
				case 12, 13, 19: // native events
				default:
					t.Fatalf("%s: unexpected %s", m.u.name, o.Raw)
				}
			}
			// A duplicate already queued would come before the barrier's reply.
			rid := int64(999999)
			m.r.Sendf(`{"msgid":18,"rid":%d}`, rid)
			for {
				o := m.r.Next()
				if o.Int("msgid") == 11 && o.Int("rid") == rid {
					break
				}
				if o.Int("msgid") == 10 {
					got[o.Str("msg")]++
				}
			}
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("member %s (server-side view %v): got %q %d times, want once", m.u.name, kindOf(m), k, got[k])
			}
		}
		if len(got) != len(want) {
			t.Errorf("member %s got %v, want %v", m.u.name, got, want)
		}
	}
}

func kindOf(m *member) string {
	switch {
	case m.n != nil:
		return "go client"
	case m.raw:
		return "raw native"
	}
	return "classic"
}

// offlineBodies returns the texts of a classic login reply's offlinemsg,
// checking each entry is a chat message from one of the expected senders.
func offlineBodies(tb testing.TB, reply wiretest.Obj) []string {
	tb.Helper()
	var out []string
	for _, m := range reply.Nested(tb, "offlinemsg") {
		if id := m.Int("msgid"); id != 6 && id != 10 {
			tb.Fatalf("offlinemsg entry is not a chat message: %s", m.Raw)
		}
		out = append(out, m.Str("msg"))
	}
	return out
}

func testOfflineClassic(t *testing.T, c *cluster) {
	s := c.servers
	// Acknowledged messages (native sender on n1) for a classic user who is
	// offline, 1:1 and in a group; the recipient logs in on n2.
	sender, rcpt := c.newUser(t, s[0].Addr()), c.newUser(t, s[0].Addr())
	sn := nativeAt(t, s[0].Addr(), sender, client.Options{})
	gid, err := sn.CreateGroup(ctx(t), c.name("g"), "offline")
	if err != nil {
		t.Fatal(err)
	}
	{
		r, _ := classicAt(t, s[2].Addr(), rcpt)
		r.Sendf(`{"msgid":9,"id":%d,"groupid":%d}`, rcpt.id, gid)
		r.Ping()
		r.Sendf(`{"msgid":3,"id":%d}`, rcpt.id)
		// A failed login answers after the logout was handled: the session is gone.
		r.Sendf(`{"msgid":1,"id":%d,"password":"wrong"}`, rcpt.id)
		r.Expect(2, "errno", 1)
		r.Close()
	}
	var want []string
	for i := range 3 {
		txt := fmt.Sprintf("while you were away %d", i)
		if _, err := sn.Send(ctx(t), rcpt.id, txt); err != nil {
			t.Fatal(err)
		}
		want = append(want, txt)
	}
	if _, err := sn.SendGroup(ctx(t), gid, "group while away"); err != nil {
		t.Fatal(err)
	}
	want = append(want, "group while away")

	r, reply := classicAt(t, s[1].Addr(), rcpt)
	if got := offlineBodies(t, reply); !slices.Equal(got, want) {
		t.Fatalf("offlinemsg at login on n2 = %q, want %q (oldest first)", got, want)
	}
	// The server saves the delivered cursor after writing the reply, on the
	// read loop: the barrier waits for it (a login elsewhere in between
	// would see the messages again).
	r.Ping()
	r.Close()
	// Never repeated, wherever the next login is.
	r, reply = classicAt(t, s[2].Addr(), rcpt)
	if got := offlineBodies(t, reply); len(got) != 0 {
		t.Fatalf("offlinemsg repeated at the next login on n3: %q", got)
	}
	r.Close()

	// A classic sender has no ack: the recipient logs in (on another server
	// each time) until the message has arrived, and it arrives once.
	csender, crcpt := c.newUser(t, s[2].Addr()), c.newUser(t, s[2].Addr())
	cs, _ := classicAt(t, s[2].Addr(), csender)
	cs.Sendf(`{"msgid":6,"id":%d,"name":%q,"to":%d,"msg":"classic to offline","time":"2024-01-01 00:00:00"}`, csender.id, csender.name, crcpt.id)
	cs.Ping()
	var got []string
	i := 0
	testenv.WaitFor(t, readTimeout, "classic offline message at a login", func() bool {
		r, reply := classicAt(t, s[i%2].Addr(), crcpt)
		i++
		got = append(got, offlineBodies(t, reply)...)
		r.Ping()
		r.Close()
		return len(got) > 0
	})
	r, reply = classicAt(t, s[1].Addr(), crcpt)
	got = append(got, offlineBodies(t, reply)...)
	r.Ping()
	r.Close()
	if !slices.Equal(got, []string{"classic to offline"}) {
		t.Fatalf("classic offline delivery over logins: %q", got)
	}
}

func testOfflineNative(t *testing.T, c *cluster) {
	s := c.servers
	sender, rcpt := c.newUser(t, s[1].Addr()), c.newUser(t, s[1].Addr())
	sn := nativeAt(t, s[1].Addr(), sender, client.Options{})
	var acks []*client.Ack
	for i := range 3 {
		ack, err := sn.Send(ctx(t), rcpt.id, fmt.Sprintf("sync me %d", i))
		if err != nil {
			t.Fatal(err)
		}
		acks = append(acks, ack)
	}
	conv := acks[0].Conv

	// By hand on n1: the login reply names the conversation, SYNC fetches it.
	r := dialRaw(t, s[0].Addr())
	reply := r.NativeLogin(rcpt.id, rcpt.pw)
	if !strings.Contains(reply.Raw, fmt.Sprintf(`{"conv":%q,"last":3,`, conv)) {
		t.Fatalf("native login reply lacks conv %s with last 3: %s", conv, reply.Raw)
	}
	if _, ok := reply.M["offlinemsg"]; ok {
		t.Fatalf("native login carries offlinemsg: %s", reply.Raw)
	}
	o := r.Call(14, `{"msgid":14,"conv":%q,"after":0,"limit":10}`, conv)
	if o.Int("last") != 3 {
		t.Fatalf("SYNC last = %d: %s", o.Int("last"), o.Raw)
	}
	msgs, _ := o.M["msgs"].([]any)
	if len(msgs) != 3 {
		t.Fatalf("SYNC returned %d messages: %s", len(msgs), o.Raw)
	}
	for i, x := range msgs {
		m := x.(map[string]any)
		if m["msg"] != fmt.Sprintf("sync me %d", i) || fmt.Sprint(m["seq"]) != fmt.Sprint(i+1) {
			t.Fatalf("SYNC message %d = %v", i, m)
		}
	}
	r.Close()

	// The Go client on n3 catches up by itself at login.
	n := nativeAt(t, s[2].Addr(), rcpt, client.Options{})
	if err := n.Synced(ctx(t)); err != nil {
		t.Fatal(err)
	}
	// Events reach the collector asynchronously after Synced.
	testenv.WaitFor(t, readTimeout, "3 synced messages", func() bool { return len(n.messages(conv)) >= 3 })
	got := n.messages(conv)
	checkSeqs(t, got, 3)
	for i, m := range got {
		if m.ID != acks[i].MID || m.From != sender.id {
			t.Fatalf("synced %+v, acked %+v", m, acks[i])
		}
	}
}

func testPresence(t *testing.T, c *cluster) {
	s := c.servers
	a, b, cu := c.newUser(t, s[0].Addr()), c.newUser(t, s[0].Addr()), c.newUser(t, s[0].Addr())
	an := nativeAt(t, s[0].Addr(), a, client.Options{})
	befriend(t, s[0].Addr(), an, b, cu)
	isPresence := func(id int64, state proto.State) func(client.Event) bool {
		return func(e client.Event) bool {
			return e.Kind == client.EventPresence && e.UserID == id && e.State == state
		}
	}
	// b comes online on n2, c on n3: a (on n1) hears both.
	bn := nativeAt(t, s[1].Addr(), b, client.Options{})
	an.waitEvent(t, "b online", isPresence(b.id, "online"))
	cn := nativeAt(t, s[2].Addr(), cu, client.Options{})
	an.waitEvent(t, "c online", isPresence(cu.id, "online"))

	// Login replies on other servers show the live states.
	r, reply := classicAt(t, s[2].Addr(), a)
	if sb, sc := friendState(t, reply, b.id), friendState(t, reply, cu.id); sb != "online" || sc != "online" {
		t.Fatalf("classic login on n3: b %q c %q, want online: %s", sb, sc, reply.Raw)
	}
	r.Close()
	a2 := nativeAt(t, c.nginx.StreamAddr(), a, client.Options{})
	for _, f := range a2.info.Friends {
		if f.State != "online" {
			t.Fatalf("native login through nginx: friend %+v not online", f)
		}
	}
	if len(a2.info.Friends) != 2 {
		t.Fatalf("native login through nginx: friends %+v", a2.info.Friends)
	}

	// c logs out on n3, b's connection drops on n2: both of a's devices hear it.
	if err := cn.Logout(ctx(t)); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*native{an, a2} {
		n.waitEvent(t, "c offline", isPresence(cu.id, "offline"))
	}
	bn.Close()
	for _, n := range []*native{an, a2} {
		n.waitEvent(t, "b offline", isPresence(b.id, "offline"))
	}
	// And a fresh login reply on n2 agrees.
	r, reply = classicAt(t, s[1].Addr(), a)
	if sb, sc := friendState(t, reply, b.id), friendState(t, reply, cu.id); sb != "offline" || sc != "offline" {
		t.Fatalf("classic login on n2 after both left: b %q c %q: %s", sb, sc, reply.Raw)
	}
	r.Close()
}

// loginResult is one racer's outcome.
type loginResult struct {
	errno  int64
	errmsg string
	raw    string
}

func testMaxSessions(t *testing.T, c *cluster) {
	m1 := c.startServer(t, "m1", "-max-sessions", "1")
	m2 := c.startServer(t, "m2", "-max-sessions", "1")
	addrs := []string{m1.Addr(), m2.Addr()}
	const rounds = 30
	wins := [2]int{}
	for round := range rounds {
		u := c.newUser(t, addrs[round%2])
		native := round%2 == 1
		conns := []*wiretest.Conn{dialRaw(t, addrs[0]), dialRaw(t, addrs[1])}
		var (
			wg   sync.WaitGroup
			res  [2]loginResult
			errs [2]error
		)
		start := make(chan struct{})
		for i, r := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				req := fmt.Sprintf(`{"msgid":1,"id":%d,"password":%q}`, u.id, u.pw)
				if native {
					req = fmt.Sprintf(`{"msgid":1,"proto":2,"rid":1,"id":%d,"password":%q}`, u.id, u.pw)
				}
				if errs[i] = r.TrySend(req + "\x00"); errs[i] != nil {
					return
				}
				o, err := r.ReadObj(readTimeout)
				if errs[i] = err; err == nil {
					res[i] = loginResult{errno: o.Int("errno"), errmsg: o.Str("errmsg"), raw: o.Raw}
					if o.Int("msgid") != 2 {
						errs[i] = fmt.Errorf("login answered with %s", o.Raw)
					}
				}
			}()
		}
		close(start)
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		ok := 0
		for i, r := range res {
			switch r.errno {
			case 0:
				ok++
				wins[i]++
			case 2:
				if !native && r.errmsg != "this account is using, input another!" {
					t.Errorf("round %d: classic errmsg %q", round, r.errmsg)
				}
			default:
				t.Errorf("round %d: unexpected reply %s", round, r.raw)
			}
		}
		if ok != 1 {
			t.Fatalf("round %d (native %v): %d logins succeeded, want exactly 1: %s | %s", round, native, ok, res[0].raw, res[1].raw)
		}
		if round == rounds-1 {
			// The winner leaves; the account is free again on the other server.
			loser := 1
			if res[1].errno == 0 {
				loser = 0
			}
			conns[1-loser].Close()
			testenv.WaitFor(t, readTimeout, "login after the winner left", func() bool {
				r := dialRaw(t, addrs[loser])
				defer r.Close()
				r.Sendf(`{"msgid":1,"id":%d,"password":%q}`, u.id, u.pw)
				return r.Next().Int("errno") == 0
			})
		}
		for _, r := range conns {
			r.Close()
		}
	}
	t.Logf("%d rounds: m1 won %d, m2 won %d", rounds, wins[0], wins[1])
}

// measureThroughput logs (does not assert) how many cross-server messages a
// second 20 native pairs push through two servers in 3 s, each sender
// waiting for its ack before the next message.
func measureThroughput(t *testing.T, c *cluster) {
	if testing.Short() {
		t.Skip("measurement")
	}
	const pairs, window = 20, 3 * time.Second
	s := c.servers
	type pair struct{ from, to *native }
	ps := make([]pair, pairs)
	for i := range ps {
		a, b := s[i%2].Addr(), s[(i+1)%2].Addr()
		ua, ub := c.newUser(t, a), c.newUser(t, b)
		ps[i] = pair{nativeAt(t, a, ua, client.Options{}), nativeAt(t, b, ub, client.Options{})}
	}
	var wg sync.WaitGroup
	sent := make([]int, pairs)
	errs := make([]error, pairs)
	deadline := time.Now().Add(window)
	begin := time.Now()
	for i, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				if _, errs[i] = p.from.Send(ctx(t), p.to.u.id, fmt.Sprintf("m%d", sent[i])); errs[i] != nil {
					return
				}
				sent[i]++
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(begin)
	total := 0
	for i, p := range ps {
		if errs[i] != nil {
			t.Fatalf("pair %d: %v", i, errs[i])
		}
		total += sent[i]
		conv := clusterchat.DirectConv(p.from.u.id, p.to.u.id)
		testenv.WaitFor(t, readTimeout, "every acked message received", func() bool {
			return len(p.to.messages(conv)) >= sent[i]
		})
		checkSeqs(t, p.to.messages(conv), sent[i])
	}
	// Where the time goes: the store commit the ack waits for.
	var sum, count, batches float64
	for _, sv := range s[:2] {
		m := metrics(t, sv.HTTPAddr())
		sum += m["chat_store_append_seconds_sum"]
		count += m["chat_store_append_seconds_count"]
		batches += m["chat_store_append_batch_size_sum"]
	}
	t.Logf("THROUGHPUT cross-server: %d messages acked and received in %v by %d native pairs on 2 servers (closed loop, one in flight per pair, -race build): %.0f msgs/s; store commits over the whole run so far: mean %.1f ms, mean %.1f messages each",
		total, elapsed.Round(time.Millisecond), pairs, float64(total)/elapsed.Seconds(), 1000*sum/max(count, 1), batches/max(count, 1))
}
