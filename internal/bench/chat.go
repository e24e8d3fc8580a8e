package bench

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"clusterchat/proto"
)

// ridShift splits a native rid into the sender's local stream index (high
// bits) and the message number (low bits), so an ack names its message
// without any per-message map.
const ridShift = 40

// stream is one sender's messages to one target (a user or a group), the
// unit of the exactly-once, in-order check.
type stream struct {
	id       int
	sender   *peer
	local    int // index in sender.streams
	target   int64
	group    bool
	fanout   int64        // receivers of each message
	n        int64        // last message number sent (owned by the sender's writer)
	accepted atomic.Int64 // messages the server accepted (acked, or sent for classic)
}

// tracker is one receiver's view of one stream.
type tracker struct {
	st    *stream
	seen  []uint64 // bitmap of received message numbers
	count int64    // distinct messages received
	maxN  int64
}

// peer is one user with one connection in a chat scenario.
type peer struct {
	c       *conn
	e       *engine
	streams []*stream
	recv    map[int]*tracker
	convSeq map[string]int64
	wbuf    []byte // guarded by c.mu
	text    []byte // scratch of appendMsg, guarded by c.mu
	cmid    []byte // scratch of appendMsg, guarded by c.mu
	hist    Histogram

	// owned by the reader goroutine, read after it ends
	dup, reorder, errs int64
	errSample          string

	inflight atomic.Int64
	credits  chan struct{}
}

// engine runs pingpong, flood and group.
type engine struct {
	cfg     *Config
	peers   []*peer
	streams []*stream
	pad     string
	t0      time.Time

	stopping  atomic.Bool // senders stop
	closing   atomic.Bool // connection errors are ours
	stop      chan struct{}
	inflight  atomic.Int64
	expected  atomic.Int64 // deliveries owed for accepted messages
	delivered atomic.Int64 // distinct deliveries
	writeErrs atomic.Int64 // failed writes of the sender goroutines
	wg        sync.WaitGroup
}

func newEngine(cfg *Config, conns []*conn) *engine {
	e := &engine{cfg: cfg, stop: make(chan struct{})}
	for _, c := range conns {
		e.peers = append(e.peers, &peer{c: c, e: e, recv: map[int]*tracker{}, convSeq: map[string]int64{}, credits: make(chan struct{}, 1)})
	}
	return e
}

// addStream declares that from sends to target, received by receivers.
func (e *engine) addStream(from *peer, target int64, group bool, receivers []*peer) *stream {
	st := &stream{id: len(e.streams), sender: from, local: len(from.streams), target: target, group: group, fanout: int64(len(receivers))}
	e.streams = append(e.streams, st)
	from.streams = append(from.streams, st)
	for _, r := range receivers {
		r.recv[st.id] = &tracker{st: st}
	}
	return st
}

func (e *engine) now() int64 { return int64(time.Since(e.t0)) }

// stampNow stamps a closed-loop message with its send time.
func (e *engine) stampNow(int) int64 { return e.now() }

// appendMsg appends one chat request for message n of st, stamped ns.
func (p *peer) appendMsg(b []byte, st *stream, n, ns int64) []byte {
	c := p.c
	// text: b:<stream>:<n>:<send ns>:padding
	t := append(p.text[:0], "b:"...)
	t = strconv.AppendInt(t, int64(st.id), 10)
	t = append(t, ':')
	t = strconv.AppendInt(t, n, 10)
	t = append(t, ':')
	t = strconv.AppendInt(t, ns, 10)
	t = append(t, ':')
	if pad := p.e.cfg.Size - len(t); pad > 0 {
		t = append(t, p.e.pad[:min(pad, len(p.e.pad))]...)
	}
	p.text = t
	req := proto.ChatReq{Msg: string(t)}
	if st.group {
		req.GroupID = st.target
	} else {
		req.To = st.target
	}
	if c.classic {
		req.Time = "2000-01-01 00:00:00"
		return c.term(req.AppendClassic(b))
	}
	cmid := strconv.AppendInt(p.cmid[:0], int64(st.id), 10)
	cmid = strconv.AppendInt(append(cmid, '-'), n, 10)
	p.cmid = cmid
	req.CMID = string(cmid)
	return c.term(req.AppendNative(b, int64(st.local)<<ridShift|n))
}

// sendBatch sends k messages round-robin over p's streams, stamped by
// stamp(i) (the scheduled time in open loop), in one write.
func (p *peer) sendBatch(k int, rr *int, stamp func(i int) int64) error {
	p.c.mu.Lock()
	defer p.c.mu.Unlock()
	b := p.wbuf[:0]
	for i := 0; i < k; i++ {
		st := p.streams[*rr%len(p.streams)]
		*rr++
		st.n++
		b = p.appendMsg(b, st, st.n, stamp(i))
		p.sent(st)
	}
	p.wbuf = b
	_, err := p.c.nc.Write(b)
	return err
}

// sent accounts one message handed to the socket.
func (p *peer) sent(st *stream) {
	if p.c.classic {
		// No acks in classic: a message counts as accepted once written.
		st.accepted.Add(1)
		p.e.expected.Add(st.fanout)
		return
	}
	p.inflight.Add(1)
	p.e.inflight.Add(1)
}

// readLoop reads deliveries and acks until the connection closes.
func (p *peer) readLoop(pingpong bool) {
	defer p.e.wg.Done()
	var f proto.FrameView
	e := p.e
	for {
		b, err := p.c.fr.Next()
		if err != nil {
			if !e.closing.Load() {
				p.fail("read: %v", err)
			}
			return
		}
		if err := proto.ScanFrame(b, &f); err != nil {
			p.fail("parse: %v", err)
			continue
		}
		switch f.MsgID {
		case proto.Reply:
			if f.Req != proto.OneChat && f.Req != proto.GroupChat {
				if f.Errno != 0 {
					p.fail("reply to msgid %d: errno %d %s", f.Req, f.Errno, f.Errmsg)
				}
				continue
			}
			si := int(f.RID >> ridShift)
			if si < 0 || si >= len(p.streams) {
				p.fail("ack with unknown rid %d", f.RID)
				continue
			}
			st := p.streams[si]
			if f.Errno == 0 {
				st.accepted.Add(1)
				e.expected.Add(st.fanout)
			} else {
				p.fail("send refused: errno %d %s", f.Errno, f.Errmsg)
			}
			p.inflight.Add(-1)
			e.inflight.Add(-1)
			select {
			case p.credits <- struct{}{}:
			default:
			}
		case proto.OneChat, proto.GroupChat:
			p.deliver(&f, pingpong)
		case proto.Reconnect:
			p.fail("server asked to reconnect: %s", f.Msg)
		}
	}
}

func (p *peer) fail(format string, args ...any) {
	p.errs++
	if p.errSample == "" {
		p.errSample = fmt.Sprintf(format, args...)
	}
}

// deliver checks one received chat message: its stream, its number (exactly
// once, in order), the conversation seq (native), and records the latency.
func (p *peer) deliver(f *proto.FrameView, pingpong bool) {
	e := p.e
	sid, n, ns, ok := parseText(f.Msg)
	if !ok {
		p.fail("foreign message text %.40q", f.Msg)
		return
	}
	t := p.recv[int(sid)]
	if t == nil {
		p.fail("message of stream %d not meant for this user", sid)
		return
	}
	w := int(n >> 6)
	for w >= len(t.seen) {
		t.seen = append(t.seen, make([]uint64, len(t.seen)+64)...)
	}
	bit := uint64(1) << (n & 63)
	if t.seen[w]&bit != 0 {
		p.dup++
		return
	}
	t.seen[w] |= bit
	t.count++
	e.delivered.Add(1)
	inOrder := n > t.maxN
	if !inOrder {
		p.reorder++
	} else {
		t.maxN = n
	}
	if len(f.Conv) > 0 && inOrder {
		last, had := p.convSeq[string(f.Conv)]
		switch {
		case !had:
			p.convSeq[string(f.Conv)] = f.Seq
		case f.Seq <= last:
			p.reorder++
		default:
			p.convSeq[string(f.Conv)] = f.Seq
		}
	}
	p.hist.Record((e.now() - ns) / 1000)
	if pingpong && !e.stopping.Load() {
		rr := 0
		if err := p.sendBatch(1, &rr, e.stampNow); err != nil && !e.closing.Load() {
			p.fail("send: %v", err)
		}
	}
}

// parseText reads "b:<stream>:<n>:<ns>:..." without allocating.
func parseText(m []byte) (sid, n, ns int64, ok bool) {
	if !bytes.HasPrefix(m, []byte("b:")) {
		return 0, 0, 0, false
	}
	m = m[2:]
	var vals [3]int64
	for k := range vals {
		i := bytes.IndexByte(m, ':')
		if i <= 0 {
			return 0, 0, 0, false
		}
		vals[k] = atoi(m[:i])
		m = m[i+1:]
	}
	return vals[0], vals[1], vals[2], vals[1] > 0
}

// atoi parses a decimal integer of a message text; anything else is 0.
func atoi(b []byte) int64 {
	var n int64
	neg := false
	for k, c := range b {
		if k == 0 && c == '-' {
			neg = true
			continue
		}
		if c < '0' || c > '9' {
			return 0
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		return -n
	}
	return n
}

// sendLoop keeps p's window full (closed loop) or follows the schedule of
// rate messages per second (open loop, stamping each message with the time
// it was due so that a stalled server shows up in latency).
func (p *peer) sendLoop(window int, interval time.Duration, offset time.Duration) {
	defer p.e.wg.Done()
	e := p.e
	rr := 0
	var next int64 = int64(offset) // next scheduled send, ns since t0
	for !e.stopping.Load() {
		avail := window - int(p.inflight.Load())
		if avail <= 0 {
			select {
			case <-p.credits:
			case <-e.stop:
			}
			continue
		}
		k := avail
		var stamp func(int) int64
		if interval > 0 {
			now := e.now()
			if next > now {
				t := time.NewTimer(time.Duration(next - now))
				select {
				case <-t.C:
				case <-e.stop:
					t.Stop()
				}
				continue
			}
			due := int((now-next)/int64(interval)) + 1
			k = min(k, due)
			base := next
			stamp = func(i int) int64 { return base + int64(i)*int64(interval) }
			next += int64(k) * int64(interval)
		} else {
			stamp = e.stampNow
		}
		if err := p.sendBatch(k, &rr, stamp); err != nil {
			if !e.closing.Load() {
				e.writeErrs.Add(1)
			}
			return
		}
	}
}

// run starts the readers, kicks the senders, measures for cfg.Duration,
// drains, and fills r.
func (e *engine) run(ctx context.Context, scenario string, r *Result) {
	cfg := e.cfg
	pingpong := scenario == "pingpong"
	e.pad = string(bytes.Repeat([]byte("x"), max(cfg.Size, 1)))
	for _, p := range e.peers {
		p.wbuf = make([]byte, 0, 4096)
	}
	e.t0 = time.Now()
	for _, p := range e.peers {
		e.wg.Add(1)
		go p.readLoop(pingpong)
	}
	var senders []*peer
	for _, p := range e.peers {
		if len(p.streams) > 0 {
			senders = append(senders, p)
		}
	}
	var sendWG sync.WaitGroup
	var sendErrs atomic.Int64
	for i, p := range senders {
		if pingpong {
			// Only the pair's first user starts; the other answers.
			if p.streams[0].id%2 == 0 {
				rr := 0
				if err := p.sendBatch(1, &rr, e.stampNow); err != nil {
					sendErrs.Add(1)
				}
			}
			continue
		}
		var interval, offset time.Duration
		if cfg.Rate > 0 {
			interval = time.Duration(float64(time.Second) * float64(len(senders)) / cfg.Rate)
			offset = interval * time.Duration(i) / time.Duration(len(senders))
		}
		sendWG.Add(1)
		e.wg.Add(1)
		go func() {
			defer sendWG.Done()
			p.sendLoop(cfg.W, interval, offset)
		}()
	}
	select {
	case <-time.After(cfg.Duration):
	case <-ctx.Done():
	}
	measured := time.Since(e.t0)
	deliveredAtEnd := e.delivered.Load()
	e.stopping.Store(true)
	close(e.stop)
	sendWG.Wait()

	// Drain: wait for every ack and every owed delivery, up to the grace.
	deadline := time.Now().Add(cfg.Grace)
	for time.Now().Before(deadline) {
		if e.inflight.Load() == 0 && e.delivered.Load() >= e.expected.Load() {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	unacked := e.inflight.Load()
	e.closing.Store(true)
	for _, p := range e.peers {
		p.c.close()
	}
	e.wg.Wait()

	var h Histogram
	var lost int64
	for _, p := range e.peers {
		h.Merge(&p.hist)
		r.Dup += p.dup
		r.Reorder += p.reorder
		r.Errors += p.errs
		if p.errSample != "" && r.ErrSample == "" {
			r.ErrSample = p.errSample
		}
		for _, t := range p.recv {
			if d := t.st.accepted.Load() - t.count; d > 0 {
				lost += d
			}
		}
	}
	var sent, accepted int64
	for _, st := range e.streams {
		sent += st.n
		accepted += st.accepted.Load()
	}
	r.Lost = lost
	r.Errors += unacked + sendErrs.Load() + e.writeErrs.Load()
	if unacked > 0 && r.ErrSample == "" {
		r.ErrSample = fmt.Sprintf("%d messages never acknowledged", unacked)
	}
	r.MsgsPerSec = float64(deliveredAtEnd) / measured.Seconds()
	r.P50, r.P99, r.P999 = h.Quantile(0.50), h.Quantile(0.99), h.Quantile(0.999)
	r.Summary = append(r.Summary,
		fmt.Sprintf("sent %d, accepted %d, delivered %d (%d in the %.1fs window), max latency %d us",
			sent, accepted, e.delivered.Load(), deliveredAtEnd, measured.Seconds(), h.Max()))
}
