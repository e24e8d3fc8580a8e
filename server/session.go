package server

import (
	"sync"
)

// session is one logged-in user on one connection. The read loop owns its
// lifetime; the hub delivers to it from broker and publisher goroutines.
type session struct {
	c      *conn
	uid    int64
	name   string
	sid    string
	native bool

	// guarded by hub.mu
	ended  bool
	groups []int64

	mu        sync.Mutex
	loggingIn bool             // the login reply is not written yet: hold deliveries
	held      []*envelope      // deliveries held during login
	covered   map[string]int64 // classic: highest seq per conv included in offlinemsg
}

// maxHeld bounds what a session holds while its login reply is built; past
// it, deliveries are dropped for this session and reach it by catch-up (the
// delivered cursor did not move).
const maxHeld = 1024

// deliver writes an envelope to the session, or holds it while logging in.
func (sess *session) deliver(e *envelope) {
	if e.origin == sess.sid {
		return
	}
	sess.mu.Lock()
	if sess.loggingIn {
		if len(sess.held) < maxHeld {
			sess.held = append(sess.held, e)
		}
		sess.mu.Unlock()
		return
	}
	sess.mu.Unlock()
	sess.write(e)
}

func (sess *session) write(e *envelope) {
	switch e.kind {
	case kindMessage:
		if !sess.native {
			// Classic sessions get others' messages only: the classic client
			// would print its own message as received.
			if e.from == sess.uid {
				return
			}
			if seq, ok := sess.covered[e.conv]; ok && e.seq <= seq {
				return // already in the login reply's offlinemsg
			}
			sess.c.send(outItem{b: e.classic, conv: e.conv, seq: e.seq, user: sess.uid})
			return
		}
		sess.c.send(outItem{b: e.native, conv: e.conv, seq: e.seq, user: sess.uid})
	default:
		if sess.native && e.native != nil {
			sess.c.send(outItem{b: e.native})
		}
	}
}

// loggedIn releases what was held during login, in order. covered (classic)
// names what the login reply already carried.
func (sess *session) loggedIn(covered map[string]int64) {
	for {
		sess.mu.Lock()
		held := sess.held
		sess.held = nil
		if len(held) == 0 {
			sess.loggingIn = false
			sess.covered = covered
			sess.mu.Unlock()
			return
		}
		sess.covered = covered
		sess.mu.Unlock()
		for _, e := range held {
			sess.write(e)
		}
	}
}
