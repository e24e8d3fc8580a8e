package web_test

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"

	"github.com/chromedp/chromedp"

	"clusterchat/internal/testenv"
)

// spkiHash is what Chromium's --ignore-certificate-errors-spki-list takes:
// base64 of the SHA-256 of the certificate's public key. It makes the
// browser accept exactly this test certificate, as if its CA were
// installed, and nothing else.
func spkiHash(t *testing.T, certFile string) string {
	b, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM", certFile)
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// TestBrowserWSS: the web client over HTTPS and WSS, served by a chatserver
// with -tls-cert/-tls-key, and behind the TLS-terminating nginx
// (deploy/nginx/nginx-tls.conf.tmpl) in front of a plain one; people chat
// in Chromium on each.
func TestBrowserWSS(t *testing.T) {
	ca := testenv.NewCA(t)
	cert, key := ca.Issue(t, "127.0.0.1")
	browser := startBrowser(t, chromedp.Flag("ignore-certificate-errors-spki-list", spkiHash(t, cert)))
	bin := testenv.BuildServer(t)

	tlsServer := testenv.StartServer(t, bin, "-store", "sqlite:"+filepath.Join(t.TempDir(), "tls.db"), "-bcrypt-cost", "4",
		"-tls-cert", cert, "-tls-key", key)
	plain := testenv.StartServer(t, bin, "-store", "sqlite:"+filepath.Join(t.TempDir(), "plain.db"), "-bcrypt-cost", "4",
		"-trusted-proxies", "127.0.0.1")
	waitReady(t, plain)
	ng := testenv.StartNginxTLS(t, nil, []string{plain.HTTPAddr()}, cert, key)

	for _, tt := range []struct {
		name, url string
	}{
		{"ServerTLS", "https://" + tlsServer.HTTPAddr() + "/"},
		{"NginxTLS", "https://" + ng.HTTPAddr() + "/"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			alice, bob := newPerson(t, browser, "alice-"+tt.name), newPerson(t, browser, "bob-"+tt.name)
			a, b := alice.open(tt.url), bob.open(tt.url)
			a.register()
			b.register()
			var scheme string
			a.eval(`location.protocol`, &scheme)
			if scheme != "https:" { // and so the page speaks wss: (mixed content is blocked)
				t.Fatalf("page protocol %q, want https:", scheme)
			}
			chatBothWays(a, b, "over wss", "and back")
		})
	}
}
