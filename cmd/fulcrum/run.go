package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/fulcrumlb/fulcrum/internal/app"
	"github.com/fulcrumlb/fulcrum/internal/config"
	"github.com/fulcrumlb/fulcrum/internal/httpproxy"
)

func cmdCheck(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlag(fs)
	if err := fs.Parse(args); err != nil {
		return exitError{code: 2}
	}
	if *path == "" {
		return exitError{code: 2, msg: "fulcrum check: -c FILE is required"}
	}
	if _, err := config.Load(*path); err != nil {
		return exitError{code: 1, msg: err.Error()}
	}
	fmt.Fprintf(stdout, "%s: ok\n", *path)
	return nil
}

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlag(fs)
	if err := fs.Parse(args); err != nil {
		return exitError{code: 2}
	}
	if *path == "" {
		return exitError{code: 2, msg: "fulcrum run: -c FILE is required"}
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return exitError{code: 1, msg: err.Error()}
	}
	return serve(ctx, cfg, *path, stderr, nil)
}

// newLogger builds the process logger from the config's log section.
func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	level := slog.LevelInfo
	switch cfg.Log.Level {
	case "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// accessLogger writes one line per request.
func accessLogger(log *slog.Logger) func(*httpproxy.AccessRecord) {
	ctx := context.Background()
	return func(r *httpproxy.AccessRecord) {
		attrs := []slog.Attr{
			slog.String("client", r.Client),
			slog.String("method", r.Method),
			slog.String("host", r.Host),
			slog.String("path", r.Path),
			slog.String("listener", r.Listener),
			slog.String("route", r.Route),
			slog.String("pool", r.Pool),
			slog.String("server", r.Server),
			slog.Int("status", r.Status),
			slog.Int64("bytes", r.Bytes),
			slog.Duration("duration", r.Duration),
		}
		if r.Err != nil {
			attrs = append(attrs, slog.String("err", r.Err.Error()))
		}
		log.LogAttrs(ctx, slog.LevelInfo, "access", attrs...)
	}
}

// serve runs cfg until SIGTERM/SIGINT (or ctx ends), reloading on SIGHUP.
// started, when set, receives the running app.
func serve(ctx context.Context, cfg *config.Config, path string, logw io.Writer, started func(*app.App)) error {
	log := newLogger(cfg, logw)
	opts := app.Options{ConfigPath: path, Logger: log, Version: version}
	if cfg.Log.Access {
		// Access lines go through a buffer flushed a few times a second:
		// a write system call per request would cost as much as the
		// forwarding itself.
		bw := newFlushingWriter(logw, 200*time.Millisecond)
		defer bw.Close()
		opts.Access = accessLogger(newLogger(cfg, bw))
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	a, err := app.New(ctx, cfg, opts)
	if err != nil {
		return err
	}
	log.Info("fulcrum started", "version", version, "config", path)
	if started != nil {
		started(a)
	}
	for {
		select {
		case <-hup:
			a.Reload() // logs its own outcome; a refused reload keeps the old config
			continue
		case <-ctx.Done():
		}
		break
	}
	log.Info("shutting down", "timeout", cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	start := time.Now()
	if err := a.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	log.Info("stopped", "after", time.Since(start).Round(time.Millisecond))
	return nil
}
