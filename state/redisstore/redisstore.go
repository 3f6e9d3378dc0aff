// Package redisstore is a state.Store in Redis: every operation is one Lua
// script (atomic lock and version checks), expiry is Redis key TTLs plus the
// store's own expiry index (no keyspace events), and every time comes from
// Redis TIME. See scripts.go for the layout.
//
// Several service processes may share one Redis. The keys of one store share
// a prefix; the scripts build session keys from it, so the store needs a
// single Redis server (or a cluster slot: wrap the prefix in {braces}).
package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fulcrumlb/fulcrum/state"
)

// DefaultPrefix is the key prefix when Options.Prefix is empty.
const DefaultPrefix = "fulcrum:state:"

// sweepBatch is how many expired ids one sweep script handles, bounding how
// long it blocks Redis.
const sweepBatch = 500

// Options configure a Store.
type Options struct {
	// Prefix starts every key (default DefaultPrefix).
	Prefix string
}

// Store is a state.Store in Redis.
type Store struct {
	rdb    *redis.Client
	owned  bool // Close closes rdb
	prefix string
	idx    string
	locks  string
}

var _ state.Store = (*Store)(nil)

// Open connects to the Redis at url (redis://[user:pass@]host:port/db) and
// checks that it answers.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	o, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("parsing redis url: %w", err)
	}
	rdb := redis.NewClient(o)
	if err := rdb.Ping(ctx).Err(); err != nil {
		_ = rdb.Close()
		return nil, fmt.Errorf("connecting to redis at %s: %w", o.Addr, err)
	}
	s := New(rdb, opts)
	s.owned = true
	return s, nil
}

// New returns a Store on an existing client; Close leaves the client open.
func New(rdb *redis.Client, opts Options) *Store {
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	return &Store{rdb: rdb, prefix: opts.Prefix, idx: opts.Prefix + "idx", locks: opts.Prefix + "locks"}
}

func (s *Store) key(id string) string { return s.prefix + "s:" + id }

// run runs a script and turns its status into the store's errors.
func (s *Store) run(ctx context.Context, sc *redis.Script, keys []string, args ...any) ([]any, error) {
	v, err := sc.Run(ctx, s.rdb, keys, args...).Slice()
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	if len(v) == 0 {
		return nil, errors.New("redis: empty script reply")
	}
	switch st, _ := v[0].(string); st {
	case "ok":
		return v, nil
	case "nf":
		return nil, state.ErrNotFound
	case "rn":
		return nil, state.ErrRenewed
	case "ex":
		return nil, state.ErrExists
	case "ll":
		return nil, state.ErrLockLost
	case "vm":
		return nil, state.ErrVersionMismatch
	case "lk":
		return nil, &state.LockedError{Age: ms(v, 1)}
	default:
		return nil, fmt.Errorf("redis: unexpected script status %v", v[0])
	}
}

func ms(v []any, i int) time.Duration { return time.Duration(num(v, i)) * time.Millisecond }

func num(v []any, i int) int64 {
	if i < len(v) {
		if n, ok := v[i].(int64); ok {
			return n
		}
	}
	return 0
}

func str(v []any, i int) string {
	if i < len(v) {
		if s, ok := v[i].(string); ok {
			return s
		}
	}
	return ""
}

// Create implements state.Store.
func (s *Store) Create(ctx context.Context, id string, data []byte, life state.Lifetime) (*state.Session, error) {
	v, err := s.run(ctx, createScript, []string{s.key(id), s.idx}, id, data, life.Idle.Milliseconds(), life.Max.Milliseconds())
	if err != nil {
		return nil, err
	}
	return &state.Session{ID: id, Data: append([]byte{}, data...), Version: 1, Expires: time.UnixMilli(num(v, 2))}, nil
}

// Get implements state.Store.
func (s *Store) Get(ctx context.Context, id string) (*state.Session, error) {
	v, err := s.run(ctx, getScript, []string{s.key(id), s.idx}, id)
	if err != nil {
		return nil, err
	}
	sess := &state.Session{
		ID:      id,
		Data:    []byte(str(v, 1)),
		Version: uint64(num(v, 2)),
		Locked:  str(v, 3) != "",
		Expires: time.UnixMilli(num(v, 6)),
		Renewed: num(v, 7) == 1,
	}
	if sess.Locked {
		sess.LockAge = max(time.Duration(num(v, 5)-num(v, 4))*time.Millisecond, 0)
	}
	return sess, nil
}

// Lock implements state.Store.
func (s *Store) Lock(ctx context.Context, id string, breakAfter time.Duration) (*state.Session, error) {
	lockID := state.NewLockID()
	v, err := s.run(ctx, lockScript, []string{s.key(id), s.idx, s.locks}, id, breakAfter.Milliseconds(), lockID)
	if err != nil {
		return nil, err
	}
	return &state.Session{
		ID:        id,
		Data:      []byte(str(v, 1)),
		Version:   uint64(num(v, 2)),
		LockID:    lockID,
		Locked:    true,
		BrokeLock: num(v, 5) == 1,
		Expires:   time.UnixMilli(num(v, 4)),
	}, nil
}

// Put implements state.Store.
func (s *Store) Put(ctx context.Context, id string, data []byte, c state.Cond) (uint64, error) {
	v, err := s.run(ctx, putScript, []string{s.key(id), s.idx, s.locks}, id, data, c.LockID, strconv.FormatUint(c.Version, 10))
	if err != nil {
		return 0, err
	}
	return uint64(num(v, 1)), nil
}

// Unlock implements state.Store.
func (s *Store) Unlock(ctx context.Context, id, lockID string) error {
	_, err := s.run(ctx, unlockScript, []string{s.key(id), s.idx, s.locks}, id, lockID)
	return err
}

// Touch implements state.Store.
func (s *Store) Touch(ctx context.Context, id string) error {
	_, err := s.run(ctx, touchScript, []string{s.key(id), s.idx}, id)
	return err
}

// Delete implements state.Store.
func (s *Store) Delete(ctx context.Context, id string) error {
	_, err := s.run(ctx, deleteScript, []string{s.key(id), s.idx, s.locks}, id)
	return err
}

// Renew implements state.Store.
func (s *Store) Renew(ctx context.Context, id, newID string, grace time.Duration) error {
	_, err := s.run(ctx, renewScript, []string{s.key(id), s.idx, s.locks, s.key(newID)}, id, newID, grace.Milliseconds())
	return err
}

// Sweep implements state.Store, in batches of sweepBatch ids per script.
func (s *Store) Sweep(ctx context.Context) (int, error) {
	total := 0
	for {
		v, err := sweepScript.Run(ctx, s.rdb, []string{s.idx, s.locks}, s.prefix+"s:", sweepBatch).Slice()
		if err != nil {
			return total, fmt.Errorf("redis: sweeping: %w", err)
		}
		total += int(num(v, 0))
		if num(v, 1) < sweepBatch {
			return total, nil
		}
	}
}

// Stats implements state.Store.
func (s *Store) Stats(ctx context.Context) (state.Stats, error) {
	v, err := statsScript.Run(ctx, s.rdb, []string{s.idx, s.locks}, s.prefix+"s:").Slice()
	if err != nil {
		return state.Stats{}, fmt.Errorf("redis: stats: %w", err)
	}
	return state.Stats{Sessions: num(v, 0), Locked: num(v, 1)}, nil
}

// Close implements state.Store; it closes the client if Open made it.
func (s *Store) Close() error {
	if s.owned {
		return s.rdb.Close()
	}
	return nil
}
