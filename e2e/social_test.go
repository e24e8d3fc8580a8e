package e2e

import (
	"slices"
	"testing"
	"time"

	"clusterchat"
	"clusterchat/client"
	"clusterchat/internal/testenv"
	"clusterchat/proto"
)

// accept logs u in natively at addr and accepts the friend request of from
// (the consent half of a friendship, from the other side).
func accept(tb testing.TB, addr string, u user, from int64) {
	tb.Helper()
	r := dialRaw(tb, addr)
	defer r.Close()
	r.NativeLogin(u.id, u.pw)
	r.Call(proto.FriendAccept, `{"msgid":61,"id":%d}`, from)
}

// befriend makes a (logged in as an) friends with each of fs: a asks, each
// accepts from its own connection.
func befriend(tb testing.TB, addr string, an *native, fs ...user) {
	tb.Helper()
	for _, f := range fs {
		if _, err := an.AddFriend(ctx(tb), f.id); err != nil {
			tb.Fatalf("add friend %d: %v", f.id, err)
		}
		accept(tb, addr, f, an.u.id)
	}
}

// errCode returns the code of err, failing the test when err is nil.
func errCode(tb testing.TB, what string, err error) int {
	tb.Helper()
	if err == nil {
		tb.Fatalf("%s: succeeded, want an error", what)
	}
	return clusterchat.ErrorCode(err)
}

// TestSocial checks the social rules (issue 11) from the outside, across two
// servers behind nginx: users on different servers, every rule enforced
// and every change seen live on the other one.
func TestSocial(t *testing.T) {
	c := startCluster(t, 2)
	t.Run("StrangerSeesNoPresence", func(t *testing.T) { testStrangerPresence(t, c) })
	t.Run("BlockedCannotReach", func(t *testing.T) { testBlock(t, c) })
	t.Run("PrivateGroup", func(t *testing.T) { testPrivateGroup(t, c) })
	t.Run("RemovedMember", func(t *testing.T) { testRemovedMember(t, c) })
	t.Run("PresenceAfterRedisOutage", func(t *testing.T) { testPresenceOutage(t, c) }) // last: it stalls Redis
}

// testPresenceOutage: Redis stalls longer than the presence TTL, so x's
// session lapses while x stays connected to n2, and when Redis is back a
// server may reap n2 and tell x's friend "offline". Presence must come
// back to the truth: the friend's last word about x is "online", and a
// fresh login shows x online.
func testPresenceOutage(t *testing.T, c *cluster) {
	n1, n2 := c.servers[0].Addr(), c.servers[1].Addr()
	w, x := c.newUser(t, n1), c.newUser(t, n2)
	wn := nativeAt(t, n1, w, client.Options{})
	befriend(t, n2, wn, x)
	nativeAt(t, n2, x, client.Options{}) // x stays connected throughout
	wn.waitEvent(t, "x online", isPresence(x.id, proto.Online))
	aboutX := func(e client.Event) bool { return e.Kind == client.EventPresence && e.UserID == x.id }
	before := len(wn.find(aboutX))

	c.redis.Pause(t)
	time.Sleep(15 * time.Second) // the outage itself: longer than TTL (10 s) + heartbeat (3 s)
	c.redis.Resume(t)
	testenv.WaitFor(t, 30*time.Second, "x announced online again after the outage", func() bool {
		evs := wn.find(aboutX)
		return len(evs) > before && evs[len(evs)-1].State == proto.Online
	})
	t.Logf("presence events about x across the outage: %d (after %d before it)", len(wn.find(aboutX))-before, before)
	w2 := nativeAt(t, n2, w, client.Options{})
	for _, f := range w2.info.Friends {
		if f.ID == x.id && f.State != proto.Online {
			t.Fatalf("a fresh login shows x %s; x is connected", f.State)
		}
	}
}

func isPresence(id int64, state proto.State) func(client.Event) bool {
	return func(e client.Event) bool { return e.Kind == client.EventPresence && e.UserID == id && e.State == state }
}

// testStrangerPresence: without an accepted friendship no one learns
// another's presence: not by events, not in a login reply (friends or a
// shared group), not after a mere request.
func testStrangerPresence(t *testing.T, c *cluster) {
	n1, n2 := c.servers[0].Addr(), c.servers[1].Addr()
	a, s := c.newUser(t, n1), c.newUser(t, n1)
	an := nativeAt(t, n1, a, client.Options{})
	gid, err := an.CreateGroup(ctx(t), c.name("g"), "shared")
	if err != nil {
		t.Fatal(err)
	}
	// The stranger adds a (a request only), joins a's group, comes online
	// on the other server.
	sr := dialRaw(t, n2)
	sr.ClassicLogin(s.id, s.pw)
	sr.Sendf(`{"msgid":7,"id":%d,"friendid":%d}`, s.id, a.id)
	sr.Sendf(`{"msgid":9,"id":%d,"groupid":%d}`, s.id, gid)
	sr.Ping()
	an.waitEvent(t, "the stranger's friend request", func(e client.Event) bool {
		return e.Kind == client.EventFriend && e.Action == proto.EvRequest && e.UserID == s.id
	})
	an.waitEvent(t, "the stranger joining", func(e client.Event) bool { return e.Kind == client.EventGroupJoined && e.UserID == s.id })
	// a's view: no friend, the member shown offline although online.
	a2 := nativeAt(t, n2, a, client.Options{})
	if len(a2.info.Friends) != 0 {
		t.Fatalf("a's friends before consent: %+v", a2.info.Friends)
	}
	for _, g := range a2.info.Groups {
		for _, m := range g.Members {
			if m.ID == s.id && m.State != proto.Offline {
				t.Fatalf("a sees the stranger %s in their group", m.State)
			}
		}
	}
	info, err := a2.GroupInfo(ctx(t), gid)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range info.Members {
		if m.ID == s.id && m.State != proto.Offline {
			t.Fatalf("GROUP_INFO shows the stranger %s", m.State)
		}
	}
	// The stranger goes offline and online again: a hears nothing.
	sr.Close()
	sr2 := dialRaw(t, n2)
	rep := sr2.ClassicLogin(s.id, s.pw)
	for _, g := range rep.Nested(t, "groups") {
		for _, m := range g.Nested(t, "users") {
			if m.Int("id") == a.id && m.Str("state") != string(proto.Offline) {
				t.Fatalf("the stranger sees a %s", m.Str("state"))
			}
		}
	}
	if len(rep.Nested(t, "friends")) != 0 {
		t.Fatalf("the stranger has friends: %s", rep.Raw)
	}
	// Consent: a accepts; from now on presence flows both ways, live.
	if _, err := an.AcceptFriend(ctx(t), s.id); err != nil {
		t.Fatal(err)
	}
	a2.waitEvent(t, "friend added on a's other device", func(e client.Event) bool { return e.Kind == client.EventFriendAdded && e.UserID == s.id })
	sr2.Close()
	an.waitEvent(t, "the friend goes offline", isPresence(s.id, proto.Offline))
	if got := an.find(func(e client.Event) bool { return e.Kind == client.EventPresence && e.UserID == s.id }); len(got) != 1 {
		t.Fatalf("presence events about the stranger: %+v (only the one after consent)", got)
	}
}

// testBlock: a blocked user's messages and requests get a generic refusal,
// they lose the friendship and the blocker's presence, the blocker's other
// device hears of the block, and unblocking restores messaging.
func testBlock(t *testing.T, c *cluster) {
	n1, n2 := c.servers[0].Addr(), c.servers[1].Addr()
	b, m := c.newUser(t, n1), c.newUser(t, n2)
	bn := nativeAt(t, n1, b, client.Options{})
	b2 := nativeAt(t, n2, b, client.Options{}) // the blocker's other device
	mn := nativeAt(t, c.nginx.StreamAddr(), m, client.Options{})
	befriend(t, n2, mn, b)
	if _, err := mn.Send(ctx(t), b.id, "before"); err != nil {
		t.Fatal(err)
	}
	bn.waitMessage(t, m.id, "before")

	if err := bn.Block(ctx(t), m.id); err != nil {
		t.Fatal(err)
	}
	b2.waitEvent(t, "the block on the other device", func(e client.Event) bool {
		return e.Kind == client.EventFriend && e.Action == proto.EvBlocked && e.UserID == m.id
	})
	mn.waitEvent(t, "the friendship gone", func(e client.Event) bool {
		return e.Kind == client.EventFriend && e.Action == proto.EvRemoved && e.UserID == b.id
	})
	_, err := mn.Send(ctx(t), b.id, "let me talk")
	if code := errCode(t, "send to the blocker", err); code != clusterchat.EFORBIDDEN || err.(*clusterchat.Error).Message != "refused" {
		t.Fatalf("send to the blocker: %v, want the generic refusal", err)
	}
	_, _, err = mn.RequestFriend(ctx(t), b.id)
	if code := errCode(t, "request to the blocker", err); code != clusterchat.EFORBIDDEN {
		t.Fatalf("friend request to the blocker: %v", err)
	}
	// Classic too: the error reply, nothing delivered.
	mr := dialRaw(t, n1)
	mr.ClassicLogin(m.id, m.pw)
	mr.Sendf(`{"msgid":6,"id":%d,"to":%d,"msg":"classic try","time":"t"}`, m.id, b.id)
	mr.Expect(11, "req", 6, "errno", clusterchat.EFORBIDDEN, "errmsg", "refused")
	mr.Close()
	// No presence of the blocker: m's login shows no friend b, and b
	// going offline and online tells m nothing.
	m2 := nativeAt(t, n1, m, client.Options{})
	if len(m2.info.Friends) != 0 {
		t.Fatalf("m's friends after the block: %+v", m2.info.Friends)
	}
	b3 := nativeAt(t, n1, b, client.Options{})
	b3.Close()
	bn.Ping(ctx(t))
	if got := m2.find(func(e client.Event) bool { return e.Kind == client.EventPresence && e.UserID == b.id }); len(got) != 0 {
		t.Fatalf("the blocked user got presence of the blocker: %+v", got)
	}
	st, err := b2.Social(ctx(t))
	if err != nil || len(st.Blocked) != 1 || st.Blocked[0].ID != m.id {
		t.Fatalf("block list = %+v, %v", st, err)
	}
	for _, e := range bn.messages(clusterchat.DirectConv(b.id, m.id)) {
		if e.Body != "before" {
			t.Fatalf("the blocker received %q", e.Body)
		}
	}
	// Unblock: messages flow again (the friendship stays ended).
	if err := b2.Unblock(ctx(t), m.id); err != nil {
		t.Fatal(err)
	}
	bn.waitEvent(t, "the unblock on the other device", func(e client.Event) bool {
		return e.Kind == client.EventFriend && e.Action == proto.EvUnblocked && e.UserID == m.id
	})
	if _, err := mn.Send(ctx(t), b.id, "after unblock"); err != nil {
		t.Fatalf("send after unblock: %v", err)
	}
	bn.waitMessage(t, m.id, "after unblock")
}

// testPrivateGroup: a non-member can neither read nor post, a classic join
// gets a clear error, a request waits for an admin, and the admitted
// member reads from their join on.
func testPrivateGroup(t *testing.T, c *cluster) {
	n1, n2 := c.servers[0].Addr(), c.servers[1].Addr()
	o, x := c.newUser(t, n1), c.newUser(t, n2)
	on := nativeAt(t, n1, o, client.Options{})
	gid, err := on.NewGroup(ctx(t), c.name("secret"), "members only", true, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := on.SendGroup(ctx(t), gid, "before x"); err != nil {
		t.Fatal(err)
	}
	xn := nativeAt(t, c.nginx.StreamAddr(), x, client.Options{})
	conv := clusterchat.GroupConv(gid)
	_, err = xn.SendGroup(ctx(t), gid, "intruder")
	if code := errCode(t, "post by a non-member", err); code != clusterchat.EFORBIDDEN {
		t.Fatalf("post by a non-member: %v", err)
	}
	_, err = xn.History(ctx(t), conv, 0, 50)
	if code := errCode(t, "history by a non-member", err); code != clusterchat.EFORBIDDEN {
		t.Fatalf("history by a non-member: %v", err)
	}
	xr := dialRaw(t, n2)
	xr.ClassicLogin(x.id, x.pw)
	xr.Sendf(`{"msgid":14,"proto":2,"rid":1,"conv":%q,"after":0}`, conv)
	xr.Expect(11, "req", 14, "errno", clusterchat.EFORBIDDEN)
	xr.Sendf(`{"msgid":9,"id":%d,"groupid":%d}`, x.id, gid)
	if o := xr.Expect(11, "req", 9, "errno", clusterchat.EFORBIDDEN); o.Str("errmsg") == "" {
		t.Fatal("classic join of a private group: no error text")
	}
	xr.Close()
	if _, err := xn.JoinGroup(ctx(t), gid); clusterchat.ErrorCode(err) != clusterchat.EFORBIDDEN {
		t.Fatalf("native join of a private group: %v", err)
	}
	// Ask, the admin (other server) sees it and approves.
	joined, err := xn.AskToJoin(ctx(t), gid)
	if err != nil || joined {
		t.Fatalf("ask = %v, %v", joined, err)
	}
	on.waitEvent(t, "the join request", func(e client.Event) bool {
		return e.Kind == client.EventGroup && e.Action == proto.EvAsked && e.UserID == x.id
	})
	info, err := on.GroupInfo(ctx(t), gid)
	if err != nil || len(info.Pending) != 1 || info.Pending[0].ID != x.id || !info.Private {
		t.Fatalf("group info = %+v, %v", info, err)
	}
	if err := on.Approve(ctx(t), gid, x.id); err != nil {
		t.Fatal(err)
	}
	xn.waitEvent(t, "admitted", func(e client.Event) bool {
		return e.Kind == client.EventGroupJoined && e.GroupID == gid && e.UserID == x.id
	})
	if _, err := on.SendGroup(ctx(t), gid, "welcome"); err != nil {
		t.Fatal(err)
	}
	xn.waitMessage(t, o.id, "welcome")
	p, err := xn.History(ctx(t), conv, 0, 50)
	if err != nil || len(p.Msgs) != 1 || p.Msgs[0].Body != "welcome" {
		t.Fatalf("history of the new member = %+v, %v (want only what came after the join)", p, err)
	}
}

// testRemovedMember: a removed member's sessions on both servers stop
// receiving at once, and nothing sent after the removal is readable.
func testRemovedMember(t *testing.T, c *cluster) {
	n1, n2 := c.servers[0].Addr(), c.servers[1].Addr()
	o, r, w := c.newUser(t, n1), c.newUser(t, n2), c.newUser(t, n2)
	on := nativeAt(t, n1, o, client.Options{})
	gid, err := on.NewGroup(ctx(t), c.name("club"), "", false, clusterchat.HistoryAll)
	if err != nil {
		t.Fatal(err)
	}
	rn := nativeAt(t, n2, r, client.Options{})
	rn1 := nativeAt(t, n1, r, client.Options{})
	wn := nativeAt(t, n2, w, client.Options{})
	for _, n := range []*native{rn, wn} {
		if _, err := n.JoinGroup(ctx(t), gid); err != nil {
			t.Fatal(err)
		}
	}
	rc, _ := classicAt(t, n2, r) // and a classic session of r
	if _, err := on.SendGroup(ctx(t), gid, "before"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*native{rn, rn1, wn} {
		n.waitMessage(t, o.id, "before")
	}
	rc.Expect(10, "msg", "before")

	if err := on.RemoveMember(ctx(t), gid, r.id); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*native{rn, rn1} {
		n.waitEvent(t, "removed", func(e client.Event) bool {
			return e.Kind == client.EventGroup && e.Action == proto.EvRemoved && e.UserID == r.id && e.GroupID == gid
		})
	}
	wn.waitEvent(t, "the removal", func(e client.Event) bool {
		return e.Kind == client.EventGroup && e.Action == proto.EvRemoved && e.UserID == r.id
	})
	for i, text := range []string{"after 1", "after 2"} {
		if _, err := on.SendGroup(ctx(t), gid, text); err != nil {
			t.Fatal(err)
		}
		wn.waitMessage(t, o.id, text)
		_ = i
	}
	// Everything sent reached w (same server as r): r got none of it.
	rc.Ping()
	for _, n := range []*native{rn, rn1} {
		n.Ping(ctx(t))
		for _, m := range n.messages(clusterchat.GroupConv(gid)) {
			if m.Body != "before" {
				t.Fatalf("removed member received %q", m.Body)
			}
		}
	}
	conv := clusterchat.GroupConv(gid)
	p, err := rn.History(ctx(t), conv, 0, 50)
	if err != nil {
		t.Fatalf("history of a former member: %v", err)
	}
	bodies := []string{}
	for _, m := range p.Msgs {
		bodies = append(bodies, m.Body)
	}
	if !slices.Equal(bodies, []string{"before"}) {
		t.Fatalf("former member reads %q, want only what came before the removal", bodies)
	}
	_, err = rn.SendGroup(ctx(t), gid, "still here?")
	if code := errCode(t, "post after removal", err); code != clusterchat.EFORBIDDEN {
		t.Fatalf("post after removal: %v", err)
	}
	// After a reconnect: the group is gone from the login reply, and a
	// classic login gets nothing of it as offline messages.
	r3 := dialRaw(t, n1)
	rep := r3.ClassicLogin(r.id, r.pw)
	if len(rep.Nested(t, "groups")) != 0 || len(rep.Nested(t, "offlinemsg")) != 0 {
		t.Fatalf("login after removal: %s", rep.Raw)
	}
}
