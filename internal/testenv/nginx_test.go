package testenv

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// echoTCP starts a TCP listener that echoes every connection.
func echoTCP(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				// nginx opens every upstream connection from
				// NginxProxyBind with a PROXY protocol header naming
				// the client (127.0.0.1 here); the echo answers a
				// connection without them with a line the test rejects.
				r := bufio.NewReader(c)
				head, err := r.ReadString('\n')
				peer, _, _ := net.SplitHostPort(c.RemoteAddr().String())
				if err != nil || !strings.HasPrefix(head, "PROXY TCP4 127.0.0.1 ") || peer != NginxProxyBind {
					fmt.Fprintf(c, "bad proxy: header %q from %s\n", head, peer)
					return
				}
				_, _ = io.Copy(c, r)
			}()
		}
	}()
	return l.Addr().String()
}

// upgradeEcho starts an HTTP server that switches any request carrying
// "Upgrade: echo" to a raw byte echo, as a WebSocket handshake would.
func upgradeEcho(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" || !strings.EqualFold(r.Header.Get("Connection"), "upgrade") {
			http.Error(w, "want Upgrade: echo, Connection: upgrade", http.StatusBadRequest)
			return
		}
		c, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		_ = rw.Flush()
		_, _ = io.Copy(c, rw)
	})}
	go func() { _ = srv.Serve(l) }()
	tb.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// roundTrip writes msg on c and reads it back.
func roundTrip(t *testing.T, c net.Conn, r *bufio.Reader, msg string) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(r, got); err != nil {
		t.Fatal(err)
	}
	if string(got) != msg {
		t.Fatalf("echo = %q, want %q", got, msg)
	}
}

func TestStartNginx(t *testing.T) {
	tcp, web := echoTCP(t), upgradeEcho(t)
	tests := []struct {
		name        string
		stream, web []string
	}{
		{"stream", []string{tcp}, nil},
		{"http", nil, []string{web}},
		// A dead first server: least_conn with max_fails must still reach the live one.
		{"both with a dead server", []string{Addr(FreePort(t)), tcp}, []string{Addr(FreePort(t)), web}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := StartNginx(t, tt.stream, tt.web)
			if (n.StreamAddr() != "") != (tt.stream != nil) || (n.HTTPAddr() != "") != (tt.web != nil) {
				t.Fatalf("addrs = %q %q", n.StreamAddr(), n.HTTPAddr())
			}
			if tt.stream != nil {
				for i := range 3 { // several connections, so each upstream gets tried
					c, err := net.Dial("tcp", n.StreamAddr())
					if err != nil {
						t.Fatal(err)
					}
					roundTrip(t, c, bufio.NewReader(c), strings.Repeat("x", i+1)+"hello\n")
					c.Close()
				}
			}
			if tt.web != nil {
				for range 3 {
					c, err := net.Dial("tcp", n.HTTPAddr())
					if err != nil {
						t.Fatal(err)
					}
					_ = c.SetDeadline(time.Now().Add(10 * time.Second))
					_, _ = io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: chat\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
					r := bufio.NewReader(c)
					resp, err := http.ReadResponse(r, nil)
					if err != nil {
						t.Fatal(err)
					}
					if resp.StatusCode != http.StatusSwitchingProtocols {
						t.Fatalf("status = %s, want 101", resp.Status)
					}
					roundTrip(t, c, r, "ping over the upgraded connection\n")
					c.Close()
				}
			}
			// Nothing nginx calls an alert: e.g. a descriptor limit above
			// the hard one makes every worker log one.
			for line := range strings.Lines(n.errorLog()) {
				if strings.Contains(line, "[alert]") || strings.Contains(line, "[emerg]") {
					t.Errorf("nginx error log: %s", line)
				}
			}
		})
	}
}

// TestNginxConfInSync checks that the Go and bash renderers agree and that
// the committed example deploy/nginx/nginx.conf is the template rendered.
func TestNginxConfInSync(t *testing.T) {
	root := ModuleRoot(t)
	tmpl, err := os.ReadFile(filepath.Join(root, "deploy", "nginx", "nginx.conf.tmpl"))
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile(filepath.Join(root, "deploy", "nginx", "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	conf := NginxConf{
		User:            "www-data",
		StreamListen:    "8000",
		StreamUpstreams: []string{"127.0.0.1:6000", "127.0.0.1:6002"},
		HTTPListen:      "8088",
		HTTPUpstreams:   []string{"127.0.0.1:8080", "127.0.0.1:8082"},
		NoFile:          65536,
	}
	body := func(s string) string { _, rest, _ := strings.Cut(s, "\n"); return rest } // drop the "Rendered by" line
	goOut := RenderNginxConf(string(tmpl), conf)
	if body(goOut) != body(string(example)) {
		t.Errorf("deploy/nginx/nginx.conf is stale; regenerate it:\n  scripts/nginx-conf --user www-data --stream-listen 8000 --stream 127.0.0.1:6000,127.0.0.1:6002 --http-listen 8088 --http 127.0.0.1:8080,127.0.0.1:8082 --nofile 65536 > deploy/nginx/nginx.conf")
	}
	bash := LookPath(t, "bash", "bash")
	for _, args := range [][]string{
		{"--user", "www-data", "--stream-listen", "8000", "--stream", "127.0.0.1:6000,127.0.0.1:6002", "--http-listen", "8088", "--http", "127.0.0.1:8080,127.0.0.1:8082"},
		{"--stream-listen", "127.0.0.1:9000", "--stream", "127.0.0.1:6000", "--nofile", "1024"},
		{"--http-listen", "127.0.0.1:9001", "--http", "127.0.0.1:8080,127.0.0.1:8082,127.0.0.1:8084"},
		{"--stream-listen", "8000", "--stream", "127.0.0.1:6000", "--proxy-bind", "127.0.0.200"},
		{"--stream-listen", "8443", "--stream", "10.0.0.1:6000", "--http-listen", "443", "--http", "10.0.0.1:8080", "--tls-cert", "/etc/chat/cert.pem", "--tls-key", "/etc/chat/key.pem"},
	} {
		out, err := exec.Command(bash, append([]string{filepath.Join(root, "scripts", "nginx-conf")}, args...)...).Output()
		if err != nil {
			t.Fatalf("scripts/nginx-conf %v: %v", args, err)
		}
		var c NginxConf
		for i := 0; i+1 < len(args); i += 2 {
			switch v := args[i+1]; args[i] {
			case "--user":
				c.User = v
			case "--stream-listen":
				c.StreamListen = v
			case "--stream":
				c.StreamUpstreams = strings.Split(v, ",")
			case "--http-listen":
				c.HTTPListen = v
			case "--http":
				c.HTTPUpstreams = strings.Split(v, ",")
			case "--nofile":
				c.NoFile, _ = strconv.Atoi(v)
			case "--tls-cert":
				c.TLSCert = v
			case "--tls-key":
				c.TLSKey = v
			case "--proxy-bind":
				c.ProxyBind = v
			}
		}
		which := string(tmpl)
		if c.TLSCert != "" {
			tls, err := os.ReadFile(filepath.Join(root, "deploy", "nginx", "nginx-tls.conf.tmpl"))
			if err != nil {
				t.Fatal(err)
			}
			which = string(tls)
		}
		if got, want := body(string(out)), body(RenderNginxConf(which, c)); got != want {
			t.Errorf("scripts/nginx-conf %v and RenderNginxConf differ:\n--- bash\n%s\n--- go\n%s", args, got, want)
		}
	}
}
