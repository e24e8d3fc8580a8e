package e2e

import (
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"clusterchat/internal/testenv"
)

// cutProxy is a loopback TCP proxy between clients and a server (or nginx)
// that can cut live connections on command, both sides at once and
// abruptly (RST, no FIN), as a network failure or a crashed NAT would. The
// no-loss tests put the Go clients behind it to drop their connections at
// random moments, in the middle of a send or a sync.
type cutProxy struct {
	tb     testing.TB
	ln     net.Listener
	target string

	mu     sync.Mutex
	conns  map[*proxied]struct{}
	closed bool
	wg     sync.WaitGroup // the accept loop and every pump

	accepted atomic.Int64 // client connections taken
	cut      atomic.Int64 // connections cut on command
	dialErrs atomic.Int64 // client connections dropped because the target refused
}

// proxied is one client connection and its upstream.
type proxied struct {
	client, upstream net.Conn
	once             sync.Once
}

// kill closes both sides; with abort they reset instead of closing. It
// reports whether this call did it (a connection already ending is left as
// it is, and not counted as cut).
func (pc *proxied) kill(abort bool) (did bool) {
	pc.once.Do(func() {
		did = true
		for _, c := range []net.Conn{pc.client, pc.upstream} {
			if tc, ok := c.(*net.TCPConn); ok && abort {
				_ = tc.SetLinger(0) // close sends RST: the peer sees a reset, not an orderly end
			}
			c.Close()
		}
	})
	return did
}

// startCutProxy listens on a free loopback port and forwards every
// connection to target. It is closed, with every connection, when tb ends.
func startCutProxy(tb testing.TB, target string) *cutProxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("cut proxy: listen: %v", err)
	}
	p := &cutProxy{tb: tb, ln: ln, target: target, conns: map[*proxied]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	tb.Cleanup(p.close)
	return p
}

// Addr is where clients connect.
func (p *cutProxy) Addr() string { return p.ln.Addr().String() }

func (p *cutProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// A transient accept error (e.g. out of files): do not spin.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		p.accepted.Add(1)
		p.wg.Add(1)
		go p.serve(c)
	}
}

// serve dials the target for client c and pumps bytes both ways until
// either side ends or the connection is cut.
func (p *cutProxy) serve(c net.Conn) {
	defer p.wg.Done()
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		// The target is down (a server being restarted): the client sees
		// its connection reset and retries, as with a dead server.
		p.dialErrs.Add(1)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		c.Close()
		return
	}
	pc := &proxied{client: c, upstream: up}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		pc.kill(true)
		return
	}
	p.conns[pc] = struct{}{}
	p.mu.Unlock()

	var pumps sync.WaitGroup
	pumps.Add(2)
	pump := func(dst, src net.Conn) {
		defer pumps.Done()
		_, _ = io.Copy(dst, src)
		// One direction ended (an orderly close or an error): end the
		// other too, as a plain TCP hop would after a close.
		pc.kill(false)
	}
	go pump(up, c)
	go pump(c, up)
	pumps.Wait()

	p.mu.Lock()
	delete(p.conns, pc)
	p.mu.Unlock()
}

// live returns the connections open now.
func (p *cutProxy) live() []*proxied {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*proxied, 0, len(p.conns))
	for pc := range p.conns {
		out = append(out, pc)
	}
	return out
}

// Live counts the connections open now.
func (p *cutProxy) Live() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// CutAll resets every live connection and returns how many it cut.
func (p *cutProxy) CutAll() int {
	n := 0
	for _, pc := range p.live() {
		if pc.kill(true) {
			n++
		}
	}
	p.cut.Add(int64(n))
	return n
}

// CutRandom resets each live connection with probability frac and returns
// how many it cut.
func (p *cutProxy) CutRandom(rng *rand.Rand, frac float64) int {
	n := 0
	for _, pc := range p.live() {
		if rng.Float64() < frac && pc.kill(true) {
			n++
		}
	}
	p.cut.Add(int64(n))
	return n
}

// close stops accepting, resets every connection and waits for the pumps.
func (p *cutProxy) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.ln.Close()
	for _, pc := range p.live() {
		pc.kill(true)
	}
	p.wg.Wait()
}

// TestCutProxy: bytes go through both ways; CutAll resets both sides of a
// live connection (the client's read fails at once, and so does the
// server's); new connections work after a cut; a dead target resets the
// client's connection.
func TestCutProxy(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serverEnded := make(chan error, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				// Echo until the connection ends; report how it ended.
				_, err := io.Copy(c, c)
				if err == nil {
					err = io.EOF
				}
				serverEnded <- err
				c.Close()
			}()
		}
	}()
	p := startCutProxy(t, ln.Addr().String())

	roundTrip := func(c net.Conn, msg string) error {
		c.SetDeadline(time.Now().Add(readTimeout))
		if _, err := io.WriteString(c, msg); err != nil {
			return err
		}
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(c, buf); err != nil {
			return err
		}
		if string(buf) != msg {
			t.Fatalf("echo %q, want %q", buf, msg)
		}
		return nil
	}

	for round := range 2 {
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := roundTrip(c, "hello"); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if n := p.CutAll(); n != 1 {
			t.Fatalf("round %d: CutAll cut %d connections, want 1", round, n)
		}
		c.SetReadDeadline(time.Now().Add(readTimeout))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatalf("round %d: read after the cut succeeded", round)
		}
		select {
		case <-serverEnded:
		case <-time.After(readTimeout):
			t.Fatalf("round %d: the server side did not end after the cut", round)
		}
	}
	// The pumps unwind after the cut.
	testenv.WaitFor(t, readTimeout, "no live connection after the cuts", func() bool { return p.Live() == 0 })

	// A target that is gone: the client is dropped, not left hanging. The
	// reset may even beat the end of the client's connect on loopback.
	ln.Close()
	if c, err := net.Dial("tcp", p.Addr()); err == nil {
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(readTimeout))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("read through a proxy whose target is gone succeeded")
		}
	}
	testenv.WaitFor(t, readTimeout, "the refused upstream dial counted", func() bool { return p.dialErrs.Load() == 1 })
}
