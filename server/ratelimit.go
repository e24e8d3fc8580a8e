package server

import (
	"sync"
	"time"

	"clusterchat"
)

// loginGuard counts failed password logins per account on this server and
// refuses further attempts (ERATELIMIT) once an account has had too many in
// a window, so a password cannot be guessed at the speed of the network.
// bcrypt already makes each guess cost milliseconds; this bounds the number.
// In a cluster each server counts its own attempts (a bound per server).
type loginGuard struct {
	mu       sync.Mutex
	failures map[int64]*failures
}

type failures struct {
	n     int
	since time.Time
}

// loginGuardMax bounds the accounts tracked; past it, stale entries go.
const loginGuardMax = 1 << 16

func (g *loginGuard) check(uid int64, limit int, window time.Duration) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	f := g.failures[uid]
	if f == nil || time.Since(f.since) > window || f.n < limit {
		return nil
	}
	return clusterchat.Errorf(clusterchat.ERATELIMIT, "too many failed logins for this account; try again in %v", window-time.Since(f.since).Truncate(time.Second))
}

func (g *loginGuard) fail(uid int64, window time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.failures == nil {
		g.failures = make(map[int64]*failures)
	}
	now := time.Now()
	if len(g.failures) >= loginGuardMax {
		for id, f := range g.failures {
			if now.Sub(f.since) > window {
				delete(g.failures, id)
			}
		}
	}
	f := g.failures[uid]
	if f == nil || now.Sub(f.since) > window {
		if len(g.failures) >= loginGuardMax {
			return // full of live entries: count nothing rather than grow
		}
		f = &failures{since: now}
		g.failures[uid] = f
	}
	f.n++
}

func (g *loginGuard) succeed(uid int64) {
	g.mu.Lock()
	delete(g.failures, uid)
	g.mu.Unlock()
}
