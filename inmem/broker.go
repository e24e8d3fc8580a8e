// Package inmem implements clusterchat's Broker and Presence inside one
// process: what a single node runs with nothing else installed.
package inmem

import (
	"context"
	"sync"

	"clusterchat"
)

var _ clusterchat.Broker = (*Broker)(nil)

// Broker is a clusterchat.Broker for one process. Publish calls the handler
// synchronously, on the publisher's goroutine, when the channel is
// subscribed: no queue, no goroutine and no copy, because with one process
// there is nobody else to carry the payload to. Handler calls from different
// publishers may therefore run concurrently; the order per publisher and
// channel is the order of its Publish calls.
type Broker struct {
	h clusterchat.BrokerHandler

	mu     sync.RWMutex
	subs   map[string]int // channel -> Subscribe count
	closed bool
	calls  sync.WaitGroup // handler calls in progress, for Close
}

// NewBroker returns a Broker delivering to h.
func NewBroker(h clusterchat.BrokerHandler) *Broker {
	return &Broker{h: h, subs: make(map[string]int)}
}

func errClosed() error { return clusterchat.Errorf(clusterchat.EUNAVAILABLE, "broker closed") }

// Publish delivers payload to the handler before it returns if channel is
// subscribed.
func (b *Broker) Publish(ctx context.Context, channel string, payload []byte) error {
	b.mu.RLock()
	if b.closed {
		b.mu.RUnlock()
		return errClosed()
	}
	n := b.subs[channel]
	if n > 0 {
		// Add under the read lock: Close sets closed under the write lock
		// before it waits, so no Add can race with its Wait.
		b.calls.Add(1)
	}
	b.mu.RUnlock()
	if n > 0 {
		defer b.calls.Done()
		b.h.HandleMessage(channel, payload)
	}
	return nil
}

// Subscribe counts one subscription to channel.
func (b *Broker) Subscribe(ctx context.Context, channel string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errClosed()
	}
	b.subs[channel]++
	return nil
}

// Unsubscribe undoes one Subscribe; unbalanced calls are ignored.
func (b *Broker) Unsubscribe(ctx context.Context, channel string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errClosed()
	}
	switch n := b.subs[channel]; {
	case n > 1:
		b.subs[channel] = n - 1
	case n == 1:
		delete(b.subs, channel)
	}
	return nil
}

// Ready reports nil until Close: there is no connection to lose.
func (b *Broker) Ready(ctx context.Context) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return errClosed()
	}
	return nil
}

// Close stops delivery and waits for handler calls in progress. It must not
// be called from the handler (it would wait for itself).
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.subs = nil
	b.mu.Unlock()
	b.calls.Wait()
	return nil
}
