package server_test

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"clusterchat/internal/wiretest"
	"clusterchat/server"
)

// TestReadLoopNeverWaitsOnWrites: a client that stops reading while its
// replies pile up still has its requests served. It sends 50,000 PINGs
// without reading a reply (more than its socket buffers hold) and then a
// chat message, which its friend must receive: the read loop never sits in
// a write to the stalled socket, which could last WriteWait (a minute here).
func TestReadLoopNeverWaitsOnWrites(t *testing.T) {
	ts := wiretest.StartServer(t, func(c *server.Config) { c.WriteWait = time.Minute })
	alice, bob := newUser(t, ts, "alice"), newUser(t, ts, "bob")
	b, _ := bob.native(t, ts)

	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) {
			syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 1) // as small as the kernel allows
		})
	}}
	nc, err := d.Dial("tcp", ts.TCP)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	a := wiretest.Wrap(t, nc, bufio.NewReaderSize(nc, 4096), new(atomic.Int64), readTimeout)
	a.NativeLogin(alice.id, alice.pw)

	var reqs bytes.Buffer
	for i := range 50000 {
		fmt.Fprintf(&reqs, `{"msgid":18,"rid":%d}`+"\x00", 100+i)
	}
	fmt.Fprintf(&reqs, `{"msgid":6,"rid":99,"to":%d,"msg":"still served"}`+"\x00", bob.id)
	go func() {
		nc.SetWriteDeadline(time.Now().Add(time.Minute))
		nc.Write(reqs.Bytes()) // the server reads it all while alice reads nothing
	}()
	b.Expect(6, "id", alice.id, "msg", "still served")
}
