package server

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"clusterchat"
	"clusterchat/proto"
)

// session is one logged-in user on one connection. The read loop owns its
// lifetime; the hub delivers to it from broker and publisher goroutines.
type session struct {
	srv    *Server
	c      *conn
	uid    int64
	name   string
	sid    string
	native bool

	replied bool // the login reply went out; only the read loop touches it

	tokenHash string      // the session token's hash (native logins), revoked at logout
	revoked   atomic.Bool // its user's tokens were all revoked: the connection is being closed

	// guarded by hub.mu
	ended  bool
	groups []int64

	soc socialState // relations cache (caches.go), pending rename, search limit (friends.go)

	mu      sync.Mutex
	holding bool        // deliveries wait in held: login reply not written yet, or a gap being filled
	held    []*envelope // in arrival order
	// heldBytes counts held's payloads, bounded like a connection's queue.
	heldBytes int
	// written is, per conversation, the highest seq this classic session has
	// accounted for (written, or its own). A classic client cannot fetch
	// what it missed, so the session does it: a message past written+1
	// means the broker dropped some (a Redis outage); they are read from the
	// store and written first. Native clients do this themselves.
	written map[string]int64
}

// maxHeld bounds what a session holds (with Config.MaxQueue in bytes); past
// it the connection is closed (the client was not keeping up and reconnects
// to catch up).
const maxHeld = 8192

type action int

const (
	actSkip  action = iota // not for this session, or already written
	actWrite               // write it now
	actGap                 // messages before it are missing: fetch them first
)

// check decides what to do with e. It runs under sess.mu and accounts for e
// in written unless it reports a gap.
func (sess *session) check(e *envelope) (action, int64) {
	if e.kind != kindMessage {
		if e.origin == sess.sid || !sess.native || e.native == nil {
			return actSkip, 0
		}
		return actWrite, 0
	}
	if sess.native {
		if e.origin == sess.sid {
			return actSkip, 0
		}
		return actWrite, 0
	}
	last, known := sess.written[e.conv]
	switch {
	case known && e.seq <= last:
		return actSkip, 0
	case known && e.seq > last+1:
		return actGap, last
	}
	sess.written[e.conv] = e.seq
	if e.origin == sess.sid || e.from == sess.uid {
		// Classic clients never see their own messages (the classic client
		// would print them as received).
		return actSkip, 0
	}
	return actWrite, 0
}

// deliver writes an envelope to the session, or queues it behind a login
// or a gap being filled.
func (sess *session) deliver(e *envelope) {
	sess.mu.Lock()
	if sess.holding {
		sess.hold(e)
		sess.mu.Unlock()
		return
	}
	act, _ := sess.check(e)
	if act == actGap {
		sess.holding = true
		sess.hold(e)
		sess.mu.Unlock()
		s := sess.srv
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			sess.drain()
		}()
		return
	}
	sess.mu.Unlock()
	if act == actWrite {
		sess.write(e)
	}
}

func (sess *session) hold(e *envelope) {
	size := sess.wireSize(e)
	// Held and queued bytes share the connection's MaxQueue.
	if len(sess.held) >= maxHeld || sess.heldBytes+size+sess.c.queuedBytes() > sess.srv.cfg.MaxQueue {
		sess.srv.log.Warn("session too far behind; closing its connection", "user", sess.uid, "session", sess.sid)
		sess.srv.metrics.slowConsumers.Inc()
		sess.c.nc.Close()
		return
	}
	sess.held = append(sess.held, e)
	sess.heldBytes += size
}

// wireSize is what e puts on this session's connection.
func (sess *session) wireSize(e *envelope) int {
	if e.kind == kindMessage && !sess.native {
		return proto.ClassicRecordLen(len(e.classic))
	}
	return len(e.native)
}

func (sess *session) write(e *envelope) {
	if e.kind != kindMessage {
		sess.c.send(outItem{b: e.native})
		return
	}
	b := e.native
	if !sess.native {
		b = e.classic
	}
	sess.c.send(outItem{b: b, conv: e.conv, seq: e.seq, user: sess.uid})
}

// drain processes held deliveries in order, filling gaps from the store,
// until none is left; then deliveries flow directly again. The read loop
// runs it after a login reply; a goroutine when a gap shows.
func (sess *session) drain() {
	for {
		sess.mu.Lock()
		if len(sess.held) == 0 {
			sess.holding = false
			sess.held = nil
			sess.heldBytes = 0
			sess.mu.Unlock()
			return
		}
		e := sess.held[0]
		act, after := sess.check(e)
		if act != actGap {
			sess.held[0] = nil
			sess.held = sess.held[1:]
			sess.heldBytes -= sess.wireSize(e)
		}
		sess.mu.Unlock()
		switch act {
		case actWrite:
			sess.write(e)
		case actGap:
			sess.fill(e.conv, after, e.seq-1)
		}
	}
}

// fill writes the messages of conv after seq `after` up to `upto` from the
// store, and marks them accounted for even if the store cannot be read
// (after retrying for a while): they then reach the user in offlinemsg at
// the next login, because the delivered cursor only moves on writes.
func (sess *session) fill(conv string, after, upto int64) {
	s := sess.srv
	var msgs []*clusterchat.Message
	var err error
	// In a cluster a later seq can be committed (and published) before an
	// earlier one of another server's transaction is visible: retry a few
	// times before concluding the store has nothing more.
	for attempt := 0; attempt < 6; attempt++ {
		if attempt > 0 {
			time.Sleep(time.Duration(50<<attempt) * time.Millisecond)
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
		msgs, err = s.Store.Since(ctx, conv, after, int(min(upto-after, clusterchat.MaxPageSize)))
		cancel()
		if err == nil && len(msgs) > 0 && (msgs[len(msgs)-1].Seq >= upto || len(msgs) == clusterchat.MaxPageSize) {
			break
		}
	}
	if err != nil {
		s.log.Warn("could not fill a delivery gap; the messages wait for the next login", "user", sess.uid, "conv", conv, "err", err)
		sess.mu.Lock()
		sess.written[conv] = max(sess.written[conv], upto)
		sess.mu.Unlock()
		return
	}
	s.metrics.gapFills.Inc()
	for _, m := range msgs {
		if m.Seq > upto {
			break
		}
		sess.mu.Lock()
		if m.Seq <= sess.written[conv] {
			sess.mu.Unlock()
			continue
		}
		sess.written[conv] = m.Seq
		sess.mu.Unlock()
		if m.From != sess.uid {
			b := appendNL(proto.AppendClassicChat(nil, m))
			sess.c.send(outItem{b: b, conv: m.Conv, seq: m.Seq, user: sess.uid})
		}
	}
	if len(msgs) == 0 || msgs[len(msgs)-1].Seq < upto {
		// The store has less than the seqs promise (should not happen):
		// do not loop on it.
		sess.mu.Lock()
		sess.written[conv] = max(sess.written[conv], upto)
		sess.mu.Unlock()
	}
}
