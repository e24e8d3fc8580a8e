package server_test

import (
	"testing"
	"time"

	"clusterchat/internal/wiretest"
	"clusterchat/server"
)

// limitsOn turns the rate limits on for a test server, with edit's changes.
func limitsOn(edit func(*server.Config)) func(*server.Config) {
	return func(c *server.Config) {
		c.RateLimitsOff = false
		if edit != nil {
			edit(c)
		}
	}
}

// TestLoginRateLimit: after LoginFailures wrong passwords for one account
// from one address within LoginWindow, even the right password is refused
// from that address with errno 12 until the window ends; other accounts
// are not affected.
func TestLoginRateLimit(t *testing.T) {
	ts := wiretest.StartServer(t, limitsOn(func(c *server.Config) {
		c.LoginFailures = 3
		c.LoginWindow = time.Hour
	}))
	victim := newUser(t, ts, "victim")
	other := newUser(t, ts, "bystander")
	c := wiretest.Dial(t, ts.TCP, readTimeout)
	for range 3 {
		c.Sendf(`{"msgid":1,"id":%d,"password":"guess"}`, victim.id)
		c.Expect(2, "errno", 1, "errmsg", "id or password is invalid!")
	}
	c.Sendf(`{"msgid":1,"id":%d,"password":%q}`, victim.id, victim.pw)
	o := c.Expect(2, "errno", 12)
	if o.Str("errmsg") == "" {
		t.Errorf("rate-limit reply without errmsg: %v", o.M)
	}
	// The connection goes on, and another account logs in normally.
	c.ClassicLogin(other.id, other.pw)
}

// TestLoginSuccessResetsFailures: a successful login clears the count.
func TestLoginSuccessResetsFailures(t *testing.T) {
	ts := wiretest.StartServer(t, limitsOn(func(c *server.Config) {
		c.LoginFailures = 2
		c.LoginWindow = time.Hour
	}))
	u := newUser(t, ts, "forgetful")
	for range 3 {
		c := wiretest.Dial(t, ts.TCP, readTimeout)
		c.Sendf(`{"msgid":1,"id":%d,"password":"wrong"}`, u.id)
		c.Expect(2, "errno", 1)
		c.ClassicLogin(u.id, u.pw)
		c.NC.Close()
	}
}
