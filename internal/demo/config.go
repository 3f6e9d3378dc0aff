package demo

import (
	"fmt"
	"strings"
)

// ConfigOptions describe the demo's fulcrum config.
type ConfigOptions struct {
	// Apps are the servers of the pools.
	Apps []*App
	// Listen is the balancer's address, Admin the admin API's.
	Listen, Admin string
	// Keyring, when set, is the key ring file: pool app then keeps each
	// client on one server with a sealed cookie (persistence mode cookie),
	// and the listener sends /roam/ to pool roam, the same servers without
	// persistence. Without it pool app is plain round robin.
	Keyring string
	// State, when set, adds the state: section (fulcrum runs the service).
	State *StateSection
	// AccessLog turns on the access log (server=app-N per request).
	AccessLog bool
}

// StateSection is the state service the config runs: a bolt store.
type StateSection struct {
	Listen    string
	TokenFile string
	Path      string // the bolt file
}

// keepalive is the HTTP keepalive every demo pool runs on /healthz.
const keepalive = `    keepalive:
      type: http
      method: GET
      path: /healthz
      body_match: '` + healthyBody + `'
      interval: 2s
      down_interval: 1s
      timeout: 1s
      rise: 2
      fall: 2
`

// Config returns the demo's fulcrum config: one HTTP listener balancing the
// apps round robin with an HTTP keepalive on /healthz, and the admin API;
// with o.Keyring, cookie persistence and the /roam/ route; with o.State,
// the state service.
func Config(o ConfigOptions) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# fulcrum demo config (generated)\nadmin:\n  listen: %s\nlog:\n  access: %v\n", o.Admin, o.AccessLog)
	if o.Keyring != "" {
		fmt.Fprintf(&b, "keyring: %q\n", o.Keyring)
	}
	if s := o.State; s != nil {
		fmt.Fprintf(&b, "state:\n  listen: %s\n", s.Listen)
		if s.TokenFile != "" {
			fmt.Fprintf(&b, "  token_file: %q\n", s.TokenFile)
		}
		fmt.Fprintf(&b, "  store:\n    type: bolt\n    path: %q\n", s.Path)
	}
	fmt.Fprintf(&b, "listeners:\n  - name: web\n    listen: %s\n    protocol: http\n    routes:\n", o.Listen)
	if o.Keyring != "" {
		b.WriteString("      - path_prefix: /roam/\n        pool: roam\n")
	}
	b.WriteString("      - pool: app\n")
	b.WriteString("pools:\n")
	pool(&b, "app", o.Apps, o.Keyring != "")
	if o.Keyring != "" {
		pool(&b, "roam", o.Apps, false)
	}
	return b.String()
}

func pool(b *strings.Builder, name string, apps []*App, sticky bool) {
	fmt.Fprintf(b, "  - name: %s\n    balance: round_robin\n", name)
	if sticky {
		b.WriteString("    persistence:\n      mode: cookie\n")
	}
	b.WriteString(keepalive)
	b.WriteString("    servers:\n")
	for _, a := range apps {
		fmt.Fprintf(b, "      - {name: %s, address: %q}\n", a.Name, a.Addr())
	}
}
