package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fulcrumlb/fulcrum/internal/app"
	"github.com/fulcrumlb/fulcrum/internal/config"
)

// ctlFulcrum is a fulcrum running in-process with a token on its admin
// API, two servers with keepalives in pool app, and a source_ip
// persistence table.
type ctlFulcrum struct {
	admin, web, tokenFile string
	backends              []*httptest.Server
}

func startCtlFulcrum(t *testing.T) *ctlFulcrum {
	t.Helper()
	dir := t.TempDir()
	f := &ctlFulcrum{admin: freePort(t), web: freePort(t), tokenFile: filepath.Join(dir, "admin.token")}
	if err := os.WriteFile(f.tokenFile, []byte("ctl-test-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var servers strings.Builder
	for _, name := range []string{"a", "b"} {
		b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, name) }))
		t.Cleanup(b.Close)
		f.backends = append(f.backends, b)
		fmt.Fprintf(&servers, "      - {name: %s, address: %q}\n", name, b.Listener.Addr().String())
	}
	text := fmt.Sprintf(`admin: {listen: %s, token_file: %s}
log: {access: false}
data_dir: %s
listeners:
  - {name: web, listen: %s, protocol: http, pool: app}
pools:
  - name: app
    keepalive: {type: http, path: /, interval: 100ms, timeout: 100ms, rise: 1, fall: 1}
    persistence: {mode: source_ip}
    servers:
%s`, f.admin, f.tokenFile, filepath.Join(dir, "data"), f.web, servers.String())
	path := filepath.Join(dir, "fulcrum.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	a, err := app.New(context.Background(), cfg, app.Options{ConfigPath: path, Logger: slog.New(slog.DiscardHandler), Version: "v9.9.9"})
	if err != nil {
		t.Fatalf("app.New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		a.Shutdown(ctx)
	})
	return f
}

// ctlRun runs `fulcrum ctl` in-process against f with the token.
func (f *ctlFulcrum) ctl(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	full := append([]string{"ctl", "--admin", "http://" + f.admin, "--token-file", f.tokenFile}, args...)
	code = run(context.Background(), full, &out, &errb)
	return code, out.String(), errb.String()
}

func TestCtl(t *testing.T) {
	f := startCtlFulcrum(t)
	resp, err := http.Get("http://" + f.web + "/") // one persistence entry, for 127.0.0.1
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()

	t.Run("status", func(t *testing.T) {
		code, out, errs := f.ctl(t, "status")
		if code != 0 {
			t.Fatalf("exit %d, stderr %s", code, errs)
		}
		for _, want := range []string{"fulcrum v9.9.9", "LISTENER", "web", "* -> app", "app/a", "app/b"} {
			if !strings.Contains(out, want) {
				t.Errorf("status lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("pools aligned", func(t *testing.T) {
		code, out, _ := f.ctl(t, "pools")
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 2 {
			t.Fatalf("got %d lines, want header and app:\n%s", len(lines), out)
		}
		// Columns line up: BALANCE starts where the app row's balance does.
		if got, want := strings.Index(lines[1], "round_robin"), strings.Index(lines[0], "BALANCE"); got != want {
			t.Errorf("balance column at %d, want %d (aligned):\n%s", got, want, out)
		}
		if !regexp.MustCompile(`^app\s+round_robin\s+2\s+`).MatchString(lines[1]) {
			t.Errorf("row = %q", lines[1])
		}
	})
	t.Run("drain then enable", func(t *testing.T) {
		code, out, errs := f.ctl(t, "drain", "app/a")
		if code != 0 || !regexp.MustCompile(`(?m)^a\s+\S+\s+draining\s`).MatchString(out) {
			t.Fatalf("drain: exit %d, out:\n%s%s", code, out, errs)
		}
		code, out, _ = f.ctl(t, "servers", "app")
		if code != 0 || !regexp.MustCompile(`(?m)^a\s+\S+\s+draining\s`).MatchString(out) {
			t.Fatalf("servers after drain: exit %d:\n%s", code, out)
		}
		code, out, _ = f.ctl(t, "disable", "app/b")
		if code != 0 || !strings.Contains(out, "disabled") {
			t.Fatalf("disable: exit %d:\n%s", code, out)
		}
		for _, s := range []string{"app/a", "app/b"} {
			if code, out, _ = f.ctl(t, "enable", s); code != 0 || strings.Contains(out, "draining") || strings.Contains(out, "disabled") {
				t.Fatalf("enable %s: exit %d:\n%s", s, code, out)
			}
		}
	})
	t.Run("weight", func(t *testing.T) {
		code, out, _ := f.ctl(t, "-o", "json", "weight", "app/b", "7")
		var sv struct{ Weight int }
		if code != 0 || json.Unmarshal([]byte(out), &sv) != nil || sv.Weight != 7 {
			t.Fatalf("weight: exit %d, out %s", code, out)
		}
		code, _, errs := f.ctl(t, "weight", "app/b", "5000")
		if code != 1 || !strings.Contains(errs, "weight must be an integer from 1 to 1000") || !strings.Contains(errs, "HTTP 400") {
			t.Errorf("weight 5000: exit %d, stderr %q; want 1 and the API's message", code, errs)
		}
	})
	t.Run("checks", func(t *testing.T) {
		deadline := time.Now().Add(5 * time.Second)
		for {
			code, out, errs := f.ctl(t, "checks", "app/a")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			if strings.Contains(out, "keepalive state: up") && regexp.MustCompile(`(?m)\spass\s+[\d.]+\s+200\s`).MatchString(out) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no passing check shown:\n%s", out)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	t.Run("persistence", func(t *testing.T) {
		code, out, errs := f.ctl(t, "persistence", "app")
		if code != 0 || !regexp.MustCompile(`(?m)^total\s+1$`).MatchString(out) {
			t.Fatalf("exit %d, out:\n%s%s", code, out, errs)
		}
		code, out, errs = f.ctl(t, "persistence", "app", "--key", "127.0.0.1")
		if code != 0 || !regexp.MustCompile(`(?m)^127\.0\.0\.1\s+[ab]\s`).MatchString(out) {
			t.Fatalf("lookup: exit %d, out:\n%s%s", code, out, errs)
		}
		code, _, errs = f.ctl(t, "persistence", "app", "--key", "10.9.9.9")
		if code != 1 || !strings.Contains(errs, "no entry for that key") {
			t.Errorf("missing key: exit %d, stderr %q", code, errs)
		}
	})
	t.Run("reload", func(t *testing.T) {
		if code, out, errs := f.ctl(t, "reload"); code != 0 || strings.TrimSpace(out) != "reloaded" {
			t.Fatalf("exit %d, out %q, stderr %q", code, out, errs)
		}
	})
}

func TestCtlFailures(t *testing.T) {
	f := startCtlFulcrum(t)
	for _, tc := range []struct {
		name     string
		args     []string
		code     int
		inStderr string
	}{
		{"unknown server", []string{"drain", "app/zz"}, 1, `no server "zz" in pool "app" (HTTP 404)`},
		{"unknown pool", []string{"servers", "nope"}, 1, `no pool "nope"`},
		{"not pool/server", []string{"drain", "app"}, 2, "want POOL/SERVER"},
		{"missing argument", []string{"weight", "app/a"}, 2, "want 2 argument(s)"},
		{"unknown command", []string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{"bad output", []string{"-o", "yaml", "pools"}, 2, "want table or json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errs := f.ctl(t, tc.args...)
			if code != tc.code || !strings.Contains(errs, tc.inStderr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errs, tc.code, tc.inStderr)
			}
		})
	}
	t.Run("wrong token", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "bad")
		os.WriteFile(bad, []byte("nope"), 0o600)
		var out, errb bytes.Buffer
		code := run(context.Background(), []string{"ctl", "--admin", "http://" + f.admin, "--token-file", bad, "pools"}, &out, &errb)
		if code != 1 || !strings.Contains(errb.String(), "missing or invalid bearer token (HTTP 401)") {
			t.Errorf("exit %d, stderr %q", code, errb.String())
		}
	})
	t.Run("nothing listening", func(t *testing.T) {
		var out, errb bytes.Buffer
		code := run(context.Background(), []string{"ctl", "--admin", "http://" + freePort(t), "pools"}, &out, &errb)
		if code != 1 || !strings.Contains(errb.String(), "connection refused") {
			t.Errorf("exit %d, stderr %q", code, errb.String())
		}
	})
}
