// Package redis implements clusterchat's Broker (publish/subscribe between
// the servers of a cluster) and Presence (live sessions with heartbeats and
// expiry) on Redis.
package redis

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"clusterchat"
)

var _ clusterchat.BatchPublisher = (*Broker)(nil)

// BrokerOptions tunes a Broker; zero fields take the defaults.
type BrokerOptions struct {
	// Prefix is put before every channel name on Redis, so that clusterchat
	// can share a Redis with other programs. Default "cc:".
	Prefix string
	// PublishTimeout bounds one Publish: while Redis is unreachable a
	// publisher gets EUNAVAILABLE after at most this long. Default 1s.
	PublishTimeout time.Duration
	// DialTimeout bounds one connection attempt. Default 1s.
	DialTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between reconnection
	// attempts, which doubles from the first to the second. Defaults 50ms, 2s.
	MinBackoff, MaxBackoff time.Duration
	// PingInterval is how often the subscriber connection is pinged; it is
	// declared dead when no pong arrived for three intervals. Default 5s.
	PingInterval time.Duration
}

func (o *BrokerOptions) defaults() {
	if o.Prefix == "" {
		o.Prefix = "cc:"
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.PublishTimeout, time.Second)
	def(&o.DialTimeout, time.Second)
	def(&o.MinBackoff, 50*time.Millisecond)
	def(&o.MaxBackoff, 2*time.Second)
	def(&o.PingInterval, 5*time.Second)
}

// Broker is a clusterchat.Broker on Redis publish/subscribe.
//
// Publishing goes through a rueidis client, which pipelines the commands of
// concurrent publishers onto one connection: many publishers cost few round
// trips. Subscriptions live on one connection the Broker owns and reads
// itself (a small RESP2 reader), for three reasons: every SUBSCRIBE and
// UNSUBSCRIBE is confirmed before the call returns; payloads reach the
// handler straight from the read buffer without a copy; and the handler is
// called from that one goroutine only, so calls are never concurrent and
// arrive in the order Redis sent them (which is publication order per
// publisher and channel).
//
// When the subscriber connection breaks the reader reconnects with capped
// exponential backoff, subscribes again to every channel still counted, and
// then calls HandleReconnect from the same goroutine.
//
// Lock order: mu is never held while calling the handler. The handler must
// not call Subscribe, Unsubscribe or Close (they wait for the goroutine that
// is calling it).
type Broker struct {
	h    clusterchat.BrokerHandler
	log  *slog.Logger
	opt  BrokerOptions
	addr string
	copt rueidis.ClientOption // auth and TLS for the subscriber connection
	pub  rueidis.Client

	closed atomic.Bool
	stop   chan struct{} // closed by Close
	done   chan struct{} // closed when the reader goroutine exits
	first  chan struct{} // closed when a connection is first ready
	once   sync.Once     // closes first

	mu      sync.Mutex
	subs    map[string]*sub         // channel (without prefix) -> count
	conn    net.Conn                // subscriber connection; nil while down
	waiters map[string][]chan error // per channel, FIFO of confirmations due on conn (nil: nobody waits)
	ready   bool                    // conn is up and every subscription restored
	wbuf    []byte                  // command encoding buffer, under mu
}

// sub is one counted subscription. ch is kept so that the reader hands the
// handler the channel as published, without parsing its name back.
type sub struct {
	ch clusterchat.Channel
	n  int
}

// NewBroker connects to the Redis at url (redis://[user:pass@]host:port or
// rediss:// for TLS) with default options.
func NewBroker(ctx context.Context, url string, h clusterchat.BrokerHandler, logger *slog.Logger) (*Broker, error) {
	return NewBrokerWithOptions(ctx, url, h, logger, BrokerOptions{})
}

// NewBrokerWithOptions is NewBroker with options. It fails with EUNAVAILABLE
// when Redis cannot be reached now: a server should not start half-connected.
func NewBrokerWithOptions(ctx context.Context, url string, h clusterchat.BrokerHandler, logger *slog.Logger, opt BrokerOptions) (*Broker, error) {
	opt.defaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	copt, err := rueidis.ParseURL(url)
	if err != nil {
		return nil, clusterchat.Errorf(clusterchat.EINVALID, "redis broker: bad url: %v", err)
	}
	if len(copt.InitAddress) != 1 {
		return nil, clusterchat.Errorf(clusterchat.EINVALID, "redis broker: url must name one server")
	}
	b := &Broker{
		h:       h,
		log:     logger.With("component", "redis.Broker"),
		opt:     opt,
		addr:    copt.InitAddress[0],
		copt:    copt,
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		first:   make(chan struct{}),
		subs:    make(map[string]*sub),
		waiters: make(map[string][]chan error),
	}
	conn, err := b.dial(ctx)
	if err != nil {
		return nil, clusterchat.Errorf(clusterchat.EUNAVAILABLE, "redis broker: connect %s: %v", b.addr, err)
	}
	pubOpt := copt
	pubOpt.Dialer.Timeout = opt.DialTimeout
	pubOpt.DisableCache = true // no client-side caching: we only publish
	pubOpt.DisableRetry = true // a publish is not worth a second try; the store is the truth
	b.pub, err = rueidis.NewClient(pubOpt)
	if err != nil {
		conn.Close()
		return nil, clusterchat.Errorf(clusterchat.EUNAVAILABLE, "redis broker: connect %s: %v", b.addr, err)
	}
	go b.run(conn)
	select {
	case <-b.first:
		return b, nil
	case <-ctx.Done():
		b.Close()
		return nil, clusterchat.Errorf(clusterchat.EUNAVAILABLE, "redis broker: connect %s: %v", b.addr, ctx.Err())
	}
}

// Publish sends payload to every server subscribed to channel. The command
// joins the pipeline of concurrent publishers; the call returns when Redis
// has answered, or with EUNAVAILABLE after PublishTimeout.
func (b *Broker) Publish(ctx context.Context, channel clusterchat.Channel, payload []byte) error {
	if b.closed.Load() {
		return errBrokerClosed()
	}
	ctx, cancel := b.publishContext(ctx)
	defer cancel()
	// string(payload) copies: after a timeout the command may still sit in
	// the pipeline while the caller reuses payload.
	cmd := b.pub.B().Publish().Channel(b.opt.Prefix + channel.String()).Message(string(payload)).Build()
	if err := b.pub.Do(ctx, cmd).Error(); err != nil {
		return clusterchat.Errorf(clusterchat.EUNAVAILABLE, "redis broker: publish: %v", err)
	}
	return nil
}

// publishContext bounds a publish by Options.PublishTimeout, unless ctx
// already ends as soon (the server's publisher gives one, shared by the
// publishes of a quarter of its timeout): a timer per publish and its
// cancel registration with the parent cost the cluster's servers about 4%
// of their CPU in a ping-pong profile.
func (b *Broker) publishContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= b.opt.PublishTimeout {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, b.opt.PublishTimeout)
}

// PublishBatch publishes payloads[i] on channels[i], in order, pipelined in
// one round trip. It fails if any publish failed.
func (b *Broker) PublishBatch(ctx context.Context, channels []clusterchat.Channel, payloads [][]byte) error {
	if b.closed.Load() {
		return errBrokerClosed()
	}
	ctx, cancel := b.publishContext(ctx)
	defer cancel()
	cmds := make(rueidis.Commands, len(channels))
	for i := range channels {
		cmds[i] = b.pub.B().Publish().Channel(b.opt.Prefix + channels[i].String()).Message(string(payloads[i])).Build()
	}
	for _, r := range b.pub.DoMulti(ctx, cmds...) {
		if err := r.Error(); err != nil {
			return clusterchat.Errorf(clusterchat.EUNAVAILABLE, "redis broker: publish: %v", err)
		}
	}
	return nil
}

// Subscribe counts one subscription to channel; the first one returns once
// Redis has confirmed it. It fails with EUNAVAILABLE (and counts nothing)
// while Redis is unreachable. A second Subscribe to a channel whose first is
// still waiting for its confirmation returns at once.
func (b *Broker) Subscribe(ctx context.Context, ch clusterchat.Channel) error {
	channel := ch.String()
	b.mu.Lock()
	if b.closed.Load() {
		b.mu.Unlock()
		return errBrokerClosed()
	}
	if s := b.subs[channel]; s != nil {
		s.n++
		b.mu.Unlock()
		return nil
	}
	if b.conn == nil {
		b.mu.Unlock()
		return clusterchat.Errorf(clusterchat.EUNAVAILABLE, "redis broker: not connected")
	}
	b.subs[channel] = &sub{ch: ch, n: 1}
	w := make(chan error, 1)
	b.waiters[channel] = append(b.waiters[channel], w)
	err := b.writeLocked("SUBSCRIBE", channel)
	b.mu.Unlock()
	if err == nil {
		select {
		case err = <-w:
		case <-ctx.Done():
			err = ctx.Err()
		case <-b.stop:
			err = errBrokerClosed()
		}
	}
	if err != nil {
		b.release(channel)
		return clusterchat.Errorf(clusterchat.EUNAVAILABLE, "redis broker: subscribe %s: %v", channel, err)
	}
	return nil
}

// Unsubscribe undoes one Subscribe; the last one returns once Redis has
// confirmed it, so nothing published afterwards reaches the handler.
// Unbalanced calls are ignored. While Redis is unreachable it only
// uncounts: the channel will not be restored on reconnect.
func (b *Broker) Unsubscribe(ctx context.Context, ch clusterchat.Channel) error {
	channel := ch.String()
	b.mu.Lock()
	s := b.subs[channel]
	if s == nil {
		b.mu.Unlock()
		return nil
	}
	if s.n--; s.n > 0 {
		b.mu.Unlock()
		return nil
	}
	delete(b.subs, channel)
	if b.conn == nil {
		b.mu.Unlock()
		return nil
	}
	w := make(chan error, 1)
	b.waiters[channel] = append(b.waiters[channel], w)
	err := b.writeLocked("UNSUBSCRIBE", channel)
	b.mu.Unlock()
	if err != nil {
		return nil // the connection is gone, and the subscription with it
	}
	select {
	case <-w: // confirmed, or the connection broke: unsubscribed either way
		return nil
	case <-ctx.Done():
		return clusterchat.Errorf(clusterchat.EUNAVAILABLE, "redis broker: unsubscribe %s: %v", channel, ctx.Err())
	case <-b.stop:
		return nil
	}
}

// release undoes a Subscribe that failed, without waiting.
func (b *Broker) release(channel string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.subs[channel]
	if s == nil {
		return
	}
	if s.n--; s.n > 0 {
		return
	}
	delete(b.subs, channel)
	if b.conn != nil {
		// A reconnect may have restored it meanwhile.
		b.waiters[channel] = append(b.waiters[channel], nil)
		b.writeLocked("UNSUBSCRIBE", channel)
	}
}

// Ready reports whether the subscriber connection is up with every
// subscription restored.
func (b *Broker) Ready(ctx context.Context) error {
	if b.closed.Load() {
		return errBrokerClosed()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.ready {
		return clusterchat.Errorf(clusterchat.EUNAVAILABLE, "redis broker: not connected to %s", b.addr)
	}
	return nil
}

// Close stops delivery, waits for the handler call in progress and closes
// the connections.
func (b *Broker) Close() error {
	if !b.closed.CompareAndSwap(false, true) {
		<-b.done
		return nil
	}
	close(b.stop)
	b.mu.Lock()
	if b.conn != nil {
		b.conn.Close() // unblocks the reader
	}
	b.mu.Unlock()
	<-b.done
	b.pub.Close()
	return nil
}

func errBrokerClosed() error {
	return clusterchat.Errorf(clusterchat.EUNAVAILABLE, "redis broker closed")
}

// dial opens and authenticates a subscriber connection.
func (b *Broker) dial(ctx context.Context) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, b.opt.DialTimeout)
	defer cancel()
	d := net.Dialer{KeepAlive: 30 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", b.addr)
	if err != nil {
		return nil, err
	}
	if deadline, ok := ctx.Deadline(); ok {
		conn.SetDeadline(deadline)
	}
	if b.copt.TLSConfig != nil {
		cfg := b.copt.TLSConfig.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName, _, _ = net.SplitHostPort(b.addr)
		}
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, err
		}
		conn = tc
	}
	if b.copt.Password != "" {
		args := []string{"AUTH", b.copt.Password}
		if b.copt.Username != "" {
			args = []string{"AUTH", b.copt.Username, b.copt.Password}
		}
		if _, err := conn.Write(appendCommand(nil, args...)); err != nil {
			conn.Close()
			return nil, err
		}
		line, err := bufio.NewReaderSize(conn, 512).ReadSlice('\n')
		if err != nil {
			conn.Close()
			return nil, err
		}
		if !bytes.HasPrefix(line, []byte("+OK")) {
			conn.Close()
			return nil, fmt.Errorf("auth: %s", bytes.TrimSpace(line))
		}
	}
	conn.SetDeadline(time.Time{})
	return conn, nil
}

// run owns the subscriber connection: it serves conn until it breaks, then
// reconnects with backoff, until Close.
func (b *Broker) run(conn net.Conn) {
	defer close(b.done)
	backoff := b.opt.MinBackoff
	for reconnect := false; ; reconnect = true {
		if conn != nil {
			restored, err := b.serve(conn, reconnect)
			if b.closed.Load() {
				return
			}
			b.log.Warn("redis broker: connection lost", "addr", b.addr, "err", err)
			if restored {
				backoff = b.opt.MinBackoff
			}
		}
		select {
		case <-b.stop:
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, b.opt.MaxBackoff)
		var err error
		conn, err = b.dial(context.Background())
		if err != nil {
			b.log.Debug("redis broker: reconnect failed", "addr", b.addr, "err", err, "retry_in", backoff)
			conn = nil
		}
	}
}

// serve subscribes conn to every counted channel, then reads it until it
// fails. restored reports whether the subscriptions were all confirmed.
func (b *Broker) serve(conn net.Conn, reconnect bool) (restored bool, err error) {
	b.mu.Lock()
	if b.closed.Load() {
		b.mu.Unlock()
		conn.Close()
		return false, errBrokerClosed()
	}
	b.conn = conn
	chans := make([]string, 0, len(b.subs))
	for ch := range b.subs {
		chans = append(chans, ch)
		b.waiters[ch] = append(b.waiters[ch], nil)
	}
	const batch = 1000 // channels per SUBSCRIBE: bounded command size
	for i := 0; i < len(chans) && err == nil; i += batch {
		err = b.writeLocked("SUBSCRIBE", chans[i:min(i+batch, len(chans))]...)
	}
	if err == nil {
		// The pong comes after every confirmation above: once it has
		// arrived, every subscription is restored.
		err = b.writeLocked("PING")
	}
	b.mu.Unlock()

	pingDone := make(chan struct{})
	var pinger sync.WaitGroup
	pinger.Go(func() { b.ping(conn, pingDone) })
	if err == nil {
		restored, err = b.read(conn, reconnect, len(chans))
	}

	b.mu.Lock()
	b.conn = nil
	b.ready = false
	for ch, ws := range b.waiters {
		for _, w := range ws {
			if w != nil {
				w <- errors.New("connection lost")
			}
		}
		delete(b.waiters, ch)
	}
	b.mu.Unlock()
	conn.Close()
	close(pingDone)
	pinger.Wait()
	return restored, err
}

// ping keeps the subscriber connection checked: read fails when pongs stop.
func (b *Broker) ping(conn net.Conn, done chan struct{}) {
	t := time.NewTicker(b.opt.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			b.mu.Lock()
			if b.conn == conn {
				b.writeLocked("PING")
			}
			b.mu.Unlock()
		}
	}
}

// writeLocked sends one command on the subscriber connection; b.mu is held,
// which keeps the commands for a channel in the order of its count changes.
// A failed write closes the connection, so that the reader starts over.
func (b *Broker) writeLocked(cmd string, channels ...string) error {
	if b.conn == nil {
		return errors.New("not connected")
	}
	b.wbuf = appendCommandPrefixed(b.wbuf[:0], cmd, b.opt.Prefix, channels)
	b.conn.SetWriteDeadline(time.Now().Add(b.opt.DialTimeout))
	if _, err := b.conn.Write(b.wbuf); err != nil {
		b.conn.Close()
		return err
	}
	if cap(b.wbuf) > 64<<10 {
		b.wbuf = nil // a big resubscribe should not pin its buffer
	}
	return nil
}

// read reads replies and messages from conn until it fails.
func (b *Broker) read(conn net.Conn, reconnect bool, nchans int) (restored bool, err error) {
	r := &respReader{r: bufio.NewReaderSize(conn, 64<<10)}
	deadline := func() { conn.SetReadDeadline(time.Now().Add(3 * b.opt.PingInterval)) }
	deadline()
	var chbuf []byte
	for {
		kind, n, err := r.header()
		if err != nil {
			return restored, err
		}
		switch kind {
		case '+': // PONG outside subscribed mode (no channels)
			b.pong(&restored, reconnect, nchans)
			deadline()
			continue
		case '-':
			return restored, fmt.Errorf("redis error: %s", r.line)
		case ':':
			continue
		case '*':
		default:
			return restored, fmt.Errorf("unexpected reply %q", r.line)
		}
		if n < 1 {
			return restored, fmt.Errorf("unexpected reply %q", r.line)
		}
		typ, err := r.bulk()
		if err != nil {
			return restored, err
		}
		var t byte // the push kind, read before typ is overwritten
		switch string(typ) {
		case "message":
			t = 'm'
		case "subscribe", "unsubscribe":
			t = 's'
		case "pong":
			t = 'p'
		}
		if t == 0 || n != 3 && t != 'p' {
			return restored, fmt.Errorf("unexpected push %q with %d elements", typ, n)
		}
		switch t {
		case 'p':
			for range n - 1 {
				if _, err := r.bulk(); err != nil {
					return restored, err
				}
			}
			b.pong(&restored, reconnect, nchans)
			deadline()
		case 's':
			ch, err := r.bulk()
			if err != nil {
				return restored, err
			}
			chbuf = append(chbuf[:0], ch...)
			if _, _, err := r.header(); err != nil { // subscription count
				return restored, err
			}
			b.confirm(chbuf)
		case 'm':
			ch, err := r.bulk()
			if err != nil {
				return restored, err
			}
			chbuf = append(chbuf[:0], ch...)
			payload, err := r.bulk()
			if err != nil {
				return restored, err
			}
			if ch, ok := b.lookup(chbuf); ok {
				b.h.HandleMessage(ch, payload)
			}
		}
	}
}

// pong handles a pong: the first on a connection means every subscription
// sent before it is confirmed.
func (b *Broker) pong(restored *bool, reconnect bool, nchans int) {
	if *restored {
		return
	}
	*restored = true
	b.mu.Lock()
	b.ready = true
	b.mu.Unlock()
	b.once.Do(func() { close(b.first) })
	if !reconnect {
		b.log.Info("redis broker: connected", "addr", b.addr)
		return
	}
	b.log.Info("redis broker: reconnected", "addr", b.addr, "channels", nchans)
	b.h.HandleReconnect()
}

// confirm wakes the caller waiting for the confirmation of rch.
func (b *Broker) confirm(rch []byte) {
	ch, ok := bytes.CutPrefix(rch, []byte(b.opt.Prefix))
	if !ok {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	ws := b.waiters[string(ch)]
	if len(ws) == 0 {
		return
	}
	if ws[0] != nil {
		ws[0] <- nil
	}
	if len(ws) == 1 {
		delete(b.waiters, string(ch))
	} else {
		b.waiters[string(ch)] = ws[1:]
	}
}

// lookup returns a subscribed channel from its Redis name, or false when
// it is not counted (a message that crossed an Unsubscribe).
func (b *Broker) lookup(rch []byte) (clusterchat.Channel, bool) {
	ch, ok := bytes.CutPrefix(rch, []byte(b.opt.Prefix))
	if !ok {
		return clusterchat.Channel{}, false
	}
	b.mu.Lock()
	s := b.subs[string(ch)]
	b.mu.Unlock()
	if s == nil {
		return clusterchat.Channel{}, false
	}
	return s.ch, true
}

// appendCommand encodes a RESP command.
func appendCommand(buf []byte, args ...string) []byte {
	buf = append(buf, '*')
	buf = strconv.AppendInt(buf, int64(len(args)), 10)
	buf = append(buf, "\r\n"...)
	for _, a := range args {
		buf = appendBulk(buf, "", a)
	}
	return buf
}

// appendCommandPrefixed encodes cmd followed by the prefixed channels.
func appendCommandPrefixed(buf []byte, cmd, prefix string, channels []string) []byte {
	buf = append(buf, '*')
	buf = strconv.AppendInt(buf, int64(1+len(channels)), 10)
	buf = append(buf, "\r\n"...)
	buf = appendBulk(buf, "", cmd)
	for _, ch := range channels {
		buf = appendBulk(buf, prefix, ch)
	}
	return buf
}

func appendBulk(buf []byte, prefix, s string) []byte {
	buf = append(buf, '$')
	buf = strconv.AppendInt(buf, int64(len(prefix)+len(s)), 10)
	buf = append(buf, "\r\n"...)
	buf = append(buf, prefix...)
	buf = append(buf, s...)
	return append(buf, "\r\n"...)
}

// respReader reads the RESP2 replies of a subscribed connection. Slices it
// returns are valid until the next call.
type respReader struct {
	r    *bufio.Reader
	line []byte // the last header line, without CRLF
	big  []byte // for bulk strings larger than the read buffer
}

// maxBulk refuses absurd lengths from a confused stream (Redis itself caps
// strings at 512 MB).
const maxBulk = 512 << 20

// header reads a type byte and its line; n is the line's integer for
// '*', '$' and ':'.
func (r *respReader) header() (kind byte, n int, err error) {
	line, err := r.r.ReadSlice('\n')
	if err != nil {
		return 0, 0, err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return 0, 0, fmt.Errorf("malformed reply line %q", line)
	}
	r.line = line[:len(line)-2]
	kind = r.line[0]
	switch kind {
	case '*', '$', ':':
		v, ok := parseInt(r.line[1:])
		if !ok {
			return 0, 0, fmt.Errorf("malformed reply line %q", r.line)
		}
		n = v
	}
	return kind, n, nil
}

// bulk reads a bulk string ($-1 gives nil).
func (r *respReader) bulk() ([]byte, error) {
	kind, n, err := r.header()
	if err != nil {
		return nil, err
	}
	if kind != '$' {
		return nil, fmt.Errorf("expected bulk string, got %q", r.line)
	}
	if n < 0 {
		return nil, nil
	}
	if n > maxBulk {
		return nil, fmt.Errorf("bulk string of %d bytes", n)
	}
	if n+2 <= r.r.Size() {
		b, err := r.r.Peek(n + 2)
		if err != nil {
			return nil, err
		}
		r.r.Discard(n + 2) // b stays valid until the next read
		return b[:n], nil
	}
	if cap(r.big) < n+2 {
		r.big = make([]byte, n+2)
	}
	b := r.big[:n+2]
	if _, err := io.ReadFull(r.r, b); err != nil {
		return nil, err
	}
	return b[:n], nil
}

// parseInt parses a RESP length without allocating.
func parseInt(b []byte) (int, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}
