package server

import (
	"context"
	"sync"
	"time"

	"clusterchat"
)

// maxPubBatch bounds one pipelined publish of a channel's queue.
const maxPubBatch = 256

// maxPubQueued bounds the bytes waiting for the broker across all channels
// (a broker outage holds each channel's publish for Config.PublishTimeout
// while commits go on). Past it a publish is dropped and counted: the
// message is committed, and its recipients catch up from the store.
const maxPubQueued = 64 << 20

// publisher sends envelopes to the broker in order per channel, with no
// channel ever waiting for another: each channel with something to send has
// its own goroutine and at most one publish in flight, and whatever queues
// behind it goes out together in the next (pipelined) publish. Different
// channels publish at the same time, which a pipelining broker client
// (rueidis) sends on one connection without waiting for each answer. So a
// slow publish (a huge group, a stalled connection) holds back only later
// publishes of its own channel, and the committers never block on
// publishing at all. There is no cap on publishes in flight: any cap would
// let enough slow channels hold up every other one again. What bounds them
// is the bytes they hold (maxPubQueued) and Config.PublishTimeout.
type publisher struct {
	s *Server

	mu     sync.Mutex
	queues map[clusterchat.Channel]*pubQueue // channels with a publish in flight
	queued int                               // bytes in flight or waiting
	closed bool
	wg     sync.WaitGroup // the channel goroutines

	dmu     sync.Mutex
	dctx    context.Context // the deadline publishes share now (deadline)
	dborn   time.Time       // when dctx was made
	dcancel []context.CancelFunc
}

// pubQueue is what waits behind a channel's publish in flight.
type pubQueue struct {
	payloads [][]byte
	envs     []*envelope // instead of payloads with an in-process broker
	bytes    int         // counted in publisher.queued until sent
}

func newPublisher(s *Server) *publisher {
	return &publisher{s: s, queues: make(map[clusterchat.Channel]*pubQueue)}
}

// publish sends e on channel, after what channel already has queued. It
// never blocks.
//
// With an in-process broker (clusterchat.InProcessBroker) this server is
// the only subscriber there is, so the envelope goes straight to the hub
// (dispatch): no marshal, no copy, no unmarshal, no broker lock. The hub's
// index holds exactly the sessions the broker subscriptions stand for. A
// user channel is dispatched inline (order kept, no goroutine hop); a group
// channel's fan-out to many sessions goes through the channel goroutines,
// so that fan-outs spread over the cores.
func (s *Server) publish(channel clusterchat.Channel, e *envelope) {
	if s.syncBroker {
		if !channel.Group {
			s.dispatch(channel, e)
			return
		}
		s.pub.enqueue(channel, nil, e, 48+len(e.classic)+len(e.native))
		return
	}
	payload := e.marshal(make([]byte, 0, 48+len(e.classic)+len(e.native)))
	s.pub.enqueue(channel, payload, nil, len(payload))
}

func (p *publisher) enqueue(channel clusterchat.Channel, payload []byte, e *envelope, size int) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	if p.queued+size > maxPubQueued {
		p.mu.Unlock()
		p.s.metrics.pubDropped.Inc()
		return
	}
	p.queued += size
	if q := p.queues[channel]; q != nil {
		if e != nil {
			q.envs = append(q.envs, e)
		} else {
			q.payloads = append(q.payloads, payload)
		}
		p.mu.Unlock()
		return
	}
	p.queues[channel] = &pubQueue{}
	p.wg.Add(1)
	p.mu.Unlock()
	first := pubQueue{bytes: size}
	if e != nil {
		first.envs = []*envelope{e}
	} else {
		first.payloads = [][]byte{payload}
	}
	go p.run(channel, first)
}

// run publishes batch, then whatever queued behind it on channel, until the
// channel's queue is empty.
func (p *publisher) run(channel clusterchat.Channel, batch pubQueue) {
	defer p.wg.Done()
	for {
		p.send(channel, &batch)
		p.mu.Lock()
		p.queued -= batch.bytes
		q := p.queues[channel]
		if len(q.payloads) == 0 && len(q.envs) == 0 {
			delete(p.queues, channel)
			p.mu.Unlock()
			return
		}
		batch = pubQueue{}
		if n := min(len(q.payloads), maxPubBatch); n > 0 {
			batch.payloads = q.payloads[:n:n]
			q.payloads = q.payloads[n:]
		}
		batch.envs, q.envs = q.envs, nil
		for _, b := range batch.payloads {
			batch.bytes += len(b)
		}
		for _, e := range batch.envs {
			batch.bytes += 48 + len(e.classic) + len(e.native)
		}
		p.mu.Unlock()
	}
}

// send delivers one batch of channel: envelopes to the hub (in-process
// broker), payloads to the broker in one pipelined round trip when it
// batches.
func (p *publisher) send(channel clusterchat.Channel, b *pubQueue) {
	s := p.s
	for _, e := range b.envs {
		s.dispatch(channel, e)
	}
	if len(b.payloads) == 0 {
		return
	}
	start := time.Now()
	ctx := p.deadline(start)
	var err error
	if bp, ok := s.Broker.(clusterchat.BatchPublisher); ok && len(b.payloads) > 1 {
		channels := make([]clusterchat.Channel, len(b.payloads))
		for i := range channels {
			channels[i] = channel
		}
		err = bp.PublishBatch(ctx, channels, b.payloads)
	} else {
		for _, pl := range b.payloads {
			if err = s.Broker.Publish(ctx, channel, pl); err != nil {
				break
			}
		}
	}
	s.metrics.publish.Observe(time.Since(start).Seconds())
	if err != nil {
		// The messages are committed: recipients catch up from the store
		// (native sync, classic gap fill or offlinemsg at next login).
		s.log.Warn("publish failed; recipients will catch up from the store", "n", len(b.payloads), "channel", channel, "err", err)
	}
}

// deadline returns a context that ends between three quarters of
// Config.PublishTimeout and all of it after now, shared by the publishes
// that start within a quarter of the timeout: one timer per quarter instead
// of one per publish (a timer per publish, with the broker's own, was 8.6%
// of a cluster server's CPU in a ping-pong profile). A stalled publish is
// still cut within the timeout, a little earlier at worst.
func (p *publisher) deadline(now time.Time) context.Context {
	d := p.s.cfg.PublishTimeout
	p.dmu.Lock()
	defer p.dmu.Unlock()
	if p.dctx == nil || now.Sub(p.dborn) >= d/4 {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		p.dctx, p.dborn = ctx, now
		// Each one ends by its own timer; the cancels are kept (the newest
		// few) only to release them all at close.
		p.dcancel = append(p.dcancel, cancel)
		if len(p.dcancel) > 8 {
			p.dcancel = append(p.dcancel[:0], p.dcancel[len(p.dcancel)-5:]...)
		}
	}
	return p.dctx
}

// close waits for every queued publish to be sent; later publishes are
// dropped. The server calls it once the read loops and committers are
// done, so nothing of a session or a commit comes later.
func (p *publisher) close() {
	p.mu.Lock()
	p.closed = true // under mu: no wg.Add can race the Wait below
	p.mu.Unlock()
	p.wg.Wait()
	p.dmu.Lock()
	for _, cancel := range p.dcancel {
		cancel()
	}
	p.dcancel = nil
	p.dmu.Unlock()
}
