package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"github.com/fulcrumlb/fulcrum/internal/app"
	"github.com/fulcrumlb/fulcrum/internal/config"
	"github.com/fulcrumlb/fulcrum/internal/health"
)

// cmdProbe runs one keepalive check and prints its transcript: the answer to
// "why is my server down?". Exit status 0 when the check passes, 1 when not.
func cmdProbe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlag(fs)
	poolName := fs.String("pool", "", "with -c: the pool whose keepalive to run")
	server := fs.String("server", "", "with -c: the server to probe")
	method := fs.String("method", "", "HTTP method: HEAD (default) or GET")
	script := fs.String("script", "", "built-in script: "+strings.Join(health.ScriptNames(), ", "))
	expect := fs.String("expect", "", "comma-separated statuses that count as alive (default 200)")
	match := fs.String("body-match", "", "regex the body must contain")
	reject := fs.String("body-reject", "", "regex that fails the check when found in the body")
	timeout := fs.Duration("timeout", 0, "check timeout (default 2s)")
	if err := fs.Parse(reorder(args)); err != nil {
		return exitError{code: 2}
	}
	var address string
	var o health.Options
	switch {
	case *path != "":
		cfg, err := config.Load(*path)
		if err != nil {
			return exitError{code: 1, msg: err.Error()}
		}
		pc := cfg.Pool(*poolName)
		if pc == nil {
			return exitError{code: 2, msg: fmt.Sprintf("fulcrum probe: no pool %q in %s", *poolName, *path)}
		}
		for _, s := range pc.Servers {
			if s.Name == *server {
				address = s.Address
			}
		}
		if address == "" {
			return exitError{code: 2, msg: fmt.Sprintf("fulcrum probe: pool %q has no server %q", *poolName, *server)}
		}
		o = app.KeepaliveOptions(pc.Keepalive)
	case fs.NArg() == 1:
		var err error
		address, o, err = health.ParseTarget(fs.Arg(0))
		if err != nil {
			return exitError{code: 2, msg: "fulcrum probe: " + err.Error()}
		}
	default:
		return exitError{code: 2, msg: "usage: fulcrum probe URL|host:port [flags] | fulcrum probe -c FILE --pool P --server S"}
	}
	if *method != "" {
		o.Method = strings.ToUpper(*method)
	}
	if *script != "" {
		o.Type, o.ScriptName, o.Script = health.TypeScript, *script, nil
	}
	if *expect != "" {
		o.ExpectStatus = nil
		for _, s := range strings.Split(*expect, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil {
				return exitError{code: 2, msg: fmt.Sprintf("fulcrum probe: --expect: %q is not a status code", s)}
			}
			o.ExpectStatus = append(o.ExpectStatus, n)
		}
	}
	for _, r := range []struct {
		flag string
		val  string
		dst  **regexp.Regexp
	}{{"--body-match", *match, &o.BodyMatch}, {"--body-reject", *reject, &o.BodyReject}} {
		if r.val == "" {
			continue
		}
		re, err := regexp.Compile(r.val)
		if err != nil {
			return exitError{code: 2, msg: fmt.Sprintf("fulcrum probe: %s: %v", r.flag, err)}
		}
		*r.dst = re
	}
	if *timeout > 0 {
		o.Timeout = *timeout
	}
	o = o.WithDefaults()
	if err := o.Validate(); err != nil {
		return exitError{code: 2, msg: "fulcrum probe: " + err.Error()}
	}
	res := health.Probe(ctx, nil, address, o)
	if err := health.WriteTranscript(stdout, address, o, res); err != nil {
		return err
	}
	if !res.OK {
		return exitError{code: 1}
	}
	return nil
}

// reorder moves flags before positional arguments so that
// "probe http://x --method GET" works as well as the other order.
func reorder(args []string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if strings.HasPrefix(a, "-") {
			flags = append(flags, a)
			if !strings.Contains(a, "=") && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
				flags = append(flags, args[i+1])
				i++
			}
			continue
		}
		pos = append(pos, a)
	}
	return append(flags, pos...)
}
