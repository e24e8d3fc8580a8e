package client

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"clusterchat"
	"clusterchat/internal/testenv"
	"clusterchat/proto"
)

func TestErrors(t *testing.T) {
	ts := startServer(t)
	c, _, id := user(t, ts.addr, "alice", Options{})
	other, _ := dial(t, ts.addr, Options{})
	tests := []struct {
		name string
		call func() error
		code int
	}{
		{"wrong password", func() error { _, err := other.Login(ctxT(t), id, "nope"); return err }, clusterchat.EAUTH},
		{"bad token", func() error { _, err := other.LoginToken(ctxT(t), "nope"); return err }, clusterchat.EAUTH},
		{"name taken", func() error { _, err := other.Register(ctxT(t), "alice", "x"); return err }, clusterchat.EEXISTS},
		{"send before login", func() error { _, err := other.Send(ctxT(t), id, "hi"); return err }, clusterchat.ENOTLOGGEDIN},
		{"no such user", func() error { _, err := c.Send(ctxT(t), 999, "hi"); return err }, clusterchat.ENOTFOUND},
		{"no such friend", func() error { _, err := c.AddFriend(ctxT(t), 999); return err }, clusterchat.ENOTFOUND},
		{"no such group", func() error { _, err := c.JoinGroup(ctxT(t), 999); return err }, clusterchat.ENOTFOUND},
		{"not a member", func() error { _, err := c.History(ctxT(t), "d:998:999", 0, 10); return err }, clusterchat.EFORBIDDEN},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			var ce *clusterchat.Error
			if !errors.As(err, &ce) || ce.Code != tt.code {
				t.Fatalf("err = %v, want errno %d", err, tt.code)
			}
		})
	}
}

func TestChatFriendsGroupsHistory(t *testing.T) {
	ts := startServer(t)
	alice, acol, aid := user(t, ts.addr, "alice", Options{})
	bob, bcol, bid := user(t, ts.addr, "bob", Options{})
	ctx := ctxT(t)

	// Friendship by consent: alice's add is a request, bob's add back makes
	// them friends.
	f, err := alice.AddFriend(ctx, bid)
	if err != nil || f.ID != bid || f.Name != "bob" || f.State != "" {
		t.Fatalf("AddFriend = %+v, %v", f, err)
	}
	testenv.WaitFor(t, waitTime, "bob's friend-request event", func() bool {
		return bcol.has(func(e Event) bool { return e.Kind == EventFriend && e.Action == proto.EvRequest && e.UserID == aid })
	})
	if f, err = bob.AddFriend(ctx, aid); err != nil || f.ID != aid || f.State != "online" {
		t.Fatalf("AddFriend back = %+v, %v", f, err)
	}
	testenv.WaitFor(t, waitTime, "alice's friend-added event", func() bool {
		return acol.has(func(e Event) bool { return e.Kind == EventFriendAdded && e.UserID == bid && e.Name == "bob" })
	})

	conv := clusterchat.DirectConv(aid, bid)
	for i := range 3 {
		ack, err := alice.Send(ctx, bid, fmt.Sprintf("hello %d", i))
		if err != nil || ack.Seq != int64(i+1) || ack.Conv != conv || ack.MID == 0 || ack.Dup {
			t.Fatalf("Send = %+v, %v", ack, err)
		}
	}
	got := waitLog(t, bcol, conv, 3)
	if got[0].From != aid || got[0].FromName != "alice" || got[0].To != bid || got[0].Body != "hello 0" || got[0].Time.IsZero() {
		t.Fatalf("bob got %+v", got[0])
	}
	// Alice's own messages are in her log too, marked Sent.
	for _, m := range waitLog(t, acol, conv, 3) {
		if m.From != aid {
			t.Fatalf("alice's log has %+v", m)
		}
	}
	if !acol.has(func(e Event) bool { return e.Kind == EventMessage && e.Sent }) {
		t.Fatalf("alice's own messages are not marked Sent")
	}

	gid, err := alice.CreateGroup(ctx, "dev", "developers")
	if err != nil || gid <= 0 {
		t.Fatalf("CreateGroup = %d, %v", gid, err)
	}
	for _, want := range []bool{true, false} {
		if joined, err := bob.JoinGroup(ctx, gid); err != nil || joined != want {
			t.Fatalf("JoinGroup = %v, %v; want %v", joined, err, want)
		}
	}
	testenv.WaitFor(t, waitTime, "alice's group-joined event", func() bool {
		return acol.has(func(e Event) bool { return e.Kind == EventGroupJoined && e.GroupID == gid && e.UserID == bid })
	})
	if _, err := bob.SendGroup(ctx, gid, "hi all"); err != nil {
		t.Fatal(err)
	}
	gm := waitLog(t, acol, clusterchat.GroupConv(gid), 1)
	if gm[0].GroupID != gid || gm[0].From != bid || gm[0].Body != "hi all" {
		t.Fatalf("group message %+v", gm[0])
	}

	p, err := bob.History(ctx, conv, 0, 2)
	if err != nil || len(p.Msgs) != 2 || p.Msgs[0].Seq != 2 || p.Msgs[1].Seq != 3 || p.Last != 3 {
		t.Fatalf("History = %+v, %v", p, err)
	}
	p, err = bob.History(ctx, conv, 2, 10)
	if err != nil || len(p.Msgs) != 1 || p.Msgs[0].Seq != 1 {
		t.Fatalf("History before 2 = %+v, %v", p, err)
	}

	// A read marker reaches the user's other sessions.
	bob2, b2col := dial(t, ts.addr, Options{})
	if _, err := bob2.Login(ctx, bid, "pw-bob"); err != nil {
		t.Fatal(err)
	}
	if err := bob.MarkRead(ctx, conv, 3); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, waitTime, "read event on bob's other session", func() bool {
		return b2col.has(func(e Event) bool { return e.Kind == EventRead && e.Conv == conv && e.Seq == 3 })
	})
	if err := bob.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	if err := bob2.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, waitTime, "alice sees bob offline", func() bool {
		return acol.has(func(e Event) bool { return e.Kind == EventPresence && e.UserID == bid && e.State == "offline" })
	})
}

// TestCatchUp: messages sent while a device was away come first, in order,
// once; cursors resume a device where it stopped; FromRead starts at the
// read marker.
func TestCatchUp(t *testing.T) {
	ts := startServer(t)
	alice, _, aid := user(t, ts.addr, "alice", Options{})
	bob, _, bid := user(t, ts.addr, "bob", Options{})
	ctx := ctxT(t)
	conv := clusterchat.DirectConv(aid, bid)
	for i := range 250 { // more than one SYNC page
		if _, err := alice.Send(ctx, bid, fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	bob.MarkRead(ctx, conv, 240)

	tests := []struct {
		name      string
		opts      Options
		from, all int64 // first seq expected, last seq
	}{
		{"new device", Options{}, 1, 251},
		{"cursors", Options{Cursors: map[string]int64{conv: 100}}, 101, 251},
		{"from read", Options{FromRead: true}, 241, 251},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, col := dial(t, ts.addr, tt.opts)
			info, err := d.Login(ctx, bid, "pw-bob")
			if err != nil {
				t.Fatal(err)
			}
			if len(info.Convs) != 1 || info.Convs[0].Conv != conv || info.Token == "" {
				t.Fatalf("login info %+v", info)
			}
			// A live message while catching up comes after the missed ones.
			if _, err := alice.Send(ctx, bid, fmt.Sprint("live ", i)); err != nil {
				t.Fatal(err)
			}
			if err := d.Synced(ctx); err != nil {
				t.Fatal(err)
			}
			last := tt.all + int64(i)
			testenv.WaitFor(t, waitTime, "catch-up", func() bool {
				return int64(len(col.messages(conv))) >= last-tt.from+1
			})
			if c := d.Cursors()[conv]; c != last {
				t.Fatalf("cursor %d, want %d", c, last)
			}
			msgs := col.messages(conv)
			if int64(len(msgs)) != last-tt.from+1 {
				t.Fatalf("%d messages, want %d..%d", len(msgs), tt.from, last)
			}
			for j, m := range msgs {
				if m.Seq != tt.from+int64(j) {
					t.Fatalf("message %d has seq %d, want %d", j, m.Seq, tt.from+int64(j))
				}
			}
		})
	}
}

// TestLossyDelivery plays a broker that drops and repeats live messages:
// the device still holds every message exactly once, in order.
func TestLossyDelivery(t *testing.T) {
	ts := startServer(t)
	var mu sync.Mutex
	n := 0
	lossy := func(*proto.Frame) int {
		mu.Lock()
		defer mu.Unlock()
		n++
		switch n % 4 {
		case 1:
			return 0 // lost
		case 2:
			return 2 // repeated
		}
		return 1
	}
	alice, _, aid := user(t, ts.addr, "alice", Options{})
	bob, bcol, bid := user(t, ts.addr, "bob", Options{testLive: lossy})
	gid, err := alice.CreateGroup(ctxT(t), "g", "")
	if err != nil {
		t.Fatal(err)
	}
	carol, _, _ := user(t, ts.addr, "carol", Options{})
	if _, err := carol.JoinGroup(ctxT(t), gid); err != nil {
		t.Fatal(err)
	}
	// This device relies on the periodic sync instead of calling Sync.
	bobGroup, bgcol := dial(t, ts.addr, Options{testLive: lossy, SyncInterval: 50 * time.Millisecond})
	if _, err := bobGroup.Login(ctxT(t), bid, "pw-bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := bobGroup.JoinGroup(ctxT(t), gid); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, s := range []*Client{alice, carol} {
		wg.Go(func() {
			for i := range 40 {
				if _, err := s.SendGroup(ctxT(t), gid, fmt.Sprint(i)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	for i := range 40 {
		if _, err := alice.Send(ctxT(t), bid, fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	// A lost last message leaves no later one to reveal the gap: that is
	// what Sync (or the server's "resync" notice) is for.
	if err := bob.Sync(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	waitLog(t, bcol, clusterchat.DirectConv(aid, bid), 40)
	waitLog(t, bgcol, clusterchat.GroupConv(gid), 80)
}

// TestReconnect restarts the server under clients that keep sending: with
// Reconnect every send is acknowledged once and every device ends up with
// the whole log, in order, once.
func TestReconnect(t *testing.T) {
	ts := startServer(t)
	opts := Options{Reconnect: true}
	alice, acol, aid := user(t, ts.addr, "alice", opts)
	bob, bcol, bid := user(t, ts.addr, "bob", opts)
	conv := clusterchat.DirectConv(aid, bid)
	const n = 60
	var wg sync.WaitGroup
	for _, p := range []struct {
		c  *Client
		to int64
	}{{alice, bid}, {bob, aid}} {
		wg.Go(func() {
			for i := range n {
				if _, err := p.c.Send(ctxT(t), p.to, fmt.Sprint(i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for range 2 {
		testenv.WaitFor(t, waitTime, "some traffic", func() bool { return len(acol.messages(conv)) > 10 })
		ts.stop()
		ts.start()
	}
	wg.Wait()
	waitLog(t, acol, conv, 2*n)
	waitLog(t, bcol, conv, 2*n)
	if !acol.has(func(e Event) bool { return e.Kind == EventReconnected }) {
		t.Fatal("no reconnected event")
	}
}
