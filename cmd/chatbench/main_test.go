package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"clusterchat/internal/bench"
	"clusterchat/internal/testenv"
)

// TestMain lets the idle scenario re-execute this test binary as its child
// processes, as it re-executes chatbench in production.
func TestMain(m *testing.M) {
	if os.Getenv(bench.ChildEnv) == "1" {
		os.Exit(bench.RunChild(os.Stdin, os.Stdout))
	}
	os.Exit(m.Run())
}

// parseResult returns the fields of the RESULT line, which must be the last
// line of out.
func parseResult(t *testing.T, out string) map[string]string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "RESULT ") {
		t.Fatalf("last line is not RESULT: %q\n%s", last, out)
	}
	fields := map[string]string{}
	for _, kv := range strings.Fields(last)[1:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			t.Fatalf("RESULT field %q is not key=value", kv)
		}
		fields[k] = v
	}
	return fields
}

// TestScenarios runs every scenario for a second against a real chatserver
// and checks the run was clean and the RESULT line complete.
func TestScenarios(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a chatserver")
	}
	srv := testenv.StartServer(t, testenv.BuildServer(t), "-store", "sqlite:"+filepath.Join(t.TempDir(), "bench.db"),
		"-bcrypt-cost", "4") // registration is setup, not what is measured
	addr := srv.Addr()
	metrics := "http://" + srv.HTTPAddr() + "/metrics"
	pid := strconv.Itoa(srv.PID())
	tests := []struct {
		name  string
		args  []string
		extra []string // RESULT fields beyond the common ones
		moved bool     // messages must have been delivered
	}{
		{"pingpong", []string{"-scenario", "pingpong", "-n", "2"}, nil, true},
		{"pingpong classic", []string{"-scenario", "pingpong", "-n", "2", "-proto", "classic"}, nil, true},
		{"flood", []string{"-scenario", "flood", "-n", "2", "-w", "20"}, nil, true},
		{"flood open loop", []string{"-scenario", "flood", "-n", "2", "-rate", "500"}, nil, true},
		{"group", []string{"-scenario", "group", "-groups", "3", "-members", "4"}, nil, true},
		{"pingpong ws", []string{"-scenario", "pingpong", "-n", "2", "-transport", "ws", "-addrs", srv.HTTPAddr()}, nil, true},
		{"flood ws", []string{"-scenario", "flood", "-n", "2", "-w", "20", "-transport", "ws", "-addrs", srv.HTTPAddr()}, nil, true},
		{"idle", []string{"-scenario", "idle", "-n", "30", "-users", "3", "-pid", pid}, []string{"conns", "rss_kib_per_conn", "logins_per_s"}, false},
		{"idle children", []string{"-scenario", "idle", "-n", "30", "-users", "3", "-per-proc", "12", "-srcips", "3", "-metrics", metrics},
			[]string{"conns", "rss_kib_per_conn", "logins_per_s"}, false},
		{"storm", []string{"-scenario", "storm", "-n", "20", "-users", "3"}, []string{"conns", "logins_per_s"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append([]string{"-addrs", addr, "-d", "1s"}, tt.args...)
			code := Main(context.Background(), args, &stdout, &stderr)
			t.Logf("chatbench %s:\n%s%s", strings.Join(args, " "), stdout.String(), stderr.String())
			if code != 0 {
				t.Fatalf("exit code %d", code)
			}
			r := parseResult(t, stdout.String())
			for _, k := range append([]string{"scenario", "msgs_per_s", "p50_us", "p99_us", "p999_us", "lost", "dup", "reorder", "errors"}, tt.extra...) {
				if _, ok := r[k]; !ok {
					t.Errorf("RESULT lacks %s", k)
				}
			}
			for _, k := range []string{"lost", "dup", "reorder", "errors"} {
				if r[k] != "0" {
					t.Errorf("%s=%s, want 0", k, r[k])
				}
			}
			if tt.moved && r["msgs_per_s"] == "0" {
				t.Errorf("no message delivered")
			}
			if n, _ := strconv.Atoi(r["conns"]); tt.extra != nil && n == 0 {
				t.Errorf("conns=%s, want > 0", r["conns"])
			}
		})
	}
}

// TestRefusesRemote checks that chatbench never points at another machine.
func TestRefusesRemote(t *testing.T) {
	for _, a := range []string{"10.0.0.1:6000", "192.168.1.2:6000", "example.com:6000", "[::1]:6000"} {
		var stdout, stderr bytes.Buffer
		if code := Main(context.Background(), []string{"-addrs", a, "-d", "1s"}, &stdout, &stderr); code != 2 {
			t.Errorf("%s: exit code %d, want 2 (refused)", a, code)
		}
		if !strings.Contains(stderr.String(), "loopback") {
			t.Errorf("%s: stderr %q does not say why", a, stderr.String())
		}
	}
}
