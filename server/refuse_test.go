package server

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

	"clusterchat"
	"clusterchat/internal/testenv"
)

// TestRefuseDrainBound: a refused connection is read until its client
// closes (so the error reply is not lost to a reset), but at most
// maxDraining at once; the next refusal closes at once, so clients that
// never close cannot hold sockets past the bound.
func TestRefuseDrainBound(t *testing.T) {
	// No refusal of an earlier test's server may be draining (or reading
	// the two variables) when they change.
	testenv.WaitFor(t, 10*time.Second, "no refusal draining", func() bool { return draining.Load() == 0 })
	oldDrain, oldMax := refuseDrain, maxDraining
	refuseDrain, maxDraining = time.Minute, 2
	t.Cleanup(func() { refuseDrain, maxDraining = oldDrain, oldMax })

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	refused := clusterchat.Errorf(clusterchat.ERATELIMIT, "too many connections from your address")
	done := make(chan struct{}, 3)
	open := func() net.Conn {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		sc, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			refuse(sc, refused, time.Minute)
			done <- struct{}{}
		}()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || !strings.Contains(line, `"errno"`) {
			t.Fatalf("refusal reply %q, %v", line, err)
		}
		return c
	}
	held := []net.Conn{open(), open()}
	testenv.WaitFor(t, 10*time.Second, "two refusals draining", func() bool { return draining.Load() == 2 })

	// The third refusal closes without draining: refuse returns while its
	// client is still open, and the two drains go on.
	open()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("a refusal past the bound of %d is draining too (draining = %d)", maxDraining, draining.Load())
	}
	if n := draining.Load(); n != 2 {
		t.Fatalf("draining = %d, want the first two", n)
	}
	for _, c := range held {
		c.Close() // their drains see EOF and end
	}
	<-done
	<-done
	if n := draining.Load(); n != 0 {
		t.Fatalf("draining = %d after every refusal ended", n)
	}
}
