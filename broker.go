package clusterchat

import "context"

// BrokerHandler receives what a Broker delivers.
type BrokerHandler interface {
	// HandleMessage is called for every payload published on a channel
	// this process subscribes to, in publication order per channel. It must
	// not block: it hands the payload on and returns. payload must not be
	// kept after it returns.
	HandleMessage(channel Channel, payload []byte)
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
	Publish(ctx context.Context, channel Channel, payload []byte) error
	// Subscribe starts delivery of channel to the handler. Calls are
	// counted: channel stays subscribed until Unsubscribe was called as
	// many times as Subscribe.
	Subscribe(ctx context.Context, channel Channel) error
	// Unsubscribe undoes one Subscribe.
	Unsubscribe(ctx context.Context, channel Channel) error
	// Ready reports whether the broker is connected (for /readyz).
	Ready(ctx context.Context) error
	// Close stops delivery and releases connections; it waits for calls to
	// the handler in progress.
	Close() error
}

// The optional capabilities of a Broker, found by type assertion: a caller
// uses them when present and is correct without them.

// InProcessBroker is a Broker whose Publish delivers within the call: the
// handler has been called for every local subscriber when Publish returns,
// on the publisher's goroutine, with no network and no copy. A caller may
// then publish inline rather than from worker goroutines, since a publish
// never waits on I/O. Implementation: inmem.Broker.
type InProcessBroker interface {
	Broker
	// InProcess reports whether Publish delivers within the call.
	InProcess() bool
}

// BatchPublisher is a Broker that publishes many payloads in one round
// trip. Each payload gets Publish's guarantees, and payloads on one channel
// keep their order in the batch. On error any of them may or may not have
// been published (the broker is at most once anyway). Implementation:
// redis.Broker.
type BatchPublisher interface {
	Broker
	// PublishBatch publishes payloads[i] on channels[i], in order.
	PublishBatch(ctx context.Context, channels []Channel, payloads [][]byte) error
}
