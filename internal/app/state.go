package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/fulcrumlb/fulcrum/internal/admin"
	"github.com/fulcrumlb/fulcrum/internal/config"
	"github.com/fulcrumlb/fulcrum/keyring"
	"github.com/fulcrumlb/fulcrum/state"
	"github.com/fulcrumlb/fulcrum/state/service"
)

// stateService is the session state service running inside this process.
type stateService struct {
	srv  *state.Server
	http *http.Server
	ln   net.Listener
	cfg  config.State
}

// loadKeyring loads the farm's key ring when the config names one. On reload
// a new file replaces the ring for what is sealed and opened from then on.
func (a *App) loadKeyring(cfg *config.Config) error {
	if cfg.Keyring == "" {
		a.ring.Store(nil)
		return nil
	}
	r, err := keyring.Load(cfg.Keyring)
	if err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	a.ring.Store(r)
	return nil
}

// startState starts the state service when the config has a state section.
// Changing it takes a restart; a reload keeps the running one.
func (a *App) startState(ctx context.Context, cfg *config.Config) error {
	sc := cfg.State
	if sc == nil {
		return nil
	}
	if sc.TokenFile == "" && admin.RequireToken(sc.Listen) {
		return fmt.Errorf("state.listen %s is not a loopback address: set state.token_file", sc.Listen)
	}
	scfg := service.Config{
		Listen:      sc.Listen,
		TokenFile:   sc.TokenFile,
		Store:       service.StoreConfig{Type: sc.Store.Type, Path: sc.Store.Path, URL: sc.Store.URL},
		Timeout:     sc.Timeout,
		MaxLifetime: sc.MaxLifetime,
		LockTimeout: sc.LockTimeout,
		MaxSize:     sc.MaxSize,
		Encrypt:     sc.Encrypt,
		Logger:      a.log.With("room", "state"),
	}
	if r := a.ring.Load(); r != nil {
		scfg.Sealer = r
	}
	srv, err := service.Open(ctx, scfg)
	if err != nil {
		return fmt.Errorf("state service: %w", err)
	}
	ln, err := net.Listen("tcp", sc.Listen)
	if err != nil {
		srv.Close()
		return fmt.Errorf("state service: %w", err)
	}
	s := &stateService{srv: srv, ln: ln, cfg: *sc,
		http: &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}}
	a.state = s
	a.group.Add(1)
	go func() {
		defer a.group.Done()
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("state service stopped", "err", err)
		}
	}()
	a.log.Info("state service listening", "address", ln.Addr().String(), "store", sc.Store.Type)
	return nil
}

// StateAddr is the state service's bound address, or nil.
func (a *App) StateAddr() net.Addr {
	if a.state == nil {
		return nil
	}
	return a.state.ln.Addr()
}

func (a *App) stopState(ctx context.Context) {
	if a.state == nil {
		return
	}
	a.state.http.Shutdown(ctx)
	a.state.srv.Close()
}
