package main

import (
	"context"
	"strings"
	"testing"

	"clusterchat/internal/testenv"
	"clusterchat/server"
)

// TestConsoleTLS: two consoles chat over TLS with -ca; without the CA (the
// system's roots) the test certificate is refused before anything is sent.
func TestConsoleTLS(t *testing.T) {
	ca := testenv.NewCA(t)
	cert, key := ca.Issue(t, "127.0.0.1")
	addr := startServerWith(t, server.Config{TLSCert: cert, TLSKey: key})

	alice := startConsole(t, "alice", addr, "-ca", ca.File)
	bob := startConsole(t, "bob", addr, "-tls", "-ca", ca.File)
	alice.send("2", "alice", "pw-a")
	aid := alice.expect(`alice registered, your user id is (\d+)`)[1]
	bob.send("2", "bob", "pw-b")
	bid := bob.expect(`bob registered, your user id is (\d+)`)[1]
	alice.send("1", aid, "pw-a")
	alice.expect(`type help for commands`)
	bob.send("1", bid, "pw-b")
	bob.expect(`type help for commands`)
	alice.send("chat:" + bid + ":over tls")
	bob.expect(`alice\(` + aid + `\): over tls\n`)
	bob.send("chat:" + aid + ":still private")
	alice.expect(`bob\(` + bid + `\): still private\n`)

	for _, tt := range []struct {
		name  string
		flags []string
		want  string
	}{
		{"system roots do not know the test CA", []string{"-tls"}, "certificate"},
		{"plain TCP to a TLS port", nil, ""},
		{"missing CA file", []string{"-ca", ca.File + ".missing"}, "-ca"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			ctx, cancel := context.WithTimeout(context.Background(), waitTime)
			defer cancel()
			// Register, then quit: over plain TCP the server never
			// answers and the command times out.
			in := strings.NewReader("2\nmallory\npw\n3\n")
			err := run(ctx, in, &out, append([]string{"-addr", addr, "-timeout", "2s"}, tt.flags...))
			switch {
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("run: %v, want an error about %q", err, tt.want)
			case tt.want == "" && strings.Contains(out.String(), "registered"):
				t.Fatalf("registered over plain TCP on a TLS port:\n%s", out.String())
			}
		})
	}
}
