package server

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sndWndEnd is how many bytes of struct tcp_info a kernel must return for
// tcpi_snd_wnd (the peer's advertised window, Linux 6.2 and later).
var sndWndEnd = int(unsafe.Offsetof(unix.TCPInfo{}.Snd_wnd) + unsafe.Sizeof(unix.TCPInfo{}.Snd_wnd))

// recordReady reports whether a record of n bytes written now leaves whole
// and at once: the kernel has sent everything written before (nothing
// unsent), and the peer's receive window has room for all n bytes beyond
// what is in flight, so the kernel never cuts the record to fill a smaller
// window (a window probe). Without tcpi_snd_wnd (kernels before 6.2) only
// the first holds.
func (c *conn) recordReady(n int) (bool, error) {
	var info unix.TCPInfo
	var outq int32
	var errno syscall.Errno
	size := uint32(unsafe.Sizeof(info))
	err := c.raw.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall6(syscall.SYS_GETSOCKOPT, fd, syscall.IPPROTO_TCP, syscall.TCP_INFO,
			uintptr(unsafe.Pointer(&info)), uintptr(unsafe.Pointer(&size)), 0)
		if errno == 0 {
			// Bytes not yet acknowledged, unsent ones included.
			_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCOUTQ, uintptr(unsafe.Pointer(&outq)))
		}
	})
	if err != nil {
		return false, err
	}
	if errno == syscall.ENOPROTOOPT || errno == syscall.EOPNOTSUPP || errno == syscall.ENOTTY {
		return true, nil // not TCP (a Unix socket in a test): nothing to wait for
	}
	if errno != 0 {
		return false, errno
	}
	if info.Notsent_bytes > 0 {
		return false, nil
	}
	if int(size) < sndWndEnd {
		return true, nil
	}
	return int(info.Snd_wnd)-int(outq) >= n, nil
}
