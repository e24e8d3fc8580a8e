package bench

import (
	"context"
	"net"
	"sync"
	"time"

	"clusterchat/proto"

	"clusterchat"
	"clusterchat/internal/wsnet"
)

// setupTimeout bounds each setup request (register hashes a password, which
// is slow on a loaded box, hence generous).
const setupTimeout = 60 * time.Second

// conn is one client connection. Setup runs request/response on it
// synchronously; during the measured run one goroutine reads it and writers
// serialise on mu, appending a whole batch before one Write.
type conn struct {
	nc      net.Conn
	fr      *proto.Reader
	classic bool
	mu      sync.Mutex
	rid     int64
	f       proto.FrameView

	user  int64 // account id
	name  string
	pass  string
	token string
}

// maxFrame bounds one incoming JSON object. Replies are small, but a
// login reply lists friends and groups, so allow more than a request.
const maxFrame = 2 * clusterchat.MaxFrame

// dial connects to addr from the loopback source address src ("" = any).
func dial(ctx context.Context, addr, src string, bufSize int) (*conn, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
		d.Control = bindNoPort
	}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return &conn{nc: nc, fr: proto.NewReader(nc, bufSize, maxFrame)}, nil
}

// dialWS opens a WebSocket to ws://addr/ws (a chatserver's HTTP listener):
// the same JSON objects, one per text message.
func dialWS(ctx context.Context, addr string, bufSize int) (*conn, error) {
	nc, err := wsnet.Dial(ctx, "ws://"+addr+"/ws", "")
	if err != nil {
		return nil, err
	}
	return &conn{nc: nc, fr: proto.NewReader(nc, bufSize, maxFrame)}, nil
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

// classicReq is a request the classic protocol has.
type classicReq interface {
	proto.Req
	AppendClassic(b []byte) []byte
}

// call sends req, with a fresh rid when native, and waits for the reply with
// msgid want (classic) or the same rid (native), skipping events in between.
// The reply is left in c.f.
func (c *conn) call(req classicReq, want int64) (*proto.FrameView, error) {
	var b []byte
	if c.classic {
		b = req.AppendClassic(nil)
	} else {
		c.rid++
		b = req.AppendNative(nil, c.rid)
	}
	b = c.term(b)
	_ = c.nc.SetDeadline(time.Now().Add(setupTimeout))
	defer c.nc.SetDeadline(time.Time{})
	if err := c.write(b); err != nil {
		return nil, err
	}
	for {
		b, err := c.fr.Next()
		if err != nil {
			return nil, err
		}
		if err := proto.ScanFrame(b, &c.f); err != nil {
			return nil, err
		}
		if c.classic {
			if c.f.MsgID == want || c.f.MsgID == proto.Reply {
				break
			}
			continue
		}
		if c.f.RID == c.rid && (c.f.MsgID == want || c.f.MsgID == proto.Reply) {
			break
		}
	}
	if c.f.Errno != 0 {
		return &c.f, clusterchat.Errorf(int(c.f.Errno), "msgid %d: %s", c.f.MsgID, c.f.Errmsg)
	}
	return &c.f, nil
}

// register creates the account name/pass and remembers its id.
func (c *conn) register(name, pass string) error {
	f, err := c.call(&proto.RegisterReq{Name: name, Password: pass}, proto.RegisterAck)
	if err != nil {
		return err
	}
	c.user, c.name, c.pass = f.ID, name, pass
	return nil
}

// login logs in with the password (token empty) or the session token.
func (c *conn) login(id int64, pass, token string) error {
	f, err := c.call(&proto.LoginReq{ID: id, Password: pass, Token: token}, proto.LoginAck)
	if err != nil {
		return err
	}
	c.user = id
	if f.ID != 0 {
		c.user = f.ID
	}
	if len(f.Token) > 0 {
		c.token = string(f.Token)
	}
	return nil
}

// createGroup creates a group (native: answered with its id).
func (c *conn) createGroup(name string) (int64, error) {
	f, err := c.call(&proto.CreateGroupReq{Name: name, Desc: "chatbench"}, proto.Reply)
	if err != nil {
		return 0, err
	}
	if f.GroupID == 0 {
		return 0, clusterchat.Errorf(clusterchat.EINVALID, "create group reply without groupid")
	}
	return f.GroupID, nil
}

// joinGroup joins group g.
func (c *conn) joinGroup(g int64) error {
	_, err := c.call(&proto.AddGroupReq{GroupID: g}, proto.Reply)
	return err
}

func (c *conn) close() { _ = c.nc.Close() }
