package redis

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/rueidis"

	"clusterchat"
)

var _ clusterchat.Limiter = (*Limiter)(nil)

// Limiter is a clusterchat.Limiter on Redis, shared by every server of a
// cluster: a key "{prefix}lim:{key}" per counter, counted by INCR and
// expired by Redis itself (PEXPIRE set by the hit that starts a window, in
// the same script, so no counter can be left without an expiry).
type Limiter struct {
	c      rueidis.Client
	prefix string
	tmo    time.Duration
}

// NewLimiter connects to the Redis at url. prefix goes before every key
// ("cc:" if empty); timeout bounds each call (1 s if zero).
func NewLimiter(url, prefix string, timeout time.Duration) (*Limiter, error) {
	if prefix == "" {
		prefix = "cc:"
	}
	if timeout <= 0 {
		timeout = time.Second
	}
	copt, err := rueidis.ParseURL(url)
	if err != nil {
		return nil, clusterchat.Errorf(clusterchat.EINVALID, "redis limiter: bad url: %v", err)
	}
	copt.Dialer.Timeout = timeout
	copt.DisableCache = true
	copt.DisableRetry = true
	c, err := rueidis.NewClient(copt)
	if err != nil {
		return nil, clusterchat.Errorf(clusterchat.EUNAVAILABLE, "redis limiter: connect: %v", err)
	}
	return &Limiter{c: c, prefix: prefix + "lim:", tmo: timeout}, nil
}

// hitScript: KEYS[1] the counter, ARGV[1] the window in ms. Returns the
// count and the ms left in the window. A counter found without an expiry
// (it cannot be, but a stray SET could make one) gets one.
var hitScript = rueidis.NewLuaScript(`
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if n == 1 or ttl < 0 then
	redis.call('PEXPIRE', KEYS[1], ARGV[1])
	ttl = tonumber(ARGV[1])
end
return {n, ttl}
`)

// countScript: KEYS[1] the counter. Returns the count and the ms left.
var countScript = rueidis.NewLuaScript(`
local n = redis.call('GET', KEYS[1])
if not n then return {0, 0} end
return {tonumber(n), redis.call('PTTL', KEYS[1])}
`)

func (l *Limiter) run(ctx context.Context, op string, s *rueidis.Lua, key string, args ...string) (int64, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, l.tmo)
	defer cancel()
	vals, err := retry(func() ([]int64, error) {
		return s.Exec(ctx, l.c, []string{l.prefix + key}, args).AsIntSlice()
	})
	if err != nil {
		return 0, 0, clusterchat.Errorf(clusterchat.EUNAVAILABLE, "redis limiter: %s: %v", op, err)
	}
	if len(vals) != 2 {
		return 0, 0, clusterchat.Errorf(clusterchat.EINTERNAL, "redis limiter: %s: bad reply", op)
	}
	return vals[0], time.Duration(max(vals[1], 0)) * time.Millisecond, nil
}

// Hit implements clusterchat.Limiter. A connection failure is retried once
// (after a Redis restart the pooled connection is dead): should the first
// attempt have counted after all, the limit is stricter by one, never laxer.
func (l *Limiter) Hit(ctx context.Context, key string, window time.Duration) (int64, time.Duration, error) {
	return l.run(ctx, "hit", hitScript, key, strconv.FormatInt(max(window.Milliseconds(), 1), 10))
}

// Count implements clusterchat.Limiter.
func (l *Limiter) Count(ctx context.Context, key string) (int64, time.Duration, error) {
	return l.run(ctx, "count", countScript, key)
}

// Reset implements clusterchat.Limiter.
func (l *Limiter) Reset(ctx context.Context, key string) error {
	ctx, cancel := context.WithTimeout(ctx, l.tmo)
	defer cancel()
	if err := l.c.Do(ctx, l.c.B().Del().Key(l.prefix+key).Build()).Error(); err != nil {
		return clusterchat.Errorf(clusterchat.EUNAVAILABLE, "redis limiter: reset: %v", err)
	}
	return nil
}

// Close releases the connections.
func (l *Limiter) Close() error {
	l.c.Close()
	return nil
}
