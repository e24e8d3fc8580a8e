package server

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/http"
	"net/netip"
	"testing"
)

func proxyV2(cmd, fam byte, addrs []byte) []byte {
	b := append([]byte(nil), proxyV2Sig...)
	b = append(b, 0x20|cmd, fam)
	b = binary.BigEndian.AppendUint16(b, uint16(len(addrs)))
	return append(b, addrs...)
}

func TestParseProxyHeader(t *testing.T) {
	v4 := []byte{203, 0, 113, 7, 10, 0, 0, 1, 0x1f, 0x90, 0x17, 0x70} // 203.0.113.7:8080 -> 10.0.0.1:6000
	v6 := make([]byte, 36)
	copy(v6, netip.MustParseAddr("2001:db8::1").AsSlice())
	binary.BigEndian.PutUint16(v6[32:], 4242)
	tests := []struct {
		name   string
		in     []byte
		remote string // "" for none (LOCAL, UNKNOWN)
		size   int    // 0: incomplete
		err    bool
	}{
		{"v1 tcp4", []byte("PROXY TCP4 203.0.113.7 10.0.0.1 8080 6000\r\n{}"), "203.0.113.7:8080", 43, false},
		{"v1 tcp6", []byte("PROXY TCP6 2001:db8::1 ::1 4242 6000\r\n"), "[2001:db8::1]:4242", 38, false},
		{"v1 unknown", []byte("PROXY UNKNOWN\r\n"), "", 15, false},
		{"v1 incomplete", []byte("PROXY TCP4 203.0"), "", 0, false},
		{"v1 prefix", []byte("PRO"), "", 0, false},
		{"v1 family mismatch", []byte("PROXY TCP4 2001:db8::1 ::1 1 2\r\n"), "", 0, true},
		{"v1 bad port", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\n"), "", 0, true},
		{"v1 too few fields", []byte("PROXY TCP4 1.2.3.4\r\n"), "", 0, true},
		{"v1 endless", append([]byte("PROXY TCP4 "), bytes.Repeat([]byte("1"), 200)...), "", 0, true},
		{"v2 tcp4", append(proxyV2(1, 0x11, v4), '{'), "203.0.113.7:8080", 28, false},
		{"v2 tcp6", proxyV2(1, 0x21, v6), "[2001:db8::1]:4242", 52, false},
		{"v2 tcp4 with TLVs", proxyV2(1, 0x11, append(append([]byte(nil), v4...), 0x04, 0, 1, 'x')), "203.0.113.7:8080", 32, false},
		{"v2 local", proxyV2(0, 0, nil), "", 16, false},
		{"v2 incomplete", proxyV2(1, 0x11, v4)[:20], "", 0, false},
		{"v2 short block", proxyV2(1, 0x11, v4[:6]), "", 0, true},
		{"v2 bad command", proxyV2(5, 0x11, v4), "", 0, true},
		{"v2 huge", proxyV2(1, 0x11, make([]byte, 2000))[:16], "", 0, true},
		{"json instead", []byte(`{"msgid":1}`), "", 0, true},
		{"http instead", []byte("GET / HTTP/1.1\r\n"), "", 0, true},
	}
	for _, tt := range tests {
		remote, size, err := parseProxyHeader(tt.in)
		if (err != nil) != tt.err || (err != nil && !errors.Is(err, errProxyHeader)) {
			t.Errorf("%s: err %v, want error %v", tt.name, err, tt.err)
			continue
		}
		if err != nil {
			continue
		}
		got := ""
		if remote.IsValid() {
			got = remote.String()
		}
		if got != tt.remote || size != tt.size {
			t.Errorf("%s: got %q size %d, want %q size %d", tt.name, got, size, tt.remote, tt.size)
		}
	}
}

// FuzzParseProxyHeader: never a panic, and a header's size never exceeds
// the input.
func FuzzParseProxyHeader(f *testing.F) {
	f.Add([]byte("PROXY TCP4 203.0.113.7 10.0.0.1 8080 6000\r\n"))
	f.Add(proxyV2(1, 0x11, make([]byte, 12)))
	f.Fuzz(func(t *testing.T, in []byte) {
		_, size, _ := parseProxyHeader(in)
		if size > len(in) {
			t.Fatalf("size %d of %d bytes", size, len(in))
		}
	})
}

func TestAddrKey(t *testing.T) {
	tests := []struct{ in, want string }{
		{"203.0.113.7", "203.0.113.7"},
		{"::ffff:203.0.113.7", "203.0.113.7"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::"},
		{"2001:db8:1:2:ffff::1", "2001:db8:1:2::"},
	}
	for _, tt := range tests {
		if got := addrKey(netip.MustParseAddr(tt.in)); got.String() != tt.want {
			t.Errorf("addrKey(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestHTTPClientAddr(t *testing.T) {
	s := New(Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.1/32")}}, nil)
	tests := []struct {
		name   string
		peer   string
		xff    []string
		realIP string
		want   string
	}{
		{"direct", "203.0.113.9:5000", nil, "", "203.0.113.9"},
		{"untrusted peer's XFF ignored", "203.0.113.9:5000", []string{"198.51.100.1"}, "198.51.100.1", "203.0.113.9"},
		{"nginx XFF", "127.0.0.1:5000", []string{"198.51.100.1"}, "198.51.100.1", "198.51.100.1"},
		{"client-made entries left of the real one", "127.0.0.1:5000", []string{"6.6.6.6, 198.51.100.1"}, "", "198.51.100.1"},
		{"two trusted hops", "127.0.0.1:5000", []string{"198.51.100.1, 10.1.2.3"}, "", "198.51.100.1"},
		{"several header lines", "127.0.0.1:5000", []string{"6.6.6.6", "198.51.100.1"}, "", "198.51.100.1"},
		{"X-Real-IP alone", "127.0.0.1:5000", nil, "198.51.100.2", "198.51.100.2"},
		{"garbage hop", "127.0.0.1:5000", []string{"198.51.100.1, junk"}, "", "127.0.0.1"},
		{"nothing said", "127.0.0.1:5000", nil, "", "127.0.0.1"},
		{"ipv6 client", "127.0.0.1:5000", []string{"2001:db8::5"}, "", "2001:db8::5"},
	}
	for _, tt := range tests {
		r := &http.Request{RemoteAddr: tt.peer, Header: http.Header{}}
		for _, v := range tt.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if tt.realIP != "" {
			r.Header.Set("X-Real-IP", tt.realIP)
		}
		if got := s.httpClientAddr(r); got.String() != tt.want {
			t.Errorf("%s: got %s, want %s", tt.name, got, tt.want)
		}
	}
}
