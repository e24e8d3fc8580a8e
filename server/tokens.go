package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"clusterchat"
	"clusterchat/inmem"
	"clusterchat/proto"
)

// security is the server's abuse and token state: rate limits
// (ratelimit.go) and token revocation (this file).
type security struct {
	limiter *sharedLimiter
	buckets msgBuckets
	limited *prometheus.CounterVec
	revoked *prometheus.CounterVec
	swept   prometheus.Counter
	// tokenGen counts revocations seen by this server. A token read from
	// the store enters the cache only if no revocation came in meanwhile,
	// so a revocation racing with a lookup cannot leave a stale entry.
	tokenGen atomic.Int64
}

// revokeChannel is the broker channel every server subscribes to for token
// revocations (any server may hold any token in its cache): the channel of
// user 0, which never exists (ids start at 1).
var revokeChannel = clusterchat.UserChannel(0)

// kindRevoke: conv holds a token hash to drop, or is empty to revoke every
// token of user from and end its sessions (except origin). Not 'R', which
// is kindRename: sharing it made every rename a (harmless) revocation that
// nobody heard as a rename.
const kindRevoke = 'T'

func (s *Server) openSecurity() error {
	local := inmem.NewLimiter()
	shared := s.Limiter
	if shared == nil {
		shared = local
	}
	s.sec.limiter = &sharedLimiter{shared: shared, local: local, log: s.log.Warn}
	s.sec.limited = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chat_rate_limited_total",
		Help: "Requests refused by a rate limit (errno 12), by limit: register, login_addr, login_fail, login_account, messages, requests."}, []string{"limit"})
	s.sec.revoked = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chat_tokens_revoked_total",
		Help: "Token revocations made on this server, by cause: logout, logout_all, password."}, []string{"cause"})
	s.sec.swept = prometheus.NewCounter(prometheus.CounterOpts{Name: "chat_tokens_swept_total", Help: "Expired session tokens deleted by the periodic sweep."})
	s.metrics.reg.MustRegister(s.sec.limited, s.sec.revoked, s.sec.swept)
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
	defer cancel()
	return s.Broker.Subscribe(ctx, revokeChannel)
}

// runSweeps deletes expired tokens every TokenSweep (every server of a
// cluster does it; it is idempotent) and forgets idle message buckets.
func (s *Server) runSweeps(ctx context.Context) {
	t := time.NewTicker(min(s.cfg.TokenSweep, time.Minute))
	defer t.Stop()
	var lastSweep time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.sweepBuckets(now)
			if now.Sub(lastSweep) < s.cfg.TokenSweep {
				continue
			}
			lastSweep = now
			sctx, cancel := context.WithTimeout(ctx, time.Minute)
			n, err := s.Store.DeleteExpiredTokens(sctx, now)
			cancel()
			if err != nil {
				s.log.Warn("token sweep failed", "err", err)
				continue
			}
			s.sec.swept.Add(float64(n))
			if n > 0 {
				s.log.Info("expired tokens deleted", "count", n)
			}
		}
	}
}

// newToken creates and stores a session token for uid.
func (s *Server) newToken(ctx context.Context, uid int64) (string, error) {
	var raw [16]byte
	rand.Read(raw[:])
	token := hex.EncodeToString(raw[:])
	if err := s.Store.PutToken(ctx, hashToken(token), uid, time.Now().Add(s.cfg.TokenTTL)); err != nil {
		return "", err
	}
	return token, nil
}

// revokeToken deletes one token (logout) and tells every server to drop it
// from its cache.
func (s *Server) revokeToken(ctx context.Context, hash string) error {
	if hash == "" {
		return nil
	}
	if err := s.Store.DeleteToken(ctx, hash); err != nil {
		return err
	}
	s.sec.revoked.WithLabelValues("logout").Inc()
	s.publishRevoke(ctx, &envelope{kind: kindRevoke, conv: hash})
	return nil
}

// revokeUser has every token of uid deleted already (store) and tells every
// server to forget them and end uid's sessions there, except origin.
func (s *Server) revokeUser(ctx context.Context, uid int64, origin, cause string) {
	s.sec.revoked.WithLabelValues(cause).Inc()
	s.log.Info("all tokens revoked; ending sessions", "user", uid, "cause", cause)
	s.publishRevoke(ctx, &envelope{kind: kindRevoke, from: uid, origin: origin})
}

// publishRevoke publishes a revocation and applies it here at once, not
// when the broker brings it back (the broker may be down: the store already
// refuses the token, and the cache entries of other servers lapse within a
// minute).
func (s *Server) publishRevoke(ctx context.Context, e *envelope) {
	s.applyRevoke(e)
	if err := s.Broker.Publish(ctx, revokeChannel, e.marshal(nil)); err != nil {
		s.log.Warn("could not publish a token revocation; other servers' caches lapse within a minute", "err", err)
	}
}

// applyRevoke drops revoked tokens from the cache and ends the sessions of a
// user whose tokens were all revoked. It runs on the broker's goroutine and
// does not block: connections are closed, their read loops end the sessions.
func (s *Server) applyRevoke(e *envelope) {
	s.sec.tokenGen.Add(1)
	c := &s.tokens
	c.mu.Lock()
	for h, te := range c.m {
		if (e.conv != "" && h == e.conv) || (e.conv == "" && te.uid == e.from) {
			delete(c.m, h)
		}
	}
	c.mu.Unlock()
	if e.conv != "" {
		return
	}
	// Under closeMu so that Close, once it holds it, knows no new work
	// joins s.wg behind its Wait.
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closing.Load() {
		return
	}
	notice := appendNL((&proto.ReconnectEvent{Reason: proto.ReasonRevoked}).AppendNative(nil))
	for _, sess := range s.hub.localSessions(e.from) {
		// Applied here at once and again when the broker brings it back:
		// end each session once.
		if sess.sid == e.origin || !sess.revoked.CompareAndSwap(false, true) {
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			sess.c.shutdown(notice)
		}()
	}
}

// logoutAll revokes every token of the session's user and ends all its
// sessions on every server; the requesting session is logged out like
// with LOGOUT (its connection stays, logged out).
func (s *Server) logoutAll(ctx context.Context, c *conn, q *proto.Request) error {
	sess := c.sess
	if err := s.Store.DeleteUserTokens(ctx, sess.uid); err != nil {
		return err
	}
	s.revokeUser(ctx, sess.uid, sess.sid, "logout_all")
	s.endSession(sess)
	c.sess = nil
	c.setClassic(true)
	c.sendDirect((&proto.OKReply{Req: q.MsgID, RID: q.RID}).AppendNative(nil))
	return nil
}

// logout ends c's session and revokes its token.
func (s *Server) logout(ctx context.Context, c *conn, q *proto.Request) {
	sess := c.sess
	if err := s.revokeToken(ctx, sess.tokenHash); err != nil {
		// The session ends anyway; the token then lapses at its expiry.
		s.log.Warn("logout: could not revoke the token", "user", sess.uid, "err", err)
	}
	s.endSession(sess)
	c.sess = nil
	c.setClassic(true)
	if sess.native {
		c.sendDirect((&proto.OKReply{Req: q.MsgID, RID: q.RID}).AppendNative(nil))
	}
}

// replaceToken answers a password change: this session's token went with
// the others, so a native session gets a new one (and the classic shape,
// which has no reply on success, nothing).
func (s *Server) replaceToken(ctx context.Context, sess *session, rid int64) error {
	sess.tokenHash = ""
	if !sess.native {
		return nil
	}
	token, err := s.newToken(ctx, sess.uid)
	if err != nil {
		return err
	}
	sess.tokenHash = hashToken(token)
	sess.c.sendDirect((&proto.PasswordReply{RID: rid, Token: token}).AppendNative(nil))
	return nil
}
