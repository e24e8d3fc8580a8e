package clusterchat

import "context"

// Presence tracks the live sessions of every user, so that online/offline is
// a property of sessions and never a column that can go stale.
// Implementations: inmem.Presence (one process) and redis.Presence (a
// cluster: heartbeats with expiry, so the sessions of a killed server vanish
// within a bounded time).
type Presence interface {
	// Acquire records session sid of uid on this server. With max > 0 it
	// refuses (ESESSIONS) when uid already has max live sessions anywhere,
	// atomically: two servers can never both accept past the limit. first
	// tells whether uid had no live session before.
	Acquire(ctx context.Context, uid int64, sid string, max int) (first bool, err error)
	// Release removes session sid of uid; last tells whether uid has no live
	// session left anywhere.
	Release(ctx context.Context, uid int64, sid string) (last bool, err error)
	// Online reports which of uids have at least one live session.
	Online(ctx context.Context, uids []int64) (map[int64]bool, error)
	// Close releases the sessions of this server (clean shutdown) and stops
	// its heartbeat.
	Close() error
}

// The optional capabilities of a Presence, found by type assertion: a caller
// uses them when present and is correct without them.

// OfflineNotifier is a Presence that notices users who went offline because
// the server holding their last session died (SIGKILL, a crash), when no
// server released them and so nobody announced it. f is called from the
// presence's own goroutine and must not block; each such user is reported
// once, by one surviving server, within a bounded time of the death (redis:
// TTL+Heartbeat). Implementation: redis.Presence.
type OfflineNotifier interface {
	Presence
	// OnOffline sets f, replacing any earlier one.
	OnOffline(f func(uids []int64))
}

// RecoveringPresence is a Presence that can lose this server's sessions
// while the server is cut off from the shared state, and puts them back when
// it is reachable again (redis: an outage longer than the TTL; meanwhile
// another server may have reaped this one and told friends "offline"). f is
// told, from the presence's own goroutine, of this server's users who were
// offline to everyone and are live again, so their friends can be told
// "online": presence recovers to the truth. It must not block; a user may
// be reported although nobody was told "offline" (a repeated "online" is
// harmless). Implementation: redis.Presence.
type RecoveringPresence interface {
	Presence
	// OnRecovered sets f, replacing any earlier one.
	OnRecovered(f func(uids []int64))
}

// ReadyPresence is a Presence that depends on a connection: Ready reports
// whether it works now (for /readyz). A Presence without it is always
// ready. Implementation: redis.Presence.
type ReadyPresence interface {
	Presence
	// Ready returns nil when the presence can serve calls now.
	Ready(ctx context.Context) error
}
