package server_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"clusterchat"
	"clusterchat/internal/testenv"
	"clusterchat/internal/wiretest"
	"clusterchat/server"
)

// gatedBackup is the real store whose Backup waits at a gate, so a test
// can hold a backup in progress.
type gatedBackup struct {
	clusterchat.Store
	started chan struct{} // one value per Backup that reached the gate
	gate    chan struct{} // closed: backups go on
}

func (g *gatedBackup) Backup(ctx context.Context, dest string) error {
	g.started <- struct{}{}
	<-g.gate
	return g.Store.(clusterchat.BackupStore).Backup(ctx, dest)
}

// TestOperatorEndpoints: /debug/backup and /debug/pprof answer only
// requests made on the server's machine and not passed on by a proxy (a
// stranger could otherwise fill the disk with copies or keep a core busy
// with profiles); one backup is written at a time; chat goes on meanwhile.
func TestOperatorEndpoints(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "backups")
	gb := &gatedBackup{started: make(chan struct{}, 4), gate: make(chan struct{})}
	ts := wiretest.StartServerStore(t, func(c *server.Config) {
		c.BackupDir = dir
		c.Pprof = true
	}, func(st clusterchat.Store) clusterchat.Store {
		gb.Store = st
		return gb
	})
	by := newBystanders(t, ts)
	base := "http://" + ts.HTTP
	do := func(method, path string, header ...string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}

	// Through a proxy (any forwarding header), refused before any work.
	refused := []struct {
		name, method, path string
		header             []string
	}{
		{"backup via X-Forwarded-For", "POST", "/debug/backup", []string{"X-Forwarded-For", "203.0.113.9"}},
		{"backup via X-Real-IP", "POST", "/debug/backup", []string{"X-Real-IP", "203.0.113.9"}},
		{"backup via Forwarded", "POST", "/debug/backup", []string{"Forwarded", "for=203.0.113.9"}},
		{"backup via a loopback X-Forwarded-For", "POST", "/debug/backup", []string{"X-Forwarded-For", "127.0.0.1"}},
		{"pprof index", "GET", "/debug/pprof/", []string{"X-Forwarded-For", "203.0.113.9"}},
		{"cpu profile", "GET", "/debug/pprof/profile?seconds=30", []string{"X-Real-IP", "203.0.113.9"}},
		{"trace", "GET", "/debug/pprof/trace?seconds=30", []string{"X-Forwarded-For", "203.0.113.9"}},
	}
	for _, tc := range refused {
		if code, body := do(tc.method, tc.path, tc.header...); code != http.StatusForbidden || !strings.Contains(body, "own machine") {
			t.Errorf("%s: %d %q, want 403", tc.name, code, body)
		}
	}
	select {
	case <-gb.started:
		t.Fatal("a refused request started a backup")
	default:
	}
	if _, err := os.Stat(dir); err == nil {
		entries, _ := os.ReadDir(dir)
		if len(entries) > 0 {
			t.Fatalf("refused requests left %d entries in the backup folder", len(entries))
		}
	}
	if code, body := do("GET", "/debug/pprof/"); code != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Errorf("pprof index from this machine: %d", code)
	}

	// One backup at a time: a second while the first is held gets 409,
	// and chat goes on meanwhile.
	type result struct {
		code int
		body string
	}
	first := make(chan result, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		code, body := do("POST", "/debug/backup")
		first <- result{code, body}
	}()
	released := false
	release := func() {
		if !released {
			released = true
			close(gb.gate)
		}
	}
	defer func() { release(); wg.Wait() }()
	select {
	case <-gb.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the first backup did not start")
	}
	if code, body := do("POST", "/debug/backup"); code != http.StatusConflict {
		t.Errorf("a second backup meanwhile: %d %q, want 409", code, body)
	}
	by.chat()

	release()
	r := <-first
	if path := strings.TrimSpace(r.body); r.code != http.StatusOK || !strings.HasPrefix(path, dir) {
		t.Fatalf("the held backup: %d %q", r.code, r.body)
	} else if _, err := os.Stat(path); err != nil {
		t.Fatalf("the copy: %v", err)
	}
	// Done: the next one may run (started has room for its signal).
	if code, body := do("POST", "/debug/backup"); code != http.StatusOK {
		t.Errorf("a backup after the first: %d %q", code, body)
	}

	// Behind the plain nginx template, the operator's endpoints are not
	// served to the internet either.
	ng := testenv.StartNginx(t, nil, []string{ts.HTTP})
	base = "http://" + ng.HTTPAddr()
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/healthz", http.StatusOK},
		{"GET", "/metrics", http.StatusForbidden},
		{"GET", "/debug/pprof/", http.StatusForbidden},
		{"POST", "/debug/backup", http.StatusForbidden},
	} {
		if code, _ := do(tc.method, tc.path); code != tc.want {
			t.Errorf("%s %s through nginx: %d, want %d", tc.method, tc.path, code, tc.want)
		}
	}
}
