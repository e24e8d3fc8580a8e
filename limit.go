package clusterchat

import (
	"context"
	"time"
)

// Limiter counts events per key in fixed windows: the counts behind the
// rate limits that must hold across the servers of a cluster (logins and
// registrations per address and per account). Implementations:
// inmem.Limiter (one process) and redis.Limiter (shared by every server).
//
// Guarantees: Hit is atomic, so concurrent hits from any number of servers
// are all counted, and a window ends at a fixed time after the hit that
// started it (it does not slide). Keys are opaque; callers prefix them.
type Limiter interface {
	// Hit counts one event for key and returns the count in the current
	// window including it, and how long until the window ends. A window of
	// length window starts with the first hit after the previous one ended.
	Hit(ctx context.Context, key string, window time.Duration) (n int64, reset time.Duration, err error)
	// Count returns key's count in its current window without adding to it
	// (0 when there is no window running).
	Count(ctx context.Context, key string) (n int64, reset time.Duration, err error)
	// Reset ends key's window (a successful login clears its failures).
	Reset(ctx context.Context, key string) error
}
