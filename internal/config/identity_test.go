package config

import (
	"net/netip"
	"testing"
	"time"
)

// The client-identity contract of issue 6, accepted exactly as written.
const identityYAML = `listeners:
  - name: web
    listen: 127.0.0.1:8080
    protocol: http
    accept_proxy: true               # read a PROXY protocol v1/v2 header first
    trusted_proxies: [127.0.0.0/8]   # only these may send PROXY headers or X-Forwarded-For/Forwarded that fulcrum believes
    routes:
      - path_prefix: /api/
        pool: api
        cors:
          allow_origins: ["https://app.example.com"]
          allow_methods: [GET, POST, PUT, DELETE]
          allow_headers: [Content-Type, X-Requested-With]
          allow_credentials: true
          max_age: 10m
      - pool: app
pools:
  - name: app
    client_ip: forwarded             # none | forwarded (X-Forwarded-For + Forwarded, default) | proxy_v1 | proxy_v2 | transparent
    servers: [{name: a, address: 127.0.0.1:9001}]
  - name: api
    client_ip: proxy_v2
    keepalive: {type: tcp, send_proxy: true}
    servers: [{name: b, address: 127.0.0.1:9002}]
`

func TestIdentityContract(t *testing.T) {
	c, err := Parse("identity.yaml", []byte(identityYAML))
	if err != nil {
		t.Fatal(err)
	}
	l := c.Listeners[0]
	if !l.AcceptProxy || len(l.TrustedPrefixes) != 1 || l.TrustedPrefixes[0] != netip.MustParsePrefix("127.0.0.0/8") {
		t.Errorf("listener identity = %v %v", l.AcceptProxy, l.TrustedPrefixes)
	}
	cors := l.Routes[0].CORS
	if cors == nil || cors.AllowOrigins[0] != "https://app.example.com" || len(cors.AllowMethods) != 4 ||
		len(cors.AllowHeaders) != 2 || !cors.AllowCredentials || cors.MaxAge != 10*time.Minute {
		t.Errorf("cors = %+v", cors)
	}
	if l.Routes[1].CORS != nil {
		t.Errorf("route without cors got a policy")
	}
	if c.Pools[0].ClientIP != "forwarded" || c.Pools[1].ClientIP != "proxy_v2" || !c.Pools[1].Keepalive.SendProxy {
		t.Errorf("client_ip = %q %q", c.Pools[0].ClientIP, c.Pools[1].ClientIP)
	}
	// The default is forwarded.
	c, err = Parse("d.yaml", []byte("listeners: [{name: w, listen: ':8080', protocol: http, pool: p}]\npools: [{name: p, servers: [{name: a, address: '127.0.0.1:1'}]}]\n"))
	if err != nil || c.Pools[0].ClientIP != "forwarded" {
		t.Fatalf("default client_ip: %v %q", err, c.Pools[0].ClientIP)
	}
	// A single address counts as a /32.
	c, err = Parse("d.yaml", []byte("listeners: [{name: w, listen: ':8080', protocol: http, pool: p, trusted_proxies: 10.1.2.3}]\npools: [{name: p, servers: [{name: a, address: '127.0.0.1:1'}]}]\n"))
	if err != nil || c.Listeners[0].TrustedPrefixes[0] != netip.MustParsePrefix("10.1.2.3/32") {
		t.Fatalf("single address: %v %v", err, c.Listeners[0].TrustedPrefixes)
	}
}
