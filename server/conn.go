package server

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"clusterchat/proto"
)

// outItem is one queued object. conv and seq are set for chat messages, so
// that once the bytes are written the user's delivered cursor can move.
type outItem struct {
	b    []byte
	conv string
	seq  int64
	user int64
}

// conn is one client connection. Its read loop (serve) is the only reader;
// send is the only way to write, from any goroutine.
type conn struct {
	srv *Server
	nc  net.Conn

	mu       sync.Mutex
	pending  []outItem
	spare    []outItem
	queued   int  // bytes in pending
	flushing bool // a goroutine owns the socket's write side
	closed   bool
	classic  bool // write objects one per write (the classic client reads one object per recv)

	sess *session // current session; only the read loop changes it
	reqs bucket   // request rate limit (ratelimit.go); only the read loop touches it

	// addr is the client's real address: from the PROXY header or
	// X-Forwarded-For of a trusted proxy, else the peer's. Every
	// per-address rule keys on it (see clientAddr); set before serve.
	addr     netip.Addr
	counted  bool // admitted by the connection limits (limits.go)
	prelogin bool // counted as not logged in; only the read loop changes it

	raw syscall.RawConn // for non-blocking write attempts; nil if the connection has no fd
}

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{srv: s, nc: nc, classic: true}
	if sc, ok := nc.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			c.raw = raw
		}
	}
	return c
}

// serve is the connection's read loop. It returns when the connection ends.
func (c *conn) serve() {
	defer c.close()
	r := c.newReader()
	var q proto.Request
	for {
		frame, err := r.Next()
		if err != nil {
			switch {
			case errors.Is(err, proto.ErrFrameTooLarge), errors.Is(err, proto.ErrGarbage), errors.Is(err, proto.ErrInvalidJSON), isLimit(err):
				c.sendDirect(proto.AppendError(nil, 0, 0, c.native(), err))
				c.srv.log.Info("closing connection", "remote", c.nc.RemoteAddr().String(), "reason", err.Error())
				c.srv.metrics.errors.WithLabelValues(errLabel(err)).Inc()
			case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
			default:
				c.srv.log.Debug("read", "remote", c.nc.RemoteAddr().String(), "err", err)
			}
			return
		}
		c.srv.handle(c, frame, &q)
	}
}

func (c *conn) native() bool { return c.sess != nil && c.sess.native }

// setClassic switches the write mode when a session declares its protocol.
func (c *conn) setClassic(classic bool) {
	c.mu.Lock()
	c.classic = classic
	c.mu.Unlock()
}

// sendDirect queues a reply from the read loop and, when the socket is free,
// writes it at once from the read loop itself (no goroutine, no extra hop).
func (c *conn) sendDirect(b []byte) {
	c.enqueue(outItem{b: appendNL(b)}, true)
}

// send queues an object for the connection from any goroutine; a flush
// goroutine writes it. It never blocks on the socket.
func (c *conn) send(it outItem) { c.enqueue(it, false) }

func appendNL(b []byte) []byte { return append(b, '\n') }

func (c *conn) enqueue(it outItem, direct bool) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	if c.queued+len(it.b) > c.srv.cfg.MaxQueue {
		c.closed = true
		c.pending = nil
		c.mu.Unlock()
		c.srv.metrics.slowConsumers.Inc()
		c.srv.log.Warn("slow consumer disconnected", "remote", c.nc.RemoteAddr().String(), "queued_bytes", c.queued)
		c.nc.Close()
		return
	}
	if c.flushing {
		c.pending = append(c.pending, it)
		c.queued += len(it.b)
		c.mu.Unlock()
		return
	}
	c.flushing = true
	if direct || c.raw == nil || len(c.pending) > 0 {
		c.pending = append(c.pending, it)
		c.queued += len(it.b)
		c.mu.Unlock()
		if direct {
			c.flush()
			return
		}
		c.startFlusher()
		return
	}
	c.mu.Unlock()
	// The socket is free and nothing waits: try to write at once from this
	// goroutine, without blocking. Only what the kernel does not take goes
	// to the queue and a flush goroutine.
	n, err := c.tryWrite(it.b)
	if err != nil {
		c.fail(err)
		return
	}
	if n == len(it.b) && it.conv != "" {
		c.srv.cursors.markDelivered(it.user, it.conv, it.seq)
		c.srv.metrics.delivered.Inc()
	}
	c.mu.Lock()
	if n < len(it.b) {
		// The rest goes first; a classic client gets it as the tail of
		// the same object, which is all it can be.
		rest := it
		rest.b = it.b[n:]
		c.pending = append([]outItem{rest}, c.pending...)
		c.queued += len(rest.b)
	}
	if len(c.pending) == 0 || c.closed {
		c.flushing = false
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	c.startFlusher()
}

// tryWrite writes b with one non-blocking write: it returns how much the
// kernel took (0 when the socket buffer is full).
func (c *conn) tryWrite(b []byte) (int, error) {
	var n int
	var werr error
	err := c.raw.Write(func(fd uintptr) bool {
		n, werr = syscall.Write(int(fd), b)
		return true // never wait for the socket: the flush goroutine does
	})
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return 0, nil // a flush's deadline still set: let the flush goroutine write
	}
	if err != nil {
		return 0, err
	}
	if werr == syscall.EAGAIN || werr == syscall.EINTR {
		return 0, nil
	}
	if werr != nil {
		return 0, werr
	}
	return max(n, 0), nil
}

// fail closes the connection after a write error; the read loop then ends
// the session.
func (c *conn) fail(err error) {
	c.srv.log.Debug("write failed; closing", "remote", c.nc.RemoteAddr().String(), "err", err)
	c.mu.Lock()
	c.closed = true
	c.pending = nil
	c.flushing = false
	c.mu.Unlock()
	c.nc.Close()
}

func (c *conn) startFlusher() {
	c.srv.wg.Add(1)
	go func() {
		defer c.srv.wg.Done()
		c.flush()
	}()
}

// flush writes everything queued until the queue is empty. Only the holder
// of c.flushing runs it. Native sessions get everything in one writev;
// classic sessions one object per write.
func (c *conn) flush() {
	for {
		c.mu.Lock()
		if len(c.pending) == 0 || c.closed {
			c.flushing = false
			c.mu.Unlock()
			return
		}
		batch := c.pending
		c.pending, c.spare = c.spare[:0], nil
		c.queued = 0
		classic := c.classic
		c.mu.Unlock()

		c.nc.SetWriteDeadline(time.Now().Add(c.srv.cfg.WriteWait))
		var err error
		if classic || len(batch) == 1 {
			for i := range batch {
				if _, err = c.nc.Write(batch[i].b); err != nil {
					break
				}
			}
		} else {
			bufs := make(net.Buffers, len(batch))
			for i := range batch {
				bufs[i] = batch[i].b
			}
			if bw, ok := c.nc.(buffersWriter); ok {
				err = bw.WriteBuffers(bufs) // a WebSocket: every message in one write
			} else {
				_, err = bufs.WriteTo(c.nc)
			}
		}
		if err != nil {
			c.fail(err)
			return
		}
		// Clear the deadline, or a later non-blocking attempt would
		// find it expired.
		c.nc.SetWriteDeadline(time.Time{})
		delivered := 0
		for i := range batch {
			if batch[i].conv != "" {
				c.srv.cursors.markDelivered(batch[i].user, batch[i].conv, batch[i].seq)
				delivered++
			}
			batch[i] = outItem{}
		}
		c.srv.metrics.delivered.Add(float64(delivered))
		c.mu.Lock()
		if c.spare == nil {
			c.spare = batch[:0]
		}
		c.mu.Unlock()
	}
}

// buffersWriter is a transport that writes several objects at once in its
// own framing (wsnet.Conn: one WebSocket message each, one socket write in
// all); net.Buffers.WriteTo would hand it one object per Write.
type buffersWriter interface{ WriteBuffers([][]byte) error }

// close ends the session (if any) and the connection. Only the read loop
// calls it.
func (c *conn) close() {
	if c.sess != nil {
		c.srv.endSession(c.sess)
		c.sess = nil
	}
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.nc.Close()
	c.srv.dropConn(c)
	if c.counted {
		c.srv.limits.release(c.addr, c.prelogin)
	}
}

// clientAddr is the client's real address (behind a trusted proxy, the one
// it named), for per-address limits and logs.
func (c *conn) clientAddr() netip.Addr { return c.addr }

// shutdown tells a native session to reconnect elsewhere, lets the queue
// drain for a moment and closes the socket, which ends the read loop.
func (c *conn) shutdown(notice []byte) {
	if notice != nil {
		c.send(outItem{b: notice})
	}
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		done := !c.flushing && len(c.pending) == 0
		c.mu.Unlock()
		if done {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.nc.Close()
}
