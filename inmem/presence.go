package inmem

import (
	"context"
	"sync"

	"clusterchat"
)

var _ clusterchat.Presence = (*Presence)(nil)

// Presence is a clusterchat.Presence for one process: the live sessions of
// every user in a map. With one process every session is this server's, so
// Close forgets them all.
type Presence struct {
	mu       sync.Mutex
	sessions map[int64]map[string]struct{} // uid -> session ids
	closed   bool
}

// NewPresence returns an empty Presence.
func NewPresence() *Presence {
	return &Presence{sessions: make(map[int64]map[string]struct{})}
}

func errPresenceClosed() error {
	return clusterchat.Errorf(clusterchat.EUNAVAILABLE, "presence closed")
}

// Acquire records sid of uid, refusing with ESESSIONS at max live sessions.
// Acquiring a sid that is already live changes nothing and reports first
// false.
func (p *Presence) Acquire(ctx context.Context, uid int64, sid string, max int) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false, errPresenceClosed()
	}
	s := p.sessions[uid]
	if _, ok := s[sid]; ok {
		return false, nil
	}
	if max > 0 && len(s) >= max {
		return false, clusterchat.Errorf(clusterchat.ESESSIONS, "user %d already has %d sessions", uid, len(s))
	}
	if s == nil {
		s = make(map[string]struct{}, 1)
		p.sessions[uid] = s
	}
	s[sid] = struct{}{}
	return len(s) == 1, nil
}

// Release removes sid of uid; releasing an unknown sid only reports whether
// uid has sessions left.
func (p *Presence) Release(ctx context.Context, uid int64, sid string) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false, errPresenceClosed()
	}
	s := p.sessions[uid]
	delete(s, sid)
	if len(s) == 0 {
		delete(p.sessions, uid)
		return true, nil
	}
	return false, nil
}

// Online reports which of uids have a session.
func (p *Presence) Online(ctx context.Context, uids []int64) (map[int64]bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errPresenceClosed()
	}
	m := make(map[int64]bool, len(uids))
	for _, uid := range uids {
		m[uid] = len(p.sessions[uid]) > 0
	}
	return m, nil
}

// Close forgets every session.
func (p *Presence) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	p.sessions = nil
	return nil
}
