package demo

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fulcrumlb/fulcrum/internal/config"
	"github.com/fulcrumlb/fulcrum/state"
	"github.com/fulcrumlb/fulcrum/state/memstore"
)

// TestFarmConfigLoads: the generated config, with persistence, the /roam/
// route and the state section, passes fulcrum's validation; so does the
// plain one.
func TestFarmConfigLoads(t *testing.T) {
	dir := t.TempDir()
	f, err := StartFarm(FarmOptions{Dir: dir, Listen: "127.0.0.1:1", Admin: "127.0.0.1:2", State: "127.0.0.1:3"})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	cfg, err := config.Load(f.ConfigPath)
	if err != nil {
		t.Fatalf("farm config: %v", err)
	}
	if cfg.State == nil || cfg.State.Store.Type != "bolt" || cfg.Keyring != f.Keyring {
		t.Errorf("farm config: state %+v, keyring %q; want a bolt state service and the key ring", cfg.State, cfg.Keyring)
	}
	var modes []string
	for _, p := range cfg.Pools {
		modes = append(modes, p.Name+":"+p.Persistence.Mode)
	}
	if got, want := strings.Join(modes, " "), "app:cookie roam:none"; got != want {
		t.Errorf("pools %s, want %s", got, want)
	}

	plain := filepath.Join(dir, "plain.yaml")
	os.WriteFile(plain, []byte(Config(ConfigOptions{Apps: f.Apps, Listen: "127.0.0.1:1", Admin: "127.0.0.1:2"})), 0o644)
	if cfg, err := config.Load(plain); err != nil || len(cfg.Pools) != 1 || cfg.Pools[0].Persistence.Mode != "none" || cfg.State != nil {
		t.Errorf("plain config: %v", err)
	}
}

// TestFaults: the chaos hook changes what /healthz answers.
func TestFaults(t *testing.T) {
	srv, err := state.NewServer(state.Options{Store: memstore.New(memstore.Options{})})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer srv.Close()
	defer hs.Close()
	f, err := StartFarm(FarmOptions{Dir: t.TempDir(), Apps: 1, State: strings.TrimPrefix(hs.URL, "http://")})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	a := f.Apps[0]
	for _, tc := range []struct {
		fault  Fault
		status int
		body   string
	}{
		{FaultNone, 200, healthyBody + "\n"},
		{FaultDown, 503, "app-1 is down (demo fault)\n"},
		{FaultErrorBody, 200, "Internal error: database unavailable\n"},
		{FaultNone, 200, healthyBody + "\n"},
	} {
		a.SetFault(tc.fault)
		res, err := http.Get("http://" + a.Addr() + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != tc.status || string(b) != tc.body {
			t.Errorf("fault %d: %d %q, want %d %q", tc.fault, res.StatusCode, b, tc.status, tc.body)
		}
	}
}
