package inmem

import (
	"context"
	"sync"
	"time"

	"clusterchat"
)

var _ clusterchat.Limiter = (*Limiter)(nil)

// Limiter is a clusterchat.Limiter for one process: fixed windows in a map.
// It holds at most limiterMax keys; when full it first drops the windows
// that ended, and if none did it counts nothing new rather than grow
// (the hits of an attack on fresh keys then pass: the bound on memory wins
// over the bound on attempts, and the shared Redis limiter has no such cap).
type Limiter struct {
	mu  sync.Mutex
	m   map[string]*window
	now func() time.Time
}

type window struct {
	n   int64
	end time.Time
}

// limiterMax bounds the keys a Limiter holds.
const limiterMax = 1 << 18

// NewLimiter returns an empty Limiter.
func NewLimiter() *Limiter {
	return &Limiter{m: make(map[string]*window), now: time.Now}
}

// Hit implements clusterchat.Limiter.
func (l *Limiter) Hit(ctx context.Context, key string, d time.Duration) (int64, time.Duration, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	w := l.m[key]
	if w == nil || !now.Before(w.end) {
		if w == nil && len(l.m) >= limiterMax {
			l.sweep(now)
			if len(l.m) >= limiterMax {
				return 1, d, nil
			}
		}
		w = &window{end: now.Add(d)}
		l.m[key] = w
	}
	w.n++
	return w.n, w.end.Sub(now), nil
}

// sweep drops the windows that ended. The caller holds mu.
func (l *Limiter) sweep(now time.Time) {
	for k, w := range l.m {
		if !now.Before(w.end) {
			delete(l.m, k)
		}
	}
}

// Count implements clusterchat.Limiter.
func (l *Limiter) Count(ctx context.Context, key string) (int64, time.Duration, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	w := l.m[key]
	if w == nil || !now.Before(w.end) {
		return 0, 0, nil
	}
	return w.n, w.end.Sub(now), nil
}

// Reset implements clusterchat.Limiter.
func (l *Limiter) Reset(ctx context.Context, key string) error {
	l.mu.Lock()
	delete(l.m, key)
	l.mu.Unlock()
	return nil
}
