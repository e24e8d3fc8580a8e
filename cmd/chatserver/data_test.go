package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"clusterchat/internal/testenv"
	"clusterchat/internal/wiretest"
)

// TestBackupExport: for each embedded store, a running server writes a
// backup on POST /debug/backup (chatserver backup -http), the copy opens
// and exports what was acknowledged before it, and an offline backup of
// the copy exports the same.
func TestBackupExport(t *testing.T) {
	bin := testenv.BuildServer(t)
	tests := []struct{ name, spec string }{
		{"pebble", "pebble:"},
		{"sqlite", "sqlite:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			backups := filepath.Join(dir, "backups")
			srv := testenv.StartServer(t, bin, "-store", tc.spec+filepath.Join(dir, "chat"), "-backup-dir", backups,
				"-bcrypt-cost", "4", "-log-level", "info")
			c := wiretest.Dial(t, srv.Addr(), readTimeout)
			alice, bob := c.Register("alice", "pw"), c.Register("bob", "pw")
			a := wiretest.Dial(t, srv.Addr(), readTimeout)
			a.NativeLogin(alice, "pw")
			a.CallSkipping(6, `{"msgid":6,"to":%d,"msg":"kept in the copy","cmid":"b1"}`, bob)

			out, err := exec.Command(bin, "backup", "-http", srv.HTTPAddr()).Output()
			if err != nil {
				t.Fatalf("backup -http: %v\n%s", err, srv.Log())
			}
			copyPath := strings.TrimSpace(string(out))
			if !strings.HasPrefix(copyPath, backups) {
				t.Fatalf("backup written to %q, want under %s", copyPath, backups)
			}
			offline := filepath.Join(dir, "offline")
			if out, err := exec.Command(bin, "backup", "-store", tc.spec+copyPath, offline).CombinedOutput(); err != nil {
				t.Fatalf("offline backup: %v\n%s", err, out)
			}
			for _, path := range []string{copyPath, offline} {
				out, err := exec.Command(bin, "export", "-store", tc.spec+path).Output()
				if err != nil {
					t.Fatalf("export %s: %v", path, err)
				}
				for _, want := range []string{`{"user":{"id":1,"name":"alice"}}`, `"body":"kept in the copy"`} {
					if !strings.Contains(string(out), want) {
						t.Errorf("export of %s lacks %s:\n%s", path, want, out)
					}
				}
				if strings.Contains(string(out), "$2") {
					t.Errorf("export of %s shows a password hash:\n%s", path, out)
				}
			}
		})
	}
}

// TestDefaultStore: Pebble in the working directory, unless only the
// former default's SQLite file is there; CHAT_STORE wins.
func TestDefaultStore(t *testing.T) {
	tests := []struct {
		name  string
		files []string
		env   string
		want  string
	}{
		{"fresh", nil, "", "pebble:clusterchat.pebble"},
		{"former default", []string{"clusterchat.db"}, "", "sqlite:clusterchat.db"},
		{"both", []string{"clusterchat.db", "clusterchat.pebble"}, "", "pebble:clusterchat.pebble"},
		{"env", []string{"clusterchat.db"}, "pebble:x", "pebble:x"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Chdir(t.TempDir())
			for _, f := range tc.files {
				if err := os.WriteFile(f, nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if tc.env != "" {
				t.Setenv("CHAT_STORE", tc.env)
			} else {
				t.Setenv("CHAT_STORE", "")
				os.Unsetenv("CHAT_STORE")
			}
			if got := defaultStore(); got != tc.want {
				t.Errorf("defaultStore() = %q, want %q", got, tc.want)
			}
		})
	}
}
