package client

import (
	"context"
	"net"
	"sync"
	"time"

	"clusterchat/proto"

	"clusterchat"
)

// conn is one TCP connection: a read goroutine that routes replies to the
// waiting request by rid and hands everything else to the Client, and a
// write path serialised by wmu. A conn is never reused after it fails; the
// Client dials a new one.
type conn struct {
	nc           net.Conn
	writeTimeout time.Duration

	wmu sync.Mutex // one writer at a time: each object goes out in one Write

	mu      sync.Mutex
	pending map[int64]chan *proto.Frame // rid -> waiting request (buffered 1)
	err     error                       // set once, when the conn failed
	done    chan struct{}               // closed when the conn failed
}

func newConn(nc net.Conn, writeTimeout time.Duration) *conn {
	return &conn{nc: nc, writeTimeout: writeTimeout, pending: map[int64]chan *proto.Frame{}, done: make(chan struct{})}
}

// readLoop decodes frames until the connection fails. Replies go to their
// request; other frames (events, live messages) go to onEvent, in arrival
// order, on this goroutine. onEvent must not block on the network.
func (cn *conn) readLoop(onEvent func(*conn, *proto.Frame)) error {
	r := proto.NewReader(cn.nc, 16<<10, maxReply)
	for {
		b, err := r.Next()
		if err == nil {
			f := new(proto.Frame)
			if err = proto.DecodeFrame(b, f); err == nil {
				cn.route(f, onEvent)
				continue
			}
		}
		cn.fail(err)
		return err
	}
}

// route hands a reply to its waiting request and anything else to onEvent.
func (cn *conn) route(f *proto.Frame, onEvent func(*conn, *proto.Frame)) {
	if f.RID == 0 || !f.IsReply() {
		onEvent(cn, f)
		return
	}
	cn.mu.Lock()
	ch := cn.pending[f.RID]
	delete(cn.pending, f.RID)
	cn.mu.Unlock()
	if ch != nil {
		ch <- f
	} // else a reply nobody waits for any more (timed out): drop it
}

// fail closes the connection and wakes every waiting request.
func (cn *conn) fail(err error) {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cn.err != nil {
		return
	}
	cn.err = err
	cn.nc.Close()
	close(cn.done)
	cn.pending = nil
}

// lostErr is how a request learns its connection died under it.
func (cn *conn) lostErr() error {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return errLost(cn.err)
}

func errLost(cause error) error {
	msg := "connection lost"
	if cause != nil {
		msg += ": " + cause.Error()
	}
	return &clusterchat.Error{Code: clusterchat.EUNAVAILABLE, Message: msg}
}

// roundTrip sends req with rid and waits for its reply, the connection's
// failure, or ctx. A reply with errno != 0 becomes *Error.
func (cn *conn) roundTrip(ctx context.Context, rid int64, req proto.Req) (*proto.Frame, error) {
	b := append(req.AppendNative(make([]byte, 0, 128), rid), '\n')
	ch := make(chan *proto.Frame, 1)
	cn.mu.Lock()
	if cn.err != nil {
		cn.mu.Unlock()
		return nil, cn.lostErr()
	}
	cn.pending[rid] = ch
	cn.mu.Unlock()
	defer func() {
		cn.mu.Lock()
		if cn.pending != nil {
			delete(cn.pending, rid)
		}
		cn.mu.Unlock()
	}()

	cn.wmu.Lock()
	cn.nc.SetWriteDeadline(time.Now().Add(cn.writeTimeout))
	_, err := cn.nc.Write(b)
	cn.wmu.Unlock()
	if err != nil {
		// A partial write leaves the stream unusable.
		cn.fail(err)
		return nil, cn.lostErr()
	}
	select {
	case f := <-ch:
		return f, f.Err()
	case <-cn.done:
		// The reply may have raced the failure.
		select {
		case f := <-ch:
			return f, f.Err()
		default:
		}
		return nil, cn.lostErr()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
