package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"text/tabwriter"
	"time"

	"github.com/fulcrumlb/fulcrum/keyring"
)

const keygenUsage = `usage:
  fulcrum keygen -o FILE [--force]                           write a new key ring
  fulcrum keygen --rotate FILE [--activate-in 1h] [--keep 2160h]   add a key; keep the old ones for opening
  fulcrum keygen --show FILE                                 list keys and the fingerprint (never secrets)`

// cmdKeygen writes, rotates and shows machine key ring files (package
// keyring). Exit status 0 on success, 1 on failure, 2 on a usage mistake.
func cmdKeygen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	_ = ctx // every step is a short local file operation
	flags := flag.NewFlagSet("keygen", flag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.Usage = func() { fmt.Fprintln(stderr, keygenUsage); flags.PrintDefaults() }
	out := flags.String("o", "", "write a new ring to `FILE` (refused if FILE exists, unless --force)")
	force := flags.Bool("force", false, "with -o: replace an existing file")
	rotate := flags.String("rotate", "", "add a new key to the ring in `FILE`")
	activateIn := flags.Duration("activate-in", keyring.DefaultActivateIn, "with --rotate: the new key seals after this delay; longer than copying the file to every node")
	keep := flags.Duration("keep", keyring.DefaultKeep, "with --rotate: older keys open tokens for this long after the new key is active")
	show := flags.String("show", "", "print the keys of the ring in `FILE`")
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return exitError{code: 2}
	}
	set := map[string]bool{}
	flags.Visit(func(f *flag.Flag) { set[f.Name] = true })
	modes := 0
	for _, name := range []string{"o", "rotate", "show"} {
		if set[name] {
			modes++
		}
	}
	usageErr := func(msg string) error {
		return exitError{code: 2, msg: "fulcrum keygen: " + msg + "\n" + keygenUsage}
	}
	switch {
	case flags.NArg() > 0:
		return usageErr(fmt.Sprintf("unexpected argument %q", flags.Arg(0)))
	case modes != 1:
		return usageErr("give exactly one of -o, --rotate and --show")
	case set["force"] && !set["o"]:
		return usageErr("--force goes with -o")
	case (set["activate-in"] || set["keep"]) && !set["rotate"]:
		return usageErr("--activate-in and --keep go with --rotate")
	case *activateIn < 0 || *keep <= 0:
		return usageErr("--activate-in must not be negative and --keep must be positive")
	}
	now := time.Now()
	switch {
	case set["o"]:
		return keygenNew(*out, *force, now, stdout)
	case set["rotate"]:
		return keygenRotate(*rotate, now, *activateIn, *keep, stdout)
	}
	return keygenShow(*show, now, stdout)
}

func keygenNew(path string, force bool, now time.Time, stdout io.Writer) error {
	if path == "" {
		return exitError{code: 2, msg: "fulcrum keygen: -o needs a file name"}
	}
	if _, err := os.Lstat(path); err == nil && !force {
		return fmt.Errorf("%s exists; use --force to replace it (tokens sealed with its keys will stop opening)", path)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	r, err := keyring.Generate(now)
	if err != nil {
		return err
	}
	if err := r.Save(path); err != nil {
		return err
	}
	k, _ := r.Active()
	fmt.Fprintf(stdout, "wrote %s (mode 0600): key %s active from %s\nfingerprint %s\n",
		path, k.ID, k.ActiveFrom.Format(time.RFC3339), r.Fingerprint())
	return nil
}

func keygenRotate(path string, now time.Time, activateIn, keep time.Duration, stdout io.Writer) error {
	r, err := keyring.Load(path)
	if err != nil {
		return err
	}
	before := len(r.Keys())
	k, err := r.Rotate(now, activateIn, keep)
	if err != nil {
		return err
	}
	if err := r.Save(path); err != nil {
		return err
	}
	dropped := before + 1 - len(r.Keys())
	fmt.Fprintf(stdout, "rotated %s: new key %s active from %s; older keys open tokens until %s",
		path, k.ID, k.ActiveFrom.Format(time.RFC3339), k.ActiveFrom.Add(keep).Format(time.RFC3339))
	if dropped > 0 {
		fmt.Fprintf(stdout, "; dropped %d expired key(s)", dropped)
	}
	fmt.Fprintf(stdout, "\nfingerprint %s\ncopy %s to every node before %s\n",
		r.Fingerprint(), path, k.ActiveFrom.Format(time.RFC3339))
	return nil
}

func keygenShow(path string, now time.Time, stdout io.Writer) error {
	r, err := keyring.Load(path)
	if err != nil {
		return err
	}
	active, _ := r.Active()
	fmt.Fprintf(stdout, "ring %s\nfingerprint %s\n\n", path, r.Fingerprint())
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tCREATED\tACTIVE FROM\tEXPIRES")
	for _, k := range r.Keys() {
		expires := "-"
		if !k.Expires.IsZero() {
			expires = k.Expires.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.ID, keyState(k, active.ID, now),
			k.Created.Format(time.RFC3339), k.ActiveFrom.Format(time.RFC3339), expires)
	}
	return tw.Flush()
}

// keyState names what a key does now: seals (active), will seal (pending),
// only opens (retired), or nothing (expired).
func keyState(k keyring.Key, activeID string, now time.Time) string {
	switch {
	case k.ID == activeID:
		return "active"
	case !k.Expires.IsZero() && !now.Before(k.Expires):
		return "expired"
	case k.ActiveFrom.After(now):
		return "pending"
	}
	return "retired"
}
