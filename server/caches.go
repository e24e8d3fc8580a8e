package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"time"

	"clusterchat"
)

// userCache remembers user names by id. Users are never deleted; a rename
// (SET_NAME) updates the cache of the servers of the user's and their
// friends' sessions, so elsewhere a name may lag (logins read the store).
type userCache struct{ m sync.Map }

func (s *Server) userName(ctx context.Context, id int64) (string, error) {
	if v, ok := s.users.m.Load(id); ok {
		return v.(string), nil
	}
	u, err := s.Store.User(ctx, id)
	if err != nil {
		return "", err
	}
	s.users.m.Store(id, u.Name)
	return u.Name, nil
}

// tokenCache remembers recently used session tokens (by hash), so a storm of
// reconnects costs no store read each. A revocation (logout, log out
// everywhere, a new password) drops entries on every server through the
// broker (tokens.go); entries also lapse after a minute, which bounds what
// a revocation lost with a broker outage can leave. The cache is bounded
// and forgets everything when full.
type tokenCache struct {
	mu sync.Mutex
	m  map[string]tokenEntry
}

type tokenEntry struct {
	uid     int64
	expires time.Time
}

const tokenCacheMax = 1 << 16

// tokenUser returns the user of a live token and slides its expiry: a token
// lapses after TokenTTL without use. The renewal is a store write, done
// when the token is not in the cache (at most once a minute per server).
func (s *Server) tokenUser(ctx context.Context, token string) (uid int64, hash string, err error) {
	h := hashToken(token)
	c := &s.tokens
	c.mu.Lock()
	e, ok := c.m[h]
	c.mu.Unlock()
	if ok && time.Now().Before(e.expires) {
		return e.uid, h, nil
	}
	gen := s.sec.tokenGen.Load()
	uid, err = s.Store.TokenUser(ctx, h)
	if err != nil {
		return 0, "", err
	}
	if err := s.Store.RenewToken(ctx, h, time.Now().Add(s.cfg.TokenTTL)); err != nil {
		return 0, "", err // EAUTH: revoked or expired in between
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= tokenCacheMax {
		c.m = make(map[string]tokenEntry)
	}
	if s.sec.tokenGen.Load() == gen {
		// A minute is enough to absorb a storm and short enough not to
		// outlive a lost revocation by much; under half the TTL, so a token
		// in use is renewed in the store before it can expire there.
		c.m[h] = tokenEntry{uid: uid, expires: time.Now().Add(min(time.Minute, s.cfg.TokenTTL/2))}
	}
	c.mu.Unlock()
	return uid, h, nil
}

// forgetTokens empties the token cache.
func (s *Server) forgetTokens() {
	s.sec.tokenGen.Add(1)
	s.tokens.mu.Lock()
	s.tokens.m = nil
	s.tokens.mu.Unlock()
}

func hashToken(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

// checkMember fails unless sess's user is a member of gid. The hub's
// index answers for the groups the session is in (it follows memberships
// as they change); the store for the rest (just joined elsewhere).
func (s *Server) checkMember(ctx context.Context, sess *session, gid int64) error {
	if s.hub.inGroup(sess, gid) {
		return nil
	}
	role, err := s.Store.Role(ctx, gid, sess.uid)
	if err != nil {
		if clusterchat.ErrorCode(err) == clusterchat.ENOTFOUND {
			return clusterchat.Errorf(clusterchat.ENOTFOUND, "no group %d", gid)
		}
		return err
	}
	if role == "" {
		return clusterchat.Errorf(clusterchat.EFORBIDDEN, "not a member of group %d", gid)
	}
	return nil
}
