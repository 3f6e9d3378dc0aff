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
	record.Methods[tx] // the per-session operations, over runner
	now                func() time.Time

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
	s := &Store{now: opts.Now, recs: map[string]*record.Record{}}
	s.Methods = record.Methods[tx]{Run: runner{s}}
	return s
}

// runner gives record.Methods the store's transactions: one lock for all.
type runner struct{ s *Store }

func (r runner) Read(ctx context.Context, fn func(tx) error) error   { return r.s.do(ctx, fn) }
func (r runner) Update(ctx context.Context, fn func(tx) error) error { return r.s.do(ctx, fn) }

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
