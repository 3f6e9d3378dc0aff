package config

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestPersistenceAsIssueWritesIt parses the persistence keys exactly as
// issue 4 shows them, with the key ring next to the config file.
func TestPersistenceAsIssueWritesIt(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "keys.json"), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	src := `keyring: ./keys.json
listeners:
  - {name: web, listen: 127.0.0.1:8080, protocol: http, pool: app}
pools:
  - name: app
    servers: [{name: a, address: 127.0.0.1:9001}]
    persistence:
      mode: cookie            # none | source_ip | cookie | app_cookie | url
      cookie: FULCRUM
      timeout: 30m
      on_down: redispatch
  - name: aspnet
    servers: [{name: a, address: 127.0.0.1:9001}]
    persistence:
      mode: app_cookie
      app_cookie: ASP.NET_SessionId
      url: asp
  - name: java
    servers: [{name: a, address: 127.0.0.1:9001}]
    persistence: {mode: url, url: jsessionid, on_down: fail, max_entries: 500}
  - name: legacy
    servers: [{name: a, address: 127.0.0.1:9001}]
    persistence: {mode: url, url: "query:sid"}
  - name: office
    servers: [{name: a, address: 127.0.0.1:9001}]
    persistence:
      mode: source_ip
      source_mask: 24
      source_mask_v6: 64
  - name: plain
    servers: [{name: a, address: 127.0.0.1:9001}]
`
	file := filepath.Join(dir, "fulcrum.yaml")
	c, err := Parse(file, []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "keys.json"); c.Keyring != want {
		t.Errorf("Keyring = %q, want %q (resolved against the config's directory)", c.Keyring, want)
	}
	want := map[string]Persistence{
		"app":    {Mode: "cookie", Cookie: "FULCRUM", Timeout: 30 * time.Minute, OnDown: "redispatch"},
		"aspnet": {Mode: "app_cookie", AppCookie: "ASP.NET_SessionId", URL: "asp", Timeout: 30 * time.Minute, OnDown: "redispatch", MaxEntries: 100000},
		"java":   {Mode: "url", URL: "jsessionid", Timeout: 30 * time.Minute, OnDown: "fail", MaxEntries: 500},
		"legacy": {Mode: "url", URL: "query:sid", Timeout: 30 * time.Minute, OnDown: "redispatch", MaxEntries: 100000},
		"office": {Mode: "source_ip", SourceMask: 24, SourceMaskV6: 64, Timeout: 30 * time.Minute, OnDown: "redispatch", MaxEntries: 100000},
		"plain":  {Mode: "none", Timeout: 30 * time.Minute, OnDown: "redispatch"},
	}
	for name, w := range want {
		if got := c.Pool(name).Persistence; got != w {
			t.Errorf("pool %s: got %+v\nwant %+v", name, got, w)
		}
	}
	src2 := `listeners: [{name: web, listen: 127.0.0.1:8080, protocol: http, pool: p}]
pools:
  - name: p
    servers: [{name: a, address: 127.0.0.1:9001}]
    persistence: {mode: source_ip}
`
	if got := mustParse(t, src2).Pools[0].Persistence; got.SourceMask != 32 || got.SourceMaskV6 != 128 || got.Table() != true {
		t.Errorf("source_ip defaults: got %+v, want masks 32/128", got)
	}
}
