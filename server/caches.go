package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"time"

	"clusterchat"
)

// This file holds what a server remembers to answer requests without a
// store read each, and the checks a chat message passes on those caches
// (mayMessage, checkMember): user names, session tokens, the friend lists
// of the users with a session here, and each session's relations.

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

// knownUser returns the name of user id, or ENOTFOUND "no user ID".
func (s *Server) knownUser(ctx context.Context, id int64) (string, error) {
	name, err := s.userName(ctx, id)
	if clusterchat.ErrorCode(err) == clusterchat.ENOTFOUND {
		return "", clusterchat.Errorf(clusterchat.ENOTFOUND, "no user %d", id)
	}
	return name, err
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

// friendCache remembers the friend lists of users with a session on this
// server, read at every login (a storm of reconnects read them several
// times per login). Presence announcements read the store instead
// (announcePresence says why).
//
// An entry is kept only while this server is subscribed to the user's
// channel (the user has a session here): every change to a user's friends
// or to their names reaches that channel as an envelope (kindEvent from
// tell, kindRename), and dispatch drops the entry when one
// arrives. The last session's end drops it too, and a broker reconnect
// (envelopes may have been lost) drops them all. gen makes a fill that
// raced with a drop give up: it is bumped by every drop, and a list read
// from the store is kept only if gen did not move meanwhile.
type friendCache struct {
	mu  sync.Mutex
	gen uint64
	m   map[int64][]clusterchat.User
}

// friendsOf returns uid's friends from the cache or the store. The slice is
// shared: callers must not change it.
func (s *Server) friendsOf(ctx context.Context, uid int64) ([]clusterchat.User, error) {
	if f, ok := s.cachedFriends(uid); ok {
		return f, nil
	}
	c := &s.friendCache
	c.mu.Lock()
	gen := c.gen
	c.mu.Unlock()
	f, err := s.Store.Friends(ctx, uid)
	if err != nil {
		return nil, err
	}
	if !s.hub.has(uid) {
		return f, nil // no subscription: no way to hear of a change
	}
	c.mu.Lock()
	if c.gen == gen {
		if c.m == nil {
			c.m = make(map[int64][]clusterchat.User)
		}
		c.m[uid] = f
	}
	c.mu.Unlock()
	return f, nil
}

// cachedFriends returns uid's cached friends, if any.
func (s *Server) cachedFriends(uid int64) ([]clusterchat.User, bool) {
	c := &s.friendCache
	c.mu.Lock()
	f, ok := c.m[uid]
	c.mu.Unlock()
	return f, ok
}

// forgetFriends drops uid's entry (something about its friends changed, or
// its last session here ended).
func (s *Server) forgetFriends(uid int64) {
	c := &s.friendCache
	c.mu.Lock()
	c.gen++
	delete(c.m, uid)
	c.mu.Unlock()
}

// forgetAllFriends drops every entry (the broker reconnected).
func (s *Server) forgetAllFriends() {
	c := &s.friendCache
	c.mu.Lock()
	c.gen++
	c.m = nil
	c.mu.Unlock()
}

// relations is a session's cache of what it may do towards other users
// (socialState embeds it). Relation changes reach it through the broker
// (socialEnvelope forgets the other user); a broker reconnect resets it.
type relations struct {
	mu    sync.Mutex
	gen   uint64            // bumped by every invalidation, so a load racing one is not kept
	peers map[int64]peerBit // other user -> what is known about them
}

// peerBit says what is known of one other user.
type peerBit uint8

const (
	peerBlocksMe peerBit = 1 << iota // they block this user
	peerBlocked                      // this user blocks them
	peerFriend                       // they are friends
)

// maxPeers bounds a session's cache; past it the cache starts over.
const maxPeers = 4096

// forget drops what is known of uid (something between them changed).
func (st *relations) forget(uid int64) {
	st.mu.Lock()
	st.gen++
	delete(st.peers, uid)
	st.mu.Unlock()
}

// reset forgets everything known of other users.
func (st *relations) reset() {
	st.mu.Lock()
	st.gen++
	st.peers = nil
	st.mu.Unlock()
}

// peer returns what sess may do towards uid, from the cache or the store.
func (s *Server) peer(ctx context.Context, sess *session, uid int64) (peerBit, error) {
	st := &sess.soc.relations
	st.mu.Lock()
	p, ok := st.peers[uid]
	gen := st.gen
	st.mu.Unlock()
	if ok {
		return p, nil
	}
	blocksMe, err := s.Store.IsBlocked(ctx, uid, sess.uid)
	if err != nil {
		return 0, err
	}
	blocked, err := s.Store.IsBlocked(ctx, sess.uid, uid)
	if err != nil {
		return 0, err
	}
	friend, err := s.Store.AreFriends(ctx, sess.uid, uid)
	if err != nil {
		return 0, err
	}
	p = 0
	if blocksMe {
		p |= peerBlocksMe
	}
	if blocked {
		p |= peerBlocked
	}
	if friend {
		p |= peerFriend
	}
	st.mu.Lock()
	if st.gen == gen { // no invalidation raced the reads
		if st.peers == nil || len(st.peers) >= maxPeers {
			st.peers = make(map[int64]peerBit)
		}
		st.peers[uid] = p
	}
	st.mu.Unlock()
	return p, nil
}

// mayMessage fails unless sess may send a direct message to uid: ENOTFOUND
// when there is no such user, EFORBIDDEN when either side blocks the other
// or direct messages are for friends only and they are not friends.
func (s *Server) mayMessage(ctx context.Context, sess *session, uid int64) error {
	if _, err := s.knownUser(ctx, uid); err != nil {
		return err
	}
	p, err := s.peer(ctx, sess, uid)
	if err == nil && s.refuses(p) {
		// A cached refusal may be stale: an unblock or a new friendship
		// made on another server reaches this session's cache through the
		// broker, after its author has the reply (an unblock tells this
		// user nothing, so the client cannot wait for it). Refusals are
		// rare: the store decides them, so a message sent after the
		// change is acknowledged is never refused for it.
		sess.soc.forget(uid)
		p, err = s.peer(ctx, sess, uid)
	}
	if err != nil {
		return err
	}
	switch {
	case p&peerBlocked != 0:
		return youBlock(uid)
	case p&peerBlocksMe != 0, s.cfg.DM == DMFriends && p&peerFriend == 0:
		return refused()
	}
	return nil
}

// refuses reports whether p forbids a direct message.
func (s *Server) refuses(p peerBit) bool {
	return p&(peerBlocked|peerBlocksMe) != 0 || s.cfg.DM == DMFriends && p&peerFriend == 0
}

// refused is the one answer a user gets when someone they try to reach
// blocks them (or takes direct messages from friends only): the same text
// and code whatever the reason, so it tells nothing more.
func refused() error { return clusterchat.Errorf(clusterchat.EFORBIDDEN, "refused") }

// youBlock refuses an approach to a user this user blocks.
func youBlock(uid int64) error {
	return clusterchat.Errorf(clusterchat.EFORBIDDEN, "you block user %d; unblock them first", uid)
}
