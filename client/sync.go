package client

import (
	"context"
	"maps"
	"slices"

	"clusterchat/proto"

	"clusterchat"
)

// convState is the client's position in one conversation. Guarded by
// Client.mu.
type convState struct {
	cursor  int64          // last seq applied (emitted or known to be had)
	held    map[int64]held // messages above cursor+1, or waiting for a running sync
	syncing bool           // a syncLoop runs for this conversation
	again   bool           // a sync was asked for while one ran: do one more pass
	dead    bool           // dropped (another user logged in): its syncLoop stops
}

type held struct {
	m    *clusterchat.Message
	sent bool
}

// state returns conv's state, creating it at cursor 0. Caller holds mu.
func (c *Client) state(conv string) *convState {
	st := c.convs[conv]
	if st == nil {
		st = &convState{held: map[int64]held{}}
		c.convs[conv] = st
	}
	return st
}

// offer takes a message of conv from any source: live from the server,
// from our own ack (sent), or from a sync page (fromSync). It applies what
// is next in order, drops what is already had, and holds the rest, starting
// a sync to fill the gap. While a sync runs, live messages are held so that
// caught-up messages come out first. Caller holds mu.
func (c *Client) offer(conv string, m *clusterchat.Message, sent, fromSync bool) {
	st := c.state(conv)
	if m.Seq <= st.cursor {
		return // a duplicate: already applied
	}
	if m.Seq == st.cursor+1 && (fromSync || !st.syncing) {
		c.apply(conv, st, m, sent)
		return
	}
	if h, ok := st.held[m.Seq]; !ok || (sent && !h.sent) {
		st.held[m.Seq] = held{m: m, sent: sent || h.sent}
	}
	if !st.syncing && !fromSync {
		c.startSync(conv)
	}
}

// apply emits m (seq == cursor+1), then whatever held messages follow it.
// Caller holds mu.
func (c *Client) apply(conv string, st *convState, m *clusterchat.Message, sent bool) {
	for {
		if h, ok := st.held[m.Seq]; ok {
			sent = sent || h.sent
			delete(st.held, m.Seq)
		}
		if m.Conv == "" {
			m.Conv = conv
		}
		st.cursor = m.Seq
		c.events.push(Event{Kind: EventMessage, Message: m, Sent: sent})
		h, ok := st.held[st.cursor+1]
		if !ok {
			return
		}
		m, sent = h.m, h.sent
	}
}

// startSync runs a syncLoop for conv, or asks the running one for another
// pass. Caller holds mu.
func (c *Client) startSync(conv string) {
	st := c.state(conv)
	if st.syncing {
		st.again = true
		return
	}
	if c.closed {
		return
	}
	st.syncing = true
	if c.syncing++; c.syncing == 1 {
		c.idle = make(chan struct{})
	}
	c.wg.Add(1)
	go c.syncLoop(conv, st)
}

// syncDone ends st's sync. Caller holds mu.
func (c *Client) syncDone(st *convState) {
	st.syncing, st.again = false, false
	if c.syncing--; c.syncing == 0 {
		close(c.idle)
	}
}

// syncLoop pages through conv with SYNC from the cursor until the cursor
// reaches the conversation's last seq and every held message is applied.
// Connection loss only pauses it (with Reconnect): it goes on from the
// cursor on the next connection.
func (c *Client) syncLoop(conv string, st *convState) {
	defer c.wg.Done()
	backoff := c.opts.MinBackoff
	for {
		c.mu.Lock()
		if st.dead {
			c.syncDone(st)
			c.mu.Unlock()
			return
		}
		after := st.cursor
		st.again = false
		c.mu.Unlock()

		f, err := c.request(c.ctx, &proto.SyncReq{Conv: conv, After: after, Limit: clusterchat.MaxPageSize})
		if err != nil {
			if c.ctx.Err() == nil && retryable(err) && err != errNoConn {
				if !isTimeout(err) && !c.sleep(c.ctx, jitter(backoff)) {
					continue // closed: the next pass sees it
				}
				backoff = min(backoff*2, c.opts.MaxBackoff)
				continue
			}
			c.mu.Lock()
			c.syncDone(st)
			if c.ctx.Err() == nil {
				c.log.Warn("chat client: sync failed", "conv", conv, "err", err)
				c.events.push(Event{Kind: EventError, Conv: conv, Err: err})
			}
			c.mu.Unlock()
			return
		}
		backoff = c.opts.MinBackoff

		c.mu.Lock()
		if st.dead {
			c.syncDone(st)
			c.mu.Unlock()
			return
		}
		before := st.cursor
		if f.From > st.cursor {
			// The user's view starts there (a group joined later): the
			// messages up to it will never come.
			st.cursor = f.From
			for seq := range st.held {
				if seq <= st.cursor {
					delete(st.held, seq)
				}
			}
			if h, ok := st.held[st.cursor+1]; ok {
				c.apply(conv, st, h.m, h.sent)
			}
		}
		for i := range f.Msgs {
			m := f.Msgs[i].Message()
			if m.Conv == "" {
				m.Conv = conv
			}
			c.offer(conv, m, false, true)
		}
		target := f.Last
		for seq := range st.held {
			target = max(target, seq)
		}
		progressed := st.cursor > before
		if st.again || (st.cursor < target && progressed) {
			c.mu.Unlock()
			continue
		}
		if st.cursor < target {
			// The server reports more than it returns; do not spin. Held
			// messages wait for the next live message or Sync.
			c.log.Warn("chat client: sync made no progress", "conv", conv, "cursor", st.cursor, "last", target)
		}
		c.syncDone(st)
		c.mu.Unlock()
		return
	}
}

// loggedIn records a login and starts catching up every conversation whose
// last seq is beyond the cursor. Caller holds mu.
func (c *Client) loggedIn(info *LoginInfo) {
	if c.owner != 0 && c.owner != info.ID {
		// Another user on this device: the cursors were someone else's.
		for _, st := range c.convs {
			st.dead = true
		}
		c.convs = map[string]*convState{}
	}
	c.owner, c.uid, c.name, c.token = info.ID, info.ID, info.Name, info.Token
	for _, cv := range info.Convs {
		st := c.convs[cv.Conv]
		if st == nil {
			st = c.state(cv.Conv)
			if c.opts.FromRead {
				st.cursor = cv.Read
			}
		}
		if cv.Last > st.cursor {
			c.startSync(cv.Conv)
		}
	}
}

// Cursors returns the last applied seq of every conversation the Client
// knows, to persist and give back as Options.Cursors next time.
func (c *Client) Cursors() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int64, len(c.convs))
	for conv, st := range c.convs {
		out[conv] = st.cursor
	}
	return out
}

// Synced waits until no conversation is catching up: every message missed
// before the login (or the last reconnect or gap) has been emitted.
func (c *Client) Synced(ctx context.Context) error {
	c.mu.Lock()
	idle := c.idle
	c.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.ctx.Done():
		return ErrClosed
	}
}

// Sync asks the server for anything newer than the cursor in every
// conversation the Client knows, and waits until it is all emitted.
// Conversations that started after the login are known once one of their
// messages arrived.
func (c *Client) Sync(ctx context.Context) error {
	c.mu.Lock()
	for _, conv := range slices.Sorted(maps.Keys(c.convs)) {
		c.startSync(conv)
	}
	c.mu.Unlock()
	return c.Synced(ctx)
}
