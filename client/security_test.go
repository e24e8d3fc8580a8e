package client

import (
	"context"
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

// TestSendQuotaSpent: a refusal whose hint is past the context's deadline
// (a spent quota of message text says hours) is returned at once, not
// waited for until the deadline; the refused message is not stored.
func TestSendQuotaSpent(t *testing.T) {
	ts := startServerWith(t, func(c *server.Config) {
		c.RateLimitsOff = false
		c.MsgQuota = 10
	})
	alice, _, _ := user(t, ts.addr, "alice", Options{})
	_, col, bid := user(t, ts.addr, "bob", Options{})
	if _, err := alice.Send(ctxT(t), bid, "0123456789"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	_, err := alice.Send(ctx, bid, "one more")
	if clusterchat.ErrorCode(err) != clusterchat.ERATELIMIT || ctx.Err() != nil {
		t.Fatalf("Send past the quota: %v (ctx %v), want errno 12 before the deadline", err, ctx.Err())
	}
	if wait := clusterchat.RetryAfter(err); wait < time.Hour {
		t.Errorf("retry hint %v, want hours", wait)
	}
	got := waitLog(t, col, clusterchat.DirectConv(alice.UserID(), bid), 1)
	if len(got) != 1 || got[0].Body != "0123456789" {
		t.Fatalf("stored %v", got)
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
