package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// certReloader serves the certificate in a PEM pair of files and picks up a
// new one without a restart: on ReloadTLS (chatserver calls it on SIGHUP)
// and, at the next handshake, when either file changed (checked at most
// once a second, by size and modification time). A pair that fails to load
// (say, the certificate renewed but not yet the key) keeps the old one in
// service and is tried again at the next check.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   string    // size and mtime of both files when cert was loaded
	checked time.Time // last look at the files
}

// reloadCheckEvery bounds how often a handshake looks at the files.
const reloadCheckEvery = time.Second

func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, log: log}
	if err := r.reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// fileStamp is what tells a changed pair of files from the one loaded.
func (r *certReloader) fileStamp() string {
	var s string
	for _, f := range []string{r.certFile, r.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return "" // missing: compares unequal, the load reports why
		}
		s += fmt.Sprintf("%d/%d;", fi.Size(), fi.ModTime().UnixNano())
	}
	return s
}

// reload loads the files now; on failure the certificate in service stays.
func (r *certReloader) reload() error {
	stamp := r.fileStamp()
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.checked = time.Now()
	if err != nil {
		return fmt.Errorf("server: TLS certificate %s / key %s: %w", r.certFile, r.keyFile, err)
	}
	changed := r.cert != nil
	r.cert, r.stamp = &cert, stamp
	if changed {
		r.log.Info("TLS certificate reloaded", "cert", r.certFile, "not_after", cert.Leaf.NotAfter)
	}
	return nil
}

// getCertificate is tls.Config.GetCertificate.
func (r *certReloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	due := time.Since(r.checked) >= reloadCheckEvery
	if due {
		r.checked = time.Now()
	}
	stamp := r.stamp
	r.mu.Unlock()
	if due && r.fileStamp() != stamp {
		if err := r.reload(); err != nil {
			r.log.Warn("TLS certificate changed on disk but does not load; keeping the old one", "err", err)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cert, nil
}

// tlsConfig is the server side of TLS for both listeners. HTTP/2 is not
// offered: WebSocket upgrades need HTTP/1.1.
func (r *certReloader) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: r.getCertificate,
		NextProtos:     []string{"http/1.1"},
	}
}

// ReloadTLS loads the TLS certificate and key files again (chatserver
// calls it on SIGHUP). New connections get the new certificate; open ones
// keep theirs. It fails, keeping the old certificate, if the files do not
// load or TLS is off.
func (s *Server) ReloadTLS() error {
	if s.certs == nil {
		return errors.New("server: TLS is not enabled")
	}
	return s.certs.reload()
}
