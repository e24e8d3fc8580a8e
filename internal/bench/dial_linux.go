package bench

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// bindNoPort is the Dialer.Control of a connection with a chosen source
// address. Without IP_BIND_ADDRESS_NO_PORT, binding a source address picks
// the port at bind time, and the kernel then looks for one that no socket
// holds at all (TIME_WAIT ones included) across the whole ephemeral range:
// a storm of 1,000 reconnecting clients spent 22 s of system time in this
// tool for 14 s of run, and the tool, not the server, set the logins/s.
// With the option the port is chosen at connect, where only the full
// four-tuple has to be free.
func bindNoPort(_, _ string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}
