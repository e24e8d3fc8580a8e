// Package inmem implements clusterchat's Broker and Presence inside one
// process: what a single node runs with nothing else installed.
package inmem

import (
	"context"
	"hash/maphash"
	"sync"

	"clusterchat"
)

var _ clusterchat.InProcessBroker = (*Broker)(nil)

// Broker is a clusterchat.Broker for one process. Publish calls the handler
// synchronously, on the publisher's goroutine, when the channel is
// subscribed: no queue, no goroutine and no copy, because with one process
// there is nobody else to carry the payload to. Handler calls from different
// publishers may therefore run concurrently; the order per publisher and
// channel is the order of its Publish calls.
//
// The state is split into shards by channel hash so that publishers on
// different channels touch different cache lines: one shared lock costs ten
// times the unshared path once two cores publish at once.
type Broker struct {
	h      clusterchat.BrokerHandler
	seed   maphash.Seed
	shards [shardCount]shard
}

const shardCount = 64

type shard struct {
	mu     sync.RWMutex
	subs   map[clusterchat.Channel]int // channel -> Subscribe count
	closed bool
	calls  sync.WaitGroup // handler calls in progress, for Close
	_      [64]byte       // keep neighbouring shards off this cache line
}

// NewBroker returns a Broker delivering to h.
func NewBroker(h clusterchat.BrokerHandler) *Broker {
	b := &Broker{h: h, seed: maphash.MakeSeed()}
	for i := range b.shards {
		b.shards[i].subs = make(map[clusterchat.Channel]int)
	}
	return b
}

func (b *Broker) shard(channel clusterchat.Channel) *shard {
	return &b.shards[maphash.Comparable(b.seed, channel)%shardCount]
}

func errClosed() error { return clusterchat.Errorf(clusterchat.EUNAVAILABLE, "broker closed") }

// InProcess reports that Publish delivers within the call, without a
// network, so callers may publish inline instead of from worker goroutines.
func (b *Broker) InProcess() bool { return true }

// Publish delivers payload to the handler before it returns if channel is
// subscribed.
func (b *Broker) Publish(ctx context.Context, channel clusterchat.Channel, payload []byte) error {
	s := b.shard(channel)
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return errClosed()
	}
	n := s.subs[channel]
	if n > 0 {
		// Add under the read lock: Close sets closed under the write lock
		// before it waits, so no Add can race with its Wait.
		s.calls.Add(1)
	}
	s.mu.RUnlock()
	if n > 0 {
		defer s.calls.Done()
		b.h.HandleMessage(channel, payload)
	}
	return nil
}

// Subscribe counts one subscription to channel.
func (b *Broker) Subscribe(ctx context.Context, channel clusterchat.Channel) error {
	s := b.shard(channel)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed()
	}
	s.subs[channel]++
	return nil
}

// Unsubscribe undoes one Subscribe; unbalanced calls are ignored.
func (b *Broker) Unsubscribe(ctx context.Context, channel clusterchat.Channel) error {
	s := b.shard(channel)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed()
	}
	switch n := s.subs[channel]; {
	case n > 1:
		s.subs[channel] = n - 1
	case n == 1:
		delete(s.subs, channel)
	}
	return nil
}

// Ready reports nil until Close: there is no connection to lose.
func (b *Broker) Ready(ctx context.Context) error {
	s := &b.shards[0]
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return errClosed()
	}
	return nil
}

// Close stops delivery and waits for handler calls in progress. It must not
// be called from the handler (it would wait for itself).
func (b *Broker) Close() error {
	for i := range b.shards {
		s := &b.shards[i]
		s.mu.Lock()
		s.closed = true
		s.subs = nil
		s.mu.Unlock()
	}
	for i := range b.shards {
		b.shards[i].calls.Wait()
	}
	return nil
}
