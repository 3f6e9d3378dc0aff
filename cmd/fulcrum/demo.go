package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/fulcrumlb/fulcrum/internal/app"
	"github.com/fulcrumlb/fulcrum/internal/config"
	"github.com/fulcrumlb/fulcrum/internal/demo"
)

// cmdDemo runs the demo farm: three sample servers keeping their sessions in
// the state service, and a balancer with keepalives and persistence in
// front of them, all on loopback with files in a temporary directory.
//
// With --chaos a goroutine owned by this function breaks one sample server
// at a time (down, 200 with an error body, a changed page) so that the
// dashboard shows keepalives reacting.
func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8080", "balancer address")
	adminAddr := fs.String("admin", "127.0.0.1:9090", "admin API address")
	stateAddr := fs.String("state", "127.0.0.1:9100", "state service address (a fixed port: the sample servers are told it before it starts)")
	chaos := fs.Bool("chaos", false, "break one sample server at a time, in turn, so the keepalives react")
	chaosEvery := fs.Duration("chaos-every", 10*time.Second, "with --chaos: how long each fault lasts, and the pause between faults")
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
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	return serve(ctx, cfg, farm.ConfigPath, stderr, func(a *app.App) {
		printBanner(stdout, farm, a)
		if *chaos {
			wg.Add(1)
			go func() { defer wg.Done(); runChaos(ctx, farm, *chaosEvery, stdout) }()
		}
	})
}

// runChaos breaks the sample servers one at a time, each fault in turn,
// until ctx ends; each fault lasts every, then the server recovers for every.
func runChaos(ctx context.Context, farm *demo.Farm, every time.Duration, w io.Writer) {
	faults := []struct {
		f    demo.Fault
		what string
	}{
		{demo.FaultDown, "down (503 everywhere)"},
		{demo.FaultErrorBody, "200 OK with an error page on /healthz"},
		{demo.FaultChangedPage, "a changed /healthz page"},
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for i := 0; ; i++ {
		a := farm.Apps[i%len(farm.Apps)]
		fault := faults[i%len(faults)]
		a.SetFault(fault.f)
		fmt.Fprintf(w, "chaos: %s is now %s\n", a.Name, fault.what)
		select {
		case <-ctx.Done():
			a.SetFault(demo.FaultNone)
			return
		case <-t.C:
		}
		a.SetFault(demo.FaultNone)
		fmt.Fprintf(w, "chaos: %s recovered\n", a.Name)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
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
	fmt.Fprintf(w, "  dashboard    http://%s/\n", a.AdminAddr())
	fmt.Fprintf(w, "  admin API    http://%s/api/v1/pools\n", a.AdminAddr())
	fmt.Fprintf(w, "  metrics      http://%s/metrics\n\n", a.AdminAddr())
	fmt.Fprintf(w, "Open the balancer in a browser, or: J=$(mktemp); for i in 1 2 3 4; do curl -s -b $J -c $J http://%s/roam/ | head -2; done\n", web)
	fmt.Fprintf(w, "Each request is logged below with the server that answered it (server=app-N). Ctrl-C stops.\n\n")
}
