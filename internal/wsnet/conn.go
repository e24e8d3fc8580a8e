// Package wsnet carries clusterchat's JSON stream over a WebSocket: it
// turns a gorilla/websocket connection into a net.Conn, so the server's
// connection machinery (read loop, byte-bounded queue, flusher), the bench
// client and the tests run unchanged over either transport.
//
// Framing: every text message is one JSON object. Reading yields each
// message followed by a newline, which the stream readers on both sides
// treat as a separator. Writing cuts the byte stream at each newline or NUL
// (the object terminators; JSON text never holds a raw one) and sends each
// object as one text message; a tail without a terminator waits for the rest
// of its object.
//
// Writes build the data frames themselves and send all the frames of one
// Write (or WriteBuffers) in one write to the socket: a batch of messages
// costs one system call, as on TCP, where the library would make one per
// message. That is safe beside the library's own control frames (ping,
// pong, close) because a socket write is never interleaved with another
// (the runtime holds the descriptor's write lock for a whole Write) and
// each write carries whole frames.
package wsnet

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// closeWait bounds the close frame sent by Close: a peer that does not read
// must not hold up the goroutine that cuts it.
const closeWait = 100 * time.Millisecond

// ErrBinary is returned by Read when the peer sends a binary message: the
// protocol is JSON text, so the connection is closed (status 1003).
var ErrBinary = errors.New("wsnet: binary message; clusterchat speaks JSON in text messages")

// Conn is a net.Conn over a WebSocket. One goroutine reads; one writes at a
// time (the caller serialises writes, as with a socket). Close and the
// deadlines may be called from any goroutine.
type Conn struct {
	ws *websocket.Conn

	r       io.Reader // the message being read; nil between messages
	sep     bool      // the newline after the message just read is still owed
	partial []byte    // written bytes of an object whose terminator has not come

	dmu    sync.Mutex // guards the two read deadlines
	appDL  time.Time  // SetReadDeadline's (the server's login, frame and idle deadlines)
	keepDL time.Time  // SetAliveDeadline's (the keepalive: a pong is due by then)

	wmu       sync.Mutex // held by Write, so Close sends its close frame only between writes
	nc        net.Conn   // the socket under the WebSocket, written directly (see the package doc)
	client    bool       // mask the frames (RFC 6455: a client masks, a server does not)
	mask      *rand.ChaCha8
	wdl       time.Time // SetWriteDeadline's, set again before each write
	out       []byte    // frames being written
	closeOnce sync.Once
	closeErr  error
	onClose   func()
}

// OnClose sets f to run when the Conn is closed (before any use).
func (c *Conn) OnClose(f func()) { c.onClose = f }

// New wraps ws, the server side of a WebSocket (from an Upgrader). Its
// frames go out unmasked; a client's must be masked: see NewClient.
func New(ws *websocket.Conn) *Conn { return &Conn{ws: ws, nc: ws.NetConn()} }

// NewClient wraps ws, the client side of a WebSocket (from a Dialer): its
// frames are masked, as RFC 6455 requires of a client.
func NewClient(ws *websocket.Conn) *Conn {
	c := New(ws)
	c.client = true
	var seed [32]byte
	crand.Read(seed[:])
	c.mask = rand.NewChaCha8(seed) // unpredictable masks, cheaper than crypto/rand per frame
	return c
}

// WS returns the underlying WebSocket (for control frames and handlers).
func (c *Conn) WS() *websocket.Conn { return c.ws }

// Dial opens a WebSocket to url (ws://host:port/ws) with the given Origin
// header ("" sends none, as a non-browser client) and returns it as a Conn.
func Dial(ctx context.Context, url, origin string) (*Conn, error) {
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, ReadBufferSize: 4096, WriteBufferSize: 4096}
	var h http.Header
	if origin != "" {
		h = http.Header{"Origin": {origin}}
	}
	ws, resp, err := d.DialContext(ctx, url, h)
	if err != nil {
		if resp != nil {
			return nil, errors.Join(err, errors.New("wsnet: handshake answered "+resp.Status))
		}
		return nil, err
	}
	return NewClient(ws), nil
}

// Read returns bytes of the incoming messages, a newline after each.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if c.sep {
			c.sep = false
			p[0] = '\n'
			return 1, nil
		}
		if c.r == nil {
			typ, r, err := c.ws.NextReader()
			if err != nil {
				return 0, readErr(err)
			}
			if typ != websocket.TextMessage {
				c.closeWith(websocket.CloseUnsupportedData, "text messages only")
				return 0, ErrBinary
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			c.sep = true
			err = nil
		}
		if n > 0 || err != nil {
			return n, readErr(err)
		}
	}
}

// readErr maps an orderly close by the peer to io.EOF, like a socket's FIN.
func readErr(err error) error {
	if websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway, websocket.CloseNoStatusReceived) {
		return io.EOF
	}
	return err
}

// Write sends each complete object in p as one text message, all of them
// in one write to the socket.
func (c *Conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.out = c.appendObjects(c.out[:0], p)
	if err := c.flushOut(); err != nil {
		return 0, err
	}
	return len(p), nil
}

// WriteBuffers sends the objects of every buffer in one write to the
// socket: the server's flusher hands a batch over this way.
func (c *Conn) WriteBuffers(bufs [][]byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.out = c.out[:0]
	for _, b := range bufs {
		c.out = c.appendObjects(c.out, b)
	}
	return c.flushOut()
}

// appendObjects appends a frame to out for each complete object in p,
// keeping an unterminated tail in c.partial.
func (c *Conn) appendObjects(out, p []byte) []byte {
	for len(p) > 0 {
		i := bytes.IndexAny(p, "\n\x00")
		if i < 0 {
			c.partial = append(c.partial, p...)
			break
		}
		msg := p[:i]
		if len(c.partial) > 0 {
			c.partial = append(c.partial, msg...)
			msg = c.partial
		}
		if len(msg) > 0 {
			out = c.appendFrame(out, msg)
		}
		c.partial = c.partial[:0]
		p = p[i+1:]
	}
	return out
}

// appendFrame appends one final text frame holding msg (RFC 6455 5.2):
// masked with a fresh key from a client, plain from a server.
func (c *Conn) appendFrame(out, msg []byte) []byte {
	const fin, text, masked = 0x80, 0x1, 0x80
	var mbit byte
	if c.client {
		mbit = masked
	}
	out = append(out, fin|text)
	switch n := len(msg); {
	case n < 126:
		out = append(out, mbit|byte(n))
	case n <= 0xffff:
		out = binary.BigEndian.AppendUint16(append(out, mbit|126), uint16(n))
	default:
		out = binary.BigEndian.AppendUint64(append(out, mbit|127), uint64(n))
	}
	if !c.client {
		return append(out, msg...)
	}
	var key [4]byte
	binary.LittleEndian.PutUint32(key[:], uint32(c.mask.Uint64()))
	out = append(out, key[:]...)
	start := len(out)
	out = append(out, msg...)
	for i := range msg {
		out[start+i] ^= key[i&3]
	}
	return out
}

// flushOut writes c.out to the socket in one write, under the deadline of
// SetWriteDeadline (set again: the library's control frames move it).
func (c *Conn) flushOut() error {
	if len(c.out) == 0 {
		return nil
	}
	c.nc.SetWriteDeadline(c.wdl)
	_, err := c.nc.Write(c.out)
	if cap(c.out) > 64<<10 {
		c.out = nil // a big batch has passed: do not keep its buffer
	}
	return err
}

// Close sends a close frame (going away) when no write is in progress, then
// closes the connection. A peer that does not read delays it by at most
// closeWait.
func (c *Conn) Close() error { return c.closeWith(websocket.CloseGoingAway, "") }

func (c *Conn) closeWith(code int, reason string) error {
	c.closeOnce.Do(func() {
		if c.onClose != nil {
			c.onClose()
		}
		if c.wmu.TryLock() {
			_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(closeWait))
			c.wmu.Unlock()
		}
		c.closeErr = c.ws.Close()
	})
	return c.closeErr
}

// LocalAddr returns the local network address.
func (c *Conn) LocalAddr() net.Addr { return c.ws.LocalAddr() }

// RemoteAddr returns the peer's network address.
func (c *Conn) RemoteAddr() net.Addr { return c.ws.RemoteAddr() }

// SetDeadline sets the read and write deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	c.SetWriteDeadline(t)
	return c.SetReadDeadline(t)
}

// SetReadDeadline sets the read deadline, as on a socket. It shares the
// underlying connection with SetAliveDeadline: the earlier of the two
// applies, so neither user clears the other's.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	c.appDL = t
	return c.applyDeadline()
}

// SetAliveDeadline sets the keepalive's read deadline: the time by which
// the peer must have shown it is alive (a pong). See SetReadDeadline.
func (c *Conn) SetAliveDeadline(t time.Time) error {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	c.keepDL = t
	return c.applyDeadline()
}

func (c *Conn) applyDeadline() error {
	t := c.appDL
	if t.IsZero() || (!c.keepDL.IsZero() && c.keepDL.Before(t)) {
		t = c.keepDL
	}
	return c.ws.SetReadDeadline(t)
}

// SetWriteDeadline sets the deadline for the following message writes.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wdl = t
	return c.nc.SetWriteDeadline(t)
}
