package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/fulcrumlb/fulcrum/internal/app"
	"github.com/fulcrumlb/fulcrum/internal/config"
	"github.com/fulcrumlb/fulcrum/internal/demo"
)

// cmdDemo runs the demo farm: three sample servers keeping their sessions in
// the state service, and a balancer with keepalives and persistence in
// front of them, all on loopback with files in a temporary directory.
//
// `fulcrum demo --chaos` (issue 7) hooks in here: after serve has started
// the app, a goroutine owned by this function flips farm.Apps[i].SetFault.
func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8080", "balancer address")
	adminAddr := fs.String("admin", "127.0.0.1:9090", "admin API address")
	stateAddr := fs.String("state", "127.0.0.1:9100", "state service address (a fixed port: the sample servers are told it before it starts)")
	if err := fs.Parse(args); err != nil {
		return exitError{code: 2}
	}
	dir, err := os.MkdirTemp("", "fulcrum-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	farm, err := demo.StartFarm(demo.FarmOptions{Dir: dir, Listen: *listen, Admin: *adminAddr, State: *stateAddr})
	if err != nil {
		return err
	}
	defer farm.Stop()
	cfg, err := config.Load(farm.ConfigPath)
	if err != nil {
		return err
	}
	return serve(ctx, cfg, farm.ConfigPath, stderr, func(a *app.App) { printBanner(stdout, farm, a) })
}

func printBanner(w io.Writer, farm *demo.Farm, a *app.App) {
	web := a.ListenerAddr("web").String()
	fmt.Fprintf(w, "fulcrum demo is running (config: %s)\n\n", farm.ConfigPath)
	for _, s := range farm.Apps {
		fmt.Fprintf(w, "  sample server %s   http://%s/\n", s.Name, s.Addr())
	}
	fmt.Fprintf(w, "  state service        http://%s/v1/stats   (bolt %s; token in %s)\n\n", a.StateAddr(), farm.StateDB, farm.TokenFile)
	fmt.Fprintf(w, "  balancer     http://%s/        cookie persistence: you stay on one server\n", web)
	fmt.Fprintf(w, "               http://%s/roam/   no persistence: every request goes to the next server,\n", web)
	fmt.Fprintf(w, "                                              and the session's visit counter keeps counting\n")
	fmt.Fprintf(w, "  admin API    http://%s/api/v1/pools\n", a.AdminAddr())
	fmt.Fprintf(w, "  metrics      http://%s/metrics\n\n", a.AdminAddr())
	fmt.Fprintf(w, "Open the balancer in a browser, or: J=$(mktemp); for i in 1 2 3 4; do curl -s -b $J -c $J http://%s/roam/ | head -2; done\n", web)
	fmt.Fprintf(w, "Each request is logged below with the server that answered it (server=app-N). Ctrl-C stops.\n\n")
}
