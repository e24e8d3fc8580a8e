package server

import (
	"context"
	"hash/maphash"
	"time"

	"clusterchat"
	"clusterchat/proto"
)

// job is one chat message waiting for its commit.
type job struct {
	m    *clusterchat.Message
	sess *session // sender's session: acknowledged once committed (nil: none)
	rid  int64
	req  int
}

// maxBatch bounds one commit; anything queued past it waits for the next.
const maxBatch = 1024

// runCommitter is a writer of chat messages: it takes whatever has queued
// since its last commit and appends it in one store call (group commit), so
// latency stays at one commit and throughput grows with load.
// Acknowledging and publishing a committed batch happens on a second
// goroutine (runCommitted), in batch order, while the next batch commits.
// With several committers (Config.Committers, for a store that commits
// concurrently such as PostgreSQL) each conversation belongs to one of
// them, so its messages are still acknowledged and published in seq order.
func (s *Server) runCommitter(in <-chan *job) {
	defer s.commitWG.Done()
	done := make(chan []*job, 2)
	s.commitWG.Add(1)
	go s.runCommitted(done)
	defer close(done)
	for {
		j, ok := <-in
		if !ok {
			return
		}
		batch := append(make([]*job, 0, 64), j)
	more:
		for len(batch) < maxBatch {
			select {
			case j, ok := <-in:
				if !ok {
					break more
				}
				batch = append(batch, j)
			default:
				break more
			}
		}
		msgs := make([]*clusterchat.Message, len(batch))
		for i, j := range batch {
			msgs[i] = j.m
		}
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := s.Store.Append(ctx, msgs)
		cancel()
		s.metrics.storeAppend.Observe(time.Since(start).Seconds())
		s.metrics.batchSize.Observe(float64(len(msgs)))
		if err != nil {
			s.log.Warn("store append failed", "n", len(msgs), "err", err)
			for _, j := range batch {
				s.replyErr(j.sess, j.req, j.rid, err)
			}
			continue
		}
		done <- batch
	}
}

// runCommitted acknowledges and publishes committed batches in order.
func (s *Server) runCommitted(done <-chan []*job) {
	defer s.commitWG.Done()
	acks := make(map[*conn][]byte)
	for batch := range done {
		for _, j := range batch {
			s.committed(j, acks)
		}
		// One write per connection for all its acks of the batch: a sender
		// with many messages in flight gets them together.
		for c, b := range acks {
			c.send(outItem{b: b})
		}
		clear(acks)
	}
}

// committed queues the sender's acknowledgement in acks and hands the
// message to a publisher.
func (s *Server) committed(j *job, acks map[*conn][]byte) {
	m := j.m
	if !m.Dup {
		// Before the ack: a sender that logs in again right after it must
		// not count its own message as unread.
		s.cursors.markRead(m.From, m.Conv, m.Seq)
	}
	if j.sess != nil && j.sess.native {
		c := j.sess.c
		acks[c] = appendNL(proto.AppendChatAck(acks[c], j.req, j.rid, m))
	}
	if m.Dup {
		// The original was published when it was first accepted; whoever
		// missed it catches up from the store.
		s.metrics.duplicates.Inc()
		return
	}
	s.metrics.accepted.Inc()
	e := &envelope{kind: kindMessage, conv: m.Conv, seq: m.Seq, from: m.From, group: m.GroupID}
	if j.sess != nil {
		e.origin = j.sess.sid
	}
	e.classic = appendNL(proto.AppendClassicChat(make([]byte, 0, 96+len(m.Body)), m))
	e.native = appendNL(proto.AppendNativeChat(make([]byte, 0, 160+len(m.Body)), m))
	if m.IsGroup() {
		s.publish(clusterchat.GroupChannel(m.GroupID), e)
		return
	}
	// The sender's other sessions, on this server and every other one, get
	// their own message live (docs/protocol.md) through the sender's
	// channel, in order with everything else on it; the origin session
	// skips it. Delivering only to local sessions left a device on another
	// server without it until a later message revealed the gap (never, if
	// none came).
	s.publish(clusterchat.UserChannel(m.From), e)
	s.publish(clusterchat.UserChannel(m.To), e)
}

// submit queues m's job on the committer that owns its conversation.
func (s *Server) submit(j *job) {
	i := 0
	if len(s.commits) > 1 {
		i = int(maphash.String(pubSeed, j.m.Conv) % uint64(len(s.commits)))
	}
	s.commits[i] <- j
}

// pubJob is one payload for the publisher workers to publish on channel.
type pubJob struct {
	channel clusterchat.Channel
	payload []byte
}

var pubSeed = maphash.MakeSeed()

// publish hands e to the worker that owns channel: per-channel order is
// kept, while different channels publish in parallel (a broker round trip
// must not serialize the whole server).
func (s *Server) publish(channel clusterchat.Channel, e *envelope) {
	payload := e.marshal(make([]byte, 0, 48+len(e.classic)+len(e.native)))
	if s.syncBroker && !channel.Group {
		// An in-process broker delivers within the call and never waits on
		// a network: calling it here keeps order and saves a goroutine hop.
		// Group channels still go to the workers: a fan-out to many
		// sessions is worth spreading over the cores.
		if err := s.Broker.Publish(context.Background(), channel, payload); err != nil {
			s.log.Warn("publish failed; recipients will catch up from the store", "channel", channel, "err", err)
		}
		return
	}
	w := maphash.Comparable(pubSeed, channel) % uint64(len(s.pubs))
	s.pubs[w] <- pubJob{channel: channel, payload: payload}
}

// maxPubBatch bounds one pipelined publish.
const maxPubBatch = 256

// runPublisher publishes what its channels queue, in order. With a broker
// that pipelines, everything queued goes out in one round trip, so a busy
// channel is not limited to one publish per round trip.
func (s *Server) runPublisher(in <-chan pubJob) {
	defer s.pubWG.Done()
	bp, batching := s.Broker.(clusterchat.BatchPublisher)
	channels := make([]clusterchat.Channel, 0, maxPubBatch)
	payloads := make([][]byte, 0, maxPubBatch)
	for j := range in {
		channels = append(channels[:0], j.channel)
		payloads = append(payloads[:0], j.payload)
	more:
		for batching && len(channels) < maxPubBatch {
			select {
			case j, ok := <-in:
				if !ok {
					break more
				}
				channels = append(channels, j.channel)
				payloads = append(payloads, j.payload)
			default:
				break more
			}
		}
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var err error
		if len(channels) == 1 {
			err = s.Broker.Publish(ctx, channels[0], payloads[0])
		} else {
			err = bp.PublishBatch(ctx, channels, payloads)
		}
		cancel()
		s.metrics.publish.Observe(time.Since(start).Seconds())
		if err != nil {
			// The messages are committed: recipients catch up from the store
			// (native sync, classic gap fill or offlinemsg at next login).
			s.log.Warn("publish failed; recipients will catch up from the store", "n", len(channels), "channel", channels[0], "err", err)
		}
		clear(payloads)
	}
}
