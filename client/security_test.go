package client

import (
	"fmt"
	"testing"
	"time"

	"clusterchat"
	"clusterchat/internal/testenv"
	"clusterchat/proto"
	"clusterchat/server"
)

// TestSendRateLimited: past the server's burst, Send waits for the hint
// and goes on; every message is stored once.
func TestSendRateLimited(t *testing.T) {
	ts := startServerWith(t, func(c *server.Config) {
		c.RateLimitsOff = false
		c.MsgRate = server.Rate{N: 20, Per: time.Second}
		c.MsgBurst = 2
	})
	alice, _, _ := user(t, ts.addr, "alice", Options{})
	_, col, bid := user(t, ts.addr, "bob", Options{})
	ctx := ctxT(t)
	for i := range 6 {
		if _, err := alice.Send(ctx, bid, fmt.Sprint(i)); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	got := waitLog(t, col, clusterchat.DirectConv(alice.UserID(), bid), 6)
	for i, m := range got {
		if m.Body != fmt.Sprint(i) || m.Seq != int64(i+1) {
			t.Fatalf("message %d = %q seq %d", i, m.Body, m.Seq)
		}
	}
}

// TestLogoutAllClient: LogoutAll ends the user's other sessions, which are
// told "revoked" and come back logged out, and their tokens are refused.
func TestLogoutAllClient(t *testing.T) {
	ts := startServer(t)
	a, _, id := user(t, ts.addr, "alice", Options{})
	b, col := dial(t, ts.addr, Options{Reconnect: true})
	info, err := b.Login(ctxT(t), id, "pw-alice")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.LogoutAll(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 20*time.Second, "the other session told it was revoked", func() bool {
		return col.has(func(e Event) bool { return e.Kind == EventReconnect && e.Reason == proto.ReasonRevoked })
	})
	testenv.WaitFor(t, 20*time.Second, "the other session logged out", func() bool { return b.Token() == "" && b.UserID() == 0 })
	c, _ := dial(t, ts.addr, Options{})
	if _, err := c.LoginToken(ctxT(t), info.Token); clusterchat.ErrorCode(err) != clusterchat.EAUTH {
		t.Fatalf("token login after LogoutAll: %v, want EAUTH", err)
	}
}
