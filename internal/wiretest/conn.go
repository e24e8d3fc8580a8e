// Package wiretest holds what the tests of several packages share to talk
// to a chat server: Conn, a raw protocol client that writes exactly the
// bytes a test gives it and reads the server's output one object at a time,
// Obj, a decoded server object, and StartServer, a server of package server
// in the test's process. Tests that run the chatserver binary start it with
// internal/testenv instead; both talk to it through Conn.
package wiretest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"clusterchat"
	"clusterchat/proto"
)

// Conn is a raw protocol client. The server ends every object with "\n" and
// JSON text never holds a raw newline, so one line is one object; reading
// by lines also checks that terminator. TB may be swapped for a subtest's.
type Conn struct {
	TB      testing.TB
	NC      net.Conn
	BR      *bufio.Reader
	Timeout time.Duration // bounds every read and write
	rid     *atomic.Int64 // rids of Ping, NativeLogin and Req
}

// Dial connects to addr; the connection is closed when the test ends.
func Dial(tb testing.TB, addr string, timeout time.Duration) *Conn {
	tb.Helper()
	nc, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		tb.Fatalf("dial %s: %v", addr, err)
	}
	tb.Cleanup(func() { nc.Close() })
	return New(tb, nc, timeout)
}

// New wraps an open connection (a WebSocket, a TLS connection).
func New(tb testing.TB, nc net.Conn, timeout time.Duration) *Conn {
	return Wrap(tb, nc, bufio.NewReaderSize(nc, 128<<10), new(atomic.Int64), timeout)
}

// Wrap is a Conn on a connection whose reader and rid counter the caller
// keeps (a package's own client type built on Conn).
func Wrap(tb testing.TB, nc net.Conn, br *bufio.Reader, rid *atomic.Int64, timeout time.Duration) *Conn {
	return &Conn{TB: tb, NC: nc, BR: br, Timeout: timeout, rid: rid}
}

// Close closes the connection.
func (c *Conn) Close() { c.NC.Close() }

// TrySend writes raw as it is, in one write.
func (c *Conn) TrySend(raw string) error {
	c.NC.SetWriteDeadline(time.Now().Add(c.Timeout))
	_, err := io.WriteString(c.NC, raw)
	return err
}

// Send writes raw as it is, in one write, or fails the test.
func (c *Conn) Send(raw string) {
	c.TB.Helper()
	if err := c.TrySend(raw); err != nil {
		c.TB.Fatalf("write %.80q: %v", raw, err)
	}
}

// Sendf writes one object followed by a NUL byte, as the classic client does.
func (c *Conn) Sendf(format string, args ...any) {
	c.TB.Helper()
	c.Send(fmt.Sprintf(format, args...) + "\x00")
}

// sendMsg writes one object encoded by proto, followed by a NUL byte.
func (c *Conn) sendMsg(b []byte) {
	c.TB.Helper()
	c.Send(string(append(b, 0)))
}

// Line reads the next object's line, terminator included.
func (c *Conn) Line() string {
	c.TB.Helper()
	l, err := c.ReadLine(c.Timeout)
	if err != nil {
		c.TB.Fatalf("reading the next object from %s: %v", c.NC.RemoteAddr(), err)
	}
	return l
}

// ReadLine reads the next line within d and checks it is one JSON object.
func (c *Conn) ReadLine(d time.Duration) (string, error) {
	c.NC.SetReadDeadline(time.Now().Add(d))
	l, err := c.BR.ReadString('\n')
	l = strings.TrimLeft(l, "\x00") // a classic record's padding (docs/protocol.md)
	if err != nil {
		return l, err
	}
	if !json.Valid([]byte(l)) || !strings.HasPrefix(l, "{") {
		return l, fmt.Errorf("line is not one JSON object: %q", l)
	}
	return l, nil
}

// ReadObj reads and decodes the next object within d.
func (c *Conn) ReadObj(d time.Duration) (Obj, error) {
	l, err := c.ReadLine(d)
	if err != nil {
		return Obj{}, err
	}
	return DecodeObj(l)
}

// Next reads and decodes the next object.
func (c *Conn) Next() Obj {
	c.TB.Helper()
	return MustDecode(c.TB, c.Line())
}

// Expect reads the next object and checks that it has msgid and, for each
// key/value pair in kv, that field (compared as JSON text).
func (c *Conn) Expect(msgid int, kv ...any) Obj {
	c.TB.Helper()
	o := c.Next()
	o.Check(c.TB, append([]any{"msgid", msgid}, kv...)...)
	return o
}

// ExpectErr reads an error reply: msgid 11 with req and errno, or the
// classic ack msgid for login and register failures; errmsg is required.
func (c *Conn) ExpectErr(req, errno int) Obj {
	c.TB.Helper()
	o := c.Next()
	switch req {
	case proto.Login:
		o.Check(c.TB, "msgid", proto.LoginAck, "errno", errno)
	case proto.Register:
		o.Check(c.TB, "msgid", proto.RegisterAck, "errno", errno)
	default:
		o.Check(c.TB, "msgid", proto.Reply, "req", req, "errno", errno)
	}
	if o.Str("errmsg") == "" {
		c.TB.Fatalf("error reply without errmsg: %s", o.Raw)
	}
	return o
}

// Ping is a barrier: it sends a PING and requires the very next object to be
// its reply (errno 0, or 8 when the connection has no session), so
// everything queued for this connection before it was read.
func (c *Conn) Ping() {
	c.TB.Helper()
	rid := c.rid.Add(1) + 1000000
	c.sendMsg((&proto.PingReq{}).AppendNative(nil, rid))
	o := c.Next()
	// An error reply to a connection that spoke classic last carries no rid.
	if o.Int("msgid") != proto.Reply || o.Int("req") != proto.Ping || (o.Has("rid") && o.Int("rid") != rid) ||
		(o.Int("errno") != 0 && o.Int("errno") != clusterchat.ENOTLOGGEDIN) {
		c.TB.Fatalf("expected the PING reply, got %s", o.Raw)
	}
}

// ExpectClosed reads until the server closes the connection and returns
// what arrived before (without classic records' NUL padding); it fails if
// the connection is still open after Timeout.
func (c *Conn) ExpectClosed() string {
	c.TB.Helper()
	c.NC.SetReadDeadline(time.Now().Add(c.Timeout))
	var got bytes.Buffer
	_, err := io.Copy(&got, c.BR)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.TB.Fatalf("connection still open after %v (got %d bytes, starting %.200q)", c.Timeout, got.Len(), got.String())
	}
	return strings.ReplaceAll(got.String(), "\x00", "") // classic records' padding
}

// Register registers name as the classic client does and returns the id.
func (c *Conn) Register(name, password string) int64 {
	c.TB.Helper()
	c.sendMsg((&proto.RegisterReq{Name: name, Password: password}).AppendClassic(nil))
	return c.Expect(proto.RegisterAck, "errno", 0).Int("id")
}

// ClassicLogin logs in as the classic client and returns the reply.
func (c *Conn) ClassicLogin(id int64, password string) Obj {
	c.TB.Helper()
	c.sendMsg((&proto.LoginReq{ID: id, Password: password}).AppendClassic(nil))
	return c.Expect(proto.LoginAck, "errno", 0, "id", id)
}

// NativeLogin logs in with proto 2 and returns the reply.
func (c *Conn) NativeLogin(id int64, password string) Obj {
	c.TB.Helper()
	rid := c.rid.Add(1)
	c.sendMsg((&proto.LoginReq{ID: id, Password: password}).AppendNative(nil, rid))
	return c.Expect(proto.LoginAck, "rid", rid, "errno", 0, "id", id)
}

// Req sends a native request (an object without rid; the rid is filled in)
// and returns the rid.
func (c *Conn) Req(format string, args ...any) int64 {
	c.TB.Helper()
	rid := c.rid.Add(1)
	body := fmt.Sprintf(format, args...)
	c.Send(`{"rid":` + strconv.FormatInt(rid, 10) + "," + strings.TrimPrefix(body, "{") + "\x00")
	return rid
}

// Call sends a native request and requires the next object to be its
// successful reply (msgid 11, req, rid echoed, errno 0).
func (c *Conn) Call(req int, format string, args ...any) Obj {
	c.TB.Helper()
	rid := c.Req(format, args...)
	return c.Expect(proto.Reply, "req", req, "rid", rid, "errno", 0)
}

// CallSkipping is Call for a connection that may receive events before the
// reply: objects other than msgid 11 are skipped.
func (c *Conn) CallSkipping(req int, format string, args ...any) Obj {
	c.TB.Helper()
	rid := c.Req(format, args...)
	for {
		if o := c.Next(); o.Int("msgid") == proto.Reply {
			o.Check(c.TB, "req", req, "rid", rid, "errno", 0)
			return o
		}
	}
}
