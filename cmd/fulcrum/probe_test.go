package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestProbe: `fulcrum probe` explains a verdict: a ColdFusion-style server
// answering 200 with "404 Object Not Found" is dead under body_reject, alive
// without it; a configured keepalive runs with -c --pool --server.
func TestProbe(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "<html>404 Object Not Found</html>")
	}))
	defer srv.Close()
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"probe", srv.URL + "/isrunning.cfm", "--method", "GET", "--body-reject", "404 Object Not Found"}, &out, &errb)
	if code != 1 || !strings.Contains(out.String(), "404 Object Not Found") {
		t.Fatalf("probe with body-reject: exit %d, transcript:\n%s%s", code, out.String(), errb.String())
	}
	out.Reset()
	if code := run(context.Background(), []string{"probe", srv.URL + "/isrunning.cfm", "--method", "GET"}, &out, &errb); code != 0 {
		t.Fatalf("plain GET probe: exit %d\n%s", code, out.String())
	}
	// TCP probe of a closed port fails with the reason.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := ln.Addr().String()
	ln.Close()
	out.Reset()
	if code := run(context.Background(), []string{"probe", closed}, &out, &errb); code != 1 || !strings.Contains(out.String(), "refused") {
		t.Fatalf("probe of a closed port: exit %d\n%s", code, out.String())
	}
	// A configured keepalive.
	path := filepath.Join(t.TempDir(), "f.yaml")
	os.WriteFile(path, []byte(fmt.Sprintf("listeners: [{name: w, listen: '127.0.0.1:1', protocol: http, pool: app}]\npools:\n  - name: app\n    keepalive: {type: http, method: GET, path: /, body_reject: 'Object Not Found'}\n    servers: [{name: a, address: %q}]\n", srv.Listener.Addr().String())), 0o644)
	out.Reset()
	if code := run(context.Background(), []string{"probe", "-c", path, "--pool", "app", "--server", "a"}, &out, &errb); code != 1 || !strings.Contains(out.String(), "Object Not Found") {
		t.Fatalf("configured probe: exit %d\n%s%s", code, out.String(), errb.String())
	}
	if code := run(context.Background(), []string{"probe", "-c", path, "--pool", "app", "--server", "zz"}, &out, &errb); code != 2 {
		t.Fatalf("unknown server: exit %d, want 2", code)
	}
}
