package redis

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"clusterchat"
)

var (
	_ clusterchat.OfflineNotifier    = (*Presence)(nil)
	_ clusterchat.ReadyPresence      = (*Presence)(nil)
	_ clusterchat.RecoveringPresence = (*Presence)(nil)
)

// PresenceOptions tunes a Presence; zero fields take the defaults.
type PresenceOptions struct {
	// Prefix is put before every key. Default "cc:".
	Prefix string
	// Heartbeat is how often this server renews its sessions. Default 3s.
	Heartbeat time.Duration
	// TTL is how long a session stays live after its last renewal: the
	// sessions of a killed server show offline within TTL+Heartbeat.
	// Default 10s.
	TTL time.Duration
	// Timeout bounds each call to Redis: while Redis is unreachable,
	// Acquire, Release and Online fail with EUNAVAILABLE after at most this
	// long. Default 1s.
	Timeout time.Duration
}

func (o *PresenceOptions) defaults() {
	if o.Prefix == "" {
		o.Prefix = "cc:"
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.Heartbeat, 3*time.Second)
	def(&o.TTL, 10*time.Second)
	def(&o.Timeout, time.Second)
}

// Presence is a clusterchat.Presence on Redis, for a cluster.
//
// Each user has a sorted set, key "{prefix}pres:{uid}", whose members are
// "node/sid" scored by the time (ms) the session expires. A session is live
// while its score is in the future. Every server renews its own sessions
// each Heartbeat to now+TTL, in one pipeline; a server that dies stops
// renewing and its sessions lapse. Renewal is a ZADD, not an update, so
// after Redis restarts empty the next heartbeat puts every session back.
//
// Time is the Redis server's clock (TIME, read inside the Lua scripts), never
// the servers' own: a node with a skewed clock cannot make its sessions
// immortal or expire everyone else's.
type Presence struct {
	c    rueidis.Client
	node string
	opt  PresenceOptions
	log  *slog.Logger

	stop chan struct{} // closed to stop the heartbeat
	done chan struct{} // closed when the heartbeat has stopped

	recoverMu sync.Mutex // taken before mu: orders Release with reportRecovered

	mu       sync.Mutex
	sessions map[int64]map[string]struct{} // this node's sessions
	closed   bool
	beating  bool         // a heartbeat is in flight
	released []sessionKey // released while a heartbeat was in flight
	healthy  bool         // last heartbeat succeeded, for logging changes

	beats atomic.Int64 // heartbeats completed, for tests

	onOffline   func(uids []int64) // told of users whose server died; guarded by mu
	onRecovered func(uids []int64) // told of this node's users put back after they lapsed; guarded by mu
}

// OnRecovered sets f to be told, from the heartbeat goroutine, of this
// node's users whose every session had lapsed or been reaped (Redis was
// unreachable longer than the TTL, or restarted empty) and that the
// heartbeat has just put back: they were offline to everyone while still
// connected here.
func (p *Presence) OnRecovered(f func(uids []int64)) {
	p.mu.Lock()
	p.onRecovered = f
	p.mu.Unlock()
}

// OnOffline sets f to be told, from the heartbeat goroutine, of users who
// went offline because the server holding their sessions died (SIGKILL, a
// crash): no server released them, so no one else announces it. Another
// node notices within TTL+Heartbeat of the death.
func (p *Presence) OnOffline(f func(uids []int64)) {
	p.mu.Lock()
	p.onOffline = f
	p.mu.Unlock()
}

type sessionKey struct {
	uid int64
	sid string
}

// Lua preamble: the Redis clock in ms. Scripts replicate by effects (the
// default since Redis 5, the only mode in 7), so reading TIME before writing
// is allowed.
const luaNow = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function keepkey(key, ttl)
  if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
end
`

// acquireScript: KEYS[1] user set, KEYS[2] node registry, KEYS[3] this
// node's user set; ARGV member, max, ttl, node, uid. Returns the number of
// live sessions before this one, or -1 when at max. One script, so two
// servers can never both pass the check. It also registers the node and
// the user under it at once, so a node killed before its first heartbeat is
// still reaped (reapScript).
var acquireScript = rueidis.NewLuaScript(luaNow + `
local key, member, max, ttl = KEYS[1], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
local n = redis.call('ZCARD', key)
if not redis.call('ZSCORE', key, member) then
  if max > 0 and n >= max then return -1 end
end
redis.call('ZADD', key, now + ttl, member)
keepkey(key, ttl)
redis.call('ZADD', KEYS[2], now + ttl, ARGV[4])
redis.call('SADD', KEYS[3], ARGV[5])
return n
`)

// heartbeatScript: KEYS[1] user set, ARGV ttl, members... Renews (or puts
// back) every member. Returns the live sessions the user had before: 0
// means the user was offline to everyone (lapsed, reaped, Redis restarted
// empty) until this renewal.
var heartbeatScript = rueidis.NewLuaScript(luaNow + `
local key, ttl = KEYS[1], tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
local before = redis.call('ZCARD', key)
for i = 2, #ARGV do
  redis.call('ZADD', key, now + ttl, ARGV[i])
end
keepkey(key, ttl)
return before
`)

// nodeScript: KEYS[1] the node registry, KEYS[2] this node's user set; ARGV
// node, ttl, uids... Marks the node alive until now+ttl and replaces the
// set of users it has sessions for, so that if it dies another node can
// tell their friends (reapScript).
var nodeScript = rueidis.NewLuaScript(luaNow + `
local nodes, users, node, ttl = KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2])
redis.call('ZADD', nodes, now + ttl, node)
redis.call('DEL', users)
for i = 3, #ARGV, 5000 do
  redis.call('SADD', users, unpack(ARGV, i, math.min(i + 4999, #ARGV)))
end
return 0
`)

// reapScript: KEYS[1] the node registry; ARGV this node, key prefix. For
// every other node whose registration lapsed (killed without Close), it
// removes that node's sessions and returns the users left with none: they
// went offline, and nobody else will say so. One script, so each dead node
// is reaped once, by one survivor. (It touches keys it computes, which is
// fine on one Redis; a Redis Cluster would need them in one slot.)
var reapScript = rueidis.NewLuaScript(luaNow + `
local nodes, self, prefix = KEYS[1], ARGV[1], ARGV[2]
local offline = {}
for _, node in ipairs(redis.call('ZRANGEBYSCORE', nodes, '-inf', now)) do
  if node ~= self then
    local users = prefix .. 'nodeusers:' .. node
    local mine = node .. '/'
    for _, uid in ipairs(redis.call('SMEMBERS', users)) do
      local key = prefix .. 'pres:' .. uid
      for _, m in ipairs(redis.call('ZRANGE', key, 0, -1)) do
        if string.sub(m, 1, #mine) == mine then redis.call('ZREM', key, m) end
      end
      redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
      if redis.call('ZCARD', key) == 0 then table.insert(offline, uid) end
    end
    redis.call('DEL', users)
    redis.call('ZREM', nodes, node)
  end
end
return offline
`)

// releaseScript: KEYS[1] user set, ARGV member. Returns the live sessions
// left.
var releaseScript = rueidis.NewLuaScript(luaNow + `
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZCARD', KEYS[1])
`)

// onlineScript: KEYS user sets. Returns the live sessions of each, in one
// round trip for a whole friend list. (Several keys in one script: fine on
// one Redis; a Redis Cluster would need the keys in one slot.)
var onlineScript = rueidis.NewLuaScript(luaNow + `
local min, out = '(' .. string.format('%.0f', now), {}
for i, key in ipairs(KEYS) do
  out[i] = redis.call('ZCOUNT', key, min, '+inf')
end
return out
`)

// onlineBatch bounds the keys of one onlineScript call.
const onlineBatch = 1000

// NewPresence connects to the Redis at url as server node, with default
// options.
func NewPresence(ctx context.Context, url string, node string, logger *slog.Logger) (*Presence, error) {
	return NewPresenceWithOptions(ctx, url, node, logger, PresenceOptions{})
}

// NewPresenceWithOptions is NewPresence with options. node must be unique in
// the cluster: Close removes the sessions of this node name.
func NewPresenceWithOptions(ctx context.Context, url string, node string, logger *slog.Logger, opt PresenceOptions) (*Presence, error) {
	opt.defaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if node == "" {
		return nil, clusterchat.Errorf(clusterchat.EINVALID, "redis presence: empty node name")
	}
	copt, err := rueidis.ParseURL(url)
	if err != nil {
		return nil, clusterchat.Errorf(clusterchat.EINVALID, "redis presence: bad url: %v", err)
	}
	copt.Dialer.Timeout = opt.Timeout
	copt.DisableCache = true
	// Not retried inside rueidis: every call has a deadline and its caller
	// decides (the heartbeat simply tries again next beat).
	copt.DisableRetry = true
	c, err := rueidis.NewClient(copt)
	if err != nil {
		return nil, clusterchat.Errorf(clusterchat.EUNAVAILABLE, "redis presence: connect: %v", err)
	}
	p := &Presence{
		c:        c,
		node:     node,
		opt:      opt,
		log:      logger.With("component", "redis.Presence", "node", node),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		sessions: make(map[int64]map[string]struct{}),
		healthy:  true,
	}
	go p.heartbeat()
	return p, nil
}

func (p *Presence) key(uid int64) string {
	return p.opt.Prefix + "pres:" + strconv.FormatInt(uid, 10)
}

func (p *Presence) member(sid string) string { return p.node + "/" + sid }

func (p *Presence) ttl() string { return strconv.FormatInt(p.opt.TTL.Milliseconds(), 10) }

func errPresenceClosed() error {
	return clusterchat.Errorf(clusterchat.EUNAVAILABLE, "redis presence closed")
}

// retry runs f again once when it failed on the connection rather than
// with a Redis error: after Redis restarts, the first command on the pooled
// connection finds it dead, and the second goes out on a new one. Every
// script here is idempotent, so running one twice is safe.
func retry[T any](f func() (T, error)) (T, error) {
	v, err := f()
	if err == nil {
		return v, nil
	}
	if _, isRedis := rueidis.IsRedisErr(err); isRedis || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return v, err
	}
	return f()
}

// Ready reports whether Redis answers (for /readyz).
func (p *Presence) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, p.opt.Timeout)
	defer cancel()
	if _, err := retry(func() (string, error) { return p.c.Do(ctx, p.c.B().Ping().Build()).ToString() }); err != nil {
		return unavailable("ping", err)
	}
	return nil
}

func unavailable(op string, err error) error {
	return clusterchat.Errorf(clusterchat.EUNAVAILABLE, "redis presence: %s: %v", op, err)
}

// Acquire records sid of uid on this node; see clusterchat.Presence.
// Acquiring a live sid again renews it and reports first false.
func (p *Presence) Acquire(ctx context.Context, uid int64, sid string, max int) (bool, error) {
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return false, errPresenceClosed()
	}
	ctx, cancel := context.WithTimeout(ctx, p.opt.Timeout)
	defer cancel()
	n, err := retry(func() (int64, error) {
		return acquireScript.Exec(ctx, p.c,
			[]string{p.key(uid), p.opt.Prefix + "nodes", p.opt.Prefix + "nodeusers:" + p.node},
			[]string{p.member(sid), strconv.Itoa(max), p.ttl(), p.node, strconv.FormatInt(uid, 10)}).AsInt64()
	})
	if err != nil {
		return false, unavailable("acquire", err)
	}
	if n < 0 {
		return false, clusterchat.Errorf(clusterchat.ESESSIONS, "user %d already has %d sessions", uid, max)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		// Close ran meanwhile and did not see this session: take it back.
		p.c.Do(context.WithoutCancel(ctx), p.c.B().Zrem().Key(p.key(uid)).Member(p.member(sid)).Build())
		return false, errPresenceClosed()
	}
	s := p.sessions[uid]
	if s == nil {
		s = make(map[string]struct{}, 1)
		p.sessions[uid] = s
	}
	s[sid] = struct{}{}
	return n == 0, nil
}

// Release removes sid of uid. If Redis is unreachable the session is still
// forgotten here, and lapses after TTL since nobody renews it.
func (p *Presence) Release(ctx context.Context, uid int64, sid string) (bool, error) {
	p.recoverMu.Lock() // not while a recovery of this user is being reported (reportRecovered)
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.recoverMu.Unlock()
		return false, errPresenceClosed()
	}
	if s := p.sessions[uid]; s != nil {
		delete(s, sid)
		if len(s) == 0 {
			delete(p.sessions, uid)
		}
	}
	if p.beating {
		// The heartbeat in flight may put it back: remove it again after.
		p.released = append(p.released, sessionKey{uid, sid})
	}
	p.mu.Unlock()
	p.recoverMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, p.opt.Timeout)
	defer cancel()
	n, err := retry(func() (int64, error) {
		return releaseScript.Exec(ctx, p.c, []string{p.key(uid)}, []string{p.member(sid)}).AsInt64()
	})
	if err != nil {
		return false, unavailable("release", err)
	}
	return n == 0, nil
}

// Online reports which of uids have a live session on any node: one round
// trip per thousand users.
func (p *Presence) Online(ctx context.Context, uids []int64) (map[int64]bool, error) {
	m := make(map[int64]bool, len(uids))
	if len(uids) == 0 {
		return m, nil
	}
	ctx, cancel := context.WithTimeout(ctx, p.opt.Timeout)
	defer cancel()
	keys := make([]string, 0, min(len(uids), onlineBatch))
	for start := 0; start < len(uids); start += onlineBatch {
		batch := uids[start:min(start+onlineBatch, len(uids))]
		keys = keys[:0]
		for _, uid := range batch {
			keys = append(keys, p.key(uid))
		}
		counts, err := retry(func() ([]int64, error) { return onlineScript.Exec(ctx, p.c, keys, nil).AsIntSlice() })
		if err != nil {
			return nil, unavailable("online", err)
		}
		if len(counts) != len(batch) {
			return nil, unavailable("online", fmt.Errorf("%d answers for %d users", len(counts), len(batch)))
		}
		for i, uid := range batch {
			m[uid] = counts[i] > 0
		}
	}
	return m, nil
}

// Close stops the heartbeat and removes this node's sessions (the other
// nodes' are untouched). If Redis is unreachable they lapse after TTL.
func (p *Presence) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-p.done
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	close(p.stop)
	<-p.done

	p.mu.Lock()
	var cmds rueidis.Commands
	for uid, s := range p.sessions {
		for sid := range s {
			cmds = append(cmds, p.c.B().Zrem().Key(p.key(uid)).Member(p.member(sid)).Build())
		}
	}
	p.sessions = nil
	p.mu.Unlock()
	// A clean stop: no survivor should reap (and announce) this node.
	cmds = append(cmds,
		p.c.B().Zrem().Key(p.opt.Prefix+"nodes").Member(p.node).Build(),
		p.c.B().Del().Key(p.opt.Prefix+"nodeusers:"+p.node).Build())
	var err error
	if len(cmds) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), p.opt.Timeout)
		for _, r := range p.c.DoMulti(ctx, cmds...) {
			if e := r.Error(); e != nil && err == nil {
				err = unavailable("close", e)
			}
		}
		cancel()
	}
	p.c.Close()
	return err
}

// heartbeat renews this node's sessions every Heartbeat until stop.
func (p *Presence) heartbeat() {
	defer close(p.done)
	t := time.NewTicker(p.opt.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.beat()
		}
	}
}

// beat renews every session of this node in one pipeline: one script call
// per user.
func (p *Presence) beat() {
	defer p.beats.Add(1)
	ttl := p.ttl()
	p.mu.Lock()
	uids := make([]string, 0, 2+len(p.sessions))
	uids = append(uids, p.node, ttl)
	for uid := range p.sessions {
		uids = append(uids, strconv.FormatInt(uid, 10))
	}
	onOffline, onRecovered := p.onOffline, p.onRecovered
	execs := make([]rueidis.LuaExec, 0, len(p.sessions))
	order := make([]int64, 0, len(p.sessions)) // the user of each exec
	for uid, s := range p.sessions {
		order = append(order, uid)
		args := make([]string, 0, 1+len(s))
		args = append(args, ttl)
		for sid := range s {
			args = append(args, p.member(sid))
		}
		execs = append(execs, rueidis.LuaExec{Keys: []string{p.key(uid)}, Args: args})
	}
	p.beating = true
	p.mu.Unlock()

	// A beat may take up to a whole interval before the next one is due.
	ctx, cancel := context.WithTimeout(context.Background(), max(p.opt.Timeout, p.opt.Heartbeat))
	defer cancel()
	var (
		err       error
		recovered []int64
	)
	// The node is marked alive before its sessions are renewed: after an
	// outage longer than the TTL, another node's reaper would otherwise see
	// this one lapsed between the two and remove the sessions just put back
	// (x announced online again, yet offline to every login until the next
	// beat: a flake of TestSocial/PresenceAfterRedisOutage under load).
	// Marked alive first, a reaper either runs before (and removes only
	// what had lapsed) or sees this node alive.
	err = nodeScript.Exec(ctx, p.c, []string{p.opt.Prefix + "nodes", p.opt.Prefix + "nodeusers:" + p.node}, uids).Error()
	if err == nil {
		for i, r := range heartbeatScript.ExecMulti(ctx, p.c, execs...) {
			var before int64
			if before, err = r.AsInt64(); err != nil {
				break
			}
			if before == 0 {
				recovered = append(recovered, order[i])
			}
		}
	}
	if err == nil {
		p.reap(ctx, onOffline)
	}

	p.mu.Lock()
	var released []sessionKey
	for _, k := range p.released {
		if _, again := p.sessions[k.uid][k.sid]; !again { // re-acquired meanwhile: keep
			released = append(released, k)
		}
	}
	p.released, p.beating = nil, false
	wasHealthy := p.healthy
	p.healthy = err == nil
	p.mu.Unlock()

	switch {
	case err != nil && wasHealthy:
		p.log.Warn("redis presence: heartbeat failed; sessions lapse unless it recovers", "err", err, "users", len(execs))
	case err == nil && !wasHealthy:
		p.log.Info("redis presence: heartbeat recovered", "users", len(execs))
	}
	if len(released) > 0 {
		cmds := make(rueidis.Commands, len(released))
		for i, k := range released {
			cmds[i] = p.c.B().Zrem().Key(p.key(k.uid)).Member(p.member(k.sid)).Build()
		}
		p.c.DoMulti(ctx, cmds...)
	}
	if err == nil && len(recovered) > 0 {
		p.reportRecovered(recovered, onRecovered)
	}
}

// reportRecovered tells f which of the users a heartbeat put back are still
// here. Only those count: one released meanwhile went offline for real (and
// its caller announces so). recoverMu orders this with Release: a release
// either comes before the choice (the user is left out) or waits until f
// has returned, so its caller's offline announcement follows f's online
// one and the last word is the truth.
func (p *Presence) reportRecovered(recovered []int64, f func([]int64)) {
	p.recoverMu.Lock()
	defer p.recoverMu.Unlock()
	p.mu.Lock()
	back := recovered[:0]
	for _, uid := range recovered {
		if len(p.sessions[uid]) > 0 {
			back = append(back, uid)
		}
	}
	p.mu.Unlock()
	if len(back) == 0 {
		return
	}
	p.log.Info("redis presence: sessions put back after they lapsed", "users", len(back))
	if f != nil {
		f(back)
	}
}

// reap removes the sessions of nodes that died and tells f who went offline.
func (p *Presence) reap(ctx context.Context, f func([]int64)) {
	ids, err := reapScript.Exec(ctx, p.c, []string{p.opt.Prefix + "nodes"}, []string{p.node, p.opt.Prefix}).AsStrSlice()
	if err != nil {
		p.log.Warn("redis presence: reaping dead nodes failed", "err", err)
		return
	}
	if len(ids) == 0 {
		return
	}
	uids := make([]int64, 0, len(ids))
	for _, id := range ids {
		if uid, err := strconv.ParseInt(id, 10, 64); err == nil {
			uids = append(uids, uid)
		}
	}
	p.log.Info("redis presence: reaped the sessions of a dead node", "offline_users", len(uids))
	if f != nil {
		f(uids)
	}
}

// abandon stops the heartbeat and drops the connection without removing
// anything, as if the server had been killed: for tests.
func (p *Presence) abandon() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	close(p.stop)
	<-p.done
	p.c.Close()
}

// beatsDone is how many heartbeats have completed.
func (p *Presence) beatsDone() int64 { return p.beats.Load() }
