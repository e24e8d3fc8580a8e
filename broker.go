package clusterchat

import "context"

// BrokerHandler receives what a Broker delivers.
type BrokerHandler interface {
	// HandleMessage is called for every payload published on a channel
	// this process subscribes to, in publication order per channel. It must
	// not block: it hands the payload on and returns. payload must not be
	// kept after it returns.
	HandleMessage(channel string, payload []byte)
	// HandleReconnect is called after the broker lost its connection and
	// restored it with every subscription: payloads published meanwhile may
	// be lost, so the caller tells its sessions to catch up from the store.
	HandleReconnect()
}

// Broker carries payloads between the servers of a cluster, by channel.
// Implementations: inmem.Broker (one process) and redis.Broker.
//
// It is for speed, not for truth: delivery is at most once and may drop
// payloads while a connection is down (the store is the truth and sessions
// catch up from it). What it does guarantee: a payload published on a channel
// reaches every process subscribed to it at that time while connections are
// up, in publication order per publisher and channel; Subscribe and
// Unsubscribe take effect before they return; after a reconnect every
// subscription is restored before HandleReconnect is called.
type Broker interface {
	// Publish sends payload to every process subscribed to channel,
	// including this one. The payload may be reused once it returns.
	Publish(ctx context.Context, channel string, payload []byte) error
	// Subscribe starts delivery of channel to the handler. Calls are
	// counted: channel stays subscribed until Unsubscribe was called as
	// many times as Subscribe.
	Subscribe(ctx context.Context, channel string) error
	// Unsubscribe undoes one Subscribe.
	Unsubscribe(ctx context.Context, channel string) error
	// Ready reports whether the broker is connected (for /readyz).
	Ready(ctx context.Context) error
	// Close stops delivery and releases connections; it waits for calls to
	// the handler in progress.
	Close() error
}
