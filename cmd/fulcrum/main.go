// Command fulcrum is a load balancer for stateful web applications.
//
//	fulcrum run -c fulcrum.yaml     run what the file describes
//	fulcrum check -c fulcrum.yaml   validate the file
//	fulcrum demo                    sample servers behind a balancer
//	fulcrum probe URL|host:port     run one keepalive and explain it
//	fulcrum version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: fulcrum <command> [flags]

commands:
  run -c FILE      run the balancer the config file describes
  check -c FILE    validate a config file; print every mistake
  demo             start three sample servers behind a balancer
  probe TARGET     run one keepalive check and print its transcript
  keygen -o FILE   write a machine key ring (--rotate FILE, --show FILE)
  ctl COMMAND      drive a running fulcrum through its admin API (fulcrum ctl -h)
  version          print the version
`

// run dispatches a subcommand and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, args := args[0], args[1:]
	var err error
	switch cmd {
	case "run":
		err = cmdRun(ctx, args, stdout, stderr)
	case "check":
		err = cmdCheck(args, stdout, stderr)
	case "demo":
		err = cmdDemo(ctx, args, stdout, stderr)
	case "probe":
		err = cmdProbe(ctx, args, stdout, stderr)
	case "keygen":
		err = cmdKeygen(ctx, args, stdout, stderr)
	case "ctl":
		err = cmdCtl(ctx, args, stdout, stderr)
	case "version", "-v", "--version":
		fmt.Fprintf(stdout, "fulcrum %s\n", version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "fulcrum: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	var ex exitError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ex):
		if ex.msg != "" {
			fmt.Fprintln(stderr, ex.msg)
		}
		return ex.code
	}
	fmt.Fprintf(stderr, "fulcrum %s: %v\n", cmd, err)
	return 1
}

// exitError carries an exit status and an optional message.
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }

// configFlag registers -c and --config.
func configFlag(fs *flag.FlagSet) *string {
	p := new(string)
	fs.StringVar(p, "c", "", "config file")
	fs.StringVar(p, "config", "", "config file (same as -c)")
	return p
}
