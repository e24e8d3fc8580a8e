package client

import (
	"context"
	crand0 "crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"clusterchat/proto"

	"clusterchat"
)

// Options tune a Client. The zero value is usable: no reconnecting, 10 s
// per request attempt, cursors starting at 0.
type Options struct {
	// Addrs are more server addresses to try when reconnecting, after the
	// address given to Dial, round robin (e.g. several servers of a cluster,
	// or a load balancer).
	Addrs []string
	// Reconnect makes the Client survive connection loss and the server's
	// RECONNECT request: it dials again with backoff, logs in with its
	// token, catches up every conversation, and calls waiting for a
	// connection (Send retries among them) go on.
	Reconnect bool
	// RequestTimeout bounds one attempt of one request (default 10 s).
	// Send and SendGroup retry after it with the same cmid.
	RequestTimeout time.Duration
	// DialTimeout bounds one TCP dial (default 5 s).
	DialTimeout time.Duration
	// WriteTimeout bounds one socket write (default 10 s).
	WriteTimeout time.Duration
	// MinBackoff and MaxBackoff bound the pause between reconnect attempts
	// and between retries of a Send the server answered "unavailable"
	// (defaults 50 ms and 2 s; jittered).
	MinBackoff, MaxBackoff time.Duration
	// PingInterval is how often the client pings the server (default 1
	// min; negative: never). A server closes a native session that sends
	// nothing for its idle timeout (3 min by default), and a ping that
	// times out drops the connection (and reconnects, with Reconnect).
	PingInterval time.Duration
	// TLS, when set, speaks TLS to the server with this configuration:
	// RootCAs nil trusts the system's roots, ServerName empty takes the
	// host of the address dialed.
	TLS *tls.Config
	// SyncInterval, when > 0, syncs every known conversation that often: a
	// safety net for a live message lost with nothing after it to reveal
	// the gap (one SYNC per conversation per interval).
	SyncInterval time.Duration
	// Cursors are the last applied seq per conversation from a previous
	// run (see Client.Cursors). Conversations not listed start at 0, so a
	// new device fetches every conversation's whole log, unless FromRead.
	Cursors map[string]int64
	// FromRead starts conversations that have no cursor at the user's read
	// marker from the login reply instead of 0: a console shows what is
	// unread rather than all history. Applies at login only.
	FromRead bool
	// DeviceID prefixes every cmid; random when empty. Give the same one
	// only to one Client at a time.
	DeviceID string
	// Logger receives connection and sync problems (default: discard).
	Logger *slog.Logger

	// testLive, set only by this package's tests, says how many times a
	// live chat frame is handled (0: dropped, 2: duplicated), to play a
	// lossy, repeating broker.
	testLive func(*proto.Frame) int
}

// ErrClosed is returned by calls on a closed Client.
var ErrClosed = &clusterchat.Error{Code: clusterchat.EUNAVAILABLE, Message: "client closed"}

// errNoConn: not connected and not reconnecting.
var errNoConn = &clusterchat.Error{Code: clusterchat.EUNAVAILABLE, Message: "not connected"}

// Client is one device's connection to clusterchat over the native
// protocol. It is safe for concurrent use. See the package doc for what it
// guarantees.
type Client struct {
	opts   Options
	addrs  []string
	log    *slog.Logger
	device string
	cmids  atomic.Int64
	rids   atomic.Int64
	events *eventQueue

	ctx    context.Context // ended by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the Client started

	mu           sync.Mutex
	cur          *conn         // nil while disconnected
	ready        chan struct{} // closed while cur != nil
	reconnecting bool
	closed       bool
	uid          int64 // logged-in user, 0 when logged out
	name         string
	token        string
	owner        int64 // the user the cursors belong to
	convs        map[string]*convState
	syncing      int           // conversations with a sync running
	idle         chan struct{} // closed while syncing == 0
}

// Dial connects to addr and returns a Client that is connected but not
// logged in. ctx bounds the dial only.
func Dial(ctx context.Context, addr string, opts Options) (*Client, error) {
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 10 * time.Second
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 5 * time.Second
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 10 * time.Second
	}
	if opts.PingInterval == 0 {
		opts.PingInterval = time.Minute
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 50 * time.Millisecond
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(2*time.Second, opts.MinBackoff)
	}
	c := &Client{
		opts:   opts,
		addrs:  append([]string{addr}, opts.Addrs...),
		log:    opts.Logger,
		device: opts.DeviceID,
		events: newEventQueue(),
		ready:  make(chan struct{}),
		idle:   make(chan struct{}),
		convs:  map[string]*convState{},
	}
	close(c.idle)
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.device == "" {
		var b [8]byte
		_, _ = crand(b[:])
		c.device = hex.EncodeToString(b[:])
	}
	for conv, seq := range opts.Cursors {
		c.convs[conv] = &convState{cursor: seq, held: map[int64]held{}}
	}
	dctx, cancel := context.WithTimeout(ctx, opts.DialTimeout)
	nc, err := dialNet(dctx, addr, opts.TLS)
	cancel()
	if err != nil {
		return nil, clusterchat.Errorf(clusterchat.EUNAVAILABLE, "dial %s: %v", addr, err)
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	cn := newConn(nc, opts.WriteTimeout)
	c.cur = cn
	close(c.ready)
	c.startConn(cn)
	c.wg.Add(1)
	go func() { defer c.wg.Done(); c.events.run(c.ctx) }()
	if opts.PingInterval > 0 {
		c.wg.Add(1)
		go c.pinger()
	}
	if opts.SyncInterval > 0 {
		c.wg.Add(1)
		go c.resyncer()
	}
	return c, nil
}

// crand is crypto/rand.Read; a failure leaves zeros, which only makes the
// device id less random, never wrong.
var crand = crand0.Read

// Events returns the channel of events. It is closed by Close. Events queue
// without bound inside the Client until read, so read them.
func (c *Client) Events() <-chan Event { return c.events.out }

// Close drops the connection and stops every goroutine of the Client.
// Calls in progress return ErrClosed. Sends not yet acknowledged may or may
// not have been stored; resending them with the same cmid from another
// Client with the same DeviceID is safe.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	cn := c.cur
	c.mu.Unlock()
	c.cancel()
	if cn != nil {
		cn.fail(errors.New("client closed"))
	}
	c.wg.Wait()
	return nil
}

// UserID returns the logged-in user, 0 when logged out.
func (c *Client) UserID() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.uid
}

// Token returns the session token of the last login ("" when logged out).
func (c *Client) Token() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.token
}

// DeviceID returns the prefix of this Client's cmids.
func (c *Client) DeviceID() string { return c.device }

// NewCMID returns a client message id unique for this device.
func (c *Client) NewCMID() string {
	return c.device + "-" + strconv.FormatInt(c.cmids.Add(1), 10)
}

// startConn runs cn's read goroutine.
func (c *Client) startConn(cn *conn) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		err := cn.readLoop(c.onFrame)
		c.onConnLost(cn, err)
	}()
}

// onConnLost forgets a failed current connection and starts reconnecting.
func (c *Client) onConnLost(cn *conn, err error) {
	c.mu.Lock()
	if c.cur != cn {
		c.mu.Unlock()
		return
	}
	c.cur = nil
	c.ready = make(chan struct{})
	start := c.opts.Reconnect && !c.closed && !c.reconnecting
	if start {
		c.reconnecting = true
		c.wg.Add(1)
	}
	if !c.closed {
		c.log.Info("chat client: connection lost", "err", err)
		c.events.push(Event{Kind: EventDisconnected, Err: errLost(err)})
	}
	c.mu.Unlock()
	if start {
		go c.reconnectLoop()
	}
}

// reconnectLoop dials the addresses round robin with jittered exponential
// backoff until one takes a token login (or until Close).
func (c *Client) reconnectLoop() {
	defer c.wg.Done()
	backoff := c.opts.MinBackoff
	for i := 0; ; i++ {
		if c.ctx.Err() != nil {
			return
		}
		addr := c.addrs[i%len(c.addrs)]
		cn, info, err := c.redial(addr)
		if err == nil {
			c.mu.Lock()
			if c.closed {
				c.mu.Unlock()
				cn.fail(errors.New("client closed"))
				return
			}
			c.cur = cn
			close(c.ready)
			c.reconnecting = false
			if info != nil {
				c.loggedIn(info)
			}
			c.events.push(Event{Kind: EventReconnected})
			c.mu.Unlock()
			c.log.Info("chat client: reconnected", "addr", addr)
			return
		}
		c.log.Debug("chat client: reconnect failed", "addr", addr, "err", err)
		if !c.sleep(c.ctx, jitter(backoff)) {
			return
		}
		backoff = min(backoff*2, c.opts.MaxBackoff)
	}
}

// redial connects to addr and logs in with the token, if there is one. A
// rejected token leaves the new connection installed but logged out (and
// says so with EventError), since retrying cannot fix it.
func (c *Client) redial(addr string) (*conn, *LoginInfo, error) {
	dctx, cancel := context.WithTimeout(c.ctx, c.opts.DialTimeout)
	nc, err := dialNet(dctx, addr, c.opts.TLS)
	cancel()
	if err != nil {
		return nil, nil, err
	}
	cn := newConn(nc, c.opts.WriteTimeout)
	c.startConn(cn)
	c.mu.Lock()
	token := c.token
	c.mu.Unlock()
	if token == "" {
		return cn, nil, nil
	}
	f, err := c.do(c.ctx, cn, &proto.LoginReq{Token: token})
	if err != nil {
		if clusterchat.ErrorCode(err) == clusterchat.EAUTH {
			c.mu.Lock()
			c.token, c.uid = "", 0
			c.mu.Unlock()
			c.events.push(Event{Kind: EventError, Err: err})
			return cn, nil, nil
		}
		cn.fail(err)
		return nil, nil, err
	}
	return cn, loginInfo(f), nil
}

// dialNet connects to addr, over TLS when tc is set (the handshake is done
// before it returns, within ctx).
func dialNet(ctx context.Context, addr string, tc *tls.Config) (net.Conn, error) {
	if tc == nil {
		return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	}
	return (&tls.Dialer{Config: tc}).DialContext(ctx, "tcp", addr)
}

// pinger keeps the connection honest: a dead peer that never sends a FIN
// (a crashed host) shows up as a ping timeout.
func (c *Client) pinger() {
	defer c.wg.Done()
	t := time.NewTicker(c.opts.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		c.mu.Lock()
		cn := c.cur
		c.mu.Unlock()
		if cn == nil {
			continue
		}
		if _, err := c.do(c.ctx, cn, &proto.PingReq{}); err != nil && c.ctx.Err() == nil && isTimeout(err) {
			cn.fail(err)
		}
	}
}

// resyncer runs Sync's first half every SyncInterval while logged in.
func (c *Client) resyncer() {
	defer c.wg.Done()
	t := time.NewTicker(c.opts.SyncInterval)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		c.mu.Lock()
		if c.uid != 0 && c.cur != nil {
			for conv := range c.convs {
				c.startSync(conv)
			}
		}
		c.mu.Unlock()
	}
}

// sleep waits d or until ctx ends (false).
func (c *Client) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-c.ctx.Done():
		return false
	}
}

func jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// conn returns the current connection, waiting for a reconnect when
// Options.Reconnect is set.
func (c *Client) conn(ctx context.Context) (*conn, error) {
	for {
		c.mu.Lock()
		cn, ready, closed := c.cur, c.ready, c.closed
		c.mu.Unlock()
		switch {
		case closed:
			return nil, ErrClosed
		case cn != nil:
			return cn, nil
		case !c.opts.Reconnect:
			return nil, errNoConn
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.ctx.Done():
			return nil, ErrClosed
		}
	}
}

// errTimeout marks an attempt that got no reply in RequestTimeout. The
// request may or may not have been done.
var errTimeout = &clusterchat.Error{Code: clusterchat.EUNAVAILABLE, Message: "timed out waiting for the server"}

func isTimeout(err error) bool { return err == errTimeout }

// retryable tells whether trying again may succeed: the server or the
// connection was unavailable, or the attempt timed out.
func retryable(err error) bool {
	return clusterchat.ErrorCode(err) == clusterchat.EUNAVAILABLE && err != ErrClosed
}

// do runs one attempt of req on cn with a fresh rid.
func (c *Client) do(ctx context.Context, cn *conn, req proto.Req) (*proto.Frame, error) {
	rid := c.rids.Add(1)
	actx, cancel := context.WithTimeout(ctx, c.opts.RequestTimeout)
	defer cancel()
	f, err := cn.roundTrip(actx, rid, req)
	if err != nil && actx.Err() != nil && f == nil {
		switch {
		case c.ctx.Err() != nil:
			err = ErrClosed
		case ctx.Err() == nil:
			err = errTimeout
		}
	}
	return f, err
}

// request runs one attempt of req on the current connection.
func (c *Client) request(ctx context.Context, req proto.Req) (*proto.Frame, error) {
	cn, err := c.conn(ctx)
	if err != nil {
		return nil, err
	}
	return c.do(ctx, cn, req)
}

// Register creates an account and returns its id. It does not log in.
func (c *Client) Register(ctx context.Context, name, password string) (int64, error) {
	f, err := c.request(ctx, &proto.RegisterReq{Name: name, Password: password})
	if err != nil {
		return 0, err
	}
	return f.ID, nil
}

// Login logs in with id and password. On success catching up starts at
// once: missed messages of every conversation follow as EventMessage (see
// Synced).
func (c *Client) Login(ctx context.Context, id int64, password string) (*LoginInfo, error) {
	return c.login(ctx, &proto.LoginReq{ID: id, Password: password})
}

// LoginToken logs in with a token from an earlier login.
func (c *Client) LoginToken(ctx context.Context, token string) (*LoginInfo, error) {
	return c.login(ctx, &proto.LoginReq{Token: token})
}

func (c *Client) login(ctx context.Context, req *proto.LoginReq) (*LoginInfo, error) {
	f, err := c.request(ctx, req)
	if err != nil {
		return nil, err
	}
	info := loginInfo(f)
	c.mu.Lock()
	c.loggedIn(info)
	c.mu.Unlock()
	return info, nil
}

func loginInfo(f *proto.Frame) *LoginInfo {
	return &LoginInfo{ID: f.ID, Name: f.Name, Token: f.Token, Friends: f.Friends, Groups: f.Groups, Convs: f.Convs}
}

// Logout ends the session; the connection stays, ready for another login.
func (c *Client) Logout(ctx context.Context) error {
	_, err := c.request(ctx, &proto.LogoutReq{})
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.uid, c.name, c.token = 0, "", ""
	c.mu.Unlock()
	return nil
}

// LogoutAll logs the user out everywhere: every session token is revoked
// and every other session, on every server, ends (they get a RECONNECT
// with reason "revoked"); this one is logged out like with Logout.
func (c *Client) LogoutAll(ctx context.Context) error {
	if _, err := c.request(ctx, &proto.LogoutAllReq{}); err != nil {
		return err
	}
	c.mu.Lock()
	c.uid, c.name, c.token = 0, "", ""
	c.mu.Unlock()
	return nil
}

// Ack is the server's acknowledgement of a sent message: it is committed.
type Ack struct {
	MID   int64     // the message id in the store
	Conv  string    // its conversation
	Seq   int64     // its place in Conv
	Time  time.Time // server timestamp
	CTime string    // the classic "time" text
	CMID  string    // the client message id it was sent with
	Dup   bool      // an earlier attempt had already stored it
}

// Send sends text to user to and returns once the server committed it.
// Timeouts, "unavailable" replies and (with Options.Reconnect) connection
// losses are retried with the same cmid until ctx ends, so the message is
// stored at most once; give ctx a deadline. A rate-limit refusal (errno
// 12) is retried after the server's hint while ctx allows, and returned at
// once when the hint is past ctx's deadline.
func (c *Client) Send(ctx context.Context, to int64, text string) (*Ack, error) {
	return c.send(ctx, &proto.ChatReq{To: to, Msg: text})
}

// SendGroup sends text to group gid, like Send.
func (c *Client) SendGroup(ctx context.Context, gid int64, text string) (*Ack, error) {
	return c.send(ctx, &proto.ChatReq{GroupID: gid, Msg: text})
}

func (c *Client) send(ctx context.Context, req *proto.ChatReq) (*Ack, error) {
	cmid := c.NewCMID()
	req.CMID = cmid
	backoff := c.opts.MinBackoff
	var f *proto.Frame
	for {
		var err error
		f, err = c.request(ctx, req)
		if err == nil {
			break
		}
		if wait := clusterchat.RetryAfter(err); wait > 0 && ctx.Err() == nil {
			// Rate limited (errno 12): the server says when; the same
			// cmid then, so the message is still stored at most once. A
			// wait past ctx's deadline (a spent daily quota says hours)
			// is not waited for: the refusal is the answer.
			if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
				return nil, err
			}
			if !c.sleep(ctx, wait) {
				if ctx.Err() != nil {
					return nil, err
				}
				return nil, ErrClosed
			}
			continue
		}
		if !retryable(err) || err == errNoConn || ctx.Err() != nil {
			return nil, err
		}
		if !isTimeout(err) && !c.sleep(ctx, jitter(backoff)) {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, ErrClosed
		}
		backoff = min(backoff*2, c.opts.MaxBackoff)
		c.log.Debug("chat client: resending", "cmid", cmid, "err", err)
	}
	ack := &Ack{MID: f.MID, Conv: f.Conv, Seq: f.Seq, CTime: f.Time, CMID: cmid, Dup: f.Dup}
	if f.TS != 0 {
		ack.Time = time.UnixMilli(f.TS)
	}
	if ack.Conv != "" && ack.Seq > 0 {
		c.mu.Lock()
		m := &clusterchat.Message{ID: ack.MID, Conv: ack.Conv, Seq: ack.Seq, From: c.uid, FromName: c.name,
			To: req.To, GroupID: req.GroupID, Body: req.Msg, CTime: ack.CTime, Time: ack.Time, CMID: cmid, Dup: ack.Dup}
		c.offer(ack.Conv, m, true, false)
		c.mu.Unlock()
	}
	return ack, nil
}

// AddFriend is the classic ADD_FRIEND: on a server with -friends open it
// makes id a friend (both ways) at once; by default it asks id (as
// RequestFriend) and the returned Friend's State is empty until id accepts
// or adds back.
func (c *Client) AddFriend(ctx context.Context, id int64) (*Friend, error) {
	f, err := c.request(ctx, &proto.AddFriendReq{FriendID: id})
	if err != nil {
		return nil, err
	}
	return &Friend{ID: f.ID, Name: f.Name, State: f.State}, nil
}

// CreateGroup creates a group with the user as creator and returns its id.
func (c *Client) CreateGroup(ctx context.Context, name, desc string) (int64, error) {
	f, err := c.request(ctx, &proto.CreateGroupReq{Name: name, Desc: desc})
	if err != nil {
		return 0, err
	}
	return f.GroupID, nil
}

// JoinGroup joins group gid; joined is false when already a member.
func (c *Client) JoinGroup(ctx context.Context, gid int64) (joined bool, err error) {
	f, err := c.request(ctx, &proto.AddGroupReq{GroupID: gid})
	if err != nil {
		return false, err
	}
	return f.Joined, nil
}

// Page is one page of a conversation's log.
type Page struct {
	Conv string
	Msgs []*clusterchat.Message // ascending seq
	Last int64                  // the conversation's newest seq
}

// History returns up to limit of the newest messages of conv with seq <
// before (0: from the end), ascending. It moves no cursor and emits nothing.
func (c *Client) History(ctx context.Context, conv string, before int64, limit int) (*Page, error) {
	f, err := c.request(ctx, &proto.HistoryReq{Conv: conv, Before: before, Limit: limit})
	if err != nil {
		return nil, err
	}
	p := &Page{Conv: f.Conv, Last: f.Last, Msgs: make([]*clusterchat.Message, len(f.Msgs))}
	if p.Conv == "" {
		p.Conv = conv
	}
	for i := range f.Msgs {
		p.Msgs[i] = f.Msgs[i].Message()
		if p.Msgs[i].Conv == "" {
			p.Msgs[i].Conv = p.Conv
		}
	}
	return p, nil
}

// MarkRead sets the user's read marker of conv to seq; the user's other
// sessions get EventRead.
func (c *Client) MarkRead(ctx context.Context, conv string, seq int64) error {
	_, err := c.request(ctx, &proto.ReadReq{Conv: conv, Seq: seq})
	return err
}

// Ping asks the server for an empty reply.
func (c *Client) Ping(ctx context.Context) error {
	_, err := c.request(ctx, &proto.PingReq{})
	return err
}

// onFrame handles a frame that is not a reply, on the read goroutine.
func (c *Client) onFrame(cn *conn, f *proto.Frame) {
	switch f.MsgID {
	case proto.OneChat, proto.GroupChat:
		n := 1
		if c.opts.testLive != nil {
			n = c.opts.testLive(f)
		}
		for range n {
			c.onChat(f)
		}
	case proto.Presence:
		c.events.push(Event{Kind: EventPresence, UserID: f.ID, State: f.State})
	case proto.FriendAdded:
		c.events.push(Event{Kind: EventFriendAdded, UserID: f.ID, Name: f.Name, State: f.State})
	case proto.GroupJoined:
		c.events.push(Event{Kind: EventGroupJoined, UserID: f.ID, Name: f.Name, GroupID: f.GroupID})
	case proto.Read:
		c.events.push(Event{Kind: EventRead, Conv: f.Conv, Seq: f.Seq})
	case proto.Reconnect:
		c.events.push(Event{Kind: EventReconnect, Reason: f.Reason})
		if f.Reason == proto.ReasonRevoked {
			// The user logged out everywhere or changed the password: the
			// token is dead, so the reconnect (the server closes this
			// connection) comes back logged out, as after a refused token.
			c.mu.Lock()
			c.token, c.uid = "", 0
			c.mu.Unlock()
		}
		if f.Reason == proto.ReasonResync {
			c.mu.Lock()
			for conv := range c.convs {
				c.startSync(conv)
			}
			c.mu.Unlock()
		} else if c.opts.Reconnect {
			// Leave now rather than when the server closes: the new
			// connection (elsewhere, through the balancer) catches up.
			cn.fail(errors.New("server asked to reconnect: " + f.Reason))
		}
	case proto.Reply, proto.LoginAck, proto.RegisterAck:
		if err := f.Err(); err != nil {
			c.events.push(Event{Kind: EventError, Err: err})
		}
	case proto.FriendEvent, proto.GroupEvent, proto.UserEvent:
		c.onSocial(f)
	}
}

// onChat takes a live chat message into the ordering machinery.
func (c *Client) onChat(f *proto.Frame) {
	w := f.Chat()
	c.mu.Lock()
	defer c.mu.Unlock()
	if w.Conv == "" || w.Seq <= 0 {
		// Not a sequenced message (should not happen on a native session):
		// pass it on unordered rather than lose it.
		c.events.push(Event{Kind: EventMessage, Message: w.Message()})
		return
	}
	c.offer(w.Conv, w.Message(), false, false)
}
