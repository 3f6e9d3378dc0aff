package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writePair writes a self-signed certificate and its key into dir as
// name.pem and name.key.
func writePair(t *testing.T, dir, name string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(file, typ string, der []byte) {
		data := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
		if err := os.WriteFile(filepath.Join(dir, file), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(name+".pem", "CERTIFICATE", der)
	write(name+".key", "EC PRIVATE KEY", keyDER)
}

const httpsPools = `pools:
  - name: app
    servers: [{name: a, address: 127.0.0.1:9001}]
`

func TestHTTPSListener(t *testing.T) {
	dir := t.TempDir()
	writePair(t, dir, "one")
	writePair(t, dir, "two")
	tests := []struct{ name, tls string }{
		{"one mapping", "tls: {cert: one.pem, key: one.key}"},
		{"list", "tls: [{cert: one.pem, key: one.key}, {cert: two.pem, key: two.key}]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "listeners:\n  - name: web\n    listen: :8443\n    protocol: https\n    pool: app\n    " + tt.tls + "\n" + httpsPools
			c, err := Parse(filepath.Join(dir, "fulcrum.yaml"), []byte(src))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			for _, cert := range c.Listeners[0].TLS {
				if cert.Certificate == nil {
					t.Errorf("%s: certificate not loaded", cert.Cert)
				}
				if !filepath.IsAbs(cert.Cert) || filepath.Dir(cert.Key) != dir {
					t.Errorf("got paths %q %q, want them resolved against %s", cert.Cert, cert.Key, dir)
				}
			}
		})
	}
}

func TestHTTPSMismatchedPair(t *testing.T) {
	dir := t.TempDir()
	writePair(t, dir, "one")
	writePair(t, dir, "two")
	src := "listeners:\n  - name: web\n    listen: :8443\n    protocol: https\n    pool: app\n    tls:\n      - {cert: one.pem, key: two.key}\n" + httpsPools
	_, err := Parse(filepath.Join(dir, "fulcrum.yaml"), []byte(src))
	want := "fulcrum.yaml:7:9: listeners[0].tls[0]: cannot load certificate and key: tls: private key does not match public key"
	if err == nil || !strings.HasSuffix(err.Error(), want) {
		t.Errorf("got %v, want an error ending in %q", err, want)
	}
}

func TestTokenFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Parse(filepath.Join(dir, "f.yaml"), []byte("admin: {token_file: token}\n"+base))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if want := filepath.Join(dir, "token"); c.Admin.TokenFile != want {
		t.Errorf("token_file: got %q, want %q", c.Admin.TokenFile, want)
	}
	_, err = Parse(filepath.Join(dir, "f.yaml"), []byte("admin: {token_file: .}\n"+base))
	if err == nil || !strings.Contains(err.Error(), "is not a regular file") {
		t.Errorf("directory as token_file: got %v, want not a regular file", err)
	}
}
