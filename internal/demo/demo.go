// Package demo holds the sample application servers and the config that
// `fulcrum demo` runs: a small web farm on loopback to try fulcrum on.
package demo

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// App is one sample application server.
type App struct {
	Name string
	srv  *http.Server
	ln   net.Listener
	hits atomic.Int64
	wg   sync.WaitGroup
}

// Addr is the app's host:port.
func (a *App) Addr() string { return a.ln.Addr().String() }

// StartApps starts n sample servers on loopback, named app-1..app-n.
func StartApps(n int) ([]*App, error) {
	var apps []*App
	for i := 1; i <= n; i++ {
		a, err := startApp(fmt.Sprintf("app-%d", i))
		if err != nil {
			StopApps(apps)
			return nil, err
		}
		apps = append(apps, a)
	}
	return apps, nil
}

func startApp(name string) (*App, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	a := &App{Name: name, ln: ln}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "Successfully Running")
	})
	mux.HandleFunc("/", a.page)
	a.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		if err := a.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			_ = err
		}
	}()
	return a, nil
}

func (a *App) page(w http.ResponseWriter, r *http.Request) {
	n := a.hits.Add(1)
	w.Header().Set("X-Served-By", a.Name)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "Hello from %s (request %d on this server)\n", a.Name, n)
	fmt.Fprintf(w, "You are %s as seen through X-Forwarded-For; path %s\n", r.Header.Get("X-Forwarded-For"), r.URL.Path)
}

// StopApps stops the apps and waits for them.
func StopApps(apps []*App) {
	for _, a := range apps {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		a.srv.Shutdown(ctx)
		cancel()
		a.wg.Wait()
	}
}

// Config returns the demo's fulcrum config: one HTTP listener balancing the
// apps round robin with an HTTP keepalive on /healthz, and the admin API.
func Config(apps []*App, listen, admin string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# fulcrum demo config (generated)\nadmin:\n  listen: %s\nlog:\n  access: true\n", admin)
	fmt.Fprintf(&b, "listeners:\n  - name: web\n    listen: %s\n    protocol: http\n    routes:\n      - pool: app\n", listen)
	b.WriteString("pools:\n  - name: app\n    balance: round_robin\n")
	b.WriteString("    keepalive:\n      type: http\n      method: GET\n      path: /healthz\n      body_match: 'Successfully Running'\n      interval: 2s\n      down_interval: 1s\n      timeout: 1s\n      rise: 2\n      fall: 2\n")
	b.WriteString("    servers:\n")
	for _, a := range apps {
		fmt.Fprintf(&b, "      - {name: %s, address: %q}\n", a.Name, a.Addr())
	}
	return b.String()
}
