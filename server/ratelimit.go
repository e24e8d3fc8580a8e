package server

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"clusterchat"
	"clusterchat/proto"
)

// Rate is N events per Per: a fixed-window limit (logins, registrations) or
// the sustained rate of a token bucket (messages, requests). N < 0 is off.
type Rate struct {
	N   int
	Per time.Duration
}

// Off is a Rate that limits nothing.
var Off = Rate{N: -1}

// ParseRate reads "N/DURATION" ("10/1m", "5/1s", "20/1h") or "off".
func ParseRate(s string) (Rate, error) {
	if s == "off" {
		return Off, nil
	}
	n, per, ok := strings.Cut(s, "/")
	if !ok {
		return Rate{}, fmt.Errorf("rate %q: want N/DURATION (e.g. 10/1m) or off", s)
	}
	r := Rate{}
	var err error
	if r.N, err = strconv.Atoi(n); err != nil || r.N < 1 {
		return Rate{}, fmt.Errorf("rate %q: N must be a positive integer", s)
	}
	if r.Per, err = time.ParseDuration(per); err != nil || r.Per <= 0 {
		return Rate{}, fmt.Errorf("rate %q: bad duration %q", s, per)
	}
	return r, nil
}

// String formats r as ParseRate reads it.
func (r Rate) String() string {
	if r.N < 0 {
		return "off"
	}
	return strconv.Itoa(r.N) + "/" + r.Per.String()
}

func (r Rate) on() bool { return r.N > 0 && r.Per > 0 }

// perSecond is r's sustained rate.
func (r Rate) perSecond() float64 { return float64(r.N) / r.Per.Seconds() }

// Limiter keys. Counters are per client address (see peerKey), per account,
// or per account and address; the shared Limiter holds them all.
func keyRegister(addr string) string      { return "reg:" + addr }
func keyLogin(addr string) string         { return "login:" + addr }
func keyAccount(uid int64) string         { return "acct:" + strconv.FormatInt(uid, 10) }
func keyFail(uid int64, a string) string  { return "fail:" + strconv.FormatInt(uid, 10) + ":" + a }
func keyKnown(uid int64, a string) string { return "known:" + strconv.FormatInt(uid, 10) + ":" + a }

// knownFor is how long an address that logged in to an account stays
// "known" to it: exempt from the account-wide failure limit.
const knownFor = 30 * 24 * time.Hour

// peerKey is the client address the per-address limits count by: the real
// client address (behind a trusted proxy, the one it named), IPv6 by its
// /64 (addrKey), as the connection limits count.
func (c *conn) peerKey() string {
	a := c.clientAddr()
	if !a.IsValid() {
		return "unknown"
	}
	return addrKey(a).String()
}

// sharedLimiter uses the configured Limiter (Redis in a cluster) and, when
// it fails (Redis down), a local one: limits then hold per server until
// Redis is back, rather than not at all or refusing everyone.
type sharedLimiter struct {
	shared, local clusterchat.Limiter
	log           func(msg string, args ...any)
	lastWarn      atomic.Int64 // unix ns of the last "falling back" warning
}

func (l *sharedLimiter) fallback(err error) clusterchat.Limiter {
	now := time.Now().UnixNano()
	if last := l.lastWarn.Load(); now-last > int64(time.Minute) && l.lastWarn.CompareAndSwap(last, now) {
		l.log("rate limiter unavailable; counting on this server only", "err", err)
	}
	return l.local
}

func (l *sharedLimiter) hit(ctx context.Context, key string, window time.Duration) (int64, time.Duration) {
	n, reset, err := l.shared.Hit(ctx, key, window)
	if err != nil {
		n, reset, _ = l.fallback(err).Hit(ctx, key, window)
	}
	return n, reset
}

func (l *sharedLimiter) count(ctx context.Context, key string) (int64, time.Duration) {
	n, reset, err := l.shared.Count(ctx, key)
	if err != nil {
		n, reset, _ = l.fallback(err).Count(ctx, key)
	}
	return n, reset
}

func (l *sharedLimiter) reset(ctx context.Context, key string) {
	if err := l.shared.Reset(ctx, key); err != nil {
		l.fallback(err).Reset(ctx, key)
	}
}

// checkRegister counts a registration from c's address and refuses it
// past Config.RegisterRate.
func (s *Server) checkRegister(ctx context.Context, c *conn) error {
	r := s.cfg.RegisterRate
	if !r.on() {
		return nil
	}
	addr := c.peerKey()
	if n, reset := s.sec.limiter.hit(ctx, keyRegister(addr), r.Per); n > int64(r.N) {
		s.sec.limited.WithLabelValues("register").Inc()
		s.log.Warn("registration refused: rate limit", "addr", addr)
		return clusterchat.RateLimited(reset, "too many registrations from your address")
	}
	return nil
}

// checkLogin runs before a password is checked: it counts the attempt
// against the address and refuses when the address, or this account from
// this address, or (from an address the account never logged in from) the
// account as a whole is over its limit. Failures are keyed by account AND
// address so that a stranger's guesses lock only the stranger out.
func (s *Server) checkLogin(ctx context.Context, c *conn, uid int64) error {
	addr := c.peerKey()
	refuse := func(what, text string, reset time.Duration) error {
		s.sec.limited.WithLabelValues(what).Inc()
		s.metrics.logins.WithLabelValues("limited").Inc()
		s.log.Warn("login refused: rate limit", "limit", what, "user", uid, "addr", addr)
		return clusterchat.RateLimited(reset, text)
	}
	if r := s.cfg.LoginRate; r.on() {
		if n, reset := s.sec.limiter.hit(ctx, keyLogin(addr), r.Per); n > int64(r.N) {
			return refuse("login_addr", "too many logins from your address", reset)
		}
	}
	if s.cfg.LoginFailures > 0 {
		if n, reset := s.sec.limiter.count(ctx, keyFail(uid, addr)); n >= int64(s.cfg.LoginFailures) {
			return refuse("login_fail", "too many failed logins for this account", reset)
		}
	}
	if r := s.cfg.AccountFailRate; r.on() {
		if n, reset := s.sec.limiter.count(ctx, keyAccount(uid)); n >= int64(r.N) {
			if known, _ := s.sec.limiter.count(ctx, keyKnown(uid, addr)); known == 0 {
				return refuse("login_account", "too many failed logins for this account", reset)
			}
		}
	}
	return nil
}

// loginFailed counts a wrong password for uid from c's address.
func (s *Server) loginFailed(ctx context.Context, c *conn, uid int64) {
	addr := c.peerKey()
	s.log.Warn("login failed: wrong password", "user", uid, "addr", addr)
	if s.cfg.LoginFailures > 0 {
		if n, _ := s.sec.limiter.hit(ctx, keyFail(uid, addr), s.cfg.LoginWindow); n == int64(s.cfg.LoginFailures) {
			s.log.Warn("login locked for this account and address", "user", uid, "addr", addr, "for", s.cfg.LoginWindow)
		}
	}
	if r := s.cfg.AccountFailRate; r.on() {
		if n, _ := s.sec.limiter.hit(ctx, keyAccount(uid), r.Per); n == int64(r.N) {
			s.log.Warn("login locked for this account from unknown addresses", "user", uid, "addr", addr, "for", r.Per)
		}
	}
}

// loginSucceeded clears uid's failures from c's address and remembers the
// address as one the account uses.
func (s *Server) loginSucceeded(ctx context.Context, c *conn, uid int64) {
	if s.cfg.RateLimitsOff {
		return
	}
	addr := c.peerKey()
	s.sec.limiter.reset(ctx, keyFail(uid, addr))
	if s.cfg.AccountFailRate.on() {
		s.sec.limiter.hit(ctx, keyKnown(uid, addr), knownFor)
	}
}

// bucket is a token bucket: it holds up to burst tokens and refills at a
// rate; each event takes one.
type bucket struct {
	tokens float64
	last   time.Time
}

// take takes a token if there is one; otherwise it says how long until
// there is.
func (b *bucket) take(now time.Time, r Rate, burst int) (bool, time.Duration) {
	return b.takeN(now, r, burst, 1)
}

// takeN takes n tokens if there are (n is at most burst, or never); otherwise
// it says how long until there are.
func (b *bucket) takeN(now time.Time, r Rate, burst int, n float64) (bool, time.Duration) {
	rate := r.perSecond()
	if b.last.IsZero() {
		b.tokens = float64(burst)
	} else {
		b.tokens = min(float64(burst), b.tokens+now.Sub(b.last).Seconds()*rate)
	}
	b.last = now
	n = min(n, float64(burst))
	if b.tokens >= n {
		b.tokens -= n
		return true, 0
	}
	return false, time.Duration((n - b.tokens) / rate * float64(time.Second))
}

// full reports whether the bucket has refilled completely by now (it can
// be forgotten: a new one starts full).
func (b *bucket) full(now time.Time, r Rate, burst int) bool {
	return b.tokens+now.Sub(b.last).Seconds()*r.perSecond() >= float64(burst)
}

// msgBuckets are the message buckets of the users of this server. Message
// limits are per server: a user with sessions on two servers may send at
// twice the rate (documented), which bounds it all the same.
type msgBuckets struct {
	mu sync.Mutex
	m  map[int64]*userBuckets
}

// userBuckets are one user's: messages (and social requests) by count,
// message text by bytes (Config.MsgQuota).
type userBuckets struct {
	msgs, bytes bucket
}

// quotaRate is the refill of a byte bucket of quota bytes a day.
func quotaRate(quota int) Rate { return Rate{N: quota, Per: 24 * time.Hour} }

// sweepBuckets forgets the buckets that are full again.
func (s *Server) sweepBuckets(now time.Time) {
	mb := &s.sec.buckets
	mb.mu.Lock()
	for uid, b := range mb.m {
		if (!s.cfg.MsgRate.on() || b.msgs.full(now, s.cfg.MsgRate, s.cfg.MsgBurst)) &&
			(s.cfg.MsgQuota <= 0 || b.bytes.full(now, quotaRate(s.cfg.MsgQuota), s.cfg.MsgQuota)) {
			delete(mb.m, uid)
		}
	}
	mb.mu.Unlock()
}

// spendsMessageToken tells whether a request of a logged-in session takes
// a token of its user's message bucket: a chat message, and the social
// requests that, like one, store something or reach other people (a new
// group, a join, a friend request or invitation that shows up on someone
// else's screen, a rename or group change announced to friends or
// members). Without it a stranger's account could create groups or send
// friend requests at the request rate (50 a second per connection), each
// a row on disk or a notification. Answers, removals and blocks are left
// out: they only undo or answer what others did, and a harassed user must
// be able to block quickly.
func spendsMessageToken(msgid int) bool {
	switch msgid {
	case proto.OneChat, proto.GroupChat,
		proto.AddFriend, proto.CreateGroup, proto.AddGroup,
		proto.FriendRequest, proto.GroupInvite, proto.GroupAsk,
		proto.SetName, proto.GroupUpdate:
		return true
	}
	return false
}

// admit is the admission of one request, on c's read loop: it takes a
// request token of the connection and, for a chat message or another
// request that spends one (spendsMessageToken) of a logged-in session, a
// message token of its user, and for a chat message as many bytes of the
// user's quota as its text has. Every such request counts, a refused one
// too (an invalid or forbidden message costs its sender all the same).
func (c *conn) admit(q *proto.Request) error {
	s := c.srv
	now := time.Now()
	if r := s.cfg.ReqRate; r.on() {
		if ok, wait := c.reqs.take(now, r, s.cfg.ReqBurst); !ok {
			s.sec.limited.WithLabelValues("requests").Inc()
			return clusterchat.RateLimited(wait, "too many requests on this connection")
		}
	}
	r, quota := s.cfg.MsgRate, s.cfg.MsgQuota
	if (!r.on() && quota <= 0) || c.sess == nil || !spendsMessageToken(q.MsgID) {
		return nil
	}
	chat := q.MsgID == proto.OneChat || q.MsgID == proto.GroupChat
	mb := &s.sec.buckets
	mb.mu.Lock()
	defer mb.mu.Unlock()
	if mb.m == nil {
		mb.m = make(map[int64]*userBuckets)
	}
	b := mb.m[c.sess.uid]
	if b == nil {
		b = &userBuckets{}
		mb.m[c.sess.uid] = b
	}
	if r.on() {
		if ok, wait := b.msgs.take(now, r, s.cfg.MsgBurst); !ok {
			if !chat {
				s.sec.limited.WithLabelValues("social").Inc()
				return clusterchat.RateLimited(wait, "doing that too often")
			}
			s.sec.limited.WithLabelValues("messages").Inc()
			return clusterchat.RateLimited(wait, "sending too fast")
		}
	}
	if chat && quota > 0 && len(q.Msg) > 0 {
		if ok, wait := b.bytes.takeN(now, quotaRate(quota), quota, float64(len(q.Msg))); !ok {
			s.sec.limited.WithLabelValues("quota").Inc()
			return clusterchat.RateLimited(wait, "today's quota of message text is used up")
		}
	}
	return nil
}
