package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/fulcrumlb/fulcrum/internal/app"
	"github.com/fulcrumlb/fulcrum/internal/config"
	"github.com/fulcrumlb/fulcrum/internal/demo"
)

// cmdDemo starts three sample servers and a balancer in front of them.
func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8080", "balancer address")
	adminAddr := fs.String("admin", "127.0.0.1:9090", "admin API address")
	if err := fs.Parse(args); err != nil {
		return exitError{code: 2}
	}
	apps, err := demo.StartApps(3)
	if err != nil {
		return fmt.Errorf("starting sample servers: %w", err)
	}
	defer demo.StopApps(apps)
	dir, err := os.MkdirTemp("", "fulcrum-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "fulcrum.yaml")
	if err := os.WriteFile(path, []byte(demo.Config(apps, *listen, *adminAddr)), 0o644); err != nil {
		return err
	}
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	return serve(ctx, cfg, path, stderr, func(a *app.App) {
		fmt.Fprintf(stdout, "fulcrum demo is running (config: %s)\n\n", path)
		for _, s := range apps {
			fmt.Fprintf(stdout, "  sample server %s   http://%s/\n", s.Name, s.Addr())
		}
		fmt.Fprintf(stdout, "\n  balancer     http://%s/        (try: curl -s http://%s/ several times)\n", a.ListenerAddr("web"), a.ListenerAddr("web"))
		fmt.Fprintf(stdout, "  admin API    http://%s/api/v1/pools\n", a.AdminAddr())
		fmt.Fprintf(stdout, "  metrics      http://%s/metrics\n\n", a.AdminAddr())
		fmt.Fprintf(stdout, "Each request is logged below with the server that answered it (server=app-N). Ctrl-C stops.\n\n")
	})
}
