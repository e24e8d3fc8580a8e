package server

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"clusterchat"
	"clusterchat/proto"
)

// handle answers one frame from c. It runs on c's read loop.
func (s *Server) handle(c *conn, frame []byte, q *proto.Request) {
	if err := proto.Decode(frame, q); err != nil {
		s.replyConnErr(c, q.MsgID, q.RID, err)
		return
	}
	if !utf8.Valid(frame) {
		// JSON decoders turn such bytes into U+FFFD silently: refuse them.
		s.replyConnErr(c, q.MsgID, q.RID, clusterchat.Errorf(clusterchat.EINVALID, "a request must be valid UTF-8"))
		return
	}
	if err := c.admit(q); err != nil {
		s.replyConnErr(c, q.MsgID, q.RID, err)
		return
	}
	rc := newReqCtx(s.cfg.RequestTimeout)
	defer rc.end()
	var ctx context.Context = rc
	var err error
	switch q.MsgID {
	case proto.Register:
		onFreshStack(func() { err = s.register(ctx, c, q) })
	case proto.Login:
		onFreshStack(func() { err = s.login(ctx, c, q) })
	case proto.OneChat, proto.GroupChat, proto.Logout, proto.AddFriend, proto.CreateGroup,
		proto.AddGroup, proto.Sync, proto.History, proto.Read, proto.Ping, proto.LogoutAll:
		if c.sess == nil {
			err = clusterchat.Errorf(clusterchat.ENOTLOGGEDIN, "log in first")
			break
		}
		c.sess.applyRename()
		switch q.MsgID {
		case proto.OneChat, proto.GroupChat:
			err = s.chat(ctx, c.sess, q)
		case proto.Logout:
			s.logout(ctx, c, q)
		case proto.LogoutAll:
			err = s.logoutAll(ctx, c, q)
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
			c.sendDirect((&proto.OKReply{Req: q.MsgID, RID: q.RID}).AppendNative(nil))
		}
	default:
		// The social requests (msgids 40-59) are for native sessions only.
		switch {
		case q.MsgID < proto.FriendRequest || q.MsgID > proto.GroupDelete, c.sess != nil && !c.sess.native:
			err = clusterchat.Errorf(clusterchat.EUNKNOWN, "unknown msgid %d", q.MsgID)
		case c.sess == nil:
			err = clusterchat.Errorf(clusterchat.ENOTLOGGEDIN, "log in first")
		default:
			c.sess.applyRename()
			err = s.social(ctx, c.sess, q)
		}
	}
	if err != nil {
		s.replyConnErr(c, q.MsgID, q.RID, err)
	}
}

// applyRename takes a rename of the session's user that arrived from
// another session (socialEnvelope); it runs on the read loop, the only
// writer of sess.name, before each request of the session.
func (sess *session) applyRename() {
	if p := sess.soc.rename.Swap(nil); p != nil {
		sess.name = *p
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

// reqCtx is the context of one request: it ends Config.RequestTimeout after the
// request began, like context.WithDeadline, but the timer behind that is
// made only if something asks for the deadline or waits on it (a store or
// presence call). Most chat requests touch only caches and the committer's
// queue: they then cost no timer and no cancel func, which were the top
// allocation per request.
type reqCtx struct {
	deadline time.Time
	once     sync.Once
	ctx      context.Context
	cancel   context.CancelFunc
	ended    atomic.Bool
}

func newReqCtx(timeout time.Duration) *reqCtx {
	return &reqCtx{deadline: time.Now().Add(timeout)}
}

func (r *reqCtx) real() context.Context {
	r.once.Do(func() { r.ctx, r.cancel = context.WithDeadline(context.Background(), r.deadline) })
	return r.ctx
}

// Deadline implements context.Context.
func (r *reqCtx) Deadline() (time.Time, bool) { return r.deadline, true }

// Done implements context.Context.
func (r *reqCtx) Done() <-chan struct{} { return r.real().Done() }

// Err implements context.Context without making the timer.
func (r *reqCtx) Err() error {
	if r.ended.Load() {
		return context.Canceled
	}
	if !time.Now().Before(r.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

// Value implements context.Context: a request carries no values.
func (r *reqCtx) Value(any) any { return nil }

// canceled is what a reqCtx is once its request ended without a timer.
var canceled = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// end releases the timer, if one was made; the context is done from now on.
func (r *reqCtx) end() {
	r.ended.Store(true)
	r.once.Do(func() { r.ctx = canceled })
	if r.cancel != nil {
		r.cancel()
	}
}
