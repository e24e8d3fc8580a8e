package server

import (
	"net/http/httptest"
	"testing"
)

func TestFromThisMachine(t *testing.T) {
	tests := []struct {
		name   string
		remote string
		header []string
		want   bool
	}{
		{"loopback v4", "127.0.0.1:5000", nil, true},
		{"loopback v6", "[::1]:5000", nil, true},
		{"loopback v4 in v6", "[::ffff:127.0.0.1]:5000", nil, true},
		{"other loopback address", "127.0.0.2:5000", nil, true},
		{"another machine", "192.0.2.7:5000", nil, false},
		{"another machine v6", "[2001:db8::7]:5000", nil, false},
		{"unreadable peer", "pipe", nil, false},
		{"proxied: X-Forwarded-For", "127.0.0.1:5000", []string{"X-Forwarded-For", "192.0.2.7"}, false},
		{"proxied: X-Real-IP", "127.0.0.1:5000", []string{"X-Real-IP", "192.0.2.7"}, false},
		{"proxied: Forwarded", "127.0.0.1:5000", []string{"Forwarded", "for=192.0.2.7"}, false},
		{"proxied: empty X-Forwarded-For", "127.0.0.1:5000", []string{"X-Forwarded-For", ""}, false},
	}
	for _, tc := range tests {
		r := httptest.NewRequest("POST", "/debug/backup", nil)
		r.RemoteAddr = tc.remote
		for i := 0; i+1 < len(tc.header); i += 2 {
			r.Header.Add(tc.header[i], tc.header[i+1])
		}
		if got := fromThisMachine(r); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
