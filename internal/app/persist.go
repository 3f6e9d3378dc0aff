package app

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/fulcrumlb/fulcrum/internal/config"
	"github.com/fulcrumlb/fulcrum/internal/httpproxy"
	"github.com/fulcrumlb/fulcrum/internal/persist"
	"github.com/fulcrumlb/fulcrum/internal/pool"
	"github.com/fulcrumlb/fulcrum/keyring"
)

// snapshotEvery is how often a changed persistence table is written to disk.
const snapshotEvery = 10 * time.Second

// liveTable is a pool's persistence table and the goroutine that snapshots it.
type liveTable struct {
	mode  string
	table *persist.Table
	stop  context.CancelFunc
	done  chan struct{}
}

// tables keeps persistence tables across reloads, by pool name.
type tables struct {
	mu  sync.Mutex
	m   map[string]*liveTable
	dir string
}

// tableFor returns the table for a pool, reusing the running one when the
// mode is unchanged (its timeout and bound change in place, so requests
// still in flight on the old config pin into the same table), and starting
// a new one with its snapshotter otherwise. A new table starts from the
// pool's snapshot on disk.
func (a *App) tableFor(cfg *config.Config, pc *config.Pool) (*persist.Table, error) {
	p := &pc.Persistence
	a.tables.mu.Lock()
	defer a.tables.mu.Unlock()
	if a.tables.m == nil {
		a.tables.m = map[string]*liveTable{}
	}
	a.tables.dir = cfg.DataDir
	if lt := a.tables.m[pc.Name]; lt != nil && lt.mode == p.Mode {
		lt.table.SetTimeout(p.Timeout)
		lt.table.SetMaxEntries(p.MaxEntries)
		return lt.table, nil
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	t := persist.NewTable(persist.Options{Timeout: p.Timeout, MaxEntries: p.MaxEntries})
	path := a.snapshotPath(pc.Name, p.Mode)
	if n, err := t.Load(path); err != nil {
		a.log.Warn("persistence snapshot not loaded", "pool", pc.Name, "file", path, "err", err)
	} else if n > 0 {
		a.log.Info("persistence table restored", "pool", pc.Name, "entries", n, "file", path)
	}
	a.retireTableLocked(pc.Name)
	ctx, cancel := context.WithCancel(context.Background())
	lt := &liveTable{mode: p.Mode, table: t, stop: cancel, done: make(chan struct{})}
	a.tables.m[pc.Name] = lt
	s := &persist.Snapshotter{Table: t, Path: path, Every: snapshotEvery, Logger: a.log.With("pool", pc.Name)}
	go func() {
		defer close(lt.done)
		if err := s.Run(ctx); err != nil {
			a.log.Error("saving persistence table", "pool", pc.Name, "err", err)
		}
	}()
	return t, nil
}

// snapshotPath names a pool's snapshot file; the mode is part of the name
// since keys of one mode mean nothing in another.
func (a *App) snapshotPath(poolName, mode string) string {
	return filepath.Join(a.tables.dir, "persist-"+poolName+"-"+mode+".snap")
}

// retireTableLocked stops a table's snapshotter after its last save.
func (a *App) retireTableLocked(name string) {
	if lt := a.tables.m[name]; lt != nil {
		lt.stop()
		<-lt.done
		delete(a.tables.m, name)
	}
}

// pruneTables retires the tables of pools that no longer persist.
func (a *App) pruneTables(cfg *config.Config) {
	a.tables.mu.Lock()
	defer a.tables.mu.Unlock()
	for name := range a.tables.m {
		pc := cfg.Pool(name)
		if pc == nil || pc.Persistence.Mode == "none" || pc.Persistence.Mode == "cookie" {
			a.retireTableLocked(name)
		}
	}
}

// closeTables saves and stops every table (shutdown).
func (a *App) closeTables() {
	a.tables.mu.Lock()
	defer a.tables.mu.Unlock()
	for name := range a.tables.m {
		a.retireTableLocked(name)
	}
}

// table returns a pool's running table, or nil.
func (a *App) table(poolName string) *persist.Table {
	a.tables.mu.Lock()
	defer a.tables.mu.Unlock()
	if lt := a.tables.m[poolName]; lt != nil {
		return lt.table
	}
	return nil
}

// persistence builds a pool's stickiness for the forwarder.
func (a *App) persistence(cfg *config.Config, pc *config.Pool, servers []*pool.Server, ring *keyring.Ring, secure bool) (*httpproxy.Persistence, error) {
	p := &pc.Persistence
	hp := &httpproxy.Persistence{
		Pool:      pc.Name,
		Cookie:    p.Cookie,
		AppCookie: p.AppCookie,
		Mask:      persist.SourceMask{V4: p.SourceMask, V6: p.SourceMaskV6},
		Timeout:   p.Timeout,
		Fail:      p.OnDown == "fail",
		Secure:    secure,
	}
	switch p.Mode {
	case "none", "":
		return nil, nil
	case "source_ip":
		hp.Mode = httpproxy.PersistSourceIP
	case "cookie":
		hp.Mode = httpproxy.PersistCookie
		if ring == nil {
			return nil, fmt.Errorf("pool %q: persistence mode cookie needs a keyring", pc.Name)
		}
		hp.Sealer = ring
	case "app_cookie":
		hp.Mode = httpproxy.PersistAppCookie
	case "url":
		hp.Mode = httpproxy.PersistURL
	}
	if p.URL != "" {
		um, err := persist.ParseURLMode(p.URL)
		if err != nil {
			return nil, fmt.Errorf("pool %q: %w", pc.Name, err)
		}
		hp.URL, hp.HasURL = um, true
	}
	if hp.Mode != httpproxy.PersistCookie {
		t, err := a.tableFor(cfg, pc)
		if err != nil {
			return nil, err
		}
		hp.Table = t
	}
	hp.Index(servers)
	return hp, nil
}
