// Package boltstore is a state.Store in a bbolt file: embedded, on disk, and
// durable when a write returns (every write transaction is fsynced before it
// commits), so a restart or a SIGKILL of the service loses no acknowledged
// write. One process at a time may open the file.
//
// Reads run in read-only transactions and only write when a session's
// sliding expiry has moved more than 1% of its idle timeout (at most 1s), so a
// hot session costs no fsync per read.
package boltstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/fulcrumlb/fulcrum/state"
	"github.com/fulcrumlb/fulcrum/state/internal/record"
)

var bucket = []byte("sessions")

// Options configure Open.
type Options struct {
	// Now is the clock (default time.Now).
	Now func() time.Time
	// OpenTimeout bounds the wait for another process's file lock
	// (default 5s).
	OpenTimeout time.Duration
}

// Store is a state.Store in a bbolt database file.
type Store struct {
	record.Methods[tx] // the per-session operations, over runner
	db                 *bolt.DB
	now                func() time.Time
}

// runner gives record.Methods the store's transactions.
type runner struct{ s *Store }

func (r runner) Read(ctx context.Context, fn func(tx) error) error   { return r.s.read(ctx, fn) }
func (r runner) Update(ctx context.Context, fn func(tx) error) error { return r.s.update(ctx, fn) }

var _ state.Store = (*Store)(nil)

// Open opens (creating if needed) the database at path.
func Open(path string, opts Options) (*Store, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.OpenTimeout == 0 {
		opts.OpenTimeout = 5 * time.Second
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.OpenTimeout})
	if err != nil {
		return nil, fmt.Errorf("opening state database %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucket)
		return err
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("creating state bucket in %s: %w", path, err)
	}
	s := &Store{db: db, now: opts.Now}
	s.Methods = record.Methods[tx]{Run: runner{s}}
	return s, nil
}

type tx struct {
	b   *bolt.Bucket
	now time.Time
	rw  bool
}

func (t tx) Load(id string) (*record.Record, error) {
	v := t.b.Get([]byte(id))
	if v == nil {
		return nil, nil
	}
	return record.Unmarshal(v)
}

func (t tx) Save(id string, r *record.Record) error {
	if !t.rw {
		return record.ErrReadOnly
	}
	return t.b.Put([]byte(id), r.Marshal())
}

func (t tx) Remove(id string) error {
	if !t.rw {
		return record.ErrReadOnly
	}
	return t.b.Delete([]byte(id))
}

func (t tx) Now() time.Time { return t.now }

// update runs fn in a write transaction; fn's error rolls it back.
func (s *Store) update(ctx context.Context, fn func(tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.Update(func(btx *bolt.Tx) error {
		return fn(tx{b: btx.Bucket(bucket), now: s.now(), rw: true})
	})
}

// read runs fn in a read-only transaction, and again in a write transaction
// if it needs to write.
func (s *Store) read(ctx context.Context, fn func(tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := s.db.View(func(btx *bolt.Tx) error {
		return fn(tx{b: btx.Bucket(bucket), now: s.now()})
	})
	if errors.Is(err, record.ErrReadOnly) {
		return s.update(ctx, fn)
	}
	return err
}

// Sweep implements state.Store. It scans every session: bolt keeps no
// expiry index, and a sweep a minute is cheap next to the per-write fsync.
func (s *Store) Sweep(ctx context.Context) (n int, err error) {
	var dead [][]byte
	err = s.read(ctx, func(t tx) error {
		dead, n = nil, 0
		return t.b.ForEach(func(k, v []byte) error {
			r, err := record.Unmarshal(v)
			if err != nil {
				return fmt.Errorf("session %q: %w", k, err)
			}
			if expired, counts := r.Expired(t.now); expired {
				dead = append(dead, append([]byte(nil), k...))
				if counts {
					n++
				}
			}
			return nil
		})
	})
	if err != nil || len(dead) == 0 {
		return n, err
	}
	// Delete only what is still expired: an id may have been re-created.
	n = 0
	err = s.update(ctx, func(t tx) error {
		n = 0
		for _, k := range dead {
			r, err := t.Load(string(k))
			if err != nil || r == nil {
				continue
			}
			if expired, counts := r.Expired(t.now); expired {
				if err := t.b.Delete(k); err != nil {
					return err
				}
				if counts {
					n++
				}
			}
		}
		return nil
	})
	return n, err
}

// Stats implements state.Store.
func (s *Store) Stats(ctx context.Context) (st state.Stats, err error) {
	err = s.read(ctx, func(t tx) error {
		st = state.Stats{}
		return t.b.ForEach(func(k, v []byte) error {
			r, err := record.Unmarshal(v)
			if err != nil {
				return fmt.Errorf("session %q: %w", k, err)
			}
			live, locked := r.LiveLocked(t.now)
			if live {
				st.Sessions++
			}
			if locked {
				st.Locked++
			}
			return nil
		})
	})
	return st, err
}

// Close implements state.Store.
func (s *Store) Close() error { return s.db.Close() }
