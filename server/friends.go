package server

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"

	"clusterchat"
	"clusterchat/proto"
)

// Friendship and DM policies (Config.Friends, Config.DM).
const (
	FriendsConsent = "consent" // a friendship needs both sides: a request and an accept (default)
	FriendsOpen    = "open"    // ADD_FRIEND befriends both ways at once (closed teams)
	DMAll          = "all"     // anyone not blocked may message anyone (classic behaviour, default)
	DMFriends      = "friends" // direct messages only between friends
)

// socialState is a session's social state, owned by the session: the
// cache of its relations (caches.go), a rename waiting for its read loop,
// and its recent searches.
type socialState struct {
	relations

	rename   atomic.Pointer[string] // a new name of the user, applied by the read loop (applyRename)
	searchMu sync.Mutex
	searches []time.Time // recent searches, for the per-session limit
}

// refreshPresence sends every native session on this server its friends'
// presence as it is now. It runs after the broker reconnected: PRESENCE
// events published meanwhile are lost (the broker is at most once), and
// presence must come back to the truth, not stay at the last event heard.
func (s *Server) refreshPresence() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h := s.hub
	h.mu.RLock()
	uids := make([]int64, 0, len(h.users))
	for uid, list := range h.users {
		for _, sess := range list {
			if sess.native {
				uids = append(uids, uid)
				break
			}
		}
	}
	h.mu.RUnlock()
	for _, uid := range uids {
		friends, err := s.friendsOf(ctx, uid)
		if err != nil || len(friends) == 0 {
			continue
		}
		ids := make([]int64, len(friends))
		for i, f := range friends {
			ids[i] = f.ID
		}
		online, err := s.Presence.Online(ctx, ids)
		if err != nil {
			s.log.Warn("presence refresh after a broker reconnect failed", "user", uid, "err", err)
			continue
		}
		var b []byte
		for _, id := range ids {
			b = appendNL((&proto.PresenceEvent{ID: id, State: proto.StateOf(online[id])}).AppendNative(b))
		}
		for _, sess := range h.localSessions(uid) {
			if sess.native {
				sess.c.send(outItem{b: b})
			}
		}
	}
}

// searchLimit and searchWindow bound user searches per session: enough to
// type a name, not enough to walk the user table quickly.
const (
	searchLimit  = 10
	searchWindow = 10 * time.Second
)

func (st *socialState) allowSearch(now time.Time) bool {
	st.searchMu.Lock()
	defer st.searchMu.Unlock()
	keep := st.searches[:0]
	for _, t := range st.searches {
		if now.Sub(t) < searchWindow {
			keep = append(keep, t)
		}
	}
	st.searches = keep
	if len(keep) >= searchLimit {
		return false
	}
	st.searches = append(st.searches, now)
	return true
}

// tell publishes a native event for the sessions of uid (except origin);
// about names the other user, whose cached relation those sessions forget.
func (s *Server) tell(uid int64, origin string, about int64, ev interface{ AppendNative([]byte) []byte }) {
	e := &envelope{kind: kindEvent, origin: origin, from: about}
	if ev != nil {
		e.native = appendNL(ev.AppendNative(nil))
	}
	s.publish(clusterchat.UserChannel(uid), e)
}

// userID validates a request's target user id and returns its name.
func (s *Server) userID(ctx context.Context, sess *session, id int64) (string, error) {
	if id <= 0 {
		return "", clusterchat.Errorf(clusterchat.EINVALID, "missing id")
	}
	if id == sess.uid {
		return "", clusterchat.Errorf(clusterchat.EINVALID, "that is yourself")
	}
	return s.knownUser(ctx, id)
}

// befriended tells both sides that a and b are now friends (FRIEND_ADDED
// with live presence) and returns b's state for a's reply.
func (s *Server) befriended(ctx context.Context, sess *session, other int64, otherName string) proto.State {
	online, err := s.Presence.Online(ctx, []int64{sess.uid, other})
	if err != nil {
		online = map[int64]bool{sess.uid: true}
	}
	sess.soc.forget(other)
	s.tell(other, sess.sid, sess.uid, &proto.FriendAddedEvent{Friend: proto.Friend{ID: sess.uid, Name: sess.name, State: proto.StateOf(online[sess.uid])}})
	state := proto.StateOf(online[other])
	s.tell(sess.uid, sess.sid, other, &proto.FriendAddedEvent{Friend: proto.Friend{ID: other, Name: otherName, State: state}})
	return state
}

// requestFriend asks id for friendship (FriendRequest, and ADD_FRIEND when
// friendship needs consent): an accept when id asked first.
func (s *Server) requestFriend(ctx context.Context, sess *session, q *proto.Request, id int64) error {
	name, err := s.userID(ctx, sess, id)
	if err != nil {
		return err
	}
	friends, err := s.Store.RequestFriend(ctx, sess.uid, id)
	switch clusterchat.ErrorCode(err) {
	case 0:
	case clusterchat.EFORBIDDEN:
		p, perr := s.peer(ctx, sess, id)
		if perr == nil && p&peerBlocked != 0 {
			return youBlock(id)
		}
		return refused()
	default:
		return err
	}
	reply := &proto.FriendOpReply{Req: q.MsgID, RID: q.RID, ID: id, Name: name, Friend: friends}
	if friends {
		reply.State = s.befriended(ctx, sess, id, name)
	} else {
		s.tell(id, sess.sid, sess.uid, &proto.FriendEventMsg{Event: proto.EvRequest, ID: sess.uid, Name: sess.name})
		s.tell(sess.uid, sess.sid, id, &proto.FriendEventMsg{Event: proto.EvRequested, ID: id, Name: name})
	}
	if sess.native {
		sess.c.sendDirect(reply.AppendNative(nil))
	}
	return nil
}

// friendOp answers FRIEND_ACCEPT ... UNBLOCK.
func (s *Server) friendOp(ctx context.Context, sess *session, q *proto.Request) error {
	if q.MsgID == proto.FriendRequest {
		return s.requestFriend(ctx, sess, q, q.ID)
	}
	name, err := s.userID(ctx, sess, q.ID)
	if err != nil {
		return err
	}
	id := q.ID
	// mine: the event for this user's other sessions; theirs: for id's
	// sessions (nil: they learn nothing, only their cache is refreshed).
	var mine, theirs *proto.FriendEventMsg
	switch q.MsgID {
	case proto.FriendAccept:
		if err := s.Store.AcceptFriend(ctx, sess.uid, id); err != nil {
			return err
		}
		state := s.befriended(ctx, sess, id, name)
		sess.c.sendDirect((&proto.FriendOpReply{Req: q.MsgID, RID: q.RID, ID: id, Name: name, Friend: true, State: state}).AppendNative(nil))
		return nil
	case proto.FriendDecline:
		err = s.Store.DeleteFriendRequest(ctx, id, sess.uid)
		mine, theirs = &proto.FriendEventMsg{Event: proto.EvDeclined, ID: id, Name: name}, &proto.FriendEventMsg{Event: proto.EvDeclined}
	case proto.FriendCancel:
		err = s.Store.DeleteFriendRequest(ctx, sess.uid, id)
		mine, theirs = &proto.FriendEventMsg{Event: proto.EvCanceled, ID: id, Name: name}, &proto.FriendEventMsg{Event: proto.EvCanceled}
	case proto.FriendRemove:
		err = s.Store.RemoveFriend(ctx, sess.uid, id)
		mine, theirs = &proto.FriendEventMsg{Event: proto.EvRemoved, ID: id, Name: name}, &proto.FriendEventMsg{Event: proto.EvRemoved}
	case proto.Block:
		// The blocked side sees what a removal and a declined request look
		// like (the friendship and any request are gone), nothing more.
		var wasFriend bool
		if wasFriend, err = s.Store.AreFriends(ctx, sess.uid, id); err == nil {
			err = s.Store.Block(ctx, sess.uid, id)
		}
		mine = &proto.FriendEventMsg{Event: proto.EvBlocked, ID: id, Name: name}
		if wasFriend {
			theirs = &proto.FriendEventMsg{Event: proto.EvRemoved}
		}
	case proto.Unblock:
		err = s.Store.Unblock(ctx, sess.uid, id)
		mine = &proto.FriendEventMsg{Event: proto.EvUnblocked, ID: id, Name: name}
	}
	if err != nil {
		return err
	}
	sess.soc.forget(id)
	s.tell(sess.uid, sess.sid, id, mine)
	if theirs != nil {
		theirs.ID, theirs.Name = sess.uid, sess.name
		s.tell(id, sess.sid, sess.uid, theirs)
	} else {
		s.tell(id, sess.sid, sess.uid, nil)
	}
	sess.c.sendDirect((&proto.OKReply{Req: q.MsgID, RID: q.RID}).AppendNative(nil))
	return nil
}

// socialState answers SOCIAL_STATE.
func (s *Server) socialState(ctx context.Context, sess *session, q *proto.Request) error {
	reqs, err := s.Store.FriendRequests(ctx, sess.uid)
	if err != nil {
		return err
	}
	blocked, err := s.Store.Blocked(ctx, sess.uid)
	if err != nil {
		return err
	}
	pending, err := s.Store.UserPending(ctx, sess.uid)
	if err != nil {
		return err
	}
	r := &proto.SocialStateReply{RID: q.RID, Requests: []proto.FriendReqInfo{}, Blocked: []proto.UserRef{}, Pending: []proto.PendingInfo{}}
	for _, f := range reqs {
		r.Requests = append(r.Requests, proto.FriendReqInfo{From: f.From, FromName: f.FromName, To: f.To, ToName: f.ToName, TS: f.Time.UnixMilli()})
	}
	for _, u := range blocked {
		r.Blocked = append(r.Blocked, proto.UserRef{ID: u.ID, Name: u.Name})
	}
	for _, p := range pending {
		r.Pending = append(r.Pending, proto.PendingOf(p))
	}
	sess.c.sendDirect(r.AppendNative(nil))
	return nil
}

// maxSearchPage bounds one page of user search.
const maxSearchPage = 50

// searchUsers answers SEARCH_USERS, rate limited per session.
func (s *Server) searchUsers(ctx context.Context, sess *session, q *proto.Request) error {
	if q.Limit < 0 || q.Limit > maxSearchPage {
		return clusterchat.Errorf(clusterchat.EINVALID, "limit must be 1-%d", maxSearchPage)
	}
	if len(q.Name) > clusterchat.MaxNameLen*4 || len(q.Cursor) > clusterchat.MaxNameLen*4 {
		return clusterchat.Errorf(clusterchat.EINVALID, "name or cursor too long")
	}
	if !sess.soc.allowSearch(time.Now()) {
		return clusterchat.Errorf(clusterchat.ERATELIMIT, "too many searches; at most %d per %v", searchLimit, searchWindow)
	}
	limit := q.Limit
	if limit == 0 {
		limit = 20
	}
	users, err := s.Store.SearchUsers(ctx, q.Name, q.Cursor, limit)
	if err != nil {
		return err
	}
	r := &proto.SearchReply{RID: q.RID, Users: []proto.UserRef{}}
	for _, u := range users {
		r.Users = append(r.Users, proto.UserRef{ID: u.ID, Name: u.Name})
	}
	sess.c.sendDirect(r.AppendNative(nil))
	return nil
}

// setName answers SET_NAME: stored, then the user's other sessions (their
// outgoing messages carry it from their next request) and friends hear it.
func (s *Server) setName(ctx context.Context, sess *session, q *proto.Request) error {
	name, err := clusterchat.CleanName(q.Name, clusterchat.MaxNameLen)
	if err != nil {
		return err
	}
	if err := s.Store.SetUserName(ctx, sess.uid, name); err != nil {
		if clusterchat.ErrorCode(err) == clusterchat.EEXISTS {
			return clusterchat.Errorf(clusterchat.EEXISTS, "user name %q is taken", name)
		}
		return err
	}
	sess.name = name
	s.users.m.Store(sess.uid, name)
	ev := appendNL((&proto.UserEventMsg{ID: sess.uid, Name: name}).AppendNative(nil))
	s.publish(clusterchat.UserChannel(sess.uid), &envelope{kind: kindRename, origin: sess.sid, from: sess.uid, conv: name, native: ev})
	friends, err := s.Store.Friends(ctx, sess.uid)
	if err != nil {
		s.log.Warn("rename: listing friends", "user", sess.uid, "err", err)
	}
	for _, f := range friends {
		s.publish(clusterchat.UserChannel(f.ID), &envelope{kind: kindRename, origin: sess.sid, from: sess.uid, conv: name, native: ev})
	}
	sess.c.sendDirect((&proto.OKReply{Req: q.MsgID, RID: q.RID}).AppendNative(nil))
	return nil
}

// setPassword answers SET_PASSWORD: the current password is checked (with
// the login limits: a wrong one counts as a failed login), the new one
// stored, which revokes every token of the account; the user's other
// sessions end (a stolen session does not outlive the change).
func (s *Server) setPassword(ctx context.Context, sess *session, q *proto.Request) error {
	if q.NewPassword == "" || len(q.NewPassword) > clusterchat.MaxPasswordLen {
		return clusterchat.Errorf(clusterchat.EINVALID, "newpassword must be 1-%d bytes", clusterchat.MaxPasswordLen)
	}
	if err := s.checkLogin(ctx, sess.c, sess.uid); err != nil {
		return err
	}
	u, err := s.Store.User(ctx, sess.uid)
	if err != nil {
		return err
	}
	if bcrypt.CompareHashAndPassword([]byte(u.PassHash), []byte(q.Password)) != nil {
		s.loginFailed(ctx, sess.c, sess.uid)
		return clusterchat.Errorf(clusterchat.EAUTH, "the current password is wrong")
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(q.NewPassword), s.cfg.BcryptCost)
	if err != nil {
		return err
	}
	if err := s.Store.SetPassword(ctx, sess.uid, string(hash)); err != nil {
		return err
	}
	s.revokeUser(ctx, sess.uid, sess.sid, "password")
	return s.replaceToken(ctx, sess, q.RID)
}

// socialEnvelope applies what an envelope on sess's user channel changes
// besides its delivery: relation changes make the session forget what it
// knew of the other user; a rename of the session's own user is taken by
// its read loop, and every rename refreshes the name cache. dispatch calls
// it for those two kinds only.
func (s *Server) socialEnvelope(sess *session, e *envelope) {
	switch e.kind {
	case kindEvent:
		if e.from != sess.uid {
			sess.soc.forget(e.from)
		}
	case kindRename:
		s.users.m.Store(e.from, e.conv)
		if e.from == sess.uid && e.origin != sess.sid {
			name := e.conv
			sess.soc.rename.Store(&name)
		}
	}
}

// social answers the social requests (msgids 40-59) of a native session
// (handle checks that).
func (s *Server) social(ctx context.Context, sess *session, q *proto.Request) error {
	switch q.MsgID {
	case proto.FriendRequest, proto.FriendAccept, proto.FriendDecline, proto.FriendCancel, proto.FriendRemove, proto.Block, proto.Unblock:
		return s.friendOp(ctx, sess, q)
	case proto.SocialState:
		return s.socialState(ctx, sess, q)
	case proto.SearchUsers:
		return s.searchUsers(ctx, sess, q)
	case proto.SetName:
		return s.setName(ctx, sess, q)
	case proto.SetPassword:
		return s.setPassword(ctx, sess, q)
	}
	return s.groupOp(ctx, sess, q)
}
