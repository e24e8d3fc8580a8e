// Package server is the connection and session layer of chatserver and the
// chat service behind it: it accepts TCP connections, speaks the classic and
// native protocols (package proto), commits messages to the Store, fans them
// out through the Broker and tracks sessions in Presence.
//
// Concurrency contract:
//   - each connection has one read loop (its own goroutine) that handles its
//     requests in order (logins on a short-lived goroutine it waits for);
//   - writes: whoever sends to a connection, its read loop included, writes
//     at once with one non-blocking write when its socket is free and
//     nothing is queued, and never blocks on the socket; otherwise the
//     bytes join the connection's queue, drained by one short-lived flush
//     goroutine per connection at a time. Bytes accepted and not yet
//     written (those a flush is writing included, and deliveries held for
//     the session) never pass Config.MaxQueue: a slow consumer is cut
//     there. A classic session on a TCP socket gets one 1024-byte record
//     per object, each written once the kernel has sent the previous one
//     (conn.writeRecord; docs/protocol.md);
//   - a committer goroutine (Config.Committers of them, each owning a share
//     of the conversations) appends messages to the store in batches (group
//     commit); a second goroutine per committer acknowledges and publishes
//     each committed batch in order while the next one commits;
//   - publications queue per channel (publisher.go): a channel has at most
//     one publish in flight, on its own short-lived goroutine, and what
//     queued behind it goes out in the next one, so a channel keeps its
//     order and no channel waits for another's publish; with the
//     in-process broker, 1:1 and user events are published inline;
//   - the broker calls Server.HandleMessage (from its goroutine or a
//     publisher's); the hub delivers to local sessions without blocking: a
//     classic session that sees a seq gap holds later deliveries and fills
//     the gap from the store on its own goroutine.
//
// Lock order: hub.mu before session.mu before conn.mu. No lock is held
// across a store, broker or presence call.
package server

import (
	"net/netip"
	"time"

	"clusterchat"
)

// Config holds the settings of a Server. Zero values take the defaults
// documented on each field.
type Config struct {
	Addr        string        // TCP listen address; default 127.0.0.1:6000
	HTTPAddr    string        // HTTP listen address (/healthz /readyz /metrics); "" disables it
	Node        string        // this server's name in the cluster; default "node1"
	MaxSessions int           // sessions per account, 0 = unlimited
	MaxBody     int           // longest chat text in bytes; default 4 KiB
	MaxQueue    int           // outbound queue per connection in bytes before the client counts as a slow consumer; default 4 MiB
	WriteWait   time.Duration // longest a socket write (or a classic record's wait for the previous one to be sent) may block; default 10 s
	BcryptCost  int           // password hashing cost; default bcrypt.DefaultCost
	Committers  int           // concurrent store appends (group commits in flight), each owning a share of the conversations; default 1
	// LoginFailures failed password logins of one account from one client
	// address within LoginWindow lock that account for that address (only)
	// until the window ends; defaults 10 and 1 minute. Negative: off.
	LoginFailures int
	LoginWindow   time.Duration
	Pprof         bool // serve /debug/pprof on the HTTP listener (profiling for chatbench runs)
	// BackupDir enables POST /debug/backup on the HTTP listener for an
	// embedded store (clusterchat.BackupStore): each call writes a copy
	// of the store, taken beside traffic, to a new directory entry named
	// by the time under BackupDir and answers its path. Empty: off.
	BackupDir string
	// AllowedOrigins are the browser origins (scheme://host[:port], or
	// "*" for any) allowed to open /ws besides the page's own origin.
	AllowedOrigins []string
	// WSPing is how often the server pings an idle WebSocket; a client that
	// has not answered within WSPongWait after a ping is cut. Defaults 30 s
	// and 30 s.
	WSPing     time.Duration
	WSPongWait time.Duration

	// The network edge (tls.go, proxyproto.go, limits.go).

	// TLSCert and TLSKey are PEM files; with both set the TCP listener
	// speaks TLS and the HTTP listener HTTPS (and WSS). Reloaded on
	// ReloadTLS and when the files change.
	TLSCert, TLSKey string
	// TrustedProxies are the proxies (nginx) whose word on the client's
	// address is believed: their PROXY header on the TCP listener (with
	// ProxyProtocol) and their X-Forwarded-For / X-Real-IP on HTTP.
	TrustedProxies []netip.Prefix
	// ProxyProtocol makes the TCP listener require a PROXY protocol header
	// (v1 or v2) from every connection of a trusted proxy.
	ProxyProtocol bool
	// Read-side deadlines; negative disables one. LoginTimeout: to log in
	// after connecting or logging out (default 60 s). FrameTimeout: to
	// finish a frame once its first byte came, and the PROXY header and
	// TLS handshake (default 30 s). IdleTimeout: longest a native session
	// may send nothing (its client pings; default 3 min).
	LoginTimeout, FrameTimeout, IdleTimeout time.Duration
	// MaxConnsPerAddr caps the open connections of one client address (an
	// IPv6 /64), default 100; MaxPrelogin the connections not logged in,
	// over all addresses, default 1000. Negative: no cap.
	MaxConnsPerAddr, MaxPrelogin int

	// StoreRetry is how long the committer retries a batch through a
	// transient store failure (a database restart or failover), holding
	// new messages meanwhile, before it refuses them with errno 9; default
	// 15 s, negative: no retry.
	StoreRetry time.Duration
	// StoreRetryBytes bounds the messages held during such a retry (their
	// text plus a fixed overhead each); past it new messages are refused at
	// once with errno 9. Default 64 MiB.
	StoreRetryBytes int

	// Abuse limits (ratelimit.go, SECURITY.md). A zero Rate takes the
	// default, Off (N < 0) turns one limit off, RateLimitsOff all of them
	// (benchmarks, closed networks). Login and registration counts are
	// shared by the servers of a cluster through Server.Limiter; message
	// and request buckets are per server.
	RateLimitsOff   bool
	RegisterRate    Rate // registrations per client address; default 10/1h
	LoginRate       Rate // password logins per client address; default 60/1m
	AccountFailRate Rate // failed password logins of one account, from addresses that never logged in to it; default 100/1h
	MsgRate         Rate // sustained chat messages per user (per server); default 10/1s
	MsgBurst        int  // messages a user may send at once above MsgRate; default 50
	ReqRate         Rate // sustained requests per connection; default 50/1s
	ReqBurst        int  // requests a connection may send at once above ReqRate; default 200
	// MsgQuota is the bytes of message text a user may send in 24 hours
	// (per server): all at once, then at MsgQuota per day as it refills.
	// Default 64 MiB; negative: off. What bounds the disk a stranger's
	// accounts can fill: MsgRate alone lets one account store 3 GB a day.
	MsgQuota int

	// TokenTTL is how long a session token lets a client log in without its
	// password; every use renews it (sliding). Default 30 days.
	TokenTTL time.Duration
	// TokenSweep is how often expired tokens are deleted. Default 1 hour.
	TokenSweep time.Duration

	// The HTTP listener's timeouts (httpedge.go): to read a request's
	// headers (default 10 s), a whole request (30 s), to write a response
	// (30 s). A WebSocket, once upgraded, is not subject to them.
	HTTPReadHeaderTimeout, HTTPReadTimeout, HTTPWriteTimeout time.Duration
	// Friends is FriendsConsent (default: a friendship needs a request and
	// an accept; two classic ADD_FRIENDs make one) or FriendsOpen (ADD_FRIEND
	// befriends both ways at once).
	Friends string
	// DM is DMAll (default: anyone not blocked may send a direct message,
	// as classic clients expect) or DMFriends (friends only).
	DM string

	// Timeouts of requests and of the write path (conn.go).

	// RequestTimeout bounds the store, broker and presence work of one
	// request, of one commit batch's store append, of a cursor save and of
	// a delivery gap's store read; default 10 s.
	RequestTimeout time.Duration
	// PublishTimeout bounds one broker publish (of a batch); default 1 s,
	// the Redis broker's own bound (redis.Options.PublishTimeout): with a
	// longer one here the broker would still cut at its own, and add a
	// timer of its own to every publish to do it.
	PublishTimeout time.Duration
	// DrainWait is how long a connection the server closes (at shutdown,
	// or after a fatal protocol error) may take to write what it has
	// queued, and the HTTP listener its requests in progress at shutdown;
	// default 2 s.
	DrainWait time.Duration
	// PaceInterval is how often a classic connection's flush goroutine
	// checks whether the kernel has sent the previous record, after
	// 100 µs of checks that yield the processor in between; default 200 µs.
	PaceInterval time.Duration
}

func (c *Config) setDefaults() {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:6000"
	}
	if c.Node == "" {
		c.Node = "node1"
	}
	if c.MaxBody <= 0 {
		c.MaxBody = clusterchat.DefaultMaxBody
	}
	if c.MaxQueue <= 0 {
		c.MaxQueue = 4 << 20
	}
	if c.WriteWait <= 0 {
		c.WriteWait = 10 * time.Second
	}
	setPositive(&c.RequestTimeout, 10*time.Second)
	setPositive(&c.PublishTimeout, time.Second)
	setPositive(&c.DrainWait, 2*time.Second)
	setPositive(&c.PaceInterval, 200*time.Microsecond)
	if c.BcryptCost == 0 {
		c.BcryptCost = 10
	}
	if c.LoginFailures == 0 {
		c.LoginFailures = 10
	}
	if c.LoginWindow <= 0 {
		c.LoginWindow = time.Minute
	}
	rate := func(r *Rate, def Rate) {
		if r.N == 0 {
			*r = def
		}
	}
	rate(&c.RegisterRate, Rate{10, time.Hour})
	rate(&c.LoginRate, Rate{60, time.Minute})
	rate(&c.AccountFailRate, Rate{100, time.Hour})
	rate(&c.MsgRate, Rate{10, time.Second})
	rate(&c.ReqRate, Rate{50, time.Second})
	if c.MsgBurst <= 0 {
		c.MsgBurst = 50
	}
	if c.MsgQuota == 0 {
		c.MsgQuota = 64 << 20
	}
	if c.ReqBurst <= 0 {
		c.ReqBurst = 200
	}
	if c.RateLimitsOff {
		c.LoginFailures = -1
		c.RegisterRate, c.LoginRate, c.AccountFailRate, c.MsgRate, c.ReqRate = Off, Off, Off, Off, Off
		c.MsgQuota = -1
	}
	if c.TokenTTL <= 0 {
		c.TokenTTL = 30 * 24 * time.Hour
	}
	if c.TokenSweep <= 0 {
		c.TokenSweep = time.Hour
	}
	if c.WSPing <= 0 {
		c.WSPing = 30 * time.Second
	}
	if c.WSPongWait <= 0 {
		c.WSPongWait = 30 * time.Second
	}
	if c.StoreRetry == 0 {
		c.StoreRetry = 15 * time.Second
	}
	if c.StoreRetryBytes <= 0 {
		c.StoreRetryBytes = 64 << 20
	}
	setDefault(&c.LoginTimeout, time.Minute)
	setDefault(&c.FrameTimeout, 30*time.Second)
	setDefault(&c.IdleTimeout, 3*time.Minute)
	setDefault(&c.MaxConnsPerAddr, 100)
	setDefault(&c.MaxPrelogin, 1000)
	setDefault(&c.HTTPReadHeaderTimeout, 10*time.Second)
	setDefault(&c.HTTPReadTimeout, 30*time.Second)
	setDefault(&c.HTTPWriteTimeout, 30*time.Second)
	if c.Friends == "" {
		c.Friends = FriendsConsent
	}
	if c.DM == "" {
		c.DM = DMAll
	}
}

// setDefault gives a zero limit its default; a negative one stays (off).
func setDefault[T int | time.Duration](v *T, def T) {
	if *v == 0 {
		*v = def
	}
}

// setPositive sets *v to def unless it is positive (a wait of zero or less
// has no meaning).
func setPositive[T int | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// Validate reports a setting with no meaning.
func (c *Config) Validate() error {
	if c.Friends != "" && c.Friends != FriendsConsent && c.Friends != FriendsOpen {
		return clusterchat.Errorf(clusterchat.EINVALID, "friends must be %q or %q", FriendsConsent, FriendsOpen)
	}
	if c.DM != "" && c.DM != DMAll && c.DM != DMFriends {
		return clusterchat.Errorf(clusterchat.EINVALID, "dm must be %q or %q", DMAll, DMFriends)
	}
	return nil
}
