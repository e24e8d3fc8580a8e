package server

import (
	"context"
	"sync"
	"time"

	"clusterchat"
)

// cursors coalesces delivered-cursor moves in memory and writes them to the
// store in one call per interval: a cursor moves on every message written to
// a socket, and one store write per delivery would double the store's load.
// If the server dies before a flush, those messages count as undelivered and
// come again at the user's next classic login: never lost, at worst repeated.
type cursors struct {
	flushMu sync.Mutex // one flush at a time: a flush that returns has saved every move made before it began
	mu      sync.Mutex
	moves   map[cursorKey]int64 // delivered
	reads   map[cursorKey]int64 // read: a sender has read its conversation up to its own message
}

type cursorKey struct {
	user int64
	conv string
}

func newCursors() *cursors {
	return &cursors{moves: make(map[cursorKey]int64), reads: make(map[cursorKey]int64)}
}

func (c *cursors) delivered(user int64, conv string, seq int64) {
	k := cursorKey{user, conv}
	c.mu.Lock()
	if seq > c.moves[k] {
		c.moves[k] = seq
	}
	c.mu.Unlock()
}

func (c *cursors) read(user int64, conv string, seq int64) {
	k := cursorKey{user, conv}
	c.mu.Lock()
	if seq > c.reads[k] {
		c.reads[k] = seq
	}
	c.mu.Unlock()
}

func (c *cursors) take(m map[cursorKey]int64) []clusterchat.Cursor {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(m) == 0 {
		return nil
	}
	out := make([]clusterchat.Cursor, 0, len(m))
	for k, seq := range m {
		out = append(out, clusterchat.Cursor{User: k.user, Conv: k.conv, Seq: seq})
	}
	clear(m)
	return out
}

// putBack re-queues moves a failed store call did not save.
func (c *cursors) putBack(m map[cursorKey]int64, moves []clusterchat.Cursor) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, mv := range moves {
		k := cursorKey{mv.User, mv.Conv}
		if mv.Seq > m[k] {
			m[k] = mv.Seq
		}
	}
}

// run flushes every interval until ctx ends, then once more.
func (s *Server) runCursors(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.flushCursors()
			return
		case <-t.C:
			s.flushCursors()
		}
	}
}

func (s *Server) flushCursors() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := s.cursors
	c.flushMu.Lock()
	defer c.flushMu.Unlock()
	if moves := c.take(c.moves); len(moves) > 0 {
		if err := s.Store.MarkDelivered(ctx, moves); err != nil {
			s.log.Warn("saving delivered cursors failed; will retry", "n", len(moves), "err", err)
			c.putBack(c.moves, moves)
		}
	}
	if reads := c.take(c.reads); len(reads) > 0 {
		if err := s.Store.MarkRead(ctx, reads); err != nil {
			s.log.Warn("saving read cursors failed; will retry", "n", len(reads), "err", err)
			c.putBack(c.reads, reads)
		}
	}
}
