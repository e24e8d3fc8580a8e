package bench

import (
	"context"
	"net"
	"strconv"
	"sync"
	"time"

	"clusterchat"
)

// setupTimeout bounds each setup request (register hashes a password, which
// is slow on a loaded box, hence generous).
const setupTimeout = 60 * time.Second

// conn is one client connection. Setup runs request/response on it
// synchronously; during the measured run one goroutine reads it and writers
// serialise on mu, appending a whole batch before one Write.
type conn struct {
	nc      net.Conn
	fr      *frameReader
	classic bool
	mu      sync.Mutex
	rid     int64
	f       frame

	user  int64 // account id
	name  string
	pass  string
	token string
}

// dial connects to addr from the loopback source address src ("" = any).
func dial(ctx context.Context, addr, src string, bufSize int) (*conn, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return &conn{nc: nc, fr: newFrameReader(nc, bufSize)}, nil
}

// write sends b in one Write under the connection's lock.
func (c *conn) write(b []byte) error {
	c.mu.Lock()
	_, err := c.nc.Write(b)
	c.mu.Unlock()
	return err
}

// term ends one request: a NUL for classic (what the classic client sends),
// a newline for native.
func (c *conn) term(b []byte) []byte {
	if c.classic {
		return append(b, 0)
	}
	return append(b, '\n')
}

// call sends req (a JSON object without its closing brace) with a fresh rid
// (native) and waits for the reply with msgid want (classic) or the same
// rid (native), skipping events in between. The reply is left in c.f.
func (c *conn) call(req []byte, want int64) (*frame, error) {
	if !c.classic {
		c.rid++
		req = append(req, `,"rid":`...)
		req = strconv.AppendInt(req, c.rid, 10)
	}
	req = c.term(append(req, '}'))
	_ = c.nc.SetDeadline(time.Now().Add(setupTimeout))
	defer c.nc.SetDeadline(time.Time{})
	if err := c.write(req); err != nil {
		return nil, err
	}
	for {
		b, err := c.fr.next()
		if err != nil {
			return nil, err
		}
		if err := parseFrame(b, &c.f); err != nil {
			return nil, err
		}
		if c.classic {
			if c.f.msgid == want || c.f.msgid == 11 {
				break
			}
			continue
		}
		if c.f.rid == c.rid && (c.f.msgid == want || c.f.msgid == 11) {
			break
		}
	}
	if c.f.errno != 0 {
		return &c.f, clusterchat.Errorf(int(c.f.errno), "msgid %d: %s", c.f.msgid, c.f.err)
	}
	return &c.f, nil
}

func (c *conn) proto(b []byte) []byte {
	if c.classic {
		return b
	}
	return append(b, `,"proto":2`...)
}

// register creates the account name/pass and remembers its id.
func (c *conn) register(name, pass string) error {
	b := c.proto([]byte(`{"msgid":4`))
	b = append(b, `,"name":`...)
	b = appendJSONString(b, name)
	b = append(b, `,"password":`...)
	b = appendJSONString(b, pass)
	f, err := c.call(b, 5)
	if err != nil {
		return err
	}
	c.user, c.name, c.pass = f.id, name, pass
	return nil
}

// login logs in with the password (token empty) or the session token.
func (c *conn) login(id int64, pass, token string) error {
	b := c.proto([]byte(`{"msgid":1`))
	if token != "" {
		b = append(b, `,"token":`...)
		b = appendJSONString(b, token)
	} else {
		b = append(b, `,"id":`...)
		b = strconv.AppendInt(b, id, 10)
		b = append(b, `,"password":`...)
		b = appendJSONString(b, pass)
	}
	f, err := c.call(b, 2)
	if err != nil {
		return err
	}
	c.user = id
	if f.id != 0 {
		c.user = f.id
	}
	if len(f.token) > 0 {
		c.token = string(f.token)
	}
	return nil
}

// createGroup creates a group (native: answered with its id).
func (c *conn) createGroup(name string) (int64, error) {
	b := []byte(`{"msgid":8,"groupname":`)
	b = appendJSONString(b, name)
	b = append(b, `,"groupdesc":"chatbench"`...)
	f, err := c.call(b, 11)
	if err != nil {
		return 0, err
	}
	if f.groupid == 0 {
		return 0, clusterchat.Errorf(clusterchat.EINVALID, "create group reply without groupid")
	}
	return f.groupid, nil
}

// joinGroup joins group g.
func (c *conn) joinGroup(g int64) error {
	b := []byte(`{"msgid":9,"groupid":`)
	b = strconv.AppendInt(b, g, 10)
	_, err := c.call(b, 11)
	return err
}

func (c *conn) close() { _ = c.nc.Close() }
