package demo

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/fulcrumlb/fulcrum/keyring"
)

// FarmOptions describe the demo farm.
type FarmOptions struct {
	// Dir holds the generated files: key ring, state token, bolt file,
	// config (required; the caller removes it).
	Dir string
	// Apps is the number of sample servers (default 3).
	Apps int
	// Listen, Admin and State are the balancer's, the admin API's and the
	// state service's addresses. State needs a port: the sample servers are
	// told where it is before fulcrum starts it.
	Listen, Admin, State string
}

// Farm is the demo's web farm, ready for `fulcrum run` of ConfigPath: a key
// ring, a state service token, the sample servers (already serving; their
// sessions reach the state service once fulcrum runs it) and the config.
type Farm struct {
	Dir        string
	ConfigPath string
	Keyring    string // the key ring file
	TokenFile  string // the state service's bearer token
	StateDB    string // the bolt file
	StateURL   string
	Apps       []*App
}

// StartFarm generates the key ring and token in o.Dir, starts the sample
// servers and writes the config. Stop the servers with Stop.
func StartFarm(o FarmOptions) (*Farm, error) {
	if o.Dir == "" || o.State == "" {
		return nil, errors.New("demo: FarmOptions.Dir and State are required")
	}
	if o.Apps <= 0 {
		o.Apps = 3
	}
	f := &Farm{
		Dir:        o.Dir,
		ConfigPath: filepath.Join(o.Dir, "fulcrum.yaml"),
		Keyring:    filepath.Join(o.Dir, "keys.json"),
		TokenFile:  filepath.Join(o.Dir, "state.token"),
		StateDB:    filepath.Join(o.Dir, "state.db"),
		StateURL:   "http://" + o.State,
	}
	ring, err := keyring.Generate(time.Now())
	if err != nil {
		return nil, fmt.Errorf("generating the key ring: %w", err)
	}
	if err := ring.Save(f.Keyring); err != nil {
		return nil, fmt.Errorf("saving the key ring: %w", err)
	}
	token := rand.Text()
	if err := os.WriteFile(f.TokenFile, []byte(token+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("writing the state token: %w", err)
	}
	if f.Apps, err = StartApps(o.Apps, AppOptions{StateURL: f.StateURL, Token: token, Sealer: ring}); err != nil {
		return nil, fmt.Errorf("starting sample servers: %w", err)
	}
	cfg := Config(ConfigOptions{
		Apps: f.Apps, Listen: o.Listen, Admin: o.Admin, Keyring: f.Keyring, AccessLog: true,
		State: &StateSection{Listen: o.State, TokenFile: f.TokenFile, Path: f.StateDB},
	})
	if err := os.WriteFile(f.ConfigPath, []byte(cfg), 0o644); err != nil {
		StopApps(f.Apps)
		return nil, err
	}
	return f, nil
}

// Stop stops the sample servers.
func (f *Farm) Stop() { StopApps(f.Apps) }
