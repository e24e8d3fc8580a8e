package testenv

import (
	"net"
	"testing"
	"time"
)

// DialFrom connects to addr over TCP from the local address src. On Linux
// all of 127.0.0.0/8 is loopback, so a test can be clients at several
// addresses (for per-address limits) on one machine. The connection is
// closed when tb ends.
func DialFrom(tb testing.TB, addr, src string, timeout time.Duration) net.Conn {
	tb.Helper()
	d := net.Dialer{Timeout: timeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		tb.Fatalf("dial %s from %s: %v", addr, src, err)
	}
	tb.Cleanup(func() { nc.Close() })
	return nc
}
