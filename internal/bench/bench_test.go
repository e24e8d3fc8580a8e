package bench

import (
	"strings"
	"testing"
)

func TestParseText(t *testing.T) {
	tests := []struct {
		in         string
		sid, n, ns int64
		ok         bool
	}{
		{"b:3:17:123456:xxxx", 3, 17, 123456, true},
		{"b:0:1:5:", 0, 1, 5, true},
		{"b:0:0:5:", 0, 0, 5, false},
		{"hello", 0, 0, 0, false},
		{"b:1:2", 0, 0, 0, false},
	}
	for _, tt := range tests {
		sid, n, ns, ok := parseText([]byte(tt.in))
		if ok != tt.ok || (ok && (sid != tt.sid || n != tt.n || ns != tt.ns)) {
			t.Errorf("%q: got %d %d %d %v", tt.in, sid, n, ns, ok)
		}
	}
}

func TestHistogram(t *testing.T) {
	var h Histogram
	for v := int64(1); v <= 100000; v++ {
		h.Record(v)
	}
	for _, tt := range []struct {
		q    float64
		want int64
	}{{0.5, 50000}, {0.99, 99000}, {0.999, 99900}, {1, 100000}} {
		got := h.Quantile(tt.q)
		if d := float64(got-tt.want) / float64(tt.want); d < -0.02 || d > 0.02 {
			t.Errorf("q%v = %d, want %d within 2%%", tt.q, got, tt.want)
		}
	}
	var small Histogram
	small.Record(7)
	if small.Quantile(0.5) != 7 || small.Quantile(0.999) != 7 {
		t.Errorf("exact small values: %d", small.Quantile(0.5))
	}
	var m Histogram
	m.addSparse(h.sparse())
	if m.Count() != h.Count() || m.Quantile(0.5) != h.Quantile(0.5) {
		t.Errorf("sparse round trip: %d %d", m.Count(), m.Quantile(0.5))
	}
}

func TestCheckLoopback(t *testing.T) {
	for _, tt := range []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:6000", true}, {"127.8.9.10:1", true}, {"localhost:6000", true},
		{"10.0.0.1:6000", false}, {"0.0.0.0:6000", false}, {"[::1]:6000", false}, {"example.com:80", false},
	} {
		if err := CheckLoopback(tt.addr); (err == nil) != tt.ok {
			t.Errorf("%s: %v", tt.addr, err)
		}
	}
}

func TestParseMetric(t *testing.T) {
	text := "# HELP process_resident_memory_bytes x\n# TYPE process_resident_memory_bytes gauge\n" +
		"process_resident_memory_bytes_total 1\nprocess_resident_memory_bytes 1.2345e+07\n"
	v, err := parseMetric(strings.NewReader(text), "process_resident_memory_bytes")
	if err != nil || v != 12345000 {
		t.Errorf("got %v %v", v, err)
	}
}
