package app_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fulcrumlb/fulcrum/internal/app"
	"github.com/fulcrumlb/fulcrum/internal/config"
)

// farmConfig is a config of pools pools of servers servers each behind one
// HTTP listener with a route per pool (an exact host, a wildcard host with a
// path prefix, or a path prefix, in turn) and a default route. Servers are
// 127.1.P.S:port, where nothing listens: with keepalive "tcp" every check is
// refused at once (the servers go down, which costs a reload nothing);
// with "none" nothing is probed.
func farmConfig(web, admin string, pools, servers int, keepalive string, port int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "admin: {listen: %s}\nlog: {access: false, level: error}\n", admin)
	fmt.Fprintf(&b, "listeners:\n  - name: web\n    listen: %s\n    protocol: http\n    routes:\n", web)
	for p := range pools {
		switch p % 3 {
		case 0:
			fmt.Fprintf(&b, "      - {host: app%d.example.com, pool: pool%d}\n", p, p)
		case 1:
			fmt.Fprintf(&b, "      - {host: \"*.t%d.example.com\", path_prefix: /api/, pool: pool%d}\n", p, p)
		case 2:
			fmt.Fprintf(&b, "      - {path_prefix: /svc%d/, pool: pool%d}\n", p, p)
		}
	}
	b.WriteString("      - pool: pool0\npools:\n")
	for p := range pools {
		fmt.Fprintf(&b, "  - name: pool%d\n    balance: round_robin\n    keepalive: {type: %s}\n    servers:\n", p, keepalive)
		for s := range servers {
			fmt.Fprintf(&b, "      - {name: s%d, address: 127.1.%d.%d:%d}\n", s, p, s+1, port)
		}
	}
	return b.String()
}

// loopbackPort returns a loopback address that was free a moment ago.
func loopbackPort(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// BenchmarkReload is App.Reload (what SIGHUP and the admin API's reload run:
// read and validate the file, build pools, pickers, routes and keepalives,
// swap) of a farm of 100 pools of 10 servers (1,000 servers, 101 routes).
// "same" reloads an unchanged file (servers and checkers are carried over);
// "moved" alternates between two files whose every server has a new address
// (1,000 servers, upstream pools and checkers built and 1,000 retired).
func BenchmarkReload(b *testing.B) {
	const pools, servers = 100, 10
	for _, keepalive := range []string{"none", "tcp"} {
		for _, change := range []string{"same", "moved"} {
			b.Run(fmt.Sprintf("servers=%d/keepalive=%s/%s", pools*servers, keepalive, change), func(b *testing.B) {
				dir := b.TempDir()
				web, admin := loopbackPort(b), loopbackPort(b)
				path := filepath.Join(dir, "fulcrum.yaml")
				texts := []string{farmConfig(web, admin, pools, servers, keepalive, 9)}
				if change == "moved" {
					texts = append(texts, farmConfig(web, admin, pools, servers, keepalive, 19))
				}
				write := func(i int) {
					if err := os.WriteFile(path, []byte(texts[i%len(texts)]), 0o644); err != nil {
						b.Fatal(err)
					}
				}
				write(0)
				cfg, err := config.Load(path)
				if err != nil {
					b.Fatalf("config: %v", err)
				}
				a, err := app.New(context.Background(), cfg, app.Options{ConfigPath: path, Logger: slog.New(slog.DiscardHandler)})
				if err != nil {
					b.Fatalf("app.New: %v", err)
				}
				b.Cleanup(func() {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					defer cancel()
					a.Shutdown(ctx)
				})
				if got := len(a.Pools()); got != pools {
					b.Fatalf("got %d pools, want %d", got, pools)
				}
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					b.StopTimer()
					i++
					write(i)
					b.StartTimer()
					if err := a.Reload(); err != nil {
						b.Fatalf("Reload: %v", err)
					}
				}
				b.ReportMetric(float64(b.Elapsed())/1e6/float64(b.N), "ms/reload")
			})
		}
	}
}
