//go:build linux

package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"encoding/xml"
	"fmt"
	"io"
	"maps"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// h2specExcluded lists the h2spec cases TestH2spec does not hold fulcrum to,
// by the id h2spec takes on its command line (group/section/number, e.g.
// "http2/6.9.1/2"), each with the reason. Only cases that cannot apply to a
// reverse proxy belong here; a case fulcrum fails is a bug to fix. An
// excluded case that passes, or that h2spec no longer has, fails the test so
// the list stays true.
var h2specExcluded = map[string]string{}

// h2specCaseTimeout is h2spec's -o: how long a case waits for the frame or
// close it expects before it fails with "Timeout". A passing run takes under
// a second; one against a server that never answers, 145 x 5 s.
const h2specCaseTimeout = 5 * time.Second

// TestH2spec runs the whole h2spec suite (http2, hpack and generic; strict
// cases left out) over TLS against an https listener of an in-process
// fulcrum in front of a plain HTTP/1.1 backend, and fails naming every case
// that failed with what h2spec expected and what it got.
//
// h2spec is the binary at $FULCRUM_TEST_H2SPEC, else h2spec on PATH
// (`make h2spec`, part of `make test`, installs the pinned version). Like
// Redis, it is required: the test fails, never skips, without it.
func TestH2spec(t *testing.T) {
	bin := h2specBinary(t)
	var forwarded atomic.Int64
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		forwarded.Add(1)
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "hello from the backend\n")
	}))
	t.Cleanup(backend.Close)
	cert, key := writeSelfSigned(t, t.TempDir())
	web := freePort(t)
	startInProcess(t, h2specConfig(freePort(t), web, backend.Listener.Addr().String(), cert, key))

	dir := artifactsDir(t, "h2spec")
	cases, output := runH2spec(t, bin, web, dir)
	t.Logf("h2spec report and output in %s", dir)
	checkH2specCases(t, cases, h2specExcluded)
	// h2spec judges frames, not statuses: a fulcrum answering every stream
	// itself (502) would pass, so the backend must have seen requests.
	if n := forwarded.Load(); n == 0 {
		t.Error("the backend saw no request: fulcrum answered h2spec's streams without forwarding them")
	} else {
		t.Logf("the backend answered %d requests", n)
	}
	if _, summary, ok := strings.Cut(output, "Failures:"); ok {
		t.Logf("h2spec's own summary of the failures (with the requirement each checks):\n%s", strings.TrimSpace(summary))
	}
}

// h2specBinary returns the h2spec to run, or fails naming how to get one.
func h2specBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("FULCRUM_TEST_H2SPEC"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("h2spec is required: FULCRUM_TEST_H2SPEC=%s: %v (run `make h2spec` or `bash scripts/h2spec.sh`)", p, err)
		}
		return p
	}
	p, err := exec.LookPath("h2spec")
	if err != nil {
		t.Fatal("h2spec is required: run `bash scripts/h2spec.sh` and set FULCRUM_TEST_H2SPEC to the path it prints, or put h2spec on PATH (make test does both)")
	}
	return p
}

// h2specConfig is one https listener sending everything to backend (and
// the admin API on a port of its own, not the default 9090).
func h2specConfig(admin, web, backend, cert, key string) string {
	return fmt.Sprintf(`admin: {listen: %s}
log: {access: false}
listeners:
  - name: web
    listen: %s
    protocol: https
    tls: {cert: %q, key: %q}
    pool: app
pools:
  - name: app
    keepalive: {type: none}
    servers: [{name: b1, address: %q}]
`, admin, web, cert, key, backend)
}

// writeSelfSigned writes a self-signed certificate for 127.0.0.1 and
// localhost and its key as PEM files in dir, and returns their paths.
func writeSelfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "fulcrum.crt"), filepath.Join(dir, "fulcrum.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// runH2spec runs the whole suite against addr over TLS (certificate not
// verified), writing report.xml and h2spec.log to dir, and returns the
// cases of the report and h2spec's output. h2spec exits 1 when a case
// failed, which the caller judges from the report; a missing or unreadable
// report, or a failed run whose report shows no failed case, is fatal here.
func runH2spec(t *testing.T, bin, addr, dir string) ([]h2specCase, string) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	// A run where every case waits out its timeout takes 145 x 5 s; stop
	// before go test's own deadline, so the output is shown.
	timeout := 8 * time.Minute
	if d, ok := t.Deadline(); ok {
		timeout = min(timeout, time.Until(d)-30*time.Second)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	report := filepath.Join(dir, "report.xml")
	cmd := exec.CommandContext(ctx, bin, "-h", host, "-p", port, "-t", "-k",
		"-j", report, "-o", fmt.Sprint(int(h2specCaseTimeout/time.Second)))
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	out, runErr := cmd.CombinedOutput()
	t.Logf("h2spec took %v", time.Since(start).Round(time.Millisecond))
	if err := os.WriteFile(filepath.Join(dir, "h2spec.log"), out, 0o644); err != nil {
		t.Errorf("saving h2spec's output: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatalf("h2spec still running after %v; its output:\n%s", timeout, out)
	}
	cases, err := readH2specReport(report)
	if err != nil {
		t.Fatalf("h2spec (%v) left no usable report: %v; its output:\n%s", runErr, err, out)
	}
	if len(cases) == 0 {
		t.Fatalf("h2spec's report has no cases; its output:\n%s", out)
	}
	if runErr != nil && !slices.ContainsFunc(cases, func(c h2specCase) bool { return c.Failed }) {
		t.Fatalf("h2spec failed (%v) with no failed case in its report; its output:\n%s", runErr, out)
	}
	return cases, string(out)
}

// h2specCase is one case of h2spec's report.
type h2specCase struct {
	ID, Desc string // ID as h2spec's command line takes it: "http2/6.5.3/2"
	Skipped  bool
	Failed   bool
	Expected []string // what h2spec waited for (any one of them would do)
	Actual   string   // what it got instead, or why the case could not run
}

func (c h2specCase) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", c.ID, c.Desc)
	if len(c.Expected) == 0 {
		fmt.Fprintf(&b, "\n    error:    %s", c.Actual)
		return b.String()
	}
	for i, e := range c.Expected {
		label := "expected: "
		if i > 0 {
			label = "       or "
		}
		fmt.Fprintf(&b, "\n    %s%s", label, e)
	}
	fmt.Fprintf(&b, "\n    actual:   %s", c.Actual)
	return b.String()
}

// The JUnit XML h2spec writes (reporter/junit_report.go).
type junitReport struct {
	Suites []struct {
		Package string `xml:"package,attr"` // the group's id: "http2/6.5.3"
		Cases   []struct {
			Desc    string     `xml:"classname,attr"`
			Failure *junitText `xml:"failure"`
			Error   *junitText `xml:"error"`
			Skipped *junitText `xml:"skipped"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

type junitText struct {
	Text string `xml:",chardata"`
}

// readH2specReport reads h2spec's JUnit report. A group's cases are listed
// in h2spec's order, so the n-th is case n of the group.
func readH2specReport(path string) ([]h2specCase, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r junitReport
	if err := xml.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("parsing %s: %w", path, err)
	}
	var cases []h2specCase
	for _, s := range r.Suites {
		for i, tc := range s.Cases {
			c := h2specCase{ID: fmt.Sprintf("%s/%d", s.Package, i+1), Desc: tc.Desc, Skipped: tc.Skipped != nil}
			switch {
			case tc.Failure != nil:
				c.Failed = true
				c.Expected, c.Actual = splitH2specFailure(tc.Failure.Text)
			case tc.Error != nil:
				c.Failed = true
				c.Expected, c.Actual = splitH2specError(tc.Error.Text)
			}
			cases = append(cases, c)
		}
	}
	return cases, nil
}

// splitH2specFailure splits a <failure>: "Expect:\n<lines>\nActual:\n<line>".
func splitH2specFailure(s string) (expected []string, actual string) {
	s = strings.TrimPrefix(strings.TrimSpace(s), "Expect:\n")
	exp, act, ok := strings.Cut(s, "\nActual:\n")
	if !ok {
		return nil, s
	}
	return strings.Split(exp, "\n"), act
}

// splitH2specError splits an <error>. h2spec v2.2.1 writes every failed case
// as one: its reporter's type switch looks for spec.TestError but the
// verifiers return *spec.TestError, so the text is the error's Error(): the
// expected lines, then the actual one. A one-line text is an error that
// ended the case before a verdict (a timeout, a closed connection).
func splitH2specError(s string) (expected []string, actual string) {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[:len(lines)-1], lines[len(lines)-1]
}

// checkH2specCases fails for every failed case not in excluded, every
// excluded case that passed and every excluded id h2spec does not have.
func checkH2specCases(t *testing.T, cases []h2specCase, excluded map[string]string) {
	t.Helper()
	var failed []string
	seen := map[string]bool{}
	passed, skipped := 0, 0
	for _, c := range cases {
		seen[c.ID] = true
		reason, isExcluded := excluded[c.ID]
		switch {
		case c.Failed && isExcluded:
			t.Logf("excluded (%s): %s", reason, c)
		case c.Failed:
			failed = append(failed, c.String())
		case c.Skipped:
			skipped++
		default:
			passed++
			if isExcluded {
				t.Errorf("%s %s passes now: remove it from h2specExcluded", c.ID, c.Desc)
			}
		}
	}
	for _, id := range slices.Sorted(maps.Keys(excluded)) {
		if !seen[id] {
			t.Errorf("h2specExcluded names %s, which h2spec did not run", id)
		}
	}
	t.Logf("h2spec: %d cases, %d passed, %d skipped, %d failed, %d excluded", len(cases), passed, skipped, len(failed), len(excluded))
	if len(failed) > 0 {
		t.Errorf("%d h2spec cases failed:\n%s", len(failed), strings.Join(failed, "\n"))
	}
}

// TestReadH2specReport reads a report in the form h2spec v2.2.1 writes.
func TestReadH2specReport(t *testing.T) {
	got, err := readH2specReport("testdata/h2spec-report.xml")
	if err != nil {
		t.Fatal(err)
	}
	want := []h2specCase{
		{ID: "generic/1/1", Desc: "Sends a client connection preface"},
		{ID: "http2/3.5/1", Desc: "Sends client connection preface"},
		{ID: "http2/3.5/2", Desc: "Sends invalid connection preface", Failed: true,
			Expected: []string{"Connection closed"}, Actual: "SETTINGS Frame (length:0, flags:0x00, stream_id:0)"},
		{ID: "http2/6.5.3/1", Desc: "Sends multiple values of SETTINGS_INITIAL_WINDOW_SIZE", Failed: true,
			Expected: []string{}, Actual: "Timeout"},
		{ID: "http2/6.5.3/2", Desc: "Sends a SETTINGS frame without ACK flag", Skipped: true},
		{ID: "hpack/2.3.3/1", Desc: "Sends a header field representation with invalid index", Failed: true,
			Expected: []string{"GOAWAY Frame (Error Code: COMPRESSION_ERROR)", "Connection closed"},
			Actual:   "DATA Frame (length:23, flags:0x01, stream_id:1)"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%#v\nwant\n%#v", got, want)
	}
	wantText := `http2/3.5/2 Sends invalid connection preface
    expected: Connection closed
    actual:   SETTINGS Frame (length:0, flags:0x00, stream_id:0)`
	if len(got) > 2 && got[2].String() != wantText {
		t.Errorf("got\n%s\nwant\n%s", got[2], wantText)
	}
}
