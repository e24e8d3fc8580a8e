package server

import (
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"clusterchat/internal/testenv"
)

// tcpPair returns both ends of a loopback TCP connection: the server's
// (accepted) and the client's; both are closed when tb ends.
func tcpPair(tb testing.TB) (srvSide, cli net.Conn) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	cli, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	srvSide, err = ln.Accept()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cli.Close(); srvSide.Close() })
	return srvSide, cli
}

// stalledPair returns the server side of a loopback TCP connection, as a
// conn of s, whose client side never reads: both socket buffers are made as
// small as the kernel allows, so the kernel holds little of what is written.
// The client side is returned to read what arrived, after the fact.
func stalledPair(t *testing.T, s *Server, classic bool) (*conn, net.Conn) {
	t.Helper()
	srvSide, cli := tcpPair(t)
	cli.(*net.TCPConn).SetReadBuffer(1)
	srvSide.(*net.TCPConn).SetWriteBuffer(1)
	c := newConn(s, srvSide)
	c.classic = classic
	return c, cli
}

func (c *conn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// TestQueueBound: a slow consumer is cut when the bytes accepted for it and
// not yet handed to the kernel would pass MaxQueue, counting those a flush
// goroutine is writing: what the server held at the cut (everything
// accepted minus everything that reached the peer) is at most MaxQueue, not
// near twice it, and no cut comes early.
// The peer reads a little once the queue is nearly full, so that a flush
// goroutine takes the whole queue to write while more comes.
func TestQueueBound(t *testing.T) {
	const maxQueue = 64 << 10
	for _, tc := range []struct {
		name    string
		classic bool
	}{{"native", false}, {"classic", true}} {
		t.Run(tc.name, func(t *testing.T) {
			s := New(Config{MaxQueue: maxQueue, WriteWait: time.Minute}, slog.New(slog.DiscardHandler))
			c, cli := stalledPair(t, s, tc.classic)
			obj := []byte(`{"msgid":6,"msg":"` + strings.Repeat("x", 900) + `"}` + "\n")
			size := len(obj)
			if tc.classic {
				size = 1024 // one record
			}
			accepted := 0
			send := func() {
				c.send(outItem{b: obj})
				if !c.isClosed() {
					accepted++
				}
			}
			// Nearly full, then the peer reads a little: the flush
			// goroutine's write ends and it takes the queue.
			for range maxQueue/size - 4 {
				send()
			}
			buf := make([]byte, 64<<10)
			got := 0
			for got < 16<<10 {
				cli.SetReadDeadline(time.Now().Add(10 * time.Second))
				n, err := cli.Read(buf)
				if err != nil {
					t.Fatalf("read: %v", err)
				}
				got += n
			}
			for !c.isClosed() {
				send()
				if accepted > 100*maxQueue/size {
					t.Fatalf("%d objects accepted and no cut", accepted)
				}
			}
			cli.(*net.TCPConn).SetReadBuffer(1 << 20)
			cli.SetReadDeadline(time.Now().Add(10 * time.Second))
			rest, err := io.ReadAll(cli)
			if err != nil {
				t.Fatalf("reading what reached the peer: %v", err)
			}
			got += len(rest)
			held := accepted*size - got
			t.Logf("accepted %d bytes, %d reached the peer, %d held at the cut", accepted*size, got, held)
			if held > maxQueue {
				t.Fatalf("held %d bytes at the cut, MaxQueue is %d", held, maxQueue)
			}
			if held <= maxQueue-2*size { // one object may be on its way at the cut
				t.Fatalf("cut with %d bytes held, before MaxQueue (%d) was reached", held, maxQueue)
			}
			s.wg.Wait()
		})
	}
}

// TestWriteWaitCuts: a peer that reads nothing is cut once a write (native)
// or the wait for the previous record to leave (classic) has lasted
// Config.WriteWait, long before its queue is full.
func TestWriteWaitCuts(t *testing.T) {
	for _, classic := range []bool{false, true} {
		s := New(Config{MaxQueue: 1 << 30, WriteWait: 200 * time.Millisecond}, slog.New(slog.DiscardHandler))
		c, _ := stalledPair(t, s, classic)
		obj := []byte(`{"msgid":6,"msg":"` + strings.Repeat("x", 900) + `"}` + "\n")
		for range 2000 {
			c.send(outItem{b: obj})
		}
		testenv.WaitFor(t, 10*time.Second, "the stalled connection cut after WriteWait", c.isClosed)
		s.wg.Wait()
	}
}
