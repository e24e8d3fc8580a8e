package server

import (
	"context"
	"sync"

	"clusterchat"
)

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

// has reports whether uid has a session in the hub.
func (h *hub) has(uid int64) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.users[uid]) > 0
}
