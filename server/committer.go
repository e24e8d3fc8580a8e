package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"hash/maphash"
	"strconv"
	"sync/atomic"
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
//
// A transient store failure (a restart, a failover) does not refuse the
// batch: it is retried, the same messages with the same keys, for up to
// Config.StoreRetry, while new messages are held behind it (bounded by
// Config.StoreRetryBytes); see commit.
func (s *Server) runCommitter(in <-chan *job) {
	defer s.commitWG.Done()
	done := make(chan []*job, 2)
	s.commitWG.Add(1)
	go s.runCommitted(done)
	defer close(done)
	_, keyed := s.Store.(clusterchat.NetworkStore)
	c := &committer{s: s, in: in, keyed: keyed}
	for {
		batch := c.next()
		if batch == nil {
			return
		}
		if c.commit(batch) {
			done <- batch
		}
	}
}

// committer is the state of one runCommitter.
type committer struct {
	s     *Server
	in    <-chan *job // nil once closed
	keyed bool        // the store is a clusterchat.NetworkStore: key every message
	// held are jobs taken off in while a batch was being retried, in
	// arrival order; they make the next batches. heldBytes is their size
	// (jobSize).
	held      []*job
	heldBytes int
}

// next returns the next batch: held jobs first, then whatever in has
// queued; it waits for in when there is nothing, and returns nil once in is
// closed and nothing is left.
func (c *committer) next() []*job {
	var batch []*job
	if len(c.held) > 0 {
		n := min(len(c.held), maxBatch)
		batch = append(make([]*job, 0, n), c.held[:n]...)
		clear(c.held[:n])
		c.held = c.held[n:]
		if len(c.held) == 0 {
			c.held = nil
		}
		bytes := 0
		for _, j := range batch {
			bytes += jobSize(j)
		}
		c.heldBytes -= bytes
		c.s.store.unhold(len(batch), bytes)
	} else {
		if c.in == nil {
			return nil
		}
		j, ok := <-c.in
		if !ok {
			c.in = nil
			return nil
		}
		batch = append(make([]*job, 0, 64), j)
	}
	for len(batch) < maxBatch && c.in != nil {
		select {
		case j, ok := <-c.in:
			if !ok {
				c.in = nil
				return batch
			}
			batch = append(batch, j)
		default:
			return batch
		}
	}
	return batch
}

// commit appends batch to the store and reports whether it is committed;
// if not, every sender has had its error reply. A transient failure
// (clusterchat.IsTransient) is retried with backoff while the store's
// outage is younger than Config.StoreRetry.
//
// A retry must not store anything twice, although the attempt before it
// may have committed (a connection that broke after the commit, before its
// answer): with a NetworkStore every message has a CMID before the first
// attempt, a server-made one when the client sent none, so the store finds
// such messages already there and returns them as duplicates; ownDups then
// tells them apart from resends of older messages.
func (c *committer) commit(batch []*job) bool {
	s := c.s
	msgs := make([]*clusterchat.Message, len(batch))
	for i, j := range batch {
		msgs[i] = j.m
		if c.keyed && j.m.CMID == "" {
			j.m.CMID = s.store.newKey()
		}
	}
	first := time.Now()
	backoff := 25 * time.Millisecond
	for attempt := 1; ; attempt++ {
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
		err := s.Store.Append(ctx, msgs)
		cancel()
		s.metrics.storeAppend.Observe(time.Since(start).Seconds())
		if err == nil {
			s.metrics.batchSize.Observe(float64(len(msgs)))
			if attempt > 1 {
				ownDups(msgs, first)
			}
			if d := s.store.recovered(); d > 0 {
				s.log.Info("store writes work again", "outage", d.Round(time.Millisecond), "attempts", attempt)
			}
			return true
		}
		retry := clusterchat.IsTransient(err) && s.cfg.StoreRetry > 0
		if retry {
			since := s.store.failing(s.cfg.StoreRetry)
			retry = time.Since(since) < s.cfg.StoreRetry
			if retry && attempt == 1 {
				s.log.Warn("store append failed; retrying while holding new messages", "n", len(msgs),
					"outage", time.Since(since).Round(time.Millisecond), "bound", s.cfg.StoreRetry, "err", err)
			}
		}
		if !retry {
			s.log.Warn("store append failed", "n", len(msgs), "attempts", attempt, "err", err)
			for _, j := range batch {
				s.replyErr(j.sess, j.req, j.rid, err)
			}
			return false
		}
		s.metrics.storeRetries.Inc()
		c.wait(backoff)
		backoff = min(2*backoff, time.Second)
	}
}

// wait lets d pass, holding whatever in delivers meanwhile (so senders'
// read loops do not block on a full queue), up to Config.StoreRetryBytes;
// a message past that bound is refused at once with errno 9.
func (c *committer) wait(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			return
		case j, ok := <-c.in:
			if !ok {
				c.in = nil // a nil channel never delivers: wait out the timer
				continue
			}
			size := jobSize(j)
			if c.heldBytes+size > c.s.cfg.StoreRetryBytes {
				c.s.replyErr(j.sess, j.req, j.rid, errHeldFull)
				continue
			}
			c.held = append(c.held, j)
			c.heldBytes += size
			c.s.store.hold(1, size)
		}
	}
}

// errHeldFull refuses a message when the store is out and the messages held
// for it reached Config.StoreRetryBytes.
var errHeldFull = clusterchat.Errorf(clusterchat.EUNAVAILABLE, "store unavailable and too many messages waiting for it; retry later")

// jobSize is what a held job counts against Config.StoreRetryBytes: its
// text plus the fixed part of a message and its job.
func jobSize(j *job) int { return len(j.m.Body) + 256 }

// ownDups marks as new again the duplicates in msgs (a batch that succeeded
// after failed attempts) that an earlier attempt of the same batch stored:
// their store time is at or after the batch's first attempt began (the
// store stamps messages with this process's clock), and they are not a
// repeat of an earlier message of the batch itself. They were never
// acknowledged nor published, so committed must do both. A true resend of
// an older message keeps Dup (its original was published when it was
// stored).
func ownDups(msgs []*clusterchat.Message, first time.Time) {
	since := first.Truncate(time.Millisecond)
	fresh := make(map[int64]bool, len(msgs))
	for _, m := range msgs {
		switch {
		case !m.Dup:
			fresh[m.ID] = true
		case !fresh[m.ID] && !m.Time.Before(since):
			m.Dup = false
			fresh[m.ID] = true
		}
	}
}

// storeState is what the committers share about the store's health: the
// current outage, what is held for it, and the keys given to messages.
type storeState struct {
	metrics   *metrics
	since     atomic.Int64 // unix nanoseconds when the current outage began; 0: none
	lastFail  atomic.Int64 // unix nanoseconds of the latest transient failure
	held      atomic.Int64 // messages held behind retried batches
	heldBytes atomic.Int64
	keyPrefix string // random per process, so keys never repeat across restarts
	keys      atomic.Int64
}

func newStoreState(m *metrics) *storeState {
	var b [8]byte
	rand.Read(b[:])
	// "~" is not in the cmids the Go client makes; a client choosing one
	// that collides with this prefix could only collide with its own
	// messages (cmids are per sender).
	return &storeState{metrics: m, keyPrefix: "~" + hex.EncodeToString(b[:]) + "-"}
}

// newKey returns an idempotency key for a message whose client sent no
// cmid (a classic client), unique across processes and restarts.
func (st *storeState) newKey() string {
	return st.keyPrefix + strconv.FormatInt(st.keys.Add(1), 36)
}

// failing records a transient failure and returns when the outage began.
// An outage with no failure seen for quiet (Config.StoreRetry) is over even
// if no append has succeeded since (no messages came): the next failure
// starts a new one.
func (st *storeState) failing(quiet time.Duration) time.Time {
	now := time.Now().UnixNano()
	last := st.lastFail.Swap(now)
	since := st.since.Load()
	if since == 0 || now-last > int64(quiet) {
		st.since.Store(now)
		st.metrics.storeRetrying.Set(1)
		return time.Unix(0, now)
	}
	return time.Unix(0, since)
}

// recovered ends the outage, if any, and returns how long it lasted.
func (st *storeState) recovered() time.Duration {
	if st.since.Load() == 0 {
		return 0
	}
	since := st.since.Swap(0)
	if since == 0 {
		return 0
	}
	st.metrics.storeRetrying.Set(0)
	return time.Since(time.Unix(0, since))
}

func (st *storeState) hold(n, bytes int) {
	st.metrics.storeHeld.Set(float64(st.held.Add(int64(n))))
	st.heldBytes.Add(int64(bytes))
}

func (st *storeState) unhold(n, bytes int) { st.hold(-n, -bytes) }

// status describes an outage for /readyz; ok is false during one (a
// failure seen within quiet).
func (st *storeState) status(quiet time.Duration) (report string, ok bool) {
	since := st.since.Load()
	if since == 0 || time.Since(time.Unix(0, st.lastFail.Load())) > quiet {
		return "store writes: ok\n", true
	}
	return fmt.Sprintf("store writes: failing for %v, retrying; %d messages (%d bytes) held\n",
		time.Since(time.Unix(0, since)).Round(time.Millisecond), st.held.Load(), st.heldBytes.Load()), false
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
	// The sender's read cursor moved with the message (Store.Append): a
	// sender that logs in again right after the ack does not count its own
	// message as unread.
	if j.sess != nil && j.sess.native {
		c := j.sess.c
		acks[c] = append(proto.AppendChatAck(acks[c], j.req, j.rid, m), '\n')
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
	// Each with its newline: the bytes every recipient's connection writes.
	e.classic = append(proto.AppendClassicChat(make([]byte, 0, 96+len(m.Body)), m), '\n')
	e.native = append(proto.AppendNativeChat(make([]byte, 0, 160+len(m.Body)), m), '\n')
	if m.GroupID != 0 {
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

var pubSeed = maphash.MakeSeed()
