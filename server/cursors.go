package server

import (
	"context"
	"sync"
	"time"

	"clusterchat"
)

// cursors coalesces delivered cursor moves in memory and writes them to the
// store in one call per interval: a delivered cursor moves on every message
// written to a socket, and one store write per delivery would double the
// store's load. A user's moves are also saved when one of their sessions
// ends. If the server dies before a save, those messages count as
// undelivered and come again at the user's next classic login: never lost,
// at worst repeated. (A sender's read cursor is not here: Append moves it
// with the message.)
type cursors struct {
	mu        sync.Mutex
	delivered map[int64]map[string]int64 // user -> conv -> seq
}

func newCursors() *cursors {
	return &cursors{delivered: make(map[int64]map[string]int64)}
}

// raise moves user's cursor of conv to seq unless it is there already. The
// caller holds mu.
func (c *cursors) raise(user int64, conv string, seq int64) {
	convs := c.delivered[user]
	if convs == nil {
		convs = make(map[string]int64)
		c.delivered[user] = convs
	}
	if seq > convs[conv] {
		convs[conv] = seq
	}
}

func (c *cursors) markDelivered(user int64, conv string, seq int64) {
	c.mu.Lock()
	c.raise(user, conv, seq)
	c.mu.Unlock()
}

// pending reports whether moves of user (0: of anyone) wait to be saved.
func (c *cursors) pending(user int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if user == 0 {
		return len(c.delivered) > 0
	}
	return len(c.delivered[user]) > 0
}

// take removes and returns the moves of one user (user != 0) or of all.
func (c *cursors) take(user int64) []clusterchat.Cursor {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []clusterchat.Cursor
	add := func(u int64, convs map[string]int64) {
		for conv, seq := range convs {
			out = append(out, clusterchat.Cursor{User: u, Conv: conv, Seq: seq})
		}
	}
	if user != 0 {
		add(user, c.delivered[user])
		delete(c.delivered, user)
		return out
	}
	for u, convs := range c.delivered {
		add(u, convs)
	}
	clear(c.delivered)
	return out
}

// putBack re-queues moves a failed store call did not save.
func (c *cursors) putBack(moves []clusterchat.Cursor) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, mv := range moves {
		c.raise(mv.User, mv.Conv, mv.Seq)
	}
}

// runCursors saves cursor moves every interval until ctx ends, then once more.
func (s *Server) runCursors(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.saveCursors(context.Background(), 0)
			return
		case <-t.C:
			s.saveCursors(context.Background(), 0)
		}
	}
}

// flushUserCursors saves one user's pending moves.
func (s *Server) flushUserCursors(ctx context.Context, user int64) { s.saveCursors(ctx, user) }

func (s *Server) saveCursors(ctx context.Context, user int64) {
	if !s.cursors.pending(user) {
		return // the common case at logout: nothing moved since the last save
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	c := s.cursors
	if moves := c.take(user); len(moves) > 0 {
		if err := s.Store.MarkDelivered(ctx, moves); err != nil {
			s.log.Warn("saving delivered cursors failed; will retry", "n", len(moves), "err", err)
			c.putBack(moves)
		}
	}
}
