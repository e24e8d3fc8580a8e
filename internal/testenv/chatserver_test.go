package testenv

import (
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"
)

// TestStartServer runs the real chatserver binary through its life: start on
// port 0, clean SIGTERM, restart on the same addresses, crash, restart.
func TestStartServer(t *testing.T) {
	bin := BuildServer(t)
	s := StartServer(t, bin, "-store", "sqlite:"+filepath.Join(t.TempDir(), "chat.db"), "-node", "t1")
	addr, httpAddr := s.Addr(), s.HTTPAddr()

	up := func() {
		t.Helper()
		c, err := net.DialTimeout("tcp", s.Addr(), 5*time.Second)
		if err != nil {
			t.Fatalf("dial %s: %v", s.Addr(), err)
		}
		c.Close()
		resp, err := http.Get("http://" + s.HTTPAddr() + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("/healthz = %s", resp.Status)
		}
	}
	up()

	if code := s.Term(t); code != 0 {
		t.Fatalf("exit code after SIGTERM = %d, want 0", code)
	}
	s.Restart(t)
	if s.Addr() != addr || s.HTTPAddr() != httpAddr {
		t.Fatalf("restarted on %s/%s, want %s/%s", s.Addr(), s.HTTPAddr(), addr, httpAddr)
	}
	up()

	s.Kill(t)
	if s.Running() {
		t.Fatal("running after Kill")
	}
	s.Restart(t)
	up()
}
