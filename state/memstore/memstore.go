// Package memstore is a state.Store in process memory: fast, and lost when
// the process exits. For tests, development and single-process farms that
// can afford to lose sessions on restart.
package memstore

import (
	"context"
	"sync"
	"time"

	"github.com/fulcrumlb/fulcrum/state"
	"github.com/fulcrumlb/fulcrum/state/internal/record"
)

// Store is an in-memory state.Store. The zero value is not usable; use New.
type Store struct {
	now func() time.Time

	mu   sync.Mutex
	recs map[string]*record.Record
}

var _ state.Store = (*Store)(nil)

// Options configure a Store.
type Options struct {
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// New returns an empty Store.
func New(opts Options) *Store {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Store{now: opts.Now, recs: map[string]*record.Record{}}
}

// tx is the whole map under s.mu. Records are copied in and out so a failed
// operation leaves nothing half-changed.
type tx struct {
	s   *Store
	now time.Time
}

func (t tx) Load(id string) (*record.Record, error) {
	r, ok := t.s.recs[id]
	if !ok {
		return nil, nil
	}
	c := *r
	return &c, nil
}

func (t tx) Save(id string, r *record.Record) error {
	c := *r
	t.s.recs[id] = &c
	return nil
}

func (t tx) Remove(id string) error {
	delete(t.s.recs, id)
	return nil
}

func (t tx) Now() time.Time { return t.now }

func (s *Store) do(ctx context.Context, fn func(tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return fn(tx{s: s, now: s.now()})
}

// Create implements state.Store.
func (s *Store) Create(ctx context.Context, id string, data []byte, life state.Lifetime) (sess *state.Session, err error) {
	err = s.do(ctx, func(t tx) error { sess, err = record.Create(t, id, data, life); return err })
	return sess, err
}

// Get implements state.Store.
func (s *Store) Get(ctx context.Context, id string) (sess *state.Session, err error) {
	err = s.do(ctx, func(t tx) error { sess, err = record.Get(t, id); return err })
	return sess, err
}

// Lock implements state.Store.
func (s *Store) Lock(ctx context.Context, id string, breakAfter time.Duration) (sess *state.Session, err error) {
	err = s.do(ctx, func(t tx) error { sess, err = record.Lock(t, id, state.NewLockID(), breakAfter); return err })
	return sess, err
}

// Put implements state.Store.
func (s *Store) Put(ctx context.Context, id string, data []byte, c state.Cond) (v uint64, err error) {
	err = s.do(ctx, func(t tx) error { v, err = record.Put(t, id, data, c); return err })
	return v, err
}

// Unlock implements state.Store.
func (s *Store) Unlock(ctx context.Context, id, lockID string) error {
	return s.do(ctx, func(t tx) error { return record.Unlock(t, id, lockID) })
}

// Touch implements state.Store.
func (s *Store) Touch(ctx context.Context, id string) error {
	return s.do(ctx, func(t tx) error { return record.Touch(t, id) })
}

// Delete implements state.Store.
func (s *Store) Delete(ctx context.Context, id string) error {
	return s.do(ctx, func(t tx) error { return record.Delete(t, id) })
}

// Renew implements state.Store.
func (s *Store) Renew(ctx context.Context, id, newID string, grace time.Duration) error {
	return s.do(ctx, func(t tx) error { return record.Renew(t, id, newID, grace) })
}

// Sweep implements state.Store.
func (s *Store) Sweep(ctx context.Context) (n int, err error) {
	err = s.do(ctx, func(t tx) error {
		for id, r := range s.recs {
			if expired, counts := r.Expired(t.now); expired {
				delete(s.recs, id)
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
	err = s.do(ctx, func(t tx) error {
		for _, r := range s.recs {
			live, locked := r.LiveLocked(t.now)
			if live {
				st.Sessions++
			}
			if locked {
				st.Locked++
			}
		}
		return nil
	})
	return st, err
}

// Close implements state.Store; it drops every session.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs = map[string]*record.Record{}
	return nil
}
