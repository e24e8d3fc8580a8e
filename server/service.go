package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"

	"clusterchat"
	"clusterchat/proto"
)

// requestTimeout bounds the store and presence work of one request.
const requestTimeout = 10 * time.Second

// tokenTTL is how long a session token lets a client log in without its password.
const tokenTTL = 30 * 24 * time.Hour

// maxOffline bounds offlinemsg in one classic login reply; the rest comes at
// the next login (the classic client reads at most 1024 bytes anyway).
const maxOffline = 200

// userCache remembers user names by id. Users are never deleted or renamed,
// so a hit is always right.
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

// handle answers one frame from c. It runs on c's read loop.
func (s *Server) handle(c *conn, frame []byte, q *proto.Request) {
	if err := proto.Decode(frame, q); err != nil {
		s.replyConnErr(c, q.MsgID, q.RID, err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	var err error
	switch q.MsgID {
	case proto.Register:
		onFreshStack(func() { err = s.register(ctx, c, q) })
	case proto.Login:
		onFreshStack(func() { err = s.login(ctx, c, q) })
	case proto.OneChat, proto.GroupChat, proto.Logout, proto.AddFriend, proto.CreateGroup,
		proto.AddGroup, proto.Sync, proto.History, proto.Read, proto.Ping:
		if c.sess == nil {
			err = clusterchat.Errorf(clusterchat.ENOTLOGGEDIN, "log in first")
			break
		}
		switch q.MsgID {
		case proto.OneChat, proto.GroupChat:
			err = s.chat(ctx, c.sess, q)
		case proto.Logout:
			s.endSession(c.sess)
			native := c.sess.native
			c.sess = nil
			c.setClassic(true)
			if native {
				c.sendDirect(proto.AppendOK(nil, q.MsgID, q.RID, nil))
			}
		case proto.AddFriend:
			err = s.addFriend(ctx, c.sess, q)
		case proto.CreateGroup:
			err = s.createGroup(ctx, c.sess, q)
		case proto.AddGroup:
			err = s.joinGroup(ctx, c.sess, q)
		case proto.Sync, proto.History:
			err = s.fetch(ctx, c.sess, q)
		case proto.Read:
			err = s.markRead(ctx, c.sess, q)
		case proto.Ping:
			c.sendDirect(proto.AppendOK(nil, q.MsgID, q.RID, nil))
		}
	default:
		err = clusterchat.Errorf(clusterchat.EUNKNOWN, "unknown msgid %d", q.MsgID)
	}
	if err != nil {
		s.replyConnErr(c, q.MsgID, q.RID, err)
	}
}

// onFreshStack runs f on a short-lived goroutine and waits for it. Logins go
// deep (database driver, bcrypt, JSON of the whole reply); run on the read
// loop they would grow its stack for good, and an idle connection's cost is
// mostly that stack. Done on the side, the read loop keeps a small one.
func onFreshStack(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	<-done
}

// replyConnErr answers a failed request on the read loop.
func (s *Server) replyConnErr(c *conn, req int, rid int64, err error) {
	s.countErr(err)
	native := c.native() || (c.sess == nil && !c.classic)
	c.sendDirect(proto.AppendError(nil, req, rid, native, err))
}

// replyErr answers a failed request of sess from any goroutine.
func (s *Server) replyErr(sess *session, req int, rid int64, err error) {
	s.countErr(err)
	if sess == nil {
		return
	}
	sess.c.send(outItem{b: appendNL(proto.AppendError(nil, req, rid, sess.native, err))})
}

func (s *Server) countErr(err error) {
	code := clusterchat.ErrorCode(err)
	s.metrics.errors.WithLabelValues(errLabel(err)).Inc()
	if code == clusterchat.EINTERNAL || code == clusterchat.EUNAVAILABLE {
		s.log.Error("request failed", "err", err)
	}
}

func validName(name string, max int) error {
	n := utf8.RuneCountInString(name)
	if n < 1 || n > max || !utf8.ValidString(name) {
		return clusterchat.Errorf(clusterchat.EINVALID, "name must be 1-%d characters of valid UTF-8", max)
	}
	return nil
}

func (s *Server) register(ctx context.Context, c *conn, q *proto.Request) error {
	if q.Proto == proto.Native && c.sess == nil {
		c.setClassic(false)
	}
	if err := validName(q.Name, clusterchat.MaxNameLen); err != nil {
		return err
	}
	if q.Password == "" || len(q.Password) > clusterchat.MaxPasswordLen {
		return clusterchat.Errorf(clusterchat.EINVALID, "password must be 1-%d bytes", clusterchat.MaxPasswordLen)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(q.Password), s.cfg.BcryptCost)
	if err != nil {
		return err
	}
	id, err := s.Store.CreateUser(ctx, q.Name, string(hash))
	if err != nil {
		return err
	}
	s.users.m.Store(id, q.Name)
	s.log.Info("registered", "user", id)
	b := []byte(`{"errno":0,"id":`)
	b = appendInt(b, id)
	b = append(b, `,"msgid":5`...)
	if q.Proto == proto.Native {
		b = append(b, `,"rid":`...)
		b = appendInt(b, q.RID)
	}
	c.sendDirect(append(b, '}'))
	return nil
}

// tokenCache remembers recently used session tokens (by hash), so a storm of
// reconnects costs no store read each. Tokens are never revoked before they
// expire, so a cached entry is right until its expiry; the cache is bounded
// and forgets arbitrary entries when full.
type tokenCache struct {
	mu sync.Mutex
	m  map[string]tokenEntry
}

type tokenEntry struct {
	uid     int64
	expires time.Time
}

const tokenCacheMax = 1 << 16

func (s *Server) tokenUser(ctx context.Context, token string) (int64, error) {
	h := hashToken(token)
	c := &s.tokens
	c.mu.Lock()
	e, ok := c.m[h]
	c.mu.Unlock()
	if ok && time.Now().Before(e.expires) {
		return e.uid, nil
	}
	uid, err := s.Store.TokenUser(ctx, h)
	if err != nil {
		return 0, err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= tokenCacheMax {
		c.m = make(map[string]tokenEntry)
	}
	// The store knows the real expiry; a minute is enough to absorb a storm
	// and short enough not to outlive it by much.
	c.m[h] = tokenEntry{uid: uid, expires: time.Now().Add(time.Minute)}
	c.mu.Unlock()
	return uid, nil
}

func hashToken(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

func (s *Server) login(ctx context.Context, c *conn, q *proto.Request) error {
	native := q.Proto == proto.Native
	if c.sess != nil {
		return clusterchat.Errorf(clusterchat.EINVALID, "already logged in; log out first")
	}
	c.setClassic(!native)
	var (
		u     *clusterchat.User
		token = q.Token
		err   error
	)
	badLogin := clusterchat.Errorf(clusterchat.EAUTH, "id or password is invalid!")
	if token != "" {
		uid, err := s.tokenUser(ctx, token)
		if err != nil {
			s.metrics.logins.WithLabelValues("fail").Inc()
			if clusterchat.ErrorCode(err) == clusterchat.EAUTH {
				return badLogin
			}
			return err
		}
		name, err := s.userName(ctx, uid)
		if err != nil {
			return err
		}
		u = &clusterchat.User{ID: uid, Name: name}
	} else {
		if q.ID <= 0 {
			s.metrics.logins.WithLabelValues("fail").Inc()
			return badLogin
		}
		if err := s.guard.check(q.ID, s.cfg.LoginFailures, s.cfg.LoginWindow); err != nil {
			s.metrics.logins.WithLabelValues("limited").Inc()
			return err
		}
		u, err = s.Store.User(ctx, q.ID)
		if clusterchat.ErrorCode(err) == clusterchat.ENOTFOUND {
			s.metrics.logins.WithLabelValues("fail").Inc()
			return badLogin
		} else if err != nil {
			return err
		}
		if bcrypt.CompareHashAndPassword([]byte(u.PassHash), []byte(q.Password)) != nil {
			s.metrics.logins.WithLabelValues("fail").Inc()
			s.guard.fail(u.ID, s.cfg.LoginWindow)
			return badLogin
		}
		s.guard.succeed(u.ID)
		if native {
			var raw [16]byte
			rand.Read(raw[:])
			token = hex.EncodeToString(raw[:])
			if err := s.Store.PutToken(ctx, hashToken(token), u.ID, time.Now().Add(tokenTTL)); err != nil {
				return err
			}
		}
	}
	s.users.m.Store(u.ID, u.Name)

	sess := &session{srv: s, c: c, uid: u.ID, name: u.Name, sid: s.newSID(), native: native, holding: true}
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
	reply, err := s.loginReply(ctx, sess, q.RID, token)
	if err != nil {
		c.sess = nil
		s.endSession(sess)
		return err
	}
	c.sendDirect(reply)
	sess.replied = true
	sess.drain()
	s.metrics.logins.WithLabelValues("ok").Inc()
	s.metrics.sessions.Inc()
	s.log.Info("login", "user", u.ID, "session", sess.sid, "native", native)
	if first {
		s.announcePresence(ctx, u.ID, "online")
	}
	return nil
}

// loginReply builds the login acknowledgement for sess, joining its groups
// on this server on the way.
func (s *Server) loginReply(ctx context.Context, sess *session, rid int64, token string) ([]byte, error) {
	uid := sess.uid
	// Cursor moves still buffered in memory (messages just written to the
	// user's other or previous sessions, its own messages) must count here,
	// or they come back as offlinemsg and unread counts.
	s.flushUserCursors(ctx, uid)
	friends, err := s.Store.Friends(ctx, uid)
	if err != nil {
		return nil, err
	}
	groups, err := s.Store.UserGroups(ctx, uid)
	if err != nil {
		return nil, err
	}
	for _, g := range groups {
		if err := s.hubJoin(ctx, sess, g.ID); err != nil {
			return nil, err
		}
	}
	ids := make([]int64, 0, len(friends))
	for _, f := range friends {
		ids = append(ids, f.ID)
	}
	for _, g := range groups {
		for _, m := range g.Members {
			ids = append(ids, m.UserID)
		}
	}
	online, err := s.Presence.Online(ctx, ids)
	if err != nil {
		return nil, err
	}
	state := func(id int64) string {
		if online[id] {
			return "online"
		}
		return "offline"
	}
	if sess.native {
		convs, err := s.Store.Convs(ctx, uid)
		if err != nil {
			return nil, err
		}
		r := nativeLogin{MsgID: proto.LoginAck, RID: rid, ID: uid, Name: sess.name, Token: token,
			Friends: []nativeUser{}, Groups: []nativeGroup{}, Convs: []nativeConv{}}
		for _, f := range friends {
			r.Friends = append(r.Friends, nativeUser{ID: f.ID, Name: f.Name, State: state(f.ID)})
		}
		for _, g := range groups {
			ng := nativeGroup{ID: g.ID, Name: g.Name, Desc: g.Desc, Users: []nativeUser{}}
			for _, m := range g.Members {
				ng.Users = append(ng.Users, nativeUser{ID: m.UserID, Name: m.Name, State: state(m.UserID), Role: m.Role})
			}
			r.Groups = append(r.Groups, ng)
		}
		for _, cv := range convs {
			r.Convs = append(r.Convs, nativeConv{Conv: cv.Conv, Last: cv.LastSeq, Read: cv.Read, Unread: max(cv.LastSeq-cv.Read, 0)})
		}
		return json.Marshal(&r)
	}

	// Classic: nested values as JSON strings, keys sorted, compact, and the
	// optional arrays only when not empty (encoding/json sorts map keys).
	reply := map[string]any{"msgid": proto.LoginAck, "errno": 0, "id": uid, "name": sess.name}
	if len(friends) > 0 {
		list := make([]string, 0, len(friends))
		for _, f := range friends {
			list = append(list, mustJSON(map[string]any{"id": f.ID, "name": f.Name, "state": state(f.ID)}))
		}
		reply["friends"] = list
	}
	if len(groups) > 0 {
		list := make([]string, 0, len(groups))
		for _, g := range groups {
			users := make([]string, 0, len(g.Members))
			for _, m := range g.Members {
				users = append(users, mustJSON(map[string]any{"id": m.UserID, "name": m.Name, "state": state(m.UserID), "role": m.Role}))
			}
			list = append(list, mustJSON(map[string]any{"id": g.ID, "groupname": g.Name, "groupdesc": g.Desc, "users": users}))
		}
		reply["groups"] = list
	}
	// What the session has accounted for starts at the stored delivered
	// cursors, then covers what offlinemsg carries.
	convs, err := s.Store.Convs(ctx, uid)
	if err != nil {
		return nil, err
	}
	written := make(map[string]int64, len(convs))
	for _, cv := range convs {
		written[cv.Conv] = cv.Delivered
	}
	offline, err := s.Store.Undelivered(ctx, uid, maxOffline)
	if err != nil {
		return nil, err
	}
	if len(offline) > 0 {
		list := make([]string, 0, len(offline))
		covered := make(map[string]int64)
		for _, m := range offline {
			list = append(list, string(proto.AppendClassicChat(nil, m)))
			covered[m.Conv] = max(covered[m.Conv], m.Seq)
		}
		reply["offlinemsg"] = list
		// Saved before the reply is written, as the classic server deleted
		// offline messages before sending them: a login elsewhere right
		// after this one must not get them again.
		moves := make([]clusterchat.Cursor, 0, len(covered))
		for conv, seq := range covered {
			moves = append(moves, clusterchat.Cursor{User: uid, Conv: conv, Seq: seq})
			written[conv] = max(written[conv], seq)
		}
		if err := s.Store.MarkDelivered(ctx, moves); err != nil {
			return nil, err
		}
	}
	sess.mu.Lock()
	sess.written = written
	sess.mu.Unlock()
	return json.Marshal(reply)
}

type nativeUser struct {
	ID    int64  `json:"id"`
	Name  string `json:"name"`
	State string `json:"state,omitempty"`
	Role  string `json:"role,omitempty"`
}

type nativeGroup struct {
	ID    int64        `json:"id"`
	Name  string       `json:"groupname"`
	Desc  string       `json:"groupdesc"`
	Users []nativeUser `json:"users"`
}

type nativeConv struct {
	Conv   string `json:"conv"`
	Last   int64  `json:"last"`
	Read   int64  `json:"read"`
	Unread int64  `json:"unread"`
}

type nativeLogin struct {
	MsgID   int           `json:"msgid"`
	RID     int64         `json:"rid"`
	Errno   int           `json:"errno"`
	ID      int64         `json:"id"`
	Name    string        `json:"name"`
	Token   string        `json:"token,omitempty"`
	Friends []nativeUser  `json:"friends"`
	Groups  []nativeGroup `json:"groups"`
	Convs   []nativeConv  `json:"convs"`
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only maps of strings and numbers reach here
	}
	return string(b)
}

// endSession ends sess: it leaves the hub and presence, and friends hear of
// it if it was the user's last session anywhere.
func (s *Server) endSession(sess *session) {
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	s.hubRemove(ctx, sess)
	sess.mu.Lock()
	sess.held, sess.heldBytes = nil, 0
	sess.mu.Unlock()
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
		s.announcePresence(ctx, sess.uid, "offline")
	}
}

// announcePresence tells uid's friends (native sessions) that uid came
// online or went offline.
func (s *Server) announcePresence(ctx context.Context, uid int64, state string) {
	friends, err := s.Store.Friends(ctx, uid)
	if err != nil {
		s.log.Warn("presence: listing friends", "user", uid, "err", err)
		return
	}
	if len(friends) == 0 {
		return
	}
	b := []byte(`{"msgid":12,"id":`)
	b = appendInt(b, uid)
	b = append(b, `,"state":"`...)
	b = append(b, state...)
	b = append(b, "\"}\n"...)
	for _, f := range friends {
		s.publish(userChannel(f.ID), &envelope{kind: kindPresence, from: uid, native: b})
	}
}

func (s *Server) chat(ctx context.Context, sess *session, q *proto.Request) error {
	if len(q.Msg) == 0 {
		return clusterchat.Errorf(clusterchat.EINVALID, "empty message")
	}
	if len(q.Msg) > s.cfg.MaxBody {
		return clusterchat.Errorf(clusterchat.ETOOLARGE, "message longer than %d bytes", s.cfg.MaxBody)
	}
	if len(q.CMID) > 64 {
		return clusterchat.Errorf(clusterchat.EINVALID, "cmid longer than 64 bytes")
	}
	if len(q.Time) > 64 {
		return clusterchat.Errorf(clusterchat.EINVALID, "time longer than 64 bytes")
	}
	m := &clusterchat.Message{From: sess.uid, FromName: sess.name, Body: q.Msg, CTime: q.Time, CMID: q.CMID}
	if m.CTime == "" {
		m.CTime = time.Now().Format(clusterchat.TimeFormat)
	}
	if q.MsgID == proto.OneChat {
		to := q.Recipient()
		if to <= 0 {
			return clusterchat.Errorf(clusterchat.EINVALID, "missing recipient (to)")
		}
		if to == sess.uid {
			return clusterchat.Errorf(clusterchat.EINVALID, "cannot chat with yourself")
		}
		if _, err := s.userName(ctx, to); err != nil {
			if clusterchat.ErrorCode(err) == clusterchat.ENOTFOUND {
				return clusterchat.Errorf(clusterchat.ENOTFOUND, "no user %d", to)
			}
			return err
		}
		m.To, m.Conv = to, clusterchat.DirectConv(sess.uid, to)
	} else {
		if q.GroupID <= 0 {
			return clusterchat.Errorf(clusterchat.EINVALID, "missing groupid")
		}
		if err := s.checkMember(ctx, q.GroupID, sess.uid); err != nil {
			return err
		}
		m.GroupID, m.Conv = q.GroupID, clusterchat.GroupConv(q.GroupID)
	}
	s.submit(&job{m: m, sess: sess, rid: q.RID, req: q.MsgID})
	return nil
}

// checkMember fails unless uid is a member of gid. Membership only grows, so
// a positive answer is cached.
func (s *Server) checkMember(ctx context.Context, gid, uid int64) error {
	key := [2]int64{gid, uid}
	if _, ok := s.members.Load(key); ok {
		return nil
	}
	role, err := s.Store.Role(ctx, gid, uid)
	if err != nil {
		if clusterchat.ErrorCode(err) == clusterchat.ENOTFOUND {
			return clusterchat.Errorf(clusterchat.ENOTFOUND, "no group %d", gid)
		}
		return err
	}
	if role == "" {
		return clusterchat.Errorf(clusterchat.EFORBIDDEN, "not a member of group %d", gid)
	}
	s.members.Store(key, struct{}{})
	return nil
}

func (s *Server) addFriend(ctx context.Context, sess *session, q *proto.Request) error {
	fid := q.FriendID
	if fid <= 0 {
		return clusterchat.Errorf(clusterchat.EINVALID, "missing friendid")
	}
	if fid == sess.uid {
		return clusterchat.Errorf(clusterchat.EINVALID, "cannot befriend yourself")
	}
	name, err := s.userName(ctx, fid)
	if err != nil {
		if clusterchat.ErrorCode(err) == clusterchat.ENOTFOUND {
			return clusterchat.Errorf(clusterchat.ENOTFOUND, "no user %d", fid)
		}
		return err
	}
	if err := s.Store.AddFriend(ctx, sess.uid, fid); err != nil {
		if clusterchat.ErrorCode(err) == clusterchat.EEXISTS {
			return clusterchat.Errorf(clusterchat.EEXISTS, "already friends with %d", fid)
		}
		return err
	}
	online, err := s.Presence.Online(ctx, []int64{sess.uid, fid})
	if err != nil {
		online = map[int64]bool{sess.uid: true}
	}
	st := func(id int64) string {
		if online[id] {
			return "online"
		}
		return "offline"
	}
	if sess.native {
		extra := append([]byte(`,"id":`), appendInt(nil, fid)...)
		extra = append(append(extra, `,"name":`...), proto.AppendString(nil, name)...)
		extra = append(append(extra, `,"state":"`...), st(fid)+`"`...)
		sess.c.sendDirect(proto.AppendOK(nil, q.MsgID, q.RID, extra))
	}
	// Tell the other side, and this user's other sessions.
	s.publish(userChannel(fid), &envelope{kind: kindEvent, origin: sess.sid, from: sess.uid,
		native: friendEvent(sess.uid, sess.name, st(sess.uid))})
	s.publish(userChannel(sess.uid), &envelope{kind: kindEvent, origin: sess.sid, from: fid,
		native: friendEvent(fid, name, st(fid))})
	return nil
}

func friendEvent(id int64, name, state string) []byte {
	b := []byte(`{"msgid":13,"id":`)
	b = appendInt(b, id)
	b = proto.AppendString(append(b, `,"name":`...), name)
	b = append(b, `,"state":"`...)
	b = append(b, state...)
	return append(b, "\"}\n"...)
}

func (s *Server) createGroup(ctx context.Context, sess *session, q *proto.Request) error {
	if err := validName(q.GroupName, clusterchat.MaxNameLen); err != nil {
		return err
	}
	if utf8.RuneCountInString(q.GroupDesc) > clusterchat.MaxGroupDesc || !utf8.ValidString(q.GroupDesc) {
		return clusterchat.Errorf(clusterchat.EINVALID, "groupdesc must be at most %d characters of valid UTF-8", clusterchat.MaxGroupDesc)
	}
	gid, err := s.Store.CreateGroup(ctx, sess.uid, q.GroupName, q.GroupDesc)
	if err != nil {
		if clusterchat.ErrorCode(err) == clusterchat.EEXISTS {
			return clusterchat.Errorf(clusterchat.EEXISTS, "group name %q is taken", q.GroupName)
		}
		return err
	}
	s.members.Store([2]int64{gid, sess.uid}, struct{}{})
	s.log.Info("group created", "group", gid, "user", sess.uid)
	if err := s.joinedHere(ctx, sess, gid); err != nil {
		return err
	}
	if sess.native {
		sess.c.sendDirect(proto.AppendOK(nil, q.MsgID, q.RID, append([]byte(`,"groupid":`), appendInt(nil, gid)...)))
	}
	return nil
}

// joinedHere subscribes the user's sessions, here and on every server, to a
// group they just joined.
func (s *Server) joinedHere(ctx context.Context, sess *session, gid int64) error {
	for _, other := range s.hub.localSessions(sess.uid) {
		if err := s.hubJoin(ctx, other, gid); err != nil {
			return err
		}
	}
	s.publish(userChannel(sess.uid), &envelope{kind: kindJoin, origin: sess.sid, from: sess.uid, group: gid})
	return nil
}

func (s *Server) joinGroup(ctx context.Context, sess *session, q *proto.Request) error {
	gid := q.GroupID
	if gid <= 0 {
		return clusterchat.Errorf(clusterchat.EINVALID, "missing groupid")
	}
	joined, err := s.Store.JoinGroup(ctx, gid, sess.uid)
	if err != nil {
		if clusterchat.ErrorCode(err) == clusterchat.ENOTFOUND {
			return clusterchat.Errorf(clusterchat.ENOTFOUND, "no group %d", gid)
		}
		return err
	}
	s.members.Store([2]int64{gid, sess.uid}, struct{}{})
	if joined {
		if err := s.joinedHere(ctx, sess, gid); err != nil {
			return err
		}
		b := []byte(`{"msgid":19,"groupid":`)
		b = appendInt(b, gid)
		b = appendInt(append(b, `,"id":`...), sess.uid)
		b = proto.AppendString(append(b, `,"name":`...), sess.name)
		b = append(b, "}\n"...)
		s.publish(groupChannel(gid), &envelope{kind: kindEvent, origin: sess.sid, from: sess.uid, group: gid, native: b})
	}
	if sess.native {
		extra := append([]byte(`,"groupid":`), appendInt(nil, gid)...)
		if joined {
			extra = append(extra, `,"joined":true`...)
		} else {
			extra = append(extra, `,"joined":false`...)
		}
		sess.c.sendDirect(proto.AppendOK(nil, q.MsgID, q.RID, extra))
	}
	return nil
}

// convOf resolves the conversation a sync, history or read request names and
// checks that the user takes part in it.
func (s *Server) convOf(ctx context.Context, sess *session, q *proto.Request) (string, error) {
	conv := q.Conv
	switch {
	case conv != "":
	case q.Recipient() > 0:
		conv = clusterchat.DirectConv(sess.uid, q.Recipient())
	case q.GroupID > 0:
		conv = clusterchat.GroupConv(q.GroupID)
	default:
		return "", clusterchat.Errorf(clusterchat.EINVALID, "name a conversation: conv, to or groupid")
	}
	a, b, g, ok := clusterchat.ParseConv(conv)
	if !ok {
		return "", clusterchat.Errorf(clusterchat.EINVALID, "bad conversation %q", conv)
	}
	if g != 0 {
		return conv, s.checkMember(ctx, g, sess.uid)
	}
	if a != sess.uid && b != sess.uid {
		return "", clusterchat.Errorf(clusterchat.EFORBIDDEN, "not your conversation")
	}
	return conv, nil
}

func (s *Server) fetch(ctx context.Context, sess *session, q *proto.Request) error {
	conv, err := s.convOf(ctx, sess, q)
	if err != nil {
		return err
	}
	limit := q.Limit
	if limit < 0 || limit > clusterchat.MaxPageSize {
		return clusterchat.Errorf(clusterchat.EINVALID, "limit must be 1-%d", clusterchat.MaxPageSize)
	}
	if limit == 0 {
		limit = clusterchat.MaxPageSize
	}
	var msgs []*clusterchat.Message
	if q.MsgID == proto.Sync {
		if q.After < 0 {
			return clusterchat.Errorf(clusterchat.EINVALID, "after must be >= 0")
		}
		msgs, err = s.Store.Since(ctx, conv, q.After, limit)
	} else {
		msgs, err = s.Store.Before(ctx, conv, q.Before, limit)
	}
	if err != nil {
		return err
	}
	var last int64
	if q.MsgID == proto.Sync && len(msgs) < limit {
		// Nothing newer existed when the page was read.
		last = q.After
		if len(msgs) > 0 {
			last = msgs[len(msgs)-1].Seq
		}
	} else if last, err = s.lastSeq(ctx, sess.uid, conv, msgs); err != nil {
		return err
	}
	extra := proto.AppendString(append(make([]byte, 0, 256), `,"conv":`...), conv)
	extra = appendInt(append(extra, `,"last":`...), last)
	extra = append(extra, `,"msgs":[`...)
	for i, m := range msgs {
		if i > 0 {
			extra = append(extra, ',')
		}
		extra = proto.AppendNativeChat(extra, m)
	}
	extra = append(extra, ']')
	sess.c.sendDirect(proto.AppendOK(nil, q.MsgID, q.RID, extra))
	if q.MsgID == proto.Sync && len(msgs) > 0 {
		s.cursors.markDelivered(sess.uid, conv, msgs[len(msgs)-1].Seq)
	}
	return nil
}

// lastSeq returns the conversation's newest seq, for the client to know
// whether to page on.
func (s *Server) lastSeq(ctx context.Context, uid int64, conv string, msgs []*clusterchat.Message) (int64, error) {
	convs, err := s.Store.Convs(ctx, uid)
	if err != nil {
		return 0, err
	}
	for _, c := range convs {
		if c.Conv == conv {
			return c.LastSeq, nil
		}
	}
	if len(msgs) > 0 {
		return msgs[len(msgs)-1].Seq, nil
	}
	return 0, nil
}

func (s *Server) markRead(ctx context.Context, sess *session, q *proto.Request) error {
	conv, err := s.convOf(ctx, sess, q)
	if err != nil {
		return err
	}
	if q.Seq < 0 {
		return clusterchat.Errorf(clusterchat.EINVALID, "seq must be >= 0")
	}
	if err := s.Store.MarkRead(ctx, []clusterchat.Cursor{{User: sess.uid, Conv: conv, Seq: q.Seq}}); err != nil {
		return err
	}
	sess.c.sendDirect(proto.AppendOK(nil, q.MsgID, q.RID, nil))
	b := proto.AppendString([]byte(`{"msgid":16,"conv":`), conv)
	b = appendInt(append(b, `,"seq":`...), q.Seq)
	b = append(b, "}\n"...)
	s.publish(userChannel(sess.uid), &envelope{kind: kindEvent, origin: sess.sid, from: sess.uid, native: b})
	return nil
}

func appendInt(b []byte, v int64) []byte { return strconv.AppendInt(b, v, 10) }
