package server

import (
	"context"
	"sync"

	"clusterchat"

	"clusterchat/proto"
)

// hub indexes this server's live sessions by user and by group, and delivers
// broker envelopes to them.
type hub struct {
	mu     sync.RWMutex
	users  map[int64][]*session
	groups map[int64]map[*session]struct{}
}

func newHub() *hub {
	return &hub{users: make(map[int64][]*session), groups: make(map[int64]map[*session]struct{})}
}

// add registers s under its user and subscribes the user's channel (counted
// per session by the broker).
func (s *Server) hubAdd(ctx context.Context, sess *session) error {
	if err := s.Broker.Subscribe(ctx, clusterchat.UserChannel(sess.uid)); err != nil {
		return err
	}
	h := s.hub
	h.mu.Lock()
	h.users[sess.uid] = append(h.users[sess.uid], sess)
	h.mu.Unlock()
	return nil
}

// hubJoin adds sess to the index of group gid and subscribes the group's
// channel, once per session and group.
func (s *Server) hubJoin(ctx context.Context, sess *session, gid int64) error {
	h := s.hub
	h.mu.RLock()
	_, present := h.groups[gid][sess]
	h.mu.RUnlock()
	if present {
		return nil
	}
	// Subscribe first, then index: a session ending meanwhile gets its
	// subscription undone here instead of leaking it.
	if err := s.Broker.Subscribe(ctx, clusterchat.GroupChannel(gid)); err != nil {
		return err
	}
	h.mu.Lock()
	set := h.groups[gid]
	_, present = set[sess]
	if sess.ended || present {
		h.mu.Unlock()
		s.Broker.Unsubscribe(ctx, clusterchat.GroupChannel(gid))
		return nil
	}
	if set == nil {
		set = make(map[*session]struct{})
		h.groups[gid] = set
	}
	set[sess] = struct{}{}
	sess.groups = append(sess.groups, gid)
	h.mu.Unlock()
	return nil
}

// hubRemove unregisters sess and undoes its subscriptions.
func (s *Server) hubRemove(ctx context.Context, sess *session) {
	h := s.hub
	h.mu.Lock()
	if sess.ended {
		h.mu.Unlock()
		return
	}
	sess.ended = true
	list := h.users[sess.uid]
	for i, x := range list {
		if x == sess {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	last := len(list) == 0
	if last {
		delete(h.users, sess.uid)
	} else {
		h.users[sess.uid] = list
	}
	groups := sess.groups
	for _, gid := range groups {
		if set := h.groups[gid]; set != nil {
			delete(set, sess)
			if len(set) == 0 {
				delete(h.groups, gid)
			}
		}
	}
	h.mu.Unlock()
	if last {
		s.forgetFriends(sess.uid) // no longer subscribed: changes would go unheard
	}
	for _, gid := range groups {
		s.Broker.Unsubscribe(ctx, clusterchat.GroupChannel(gid))
	}
	s.Broker.Unsubscribe(ctx, clusterchat.UserChannel(sess.uid))
}

// localSessions returns a copy of uid's sessions on this server.
func (h *hub) localSessions(uid int64) []*session {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return append([]*session(nil), h.users[uid]...)
}

// has reports whether uid has a session in the hub.
func (h *hub) has(uid int64) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.users[uid]) > 0
}

// HandleMessage implements clusterchat.BrokerHandler: it delivers an
// envelope to the local sessions it concerns.
func (s *Server) HandleMessage(channel clusterchat.Channel, payload []byte) {
	var e envelope
	if err := e.unmarshal(payload); err != nil {
		s.log.Error("dropping malformed envelope", "channel", channel, "err", err)
		return
	}
	s.dispatch(channel, &e)
}

// dispatch delivers e, published on channel, to the local sessions it
// concerns. With an in-process broker publish calls it directly: there is
// no other process to carry the envelope to, so it is never marshalled.
// e is shared by every recipient and must not change once dispatched.
func (s *Server) dispatch(channel clusterchat.Channel, e *envelope) {
	id := channel.ID
	h := s.hub
	if e.kind == kindRevoke {
		s.applyRevoke(e)
		return
	}
	if e.kind == kindJoin { // a user joined a group: index their sessions here
		s.closeMu.RLock()
		defer s.closeMu.RUnlock()
		if s.closing.Load() {
			return
		}
		for _, sess := range h.localSessions(id) {
			s.wg.Add(1)
			go func() { // Subscribe may wait on the broker: not on its goroutine
				defer s.wg.Done()
				if err := s.hubJoin(context.Background(), sess, e.group); err != nil {
					s.log.Warn("group subscribe failed", "group", e.group, "err", err)
					return
				}
				if e.native != nil {
					// Told only once subscribed: what the user sends or
					// expects after hearing it reaches this session.
					ev := *e // a copy: e is shared with every recipient
					ev.kind = kindEvent
					sess.deliver(&ev)
				}
			}()
		}
		return
	}
	h.mu.RLock()
	if channel.Group {
		for sess := range h.groups[id] {
			if e.kind != kindLeave || sess.uid != e.from { // the leaver hears it on its own channel
				sess.deliver(e)
			}
		}
	} else {
		// Friends or their names may have changed; a chat message changes
		// nothing of the kind.
		social := e.kind == kindEvent || e.kind == kindRename
		if social {
			s.forgetFriends(id)
		}
		for _, sess := range h.users[id] {
			if social {
				s.socialEnvelope(sess, e)
			}
			sess.deliver(e)
		}
	}
	h.mu.RUnlock()
	if channel.Group && (e.kind == kindLeave || e.kind == kindDrop) {
		s.groupGone(e)
	}
}

// HandleReconnect implements clusterchat.BrokerHandler: envelopes may have
// been lost while the broker was down, so native sessions are told to catch
// up from the store. Classic sessions get what they missed at their next
// login (their delivered cursor did not move).
func (s *Server) HandleReconnect() {
	s.log.Warn("broker reconnected; asking native sessions to resync")
	s.forgetTokens()     // revocations may have been missed meanwhile
	s.forgetAllFriends() // and so may friend changes
	notice := appendNL((&proto.ReconnectEvent{Reason: proto.ReasonResync}).AppendNative(nil))
	h := s.hub
	h.mu.RLock()
	for _, list := range h.users {
		for _, sess := range list {
			if sess.native {
				sess.c.send(outItem{b: notice})
			}
			sess.soc.reset() // relation changes may have been missed too
		}
	}
	h.mu.RUnlock()
	s.background(s.refreshPresence)
}
