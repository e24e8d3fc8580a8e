package server

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
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
	// size is what the item counts against Config.MaxQueue: the bytes it
	// puts on the wire (a classic record's padding included).
	size int
	// framed: b is already on-wire bytes (the rest of a record a
	// non-blocking write did not finish), written as they are.
	framed bool
}

// conn is one client connection. Its read loop (serve) is the only reader;
// send is the only way to write, from any goroutine, the read loop included:
// it never blocks on the socket.
//
// Bytes accepted by send and not yet written (queued) never exceed
// Config.MaxQueue: the send that would pass it closes the connection (a slow
// consumer).
type conn struct {
	srv *Server
	nc  net.Conn

	mu       sync.Mutex
	pending  []outItem
	spare    []outItem
	queued   int  // bytes accepted and not yet written: pending and what a flush is writing
	flushing bool // a goroutine owns the socket's write side
	closed   bool
	classic  bool // one object per write; on a TCP socket one paced record (records)
	// writing: the holder of flushing has written (or is writing) bytes
	// whose items are not accounted for yet (settle)
	writing bool

	sess *session // current session; only the read loop changes it
	reqs bucket   // request rate limit (ratelimit.go); only the read loop touches it

	// addr is the client's real address: from the PROXY header or
	// X-Forwarded-For of a trusted proxy, else the peer's. Every
	// per-address rule keys on it (see clientAddr); set before serve.
	addr     netip.Addr
	counted  bool // admitted by the connection limits (limits.go)
	prelogin bool // counted as not logged in; only the read loop changes it

	raw syscall.RawConn // for non-blocking writes and send-queue checks; nil if the connection has no fd
	rec []byte          // a classic record being built; only the holder of flushing uses it
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
				c.drain()
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

// sendDirect sends a reply from the read loop: one non-blocking write when
// the socket is free, else the flush goroutine writes it. Like send, it
// never blocks the read loop on the socket.
func (c *conn) sendDirect(b []byte) { c.send(outItem{b: appendNL(b)}) }

func appendNL(b []byte) []byte { return append(b, '\n') }

// send queues an object for the connection from any goroutine. When the
// socket is free and nothing waits, it writes at once with one non-blocking
// write from the calling goroutine; what the kernel does not take goes to
// the queue and a flush goroutine. It never blocks on the socket.
func (c *conn) send(it outItem) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	it.size = len(it.b)
	if c.records() {
		it.size = proto.ClassicRecordLen(len(it.b))
	}
	if c.queued+it.size > c.srv.cfg.MaxQueue {
		queued := c.queued
		c.closed = true
		c.pending = nil
		c.mu.Unlock()
		c.srv.metrics.slowConsumers.Inc()
		c.srv.log.Warn("slow consumer disconnected", "remote", c.nc.RemoteAddr().String(), "queued_bytes", queued)
		c.nc.Close()
		return
	}
	c.queued += it.size
	if c.flushing || c.raw == nil {
		c.pending = append(c.pending, it)
		start := !c.flushing
		c.flushing = true
		c.mu.Unlock()
		if start {
			c.startFlusher()
		}
		return
	}
	c.flushing = true
	c.writing = true
	records := c.records()
	c.mu.Unlock()

	// The socket is ours and nothing waits: try to write at once from this
	// goroutine, without blocking.
	b := it.b
	if records {
		if ok, err := c.recordReady(it.size); err != nil || !ok {
			// The previous record is still in the kernel's queue (a new
			// write would join its segment), or the peer's window is too
			// small for this one: the flush goroutine waits.
			c.requeue(it)
			return
		}
		c.rec = proto.AppendClassicRecord(c.rec[:0], it.b)
		b = c.rec
	}
	n, err := c.tryWrite(b)
	if err != nil {
		c.fail(err)
		return
	}
	if n < len(b) {
		// The rest goes first; a classic client gets it as the tail of
		// the same record.
		rest := it
		rest.b = append([]byte(nil), b[n:]...)
		rest.framed = true
		c.mu.Lock()
		c.queued -= it.size - len(rest.b)
		rest.size = len(rest.b)
		c.mu.Unlock()
		c.requeue(rest)
		return
	}
	c.written(it)
	c.mu.Lock()
	if len(c.pending) == 0 || c.closed {
		c.flushing = false
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	c.startFlusher()
}

// queuedBytes returns the bytes accepted and not yet written.
func (c *conn) queuedBytes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.queued
}

// records reports whether objects go out as classic records (writeRecord):
// to a classic session on a TCP socket. Not over WebSocket or TLS, which the
// original client does not speak. The caller holds c.mu.
func (c *conn) records() bool { return c.classic && c.raw != nil }

// requeue puts it at the head of the queue (its bytes are already counted
// in queued) and starts a flush goroutine. The caller holds flushing.
func (c *conn) requeue(it outItem) {
	c.mu.Lock()
	c.writing = false
	if c.closed {
		c.flushing = false
		c.mu.Unlock()
		return
	}
	c.pending = append(c.pending, outItem{})
	copy(c.pending[1:], c.pending)
	c.pending[0] = it
	c.mu.Unlock()
	c.startFlusher()
}

// written accounts for an item whose bytes all reached the kernel.
func (c *conn) written(it outItem) {
	if it.conv != "" {
		c.srv.cursors.markDelivered(it.user, it.conv, it.seq)
		c.srv.metrics.delivered.Inc()
	}
	c.mu.Lock()
	c.queued -= it.size
	c.writing = false
	c.mu.Unlock()
}

// settle waits (at most Config.WriteWait) until no write of the connection
// is between the kernel taking its bytes and their delivered cursors
// moving, so that cursors saved after it cover everything the client can
// have read. Classic records are written into an empty send queue, so the
// wait is that of one non-blocking write.
func (c *conn) settle() {
	c.awaitState(c.srv.cfg.WriteWait, func() bool { return !c.writing || c.closed })
}

// awaitState waits at most d until cond, checked under c.mu, holds.
func (c *conn) awaitState(d time.Duration, cond func() bool) {
	await(time.Now().Add(d), c.srv.cfg.PaceInterval, func() (bool, error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		return cond(), nil
	})
}

// spinFor is how long await yields the processor before it sleeps: what
// it waits for usually takes microseconds, and sleeps on a loaded machine
// last milliseconds whatever they ask for.
const spinFor = 100 * time.Microsecond

// await polls done until it reports true or an error, or deadline passes
// (os.ErrDeadlineExceeded). It yields the processor between polls for
// spinFor, then sleeps interval between them.
func await(deadline time.Time, interval time.Duration, done func() (bool, error)) error {
	start := time.Now()
	for {
		ok, err := done()
		if ok || err != nil {
			return err
		}
		now := time.Now()
		if now.After(deadline) {
			return os.ErrDeadlineExceeded
		}
		if now.Sub(start) < spinFor {
			runtime.Gosched()
		} else {
			time.Sleep(interval)
		}
	}
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
	c.writing = false
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
// classic sessions one record per write (writeRecord).
func (c *conn) flush() {
	for {
		c.mu.Lock()
		if len(c.pending) == 0 || c.closed {
			c.flushing = false
			c.mu.Unlock()
			return
		}
		if c.classic || c.pending[0].framed {
			it := c.pending[0]
			c.pending[0] = outItem{}
			c.pending = c.pending[1:]
			records := c.records()
			c.mu.Unlock()
			var err error
			if records && !it.framed {
				err = c.writeRecord(it.b)
			} else {
				c.setWriting()
				err = c.writeAll(it.b)
			}
			if err != nil {
				c.fail(err)
				return
			}
			c.written(it)
			continue
		}
		batch := c.pending
		c.pending, c.spare = c.spare[:0], nil
		c.writing = true
		c.mu.Unlock()

		var err error
		if len(batch) == 1 {
			err = c.writeAll(batch[0].b)
		} else {
			bufs := make(net.Buffers, len(batch))
			for i := range batch {
				bufs[i] = batch[i].b
			}
			c.nc.SetWriteDeadline(time.Now().Add(c.srv.cfg.WriteWait))
			if bw, ok := c.nc.(buffersWriter); ok {
				err = bw.WriteBuffers(bufs) // a WebSocket: every message in one write
			} else {
				_, err = bufs.WriteTo(c.nc)
			}
			c.nc.SetWriteDeadline(time.Time{})
		}
		if err != nil {
			c.fail(err)
			return
		}
		size, delivered := 0, 0
		for i := range batch {
			size += batch[i].size
			if batch[i].conv != "" {
				c.srv.cursors.markDelivered(batch[i].user, batch[i].conv, batch[i].seq)
				delivered++
			}
			batch[i] = outItem{}
		}
		c.srv.metrics.delivered.Add(float64(delivered))
		c.mu.Lock()
		c.queued -= size
		c.writing = false
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

// writeAll writes b, blocking for at most Config.WriteWait. Only flush
// goroutines call it, never a read loop.
func (c *conn) writeAll(b []byte) error {
	c.nc.SetWriteDeadline(time.Now().Add(c.srv.cfg.WriteWait))
	_, err := c.nc.Write(b)
	// Clear the deadline, or a later non-blocking attempt would find it
	// expired.
	c.nc.SetWriteDeadline(time.Time{})
	return err
}

// writeRecord writes obj as one classic record (proto.AppendClassicRecord)
// in one write, once recordReady: the kernel has sent everything written
// before, so the record starts a segment of its own and is never cut at a
// segment boundary together with the previous one (a 1024-byte record fits
// any path's MSS), and the peer's window takes it whole, so it is not cut
// to fit a smaller one. With the records' fixed size this is what lets the
// classic client read exactly one object per recv; see docs/protocol.md.
// Waiting longer than Config.WriteWait fails the connection, like a blocked
// write. Only for c.records().
func (c *conn) writeRecord(obj []byte) error {
	n := proto.ClassicRecordLen(len(obj))
	// The congestion window or the peer's window may hold the bytes back;
	// they leave as ACKs and window updates come in.
	if err := await(time.Now().Add(c.srv.cfg.WriteWait), c.srv.cfg.PaceInterval, func() (bool, error) {
		return c.recordReady(n)
	}); err != nil {
		return err
	}
	c.rec = proto.AppendClassicRecord(c.rec[:0], obj)
	c.setWriting()
	// Into an empty send queue the kernel takes it whole at once: spare
	// the deadline setting of a blocking write.
	w, err := c.tryWrite(c.rec)
	if err != nil || w == len(c.rec) {
		return err
	}
	return c.writeAll(c.rec[w:])
}

func (c *conn) setWriting() {
	c.mu.Lock()
	c.writing = true
	c.mu.Unlock()
}

// drain waits until what is queued has been written (or Config.DrainWait
// has passed, or the connection failed).
func (c *conn) drain() {
	c.awaitState(c.srv.cfg.DrainWait, func() bool { return c.closed || (!c.flushing && len(c.pending) == 0) })
}

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
	c.drain()
	c.nc.Close()
}
