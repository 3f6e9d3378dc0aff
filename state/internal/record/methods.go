package record

import (
	"context"
	"time"

	"github.com/fulcrumlb/fulcrum/state"
)

// Runner runs a function in a transaction of a store: Read for what only
// reads (and may slide an expiry), Update for what writes.
type Runner[T Tx] interface {
	Read(ctx context.Context, fn func(T) error) error
	Update(ctx context.Context, fn func(T) error) error
}

// Methods implements the per-session state.Store methods once for every
// store built on this package; a store embeds it with its own Runner.
type Methods[T Tx] struct{ Run Runner[T] }

// Create implements state.Store.
func (m Methods[T]) Create(ctx context.Context, id string, data []byte, life state.Lifetime) (sess *state.Session, err error) {
	err = m.Run.Update(ctx, func(t T) error { sess, err = Create(t, id, data, life); return err })
	return sess, err
}

// Get implements state.Store.
func (m Methods[T]) Get(ctx context.Context, id string) (sess *state.Session, err error) {
	err = m.Run.Read(ctx, func(t T) error { sess, err = Get(t, id); return err })
	return sess, err
}

// Lock implements state.Store.
func (m Methods[T]) Lock(ctx context.Context, id string, breakAfter time.Duration) (sess *state.Session, err error) {
	err = m.Run.Update(ctx, func(t T) error { sess, err = Lock(t, id, state.NewLockID(), breakAfter); return err })
	return sess, err
}

// Put implements state.Store.
func (m Methods[T]) Put(ctx context.Context, id string, data []byte, c state.Cond) (v uint64, err error) {
	err = m.Run.Update(ctx, func(t T) error { v, err = Put(t, id, data, c); return err })
	return v, err
}

// Unlock implements state.Store.
func (m Methods[T]) Unlock(ctx context.Context, id, lockID string) error {
	return m.Run.Update(ctx, func(t T) error { return Unlock(t, id, lockID) })
}

// Touch implements state.Store.
func (m Methods[T]) Touch(ctx context.Context, id string) error {
	return m.Run.Read(ctx, func(t T) error { return Touch(t, id) })
}

// Delete implements state.Store.
func (m Methods[T]) Delete(ctx context.Context, id string) error {
	return m.Run.Update(ctx, func(t T) error { return Delete(t, id) })
}

// Renew implements state.Store.
func (m Methods[T]) Renew(ctx context.Context, id, newID string, grace time.Duration) error {
	return m.Run.Update(ctx, func(t T) error { return Renew(t, id, newID, grace) })
}
