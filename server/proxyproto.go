package server

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
)

// The PROXY protocol (HAProxy's, spoken by nginx's stream proxy with
// "proxy_protocol on"): a proxy opens each upstream connection with a
// header naming the client it relays. Version 1 is one text line, version 2
// a binary block; both are read here. Only a peer in TrustedProxies may send
// one, and with ProxyProtocol set it must: from anyone else the bytes are
// not JSON and the connection is closed as garbage, so a client cannot
// claim another address.

// proxyV2Sig opens every version 2 header.
var proxyV2Sig = []byte("\r\n\r\n\x00\r\nQUIT\n")

// maxProxyV2 bounds a version 2 header's address block (addresses plus the
// TLVs nginx may add); the protocol allows 64 KiB, nobody needs it.
const maxProxyV2 = 1024

// errProxyHeader is a trusted proxy's connection that does not start with
// a valid PROXY header.
var errProxyHeader = errors.New("PROXY protocol header missing or malformed")

// proxiedConn is a connection relayed by a proxy: RemoteAddr is the client
// named by the PROXY header, and the bytes read past the header come first.
type proxiedConn struct {
	net.Conn
	rest   []byte
	remote net.Addr
}

func (c *proxiedConn) Read(p []byte) (int, error) {
	if len(c.rest) > 0 {
		n := copy(p, c.rest)
		c.rest = c.rest[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// RemoteAddr is the client's address from the PROXY header.
func (c *proxiedConn) RemoteAddr() net.Addr { return c.remote }

// SyscallConn gives the socket to the non-blocking write path (conn.go).
// Reads must go through Read, which serves the bytes already taken first.
func (c *proxiedConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.New("not a socket")
}

// behind is nc as relayed for the client at addr (a WebSocket behind a
// trusted HTTP proxy): its RemoteAddr, which the logs show, is the client.
func behind(nc net.Conn, addr netip.Addr) net.Conn {
	if !addr.IsValid() || addr == addrOf(nc.RemoteAddr()) {
		return nc
	}
	return &proxiedConn{Conn: nc, remote: net.TCPAddrFromAddrPort(netip.AddrPortFrom(addr, 0))}
}

// readProxyHeader reads a PROXY header (v1 or v2) from nc. A LOCAL (v2) or
// UNKNOWN (v1) header, which a proxy sends for its own health checks, keeps
// the peer's address.
func readProxyHeader(nc net.Conn) (*proxiedConn, error) {
	var buf []byte
	var tmp [512]byte
	for {
		n, rerr := nc.Read(tmp[:])
		buf = append(buf, tmp[:n]...)
		remote, size, err := parseProxyHeader(buf)
		if err != nil {
			return nil, err
		}
		if size > 0 {
			// What came after the header is the client's first bytes.
			return newProxiedConn(nc, remote, buf[size:]), nil
		}
		if rerr != nil {
			if errors.Is(rerr, io.EOF) {
				rerr = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("%w: %v", errProxyHeader, rerr)
		}
	}
}

// parseProxyHeader parses the PROXY header at the start of buf: the
// client's address (zero for LOCAL and UNKNOWN) and the header's size, or
// size 0 while buf holds only a prefix of a header.
func parseProxyHeader(buf []byte) (remote netip.AddrPort, size int, err error) {
	const v1 = "PROXY "
	switch {
	case len(buf) == 0:
		return remote, 0, nil
	case bytes.HasPrefix(buf, []byte(v1)) || bytes.HasPrefix([]byte(v1), buf):
		i := bytes.Index(buf, []byte("\r\n"))
		if i < 0 {
			if len(buf) >= 107 { // the longest v1 line, CRLF included
				return remote, 0, fmt.Errorf("%w: v1 line too long", errProxyHeader)
			}
			return remote, 0, nil
		}
		remote, err = parseProxyV1(string(buf[:i]))
		return remote, i + 2, err
	case bytes.HasPrefix(buf, proxyV2Sig) || bytes.HasPrefix(proxyV2Sig, buf):
		if len(buf) < 16 {
			return remote, 0, nil
		}
		n := int(binary.BigEndian.Uint16(buf[14:16]))
		if n > maxProxyV2 {
			return remote, 0, fmt.Errorf("%w: v2 block of %d bytes", errProxyHeader, n)
		}
		if len(buf) < 16+n {
			return remote, 0, nil
		}
		remote, err = parseProxyV2(buf[12], buf[13], buf[16:16+n])
		return remote, 16 + n, err
	}
	return remote, 0, errProxyHeader
}

func newProxiedConn(nc net.Conn, remote netip.AddrPort, rest []byte) *proxiedConn {
	pc := &proxiedConn{Conn: nc, rest: bytes.Clone(rest), remote: nc.RemoteAddr()}
	if remote.IsValid() {
		pc.remote = net.TCPAddrFromAddrPort(remote)
	}
	return pc
}

// parseProxyV1 reads "PROXY TCP4|TCP6 SRC DST SPORT DPORT" (or "PROXY
// UNKNOWN ...", which returns the zero AddrPort).
func parseProxyV1(line string) (netip.AddrPort, error) {
	f := strings.Split(line, " ")
	if len(f) >= 2 && f[1] == "UNKNOWN" {
		return netip.AddrPort{}, nil
	}
	if len(f) != 6 || (f[1] != "TCP4" && f[1] != "TCP6") {
		return netip.AddrPort{}, fmt.Errorf("%w: %q", errProxyHeader, line)
	}
	ip, err := netip.ParseAddr(f[2])
	if err != nil || ip.Is4() != (f[1] == "TCP4") {
		return netip.AddrPort{}, fmt.Errorf("%w: source %q", errProxyHeader, f[2])
	}
	port, err := strconv.ParseUint(f[4], 10, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%w: source port %q", errProxyHeader, f[4])
	}
	return netip.AddrPortFrom(ip, uint16(port)), nil
}

// parseProxyV2 reads a v2 header's command, family and address block.
func parseProxyV2(verCmd, fam byte, block []byte) (netip.AddrPort, error) {
	if verCmd>>4 != 2 {
		return netip.AddrPort{}, fmt.Errorf("%w: v2 version %d", errProxyHeader, verCmd>>4)
	}
	switch verCmd & 0xf {
	case 0: // LOCAL: the proxy's own connection
		return netip.AddrPort{}, nil
	case 1: // PROXY
	default:
		return netip.AddrPort{}, fmt.Errorf("%w: v2 command %d", errProxyHeader, verCmd&0xf)
	}
	switch fam >> 4 {
	case 1: // AF_INET: src 4, dst 4, sport 2, dport 2
		if len(block) < 12 {
			break
		}
		ip := netip.AddrFrom4([4]byte(block[0:4]))
		return netip.AddrPortFrom(ip, binary.BigEndian.Uint16(block[8:10])), nil
	case 2: // AF_INET6: src 16, dst 16, sport 2, dport 2
		if len(block) < 36 {
			break
		}
		ip := netip.AddrFrom16([16]byte(block[0:16])).Unmap()
		return netip.AddrPortFrom(ip, binary.BigEndian.Uint16(block[32:34])), nil
	case 0: // AF_UNSPEC: unknown origin
		return netip.AddrPort{}, nil
	}
	return netip.AddrPort{}, fmt.Errorf("%w: v2 family %#x with %d address bytes", errProxyHeader, fam, len(block))
}
