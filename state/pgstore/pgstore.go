// Package pgstore is a state.Store in PostgreSQL: one row per session in a
// sessions table that Open creates by migration. Every operation is one
// transaction that locks the session's row (SELECT ... FOR UPDATE), decides
// with the shared state machine (state/internal/record) and writes it back;
// all times come from the database's now(), so every service process agrees
// on expiry and lock age. A write is durable when it returns (the server's
// synchronous_commit decides, on by default).
package pgstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/fulcrumlb/fulcrum/state"
	"github.com/fulcrumlb/fulcrum/state/internal/record"
)

// Options configure Open.
type Options struct {
	// Schema holds the tables (default "public"); Open creates it.
	Schema string
	// MaxConns bounds open connections (default 8).
	MaxConns int
}

// runner gives record.Methods the store's transactions.
type runner struct{ s *Store }

func (r runner) Read(ctx context.Context, fn func(*tx) error) error   { return r.s.read(ctx, fn) }
func (r runner) Update(ctx context.Context, fn func(*tx) error) error { return r.s.update(ctx, fn) }

// Store is a state.Store in PostgreSQL.
type Store struct {
	record.Methods[*tx] // the per-session operations, over runner
	pool                *pool
	q                   queries
}

var _ state.Store = (*Store)(nil)

// Open connects to url (postgres://user@host:port/db?...) and migrates the
// schema to the current version.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	if opts.Schema == "" {
		opts.Schema = "public"
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = 8
	}
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parsing postgres url: %w", err)
	}
	s := &Store{pool: newPool(cfg, opts.MaxConns), q: newQueries(opts.Schema)}
	s.Methods = record.Methods[*tx]{Run: runner{s}}
	if err := s.pool.with(ctx, func(c *pgx.Conn) error { return migrate(ctx, c, opts.Schema) }); err != nil {
		s.pool.close()
		return nil, err
	}
	return s, nil
}

// queries are the statements, with the schema-qualified table name in place.
type queries struct {
	load, loadForUpdate, insert, update, remove, sweep, stats, now string
}

const columns = "data, version, lock_id, locked_at, created, idle_ms, deadline, expires, renewed"

func newQueries(schema string) queries {
	t := pgx.Identifier{schema, "sessions"}.Sanitize()
	sel := func(lock string) string {
		// The outer join returns now() when the row does not exist too.
		return "WITH r AS (SELECT " + columns + " FROM " + t + " WHERE id = $1" + lock + ") " +
			"SELECT now(), r.* FROM (SELECT 1) AS one LEFT JOIN r ON true"
	}
	return queries{
		load:          sel(""),
		loadForUpdate: sel(" FOR UPDATE"),
		insert:        "INSERT INTO " + t + " (id, " + columns + ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
		update: "UPDATE " + t + " SET data = $2, version = $3, lock_id = $4, locked_at = $5, created = $6, " +
			"idle_ms = $7, deadline = $8, expires = $9, renewed = $10 WHERE id = $1",
		remove: "DELETE FROM " + t + " WHERE id = $1",
		sweep:  "WITH d AS (DELETE FROM " + t + " WHERE expires <= now() RETURNING renewed) SELECT count(*) FILTER (WHERE NOT renewed) FROM d",
		stats: "SELECT count(*) FILTER (WHERE NOT renewed), count(*) FILTER (WHERE NOT renewed AND lock_id IS NOT NULL) " +
			"FROM " + t + " WHERE expires > now()",
		now: "SELECT now()",
	}
}

// tx is one transaction (rw) or one statement at a time (read-only).
type tx struct {
	ctx context.Context
	db  interface { // *pgx.Conn or pgx.Tx
		QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
		Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	}
	q      *queries
	rw     bool
	now    time.Time
	exists map[string]bool // ids loaded that have a row (Save updates, else inserts)
}

func (t *tx) Load(id string) (*record.Record, error) {
	sql := t.q.load
	if t.rw {
		sql = t.q.loadForUpdate
	}
	var (
		now             time.Time
		data            []byte
		version, idleMS *int64
		lockID          *string
		lockedAt        *time.Time
		created, dl, ex *time.Time
		renewed         *bool
	)
	err := t.db.QueryRow(t.ctx, sql, id).Scan(&now, &data, &version, &lockID, &lockedAt, &created, &idleMS, &dl, &ex, &renewed)
	if err != nil {
		return nil, fmt.Errorf("loading session: %w", err)
	}
	if t.now.IsZero() {
		t.now = now
	}
	t.exists[id] = version != nil
	if version == nil {
		return nil, nil
	}
	r := &record.Record{Data: data, Version: uint64(*version), Created: *created, Idle: time.Duration(*idleMS) * time.Millisecond,
		Deadline: *dl, Expires: *ex, Renewed: *renewed}
	if lockID != nil {
		r.LockID, r.LockedAt = *lockID, *lockedAt
	}
	return r, nil
}

func (t *tx) Save(id string, r *record.Record) error {
	if !t.rw {
		return record.ErrReadOnly
	}
	var lockID *string
	var lockedAt *time.Time
	if r.LockID != "" {
		lockID, lockedAt = &r.LockID, &r.LockedAt
	}
	data := r.Data
	if data == nil {
		data = []byte{}
	}
	sql := t.q.insert
	if t.exists[id] {
		sql = t.q.update
	}
	_, err := t.db.Exec(t.ctx, sql, id, data, int64(r.Version), lockID, lockedAt, r.Created, r.Idle.Milliseconds(), r.Deadline, r.Expires, r.Renewed)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" { // unique_violation: created meanwhile
		return state.ErrExists
	}
	if err != nil {
		return fmt.Errorf("saving session: %w", err)
	}
	t.exists[id] = true
	return nil
}

func (t *tx) Remove(id string) error {
	if !t.rw {
		return record.ErrReadOnly
	}
	if _, err := t.db.Exec(t.ctx, t.q.remove, id); err != nil {
		return fmt.Errorf("deleting session: %w", err)
	}
	t.exists[id] = false
	return nil
}

// Now is the database's now() (the transaction's start), read with the first
// Load.
func (t *tx) Now() time.Time {
	if t.now.IsZero() {
		// Not reached by the record operations, which Load first.
		if err := t.db.QueryRow(t.ctx, t.q.now).Scan(&t.now); err != nil {
			t.now = time.Now()
		}
	}
	return t.now
}

// isOutcome reports whether err is one of the store's answers rather than a
// failure of the connection or the database.
func isOutcome(err error) bool {
	for _, e := range []error{state.ErrNotFound, state.ErrExists, state.ErrLocked, state.ErrLockLost,
		state.ErrVersionMismatch, state.ErrRenewed, record.ErrReadOnly} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// update runs fn in a transaction, committed when fn succeeds.
func (s *Store) update(ctx context.Context, fn func(*tx) error) error {
	return s.pool.with(ctx, func(c *pgx.Conn) error {
		return pgx.BeginFunc(ctx, c, func(ptx pgx.Tx) error {
			return fn(&tx{ctx: ctx, db: ptx, q: &s.q, rw: true, exists: map[string]bool{}})
		})
	})
}

// read runs fn without a transaction, and again with one if it must write.
func (s *Store) read(ctx context.Context, fn func(*tx) error) error {
	err := s.pool.with(ctx, func(c *pgx.Conn) error {
		return fn(&tx{ctx: ctx, db: c, q: &s.q, exists: map[string]bool{}})
	})
	if errors.Is(err, record.ErrReadOnly) {
		return s.update(ctx, fn)
	}
	return err
}

// Sweep implements state.Store.
func (s *Store) Sweep(ctx context.Context) (n int, err error) {
	err = s.pool.with(ctx, func(c *pgx.Conn) error { return c.QueryRow(ctx, s.q.sweep).Scan(&n) })
	if err != nil {
		return 0, fmt.Errorf("sweeping sessions: %w", err)
	}
	return n, nil
}

// Stats implements state.Store.
func (s *Store) Stats(ctx context.Context) (st state.Stats, err error) {
	err = s.pool.with(ctx, func(c *pgx.Conn) error { return c.QueryRow(ctx, s.q.stats).Scan(&st.Sessions, &st.Locked) })
	if err != nil {
		return st, fmt.Errorf("counting sessions: %w", err)
	}
	return st, nil
}

// Close implements state.Store.
func (s *Store) Close() error {
	s.pool.close()
	return nil
}

// migrations are applied in order, each once, recorded in
// fulcrum_state_migrations. Never edit one that has shipped; add another.
var migrations = []string{
	`CREATE TABLE {{sessions}} (
		id        text PRIMARY KEY,
		data      bytea NOT NULL,
		version   bigint NOT NULL,
		lock_id   text,
		locked_at timestamptz,
		created   timestamptz NOT NULL,
		idle_ms   bigint NOT NULL,
		deadline  timestamptz NOT NULL,
		expires   timestamptz NOT NULL,
		renewed   boolean NOT NULL DEFAULT false
	);
	CREATE INDEX ON {{sessions}} (expires)`,
}

// migrate brings schema up to date, under an advisory lock so several
// service processes starting at once migrate once.
func migrate(ctx context.Context, c *pgx.Conn, schema string) error {
	sch := pgx.Identifier{schema}.Sanitize()
	table := pgx.Identifier{schema, "fulcrum_state_migrations"}.Sanitize()
	sessions := pgx.Identifier{schema, "sessions"}.Sanitize()
	return pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext('fulcrum_state_migrations:' || $1))", schema); err != nil {
			return fmt.Errorf("locking migrations: %w", err)
		}
		if _, err := tx.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+sch); err != nil {
			return fmt.Errorf("creating schema %s: %w", schema, err)
		}
		if _, err := tx.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+table+" (version int PRIMARY KEY, applied timestamptz NOT NULL DEFAULT now())"); err != nil {
			return fmt.Errorf("creating migrations table: %w", err)
		}
		var done int
		if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM "+table).Scan(&done); err != nil {
			return fmt.Errorf("reading migration version: %w", err)
		}
		for i := done; i < len(migrations); i++ {
			sql := strings.ReplaceAll(migrations[i], "{{sessions}}", sessions)
			if _, err := tx.Exec(ctx, sql); err != nil {
				return fmt.Errorf("applying migration %d: %w", i+1, err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO "+table+" (version) VALUES ($1)", i+1); err != nil {
				return fmt.Errorf("recording migration %d: %w", i+1, err)
			}
		}
		return nil
	})
}
