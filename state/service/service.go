// Package service builds a state.Server from a plain configuration: it
// opens the configured store and wraps it for encryption at rest. It is the
// entry point for the composition root (fulcrum run with a state: section);
// it lives apart from package state because it imports every store, and
// every store imports state.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/fulcrumlb/fulcrum/state"
	"github.com/fulcrumlb/fulcrum/state/boltstore"
	"github.com/fulcrumlb/fulcrum/state/memstore"
	"github.com/fulcrumlb/fulcrum/state/pgstore"
	"github.com/fulcrumlb/fulcrum/state/redisstore"
)

// Config is the state service's configuration, already validated (the
// config package checks the state: section); zero values take the defaults
// of state.Options.
type Config struct {
	// Listen is host:port the service answers on (the caller listens).
	Listen string
	// Token is the bearer token clients must send; empty with TokenFile
	// set reads it from TokenFile (surrounding space trimmed).
	Token     string
	TokenFile string
	// Store picks and locates the store.
	Store StoreConfig
	// Timeout (sliding expiry), MaxLifetime, LockTimeout and MaxSize as in
	// state.Options.
	Timeout     time.Duration
	MaxLifetime time.Duration
	LockTimeout time.Duration
	MaxSize     int64
	// Encrypt seals session data with Sealer before it is stored.
	Encrypt bool
	// Sealer is the farm key ring: used for encryption at rest and for
	// /v1/protect and /v1/unprotect. Required when Encrypt is set.
	Sealer state.Sealer
	// Logger receives the service's warnings (default slog.Default()).
	Logger *slog.Logger
}

// StoreConfig locates the store.
type StoreConfig struct {
	// Type is memory, bolt, redis or postgres.
	Type string
	// Path is the bolt database file.
	Path string
	// URL is redis://host:port/db or postgres://user@host:port/db.
	URL string
	// Prefix starts every Redis key (default redisstore.DefaultPrefix).
	Prefix string
	// Schema holds the PostgreSQL tables (default public).
	Schema string
}

// Open opens the store and returns the server; its Close closes the store.
func Open(ctx context.Context, cfg Config) (*state.Server, error) {
	token := cfg.Token
	if token == "" && cfg.TokenFile != "" {
		b, err := os.ReadFile(cfg.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("reading state token: %w", err)
		}
		if token = strings.TrimSpace(string(b)); token == "" {
			return nil, fmt.Errorf("state token file %s is empty", cfg.TokenFile)
		}
	}
	if cfg.Encrypt && cfg.Sealer == nil {
		return nil, errors.New("state: encrypt needs the key ring (Config.Sealer)")
	}
	store, err := OpenStore(ctx, cfg.Store)
	if err != nil {
		return nil, err
	}
	if cfg.Encrypt {
		store = state.Sealed(store, cfg.Sealer)
	}
	srv, err := state.NewServer(state.Options{
		Store: store, Sealer: cfg.Sealer, Token: token,
		Timeout: cfg.Timeout, MaxLifetime: cfg.MaxLifetime, LockTimeout: cfg.LockTimeout, MaxSize: cfg.MaxSize,
		Logger: cfg.Logger,
	})
	if err != nil {
		_ = store.Close()
		return nil, err
	}
	return srv, nil
}

// OpenStore opens the store c names.
func OpenStore(ctx context.Context, c StoreConfig) (state.Store, error) {
	switch c.Type {
	case "memory":
		return memstore.New(memstore.Options{}), nil
	case "bolt", "":
		if c.Path == "" {
			return nil, errors.New("state: the bolt store needs a path")
		}
		return boltstore.Open(c.Path, boltstore.Options{})
	case "redis":
		return redisstore.Open(ctx, c.URL, redisstore.Options{Prefix: c.Prefix})
	case "postgres":
		return pgstore.Open(ctx, c.URL, pgstore.Options{Schema: c.Schema})
	default:
		return nil, fmt.Errorf("state: unknown store type %q", c.Type)
	}
}
