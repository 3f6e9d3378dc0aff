package app_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// selfSigned writes a self-signed certificate for host (and 127.0.0.1) and
// its key as PEM files in dir, and returns their paths and the certificate.
func selfSigned(t *testing.T, dir, host string) (certFile, keyFile string, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: host},
		DNSNames:              []string{host},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true, // its own root, so a client can trust it
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err = x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, host+".crt"), filepath.Join(dir, host+".key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, cert
}

// tlsClient returns a client trusting roots that sends every connection to
// addr, whatever the URL's host (which still sets SNI and Host). h2 selects
// HTTP/2 by ALPN; otherwise the client offers only HTTP/1.1.
func tlsClient(t *testing.T, addr string, roots *x509.CertPool, h2 bool) *http.Client {
	t.Helper()
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
		ForceAttemptHTTP2: h2,
	}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{} // no h2
		tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func TestHTTPS(t *testing.T) {
	f := newFarm(t, "a")
	dir := t.TempDir()
	aCert, aKey, aX509 := selfSigned(t, dir, "a.test")
	bCert, bKey, bX509 := selfSigned(t, dir, "b.test")
	roots := x509.NewCertPool()
	roots.AddCert(aX509)
	roots.AddCert(bX509)

	web, admin := freePort(t), freePort(t)
	listeners := fmt.Sprintf("  - name: web\n    listen: %q\n    protocol: https\n    tls:\n      - {cert: %q, key: %q}\n      - {cert: %q, key: %q}\n    routes:\n      - {pool: app}\n",
		web, aCert, aKey, bCert, bKey)
	start(t, appText(admin, listeners, poolConf{name: "app", balance: "round_robin", servers: f.servers()}))

	for _, tc := range []struct {
		name      string
		h2        bool
		host      string
		wantProto int
	}{
		{"HTTP/2 by ALPN", true, "a.test", 2},
		{"HTTP/1.1 only client", false, "a.test", 1},
		{"HTTP/2, second certificate by SNI", true, "b.test", 2},
		{"HTTP/1.1, second certificate by SNI", false, "b.test", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tlsClient(t, web, roots, tc.h2)
			for i := range 3 { // several requests on one connection
				resp, err := c.Get("https://" + tc.host + "/")
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					t.Fatalf("request %d: reading body: %v", i, err)
				}
				if resp.StatusCode != 200 || string(b) != "a" {
					t.Fatalf("request %d: %d %q, want 200 %q", i, resp.StatusCode, b, "a")
				}
				if resp.ProtoMajor != tc.wantProto {
					t.Fatalf("request %d: protocol %s, want HTTP/%d", i, resp.Proto, tc.wantProto)
				}
				if got := resp.TLS.PeerCertificates[0].Subject.CommonName; got != tc.host {
					t.Fatalf("request %d: certificate for %q, want the one for %q (SNI)", i, got, tc.host)
				}
				if got := resp.Header.Get("X-Seen-Proto"); got != "https" {
					t.Fatalf("request %d: backend saw X-Forwarded-Proto %q, want %q", i, got, "https")
				}
			}
		})
	}
	t.Run("concurrent HTTP/2 streams on one connection", func(t *testing.T) {
		c := tlsClient(t, web, roots, true)
		errs := make(chan error, 20)
		for range cap(errs) {
			go func() {
				resp, err := c.Get("https://a.test/")
				if err != nil {
					errs <- err
					return
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err == nil && (resp.ProtoMajor != 2 || string(b) != "a") {
					err = fmt.Errorf("got %s %q, want HTTP/2 %q", resp.Proto, b, "a")
				}
				errs <- err
			}()
		}
		for range cap(errs) {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
	})
}

func TestIPv6(t *testing.T) {
	probe, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("cannot bind [::1] on this machine: %v", err)
	}
	web := probe.Addr().String()
	probe.Close()

	bl, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("cannot bind [::1] on this machine: %v", err)
	}
	backend := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Seen-For", r.Header.Get("X-Forwarded-For"))
		io.WriteString(w, "v6")
	}))
	backend.Listener.Close()
	backend.Listener = bl
	backend.Start()
	defer backend.Close()

	admin := freePort(t)
	text := appText(admin, httpListener("web", web, "{pool: app}"),
		poolConf{name: "app", balance: "round_robin", servers: []server{{name: "v6", addr: bl.Addr().String()}}})
	fx := start(t, text)
	if got := fx.app.ListenerAddr("web").String(); got != web {
		t.Fatalf("listener bound %s, want %s", got, web)
	}
	resp, err := newClient(t).Get("http://" + web + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "v6" {
		t.Fatalf("GET over [::1]: %d %q, want 200 %q", resp.StatusCode, b, "v6")
	}
	if got := resp.Header.Get("X-Seen-For"); got != "::1" {
		t.Fatalf("backend saw X-Forwarded-For %q, want %q", got, "::1")
	}
}
