package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Nginx is a real nginx running the deploy/nginx template in front of
// chatservers on loopback: a TCP (stream) proxy and a WebSocket (HTTP) proxy.
type Nginx struct {
	dir        string
	streamAddr string
	httpAddr   string
	cmd        *exec.Cmd
	done       chan struct{} // closed when the process has exited
	waitErr    error         // set before done is closed
	stopOnce   sync.Once
}

// NginxConf is what RenderNginxConf fills into deploy/nginx/nginx.conf.tmpl.
// A side with no servers is left out of the config.
type NginxConf struct {
	User            string   // worker user; empty drops the line
	StreamListen    string   // [host:]port of the TCP proxy
	StreamUpstreams []string // chatserver -addr values
	HTTPListen      string   // [host:]port of the WebSocket proxy
	HTTPUpstreams   []string // chatserver -http values
	NoFile          int      // descriptors per worker; 0: DefaultNoFile()
	TLSCert, TLSKey string   // PEM files (nginx-tls.conf.tmpl only)
	ProxyBind       string   // address nginx connects to upstreams from; empty drops the line
}

// DefaultNoFile is min(65536, this process's hard descriptor limit), what
// scripts/nginx-conf renders by default: nginx's workers cannot raise their
// limit past the hard one, and log an alert each when told to.
func DefaultNoFile() int {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil || r.Max > 65536 {
		return 65536
	}
	return int(r.Max)
}

// RenderNginxConf renders the template text the way scripts/nginx-conf does,
// so tests run the very config a deployment uses.
func RenderNginxConf(tmpl string, c NginxConf) string {
	var b strings.Builder
	b.WriteString("# Rendered from deploy/nginx/nginx.conf.tmpl by internal/testenv; edit the template.\n")
	nofile := c.NoFile
	if nofile <= 0 {
		nofile = DefaultNoFile()
	}
	fill := strings.NewReplacer("@STREAM_LISTEN@", c.StreamListen, "@HTTP_LISTEN@", c.HTTPListen,
		"@NOFILE@", strconv.Itoa(nofile), "@CONNECTIONS@", strconv.Itoa(min(20000, nofile)),
		"@TLS_CERT@", c.TLSCert, "@TLS_KEY@", c.TLSKey)
	header, skip := true, ""
	for line := range strings.Lines(tmpl) {
		line = strings.TrimSuffix(line, "\n")
		if header {
			if strings.HasPrefix(line, "#") {
				continue
			}
			header = false
		}
		switch {
		case line == "# BEGIN stream" && len(c.StreamUpstreams) == 0:
			skip = "stream"
		case line == "# BEGIN http" && len(c.HTTPUpstreams) == 0:
			skip = "http"
		}
		if skip != "" {
			if line == "# END "+skip {
				skip = ""
			}
			continue
		}
		switch {
		case strings.HasPrefix(strings.TrimSpace(line), "#"):
			b.WriteString(line + "\n")
		case strings.Contains(line, "@USER@"):
			if c.User != "" {
				b.WriteString(strings.ReplaceAll(line, "@USER@", c.User) + "\n")
			}
		case strings.Contains(line, "@PROXY_BIND@"):
			if c.ProxyBind != "" {
				b.WriteString(strings.ReplaceAll(line, "@PROXY_BIND@", c.ProxyBind) + "\n")
			}
		case strings.Contains(line, "@STREAM_SERVER@"):
			for _, s := range c.StreamUpstreams {
				b.WriteString(strings.ReplaceAll(line, "@STREAM_SERVER@", s) + "\n")
			}
		case strings.Contains(line, "@HTTP_SERVER@"):
			for _, s := range c.HTTPUpstreams {
				b.WriteString(strings.ReplaceAll(line, "@HTTP_SERVER@", s) + "\n")
			}
		default:
			b.WriteString(fill.Replace(line) + "\n")
		}
	}
	return b.String()
}

// NginxProxyBind is the address StartNginx's TCP proxy connects to its
// upstreams from: chatservers behind it run with UpstreamFlags, and clients
// that dial them directly (from 127.0.0.1, or other loopback addresses a
// test picks) are not taken for the proxy.
const NginxProxyBind = "127.0.0.200"

// UpstreamFlags are the chatserver flags for a server behind StartNginx's
// TCP proxy: it believes the PROXY protocol header nginx sends, from
// NginxProxyBind only.
var UpstreamFlags = []string{"-trusted-proxies", NginxProxyBind, "-proxy-protocol"}

// StartNginx starts nginx with deploy/nginx/nginx.conf.tmpl rendered into a
// temp folder: a TCP proxy to streamUpstreams (from NginxProxyBind, with a
// PROXY protocol header: see UpstreamFlags) and a WebSocket proxy to
// httpUpstreams (either may be empty, not both), each on a free loopback
// port. It waits until both accept connections and stops nginx when the test
// ends, logging its error log if the test failed.
func StartNginx(tb testing.TB, streamUpstreams, httpUpstreams []string) *Nginx {
	tb.Helper()
	return startNginx(tb, "nginx.conf.tmpl", NginxConf{StreamUpstreams: streamUpstreams, HTTPUpstreams: httpUpstreams, ProxyBind: NginxProxyBind})
}

// StartNginxTLS is StartNginx with deploy/nginx/nginx-tls.conf.tmpl: nginx
// terminates TLS on both proxies with certFile and keyFile, and sends a
// PROXY protocol header on every upstream TCP connection (its chatservers
// run with -trusted-proxies 127.0.0.1 -proxy-protocol).
func StartNginxTLS(tb testing.TB, streamUpstreams, httpUpstreams []string, certFile, keyFile string) *Nginx {
	tb.Helper()
	return startNginx(tb, "nginx-tls.conf.tmpl", NginxConf{StreamUpstreams: streamUpstreams, HTTPUpstreams: httpUpstreams, TLSCert: certFile, TLSKey: keyFile})
}

// startNginx runs deploy/nginx/TEMPLATE rendered with conf; the listen
// addresses and the user are filled in here.
func startNginx(tb testing.TB, template string, conf NginxConf) *Nginx {
	tb.Helper()
	streamUpstreams, httpUpstreams := conf.StreamUpstreams, conf.HTTPUpstreams
	if len(streamUpstreams) == 0 && len(httpUpstreams) == 0 {
		tb.Fatal("testenv: StartNginx needs stream or http upstreams")
	}
	bin := LookPath(tb, "nginx", "nginx", "/usr/sbin/nginx")
	const module = "/usr/lib/nginx/modules/ngx_stream_module.so"
	if len(streamUpstreams) > 0 {
		if _, err := os.Stat(module); err != nil {
			tb.Fatalf("testenv: %s missing; install Debian package \"libnginx-mod-stream\" (make deps does)", module)
		}
	}
	tmpl, err := os.ReadFile(filepath.Join(ModuleRoot(tb), "deploy", "nginx", template))
	if err != nil {
		tb.Fatalf("testenv: nginx template: %v", err)
	}
	// Workers of a root master switch to "user"; the temp folder is private
	// to root, so keep them root there. Without root the line is dropped.
	user := ""
	if os.Geteuid() == 0 {
		user = "root"
	}
	conf.User = user

	// A free port can be taken between FreePort and nginx's bind; try again
	// with new ports rather than fail the test on that race.
	var lastErr error
	for range 3 {
		n := &Nginx{dir: tb.TempDir(), done: make(chan struct{})}
		if len(streamUpstreams) > 0 {
			n.streamAddr = Addr(FreePort(tb))
			conf.StreamListen = n.streamAddr
		}
		if len(httpUpstreams) > 0 {
			n.httpAddr = Addr(FreePort(tb))
			conf.HTTPListen = n.httpAddr
		}
		confPath := filepath.Join(n.dir, "nginx.conf")
		if err := os.WriteFile(confPath, []byte(RenderNginxConf(string(tmpl), conf)), 0o644); err != nil {
			tb.Fatalf("testenv: %v", err)
		}
		if lastErr = n.start(bin, confPath); lastErr == nil {
			tb.Cleanup(func() {
				n.stop()
				if tb.Failed() {
					tb.Logf("testenv: nginx error log (%s):\n%s", n.dir, n.errorLog())
				}
			})
			return n
		}
	}
	tb.Fatalf("testenv: nginx did not start: %v", lastErr)
	return nil
}

// start runs nginx in the foreground (so it is our child and dies with us)
// and waits until its listeners accept connections.
func (n *Nginx) start(bin, confPath string) error {
	n.cmd = exec.Command(bin, "-p", n.dir, "-c", confPath, "-e", filepath.Join(n.dir, "error.log"), "-g", "daemon off;")
	var out bytes.Buffer
	n.cmd.Stdout, n.cmd.Stderr = &out, &out
	// If the test binary dies without running cleanups, take nginx with it.
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := n.cmd.Start(); err != nil {
		return err
	}
	go func() {
		n.waitErr = n.cmd.Wait()
		close(n.done)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for delay := time.Millisecond; ; delay = min(delay*2, 50*time.Millisecond) {
		select {
		case <-n.done:
			return fmt.Errorf("exited (%v): %s%s", n.waitErr, out.String(), n.errorLog())
		default:
		}
		if n.accepting() {
			return nil
		}
		if time.Now().After(deadline) {
			n.stop()
			return errors.New("listeners not ready after 10s: " + n.errorLog())
		}
		time.Sleep(delay)
	}
}

func (n *Nginx) accepting() bool {
	for _, a := range []string{n.streamAddr, n.httpAddr} {
		if a == "" {
			continue
		}
		c, err := net.DialTimeout("tcp", a, 200*time.Millisecond)
		if err != nil {
			return false
		}
		c.Close()
	}
	return true
}

// stop asks nginx for a fast shutdown (SIGTERM) and kills it if that hangs.
func (n *Nginx) stop() {
	n.stopOnce.Do(func() {
		_ = n.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-n.done:
		case <-time.After(10 * time.Second):
			_ = n.cmd.Process.Kill()
			<-n.done
		}
	})
}

func (n *Nginx) errorLog() string {
	b, _ := os.ReadFile(filepath.Join(n.dir, "error.log"))
	return string(b)
}

// StreamAddr is the host:port of the TCP proxy ("" without stream upstreams).
func (n *Nginx) StreamAddr() string { return n.streamAddr }

// HTTPAddr is the host:port of the WebSocket proxy ("" without http upstreams).
func (n *Nginx) HTTPAddr() string { return n.httpAddr }

// Dir is nginx's prefix folder: config, logs and pid file.
func (n *Nginx) Dir() string { return n.dir }

// Stop shuts nginx down before the test ends (to test clients losing the
// proxy); cleanup does it otherwise.
func (n *Nginx) Stop() { n.stop() }

var moduleRoot struct {
	once sync.Once
	dir  string
	err  error
}

// ModuleRoot returns the repository root: the nearest folder at or above
// the working directory that holds go.mod.
func ModuleRoot(tb testing.TB) string {
	tb.Helper()
	moduleRoot.once.Do(func() {
		dir, err := os.Getwd()
		if err != nil {
			moduleRoot.err = err
			return
		}
		for {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				moduleRoot.dir = dir
				return
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				moduleRoot.err = errors.New("no go.mod at or above the working directory")
				return
			}
			dir = parent
		}
	})
	if moduleRoot.err != nil {
		tb.Fatalf("testenv: module root: %v", moduleRoot.err)
	}
	return moduleRoot.dir
}
