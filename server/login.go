package server

import (
	"context"

	"golang.org/x/crypto/bcrypt"

	"clusterchat"
	"clusterchat/proto"
)

// maxOffline bounds offlinemsg in one classic login reply; the rest comes at
// the next login (the classic client reads at most 1024 bytes anyway).
const maxOffline = 200

func (s *Server) register(ctx context.Context, c *conn, q *proto.Request) error {
	if q.Proto == proto.Native && c.sess == nil {
		c.setClassic(false)
	}
	name, err := clusterchat.CleanName(q.Name, clusterchat.MaxNameLen)
	if err != nil {
		return err
	}
	if q.Password == "" || len(q.Password) > clusterchat.MaxPasswordLen {
		return clusterchat.Errorf(clusterchat.EINVALID, "password must be 1-%d bytes", clusterchat.MaxPasswordLen)
	}
	if err := s.checkRegister(ctx, c); err != nil {
		return err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(q.Password), s.cfg.BcryptCost)
	if err != nil {
		return err
	}
	id, err := s.Store.CreateUser(ctx, name, string(hash))
	if err != nil {
		return err
	}
	s.users.m.Store(id, name)
	s.log.Info("registered", "user", id, "remote", c.clientAddr())
	r := &proto.RegisterReply{RID: q.RID, ID: id}
	if q.Proto == proto.Native {
		c.sendDirect(r.AppendNative(nil))
	} else {
		c.sendDirect(r.AppendClassic(nil))
	}
	return nil
}

func (s *Server) login(ctx context.Context, c *conn, q *proto.Request) error {
	native := q.Proto == proto.Native
	if c.sess != nil {
		return clusterchat.Errorf(clusterchat.EINVALID, "already logged in; log out first")
	}
	c.setClassic(!native)
	var (
		u         *clusterchat.User
		token     = q.Token
		tokenHash string
		gen       = s.sec.tokenGen.Load()
		err       error
	)
	badLogin := clusterchat.Errorf(clusterchat.EAUTH, "id or password is invalid!")
	if token != "" {
		uid, h, err := s.tokenUser(ctx, token)
		if err != nil {
			s.metrics.logins.WithLabelValues("fail").Inc()
			if clusterchat.ErrorCode(err) == clusterchat.EAUTH {
				s.log.Info("login failed: bad or revoked token", "addr", c.peerKey())
				return badLogin
			}
			return err
		}
		tokenHash = h
		// The store, not the name cache: the user may have been renamed on
		// another server.
		if u, err = s.Store.User(ctx, uid); err != nil {
			return err
		}
	} else {
		if q.ID <= 0 {
			s.metrics.logins.WithLabelValues("fail").Inc()
			return badLogin
		}
		if err := s.checkLogin(ctx, c, q.ID); err != nil {
			return err
		}
		u, err = s.Store.User(ctx, q.ID)
		if clusterchat.ErrorCode(err) == clusterchat.ENOTFOUND {
			s.metrics.logins.WithLabelValues("fail").Inc()
			s.log.Warn("login failed: no such user", "user", q.ID, "addr", c.peerKey())
			return badLogin
		} else if err != nil {
			return err
		}
		if bcrypt.CompareHashAndPassword([]byte(u.PassHash), []byte(q.Password)) != nil {
			s.metrics.logins.WithLabelValues("fail").Inc()
			s.loginFailed(ctx, c, u.ID)
			return badLogin
		}
		s.loginSucceeded(ctx, c, u.ID)
		if native {
			if token, err = s.newToken(ctx, u.ID); err != nil {
				return err
			}
			tokenHash = hashToken(token)
		}
	}
	s.users.m.Store(u.ID, u.Name)

	sess := &session{srv: s, c: c, uid: u.ID, name: u.Name, sid: s.newSID(), native: native, holding: true, tokenHash: tokenHash}
	first, err := s.Presence.Acquire(ctx, u.ID, sess.sid, s.cfg.MaxSessions)
	if err != nil {
		s.metrics.logins.WithLabelValues("refused").Inc()
		if clusterchat.ErrorCode(err) == clusterchat.ESESSIONS {
			return clusterchat.Errorf(clusterchat.ESESSIONS, "this account is using, input another!")
		}
		return err
	}
	// From here the session receives deliveries (held until the reply is
	// written), so nothing committed after the queries below can slip by.
	if err := s.hubAdd(ctx, sess); err != nil {
		s.Presence.Release(context.Background(), u.ID, sess.sid)
		return err
	}
	c.sess = sess
	if q.Token != "" && s.sec.tokenGen.Load() != gen {
		// A revocation came in while this login was on its way and could
		// not see the session yet: ask the store again.
		if _, err := s.Store.TokenUser(ctx, tokenHash); err != nil {
			c.sess = nil
			s.endSession(sess)
			if clusterchat.ErrorCode(err) == clusterchat.EAUTH {
				return badLogin
			}
			return err
		}
	}
	reply, after, err := s.loginReply(ctx, sess, q.RID, token)
	if err != nil {
		c.sess = nil
		s.endSession(sess)
		return err
	}
	// Counted before the reply is written: a client that has its reply
	// must find its session in /metrics.
	s.metrics.logins.WithLabelValues("ok").Inc()
	s.metrics.sessions.Inc()
	if first {
		// Before the reply: the friends told are those of the moment of
		// the login, as the reply lists them, not of whatever the client
		// does once it has the reply (a friendship accepted right after
		// it brings FRIEND_ADDED with the state instead).
		s.announcePresence(ctx, u.ID, proto.Online)
	}
	c.sendDirect(reply)
	sess.replied = true
	// Offline messages that did not fit a classic reply, oldest first, each
	// its own object; they count as delivered once written.
	for _, m := range after {
		c.send(outItem{b: appendNL(proto.AppendClassicChat(nil, m)), conv: m.Conv, seq: m.Seq, user: sess.uid})
	}
	sess.drain()
	s.log.Info("login", "user", u.ID, "session", sess.sid, "native", native, "remote", c.clientAddr())
	return nil
}

// loginReply builds the login acknowledgement for sess, joining its groups
// on this server on the way. For a classic session it also returns the
// offline messages that did not fit the reply (proto.ClassicLoginMax), to be
// written after it.
func (s *Server) loginReply(ctx context.Context, sess *session, rid int64, token string) ([]byte, []*clusterchat.Message, error) {
	uid := sess.uid
	// Cursor moves still buffered in memory (messages just written to the
	// user's other or previous sessions, its own messages) must count here,
	// or they come back as offlinemsg and unread counts.
	s.flushUserCursors(ctx, uid)
	friends, err := s.friendsOf(ctx, uid)
	if err != nil {
		return nil, nil, err
	}
	groups, err := s.Store.UserGroups(ctx, uid)
	if err != nil {
		return nil, nil, err
	}
	for _, g := range groups {
		if err := s.hubJoin(ctx, sess, g.ID); err != nil {
			return nil, nil, err
		}
	}
	// Presence is shown between friends only: group members who are not
	// friends always show offline.
	ids := make([]int64, 0, len(friends))
	friend := make(map[int64]bool, len(friends)+1)
	for _, f := range friends {
		ids = append(ids, f.ID)
		friend[f.ID] = true
	}
	friend[uid] = true
	online, err := s.Presence.Online(ctx, ids)
	if err != nil {
		return nil, nil, err
	}
	if online == nil {
		online = make(map[int64]bool)
	}
	online[uid] = true
	r := &proto.LoginReply{RID: rid, ID: uid, Name: sess.name, Token: token}
	for _, f := range friends {
		r.Friends = append(r.Friends, proto.Friend{ID: f.ID, Name: f.Name, State: proto.StateOf(online[f.ID])})
	}
	for _, g := range groups {
		pg := proto.Group{ID: g.ID, Name: g.Name, Desc: g.Desc, Members: make([]proto.Member, 0, len(g.Members))}
		for _, m := range g.Members {
			pg.Members = append(pg.Members, proto.Member{ID: m.UserID, Name: m.Name, State: proto.StateOf(friend[m.UserID] && online[m.UserID]), Role: m.Role})
		}
		r.Groups = append(r.Groups, pg)
	}
	if sess.native {
		convs, err := s.Store.Convs(ctx, uid)
		if err != nil {
			return nil, nil, err
		}
		for _, cv := range convs {
			r.Convs = append(r.Convs, proto.Conv{Conv: cv.Conv, Last: cv.LastSeq, Read: cv.Read, Unread: max(cv.LastSeq-cv.Read, 0)})
		}
		return r.AppendNative(nil), nil, nil
	}

	// What the session has accounted for starts at the stored delivered
	// cursors, then covers the offline messages.
	convs, err := s.Store.Convs(ctx, uid)
	if err != nil {
		return nil, nil, err
	}
	written := make(map[string]int64, len(convs))
	for _, cv := range convs {
		written[cv.Conv] = cv.Delivered
	}
	offline, err := s.Store.Undelivered(ctx, uid, maxOffline)
	if err != nil {
		return nil, nil, err
	}
	for _, m := range offline {
		written[m.Conv] = max(written[m.Conv], m.Seq)
	}
	r.Offline = offline
	reply, n := r.AppendClassicWithin(nil, proto.ClassicLoginMax)
	if n > 0 {
		// Saved before the reply is written, as the classic server deleted
		// offline messages before sending them: a login elsewhere right
		// after this one must not get them again. The messages written
		// after the reply move the cursor as they are written.
		covered := make(map[string]int64)
		for _, m := range offline[:n] {
			covered[m.Conv] = max(covered[m.Conv], m.Seq)
		}
		moves := make([]clusterchat.Cursor, 0, len(covered))
		for conv, seq := range covered {
			moves = append(moves, clusterchat.Cursor{User: uid, Conv: conv, Seq: seq})
		}
		if err := s.Store.MarkDelivered(ctx, moves); err != nil {
			return nil, nil, err
		}
	}
	sess.mu.Lock()
	sess.written = written
	sess.mu.Unlock()
	return reply, offline[n:], nil
}

// endSession ends sess: it leaves the hub and presence, and friends hear of
// it if it was the user's last session anywhere.
func (s *Server) endSession(sess *session) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
	defer cancel()
	s.hubRemove(ctx, sess)
	sess.mu.Lock()
	sess.held, sess.heldBytes = nil, 0
	sess.mu.Unlock()
	if !sess.native {
		// A classic client may log in again at once, anywhere: what it has
		// read must not come back as offline messages.
		sess.c.settle()
	}
	// Save this user's delivered cursors now, not within the next second:
	// a login elsewhere right after must not get the same messages again.
	s.flushUserCursors(ctx, sess.uid)
	last, err := s.Presence.Release(ctx, sess.uid, sess.sid)
	if err != nil {
		s.log.Warn("presence release failed; the entry will expire", "user", sess.uid, "err", err)
	}
	if sess.replied {
		s.metrics.sessions.Dec()
		s.log.Info("session ended", "user", sess.uid, "session", sess.sid)
	}
	if last && err == nil {
		s.announcePresence(ctx, sess.uid, proto.Offline)
	}
}

// announcePresence tells uid's friends (native sessions) that uid came
// online or went offline. It runs after the presence change and reads the
// friends from the store, not the friend cache: a friendship made on
// another server reaches the cache only when its broker event does, and a
// friend missing from a stale list would keep the state that friend was
// given with FRIEND_ADDED (read before this change) for good. Read after
// the change, a friendship committed before the read is told here, and one
// committed after it got the new state with FRIEND_ADDED. An unfriending
// likewise never leaks presence to the former friend.
func (s *Server) announcePresence(ctx context.Context, uid int64, state proto.State) {
	friends, err := s.Store.Friends(ctx, uid)
	if err != nil {
		s.log.Warn("presence: listing friends", "user", uid, "err", err)
		return
	}
	s.announceTo(uid, state, friends)
}

// announceTo tells friends (native sessions) that uid came online or went
// offline.
func (s *Server) announceTo(uid int64, state proto.State, friends []clusterchat.User) {
	if len(friends) == 0 {
		return
	}
	b := appendNL((&proto.PresenceEvent{ID: uid, State: state}).AppendNative(nil))
	for _, f := range friends {
		s.publish(clusterchat.UserChannel(f.ID), &envelope{kind: kindPresence, from: uid, native: b})
	}
}
