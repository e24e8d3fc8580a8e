package storetest

import (
	"testing"
	"time"

	"clusterchat"
)

// tokenUser is what TokenUser says of hash: the uid, or 0 with EAUTH.
func tokenUser(t *testing.T, s clusterchat.Store, hash string) int64 {
	t.Helper()
	uid, err := s.TokenUser(ctx(t), hash)
	if err != nil {
		wantCode(t, "TokenUser "+hash, err, clusterchat.EAUTH)
		return 0
	}
	return uid
}

func testTokenRenew(t *testing.T, s clusterchat.Store) {
	c := ctx(t)
	u := mkUser(t, s, "u")
	now := time.Now()
	must(t, "PutToken", s.PutToken(c, "live", u, now.Add(time.Hour)))
	must(t, "PutToken", s.PutToken(c, "old", u, now.Add(-time.Second)))
	// Renewing moves the expiry: a renewal into the past ends the token,
	// which shows the new expiry is the one that counts.
	must(t, "RenewToken live", s.RenewToken(c, "live", now.Add(48*time.Hour)))
	if got := tokenUser(t, s, "live"); got != u {
		t.Fatalf("renewed token: user %d, want %d", got, u)
	}
	must(t, "RenewToken live to the past", s.RenewToken(c, "live", now.Add(-time.Minute)))
	if got := tokenUser(t, s, "live"); got != 0 {
		t.Errorf("token renewed into the past still logs in (user %d)", got)
	}
	for _, h := range []string{"old", "nope", "live"} {
		wantCode(t, "RenewToken "+h, s.RenewToken(c, h, now.Add(time.Hour)), clusterchat.EAUTH)
	}
	if got := tokenUser(t, s, "old"); got != 0 {
		t.Errorf("an expired token was brought back by RenewToken (user %d)", got)
	}
}

func testTokenRevoke(t *testing.T, s clusterchat.Store) {
	c := ctx(t)
	u1, u2 := mkUser(t, s, "u1"), mkUser(t, s, "u2")
	exp := time.Now().Add(time.Hour)
	for _, tok := range []struct {
		hash string
		uid  int64
	}{{"a1", u1}, {"a2", u1}, {"a3", u1}, {"b1", u2}} {
		must(t, "PutToken", s.PutToken(c, tok.hash, tok.uid, exp))
	}
	must(t, "DeleteToken a1", s.DeleteToken(c, "a1"))
	must(t, "DeleteToken unknown", s.DeleteToken(c, "unknown"))
	want := map[string]int64{"a1": 0, "a2": u1, "a3": u1, "b1": u2}
	for h, uid := range want {
		if got := tokenUser(t, s, h); got != uid {
			t.Errorf("after DeleteToken a1: %s -> %d, want %d", h, got, uid)
		}
	}
	wantCode(t, "RenewToken of a deleted token", s.RenewToken(c, "a1", exp), clusterchat.EAUTH)
	must(t, "DeleteUserTokens u1", s.DeleteUserTokens(c, u1))
	want = map[string]int64{"a1": 0, "a2": 0, "a3": 0, "b1": u2}
	for h, uid := range want {
		if got := tokenUser(t, s, h); got != uid {
			t.Errorf("after DeleteUserTokens u1: %s -> %d, want %d", h, got, uid)
		}
	}
	// A token stored after the revocation works: revoking is not a ban.
	must(t, "PutToken after revoke", s.PutToken(c, "a4", u1, exp))
	if got := tokenUser(t, s, "a4"); got != u1 {
		t.Errorf("new token after DeleteUserTokens: %d, want %d", got, u1)
	}
	must(t, "DeleteUserTokens of a user without tokens", s.DeleteUserTokens(c, mkUser(t, s, "u3")))
}

func testTokenSweep(t *testing.T, s clusterchat.Store) {
	c := ctx(t)
	u := mkUser(t, s, "u")
	now := time.Now()
	must(t, "PutToken", s.PutToken(c, "gone1", u, now.Add(-time.Hour)))
	must(t, "PutToken", s.PutToken(c, "gone2", u, now.Add(-time.Second)))
	must(t, "PutToken", s.PutToken(c, "live", u, now.Add(time.Hour)))
	n, err := s.DeleteExpiredTokens(c, now)
	must(t, "DeleteExpiredTokens", err)
	if n != 2 {
		t.Errorf("DeleteExpiredTokens deleted %d, want 2", n)
	}
	if got := tokenUser(t, s, "live"); got != u {
		t.Errorf("live token after the sweep: %d, want %d", got, u)
	}
	// Nothing left to sweep; a later sweep takes the one that expired since.
	n, err = s.DeleteExpiredTokens(c, now)
	must(t, "DeleteExpiredTokens again", err)
	if n != 0 {
		t.Errorf("second sweep deleted %d, want 0", n)
	}
	n, err = s.DeleteExpiredTokens(c, now.Add(2*time.Hour))
	must(t, "DeleteExpiredTokens later", err)
	if n != 1 {
		t.Errorf("later sweep deleted %d, want 1", n)
	}
	// A swept token is gone from the user's tokens too: revoking them all
	// after a sweep works and a new token of the same hash is independent.
	must(t, "PutToken", s.PutToken(c, "live", u, now.Add(time.Hour)))
	must(t, "DeleteUserTokens", s.DeleteUserTokens(c, u))
	if got := tokenUser(t, s, "live"); got != 0 {
		t.Errorf("token survived DeleteUserTokens after a sweep: %d", got)
	}
}

func testSetPassword(t *testing.T, s clusterchat.Store) {
	c := ctx(t)
	u1, u2 := mkUser(t, s, "u1"), mkUser(t, s, "u2")
	exp := time.Now().Add(time.Hour)
	must(t, "PutToken", s.PutToken(c, "t1", u1, exp))
	must(t, "PutToken", s.PutToken(c, "t2", u2, exp))
	must(t, "SetPassword", s.SetPassword(c, u1, "new-hash"))
	got, err := s.User(c, u1)
	must(t, "User", err)
	if got.PassHash != "new-hash" || got.Name != "u1" {
		t.Errorf("after SetPassword: %+v", got)
	}
	if uid := tokenUser(t, s, "t1"); uid != 0 {
		t.Errorf("token of u1 survived its password change")
	}
	if uid := tokenUser(t, s, "t2"); uid != u2 {
		t.Errorf("token of u2 hit by u1's password change: %d", uid)
	}
	if other, err := s.User(c, u2); err != nil || other.PassHash != "hash-u2" {
		t.Errorf("u2 after u1's password change: %+v, %v", other, err)
	}
	wantCode(t, "SetPassword of a missing user", s.SetPassword(c, 9999, "h"), clusterchat.ENOTFOUND)
}
