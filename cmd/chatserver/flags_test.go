package main

import (
	"crypto/tls"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"clusterchat/internal/testenv"
)

// TestEdgeFlags: the TLS, proxy and limit flags parse, check each other and
// turn 0 into "off".
func TestEdgeFlags(t *testing.T) {
	tests := []struct {
		args []string
		err  string
		ok   func(*options) bool
	}{
		{nil, "", func(o *options) bool {
			return o.loginTimeout == time.Minute && o.frameTimeout == 30*time.Second && o.idleTimeout == 3*time.Minute &&
				o.maxConnsPerAddr == 100 && o.maxPrelogin == 1000 && !o.proxyProtocol && o.trustedProxies == nil
		}},
		{[]string{"-trusted-proxies", "10.0.0.0/8, 127.0.0.1,::1", "-proxy-protocol"}, "", func(o *options) bool {
			return o.proxyProtocol && slices.Equal(o.trustedProxies, []netip.Prefix{
				netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("::1/128")})
		}},
		{[]string{"-login-timeout", "0", "-max-conns-per-addr", "0"}, "", func(o *options) bool {
			return offIfZero(o.loginTimeout) < 0 && offIfZero(o.maxConnsPerAddr) < 0 && offIfZero(o.frameTimeout) == 30*time.Second
		}},
		{[]string{"-proxy-protocol"}, "-proxy-protocol needs -trusted-proxies", nil},
		{[]string{"-trusted-proxies", "10.0.0.0/33"}, "-trusted-proxies", nil},
		{[]string{"-trusted-proxies", "nginx.local"}, "-trusted-proxies", nil},
		{[]string{"-tls-cert", "c.pem"}, "-tls-cert and -tls-key go together", nil},
		{[]string{"-idle-timeout", "-1s"}, "-idle-timeout must not be negative", nil},
		{[]string{"-max-prelogin", "-5"}, "-max-prelogin must not be negative", nil},
	}
	for _, tt := range tests {
		o, err := parse(tt.args, io.Discard)
		switch {
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%q: err %v, want %q", tt.args, err, tt.err)
		case tt.err == "" && err != nil:
			t.Errorf("%q: %v", tt.args, err)
		case tt.err == "" && !tt.ok(o):
			t.Errorf("%q: parsed %+v", tt.args, o)
		}
	}
}

// TestSIGHUPReloadsTLS runs the real binary with -tls-cert/-tls-key,
// rotates the files and sends SIGHUP: new connections get the new
// certificate; a broken pair and SIGHUP keep the old one and the server up.
func TestSIGHUPReloadsTLS(t *testing.T) {
	ca := testenv.NewCA(t)
	cert, key := ca.Issue(t, "127.0.0.1")
	s := testenv.StartServer(t, testenv.BuildServer(t), "-store", "sqlite:"+filepath.Join(t.TempDir(), "chat.db"),
		"-bcrypt-cost", "4", "-tls-cert", cert, "-tls-key", key)
	serial := func() string {
		c, err := tlsDial(s.Addr(), ca)
		if err != nil {
			t.Fatalf("tls dial: %v", err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	first := serial()
	// (A handshake a second later would notice the change too; the log
	// line shows it was the signal.)
	second := ca.IssueTo(t, cert, key, "127.0.0.1").String()
	if err := syscall.Kill(s.PID(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, readTimeout, "SIGHUP handled", func() bool {
		return strings.Contains(s.Log(), "SIGHUP: TLS certificate reloaded")
	})
	if got := serial(); got != second {
		t.Fatalf("after SIGHUP: serial %s, want %s", got, second)
	}
	if first == second {
		t.Fatal("the CA issued the same serial twice")
	}
	if err := os.WriteFile(cert, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(s.PID(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, readTimeout, "the failed reload logged", func() bool {
		return strings.Contains(s.Log(), "TLS certificate not reloaded")
	})
	if got := serial(); got != second || !s.Running() {
		t.Fatalf("after a bad SIGHUP: serial %s (want %s), running %v", got, second, s.Running())
	}
}

func tlsDial(addr string, ca *testenv.CA) (*tls.Conn, error) {
	return tls.DialWithDialer(&net.Dialer{Timeout: readTimeout}, "tcp", addr, &tls.Config{RootCAs: ca.Pool()})
}
