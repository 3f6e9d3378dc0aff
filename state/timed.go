package state

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// timed is a Store that records each call's latency by operation.
type timed struct {
	Store
	h *prometheus.HistogramVec
}

func (t *timed) since(op string, start time.Time) {
	t.h.WithLabelValues(op).Observe(time.Since(start).Seconds())
}

func (t *timed) Create(ctx context.Context, id string, data []byte, life Lifetime) (*Session, error) {
	defer t.since("create", time.Now())
	return t.Store.Create(ctx, id, data, life)
}

func (t *timed) Get(ctx context.Context, id string) (*Session, error) {
	defer t.since("get", time.Now())
	return t.Store.Get(ctx, id)
}

func (t *timed) Lock(ctx context.Context, id string, breakAfter time.Duration) (*Session, error) {
	defer t.since("lock", time.Now())
	return t.Store.Lock(ctx, id, breakAfter)
}

func (t *timed) Put(ctx context.Context, id string, data []byte, c Cond) (uint64, error) {
	defer t.since("put", time.Now())
	return t.Store.Put(ctx, id, data, c)
}

func (t *timed) Unlock(ctx context.Context, id, lockID string) error {
	defer t.since("unlock", time.Now())
	return t.Store.Unlock(ctx, id, lockID)
}

func (t *timed) Touch(ctx context.Context, id string) error {
	defer t.since("touch", time.Now())
	return t.Store.Touch(ctx, id)
}

func (t *timed) Delete(ctx context.Context, id string) error {
	defer t.since("delete", time.Now())
	return t.Store.Delete(ctx, id)
}

func (t *timed) Renew(ctx context.Context, id, newID string, grace time.Duration) error {
	defer t.since("renew", time.Now())
	return t.Store.Renew(ctx, id, newID, grace)
}

func (t *timed) Sweep(ctx context.Context) (int, error) {
	defer t.since("sweep", time.Now())
	return t.Store.Sweep(ctx)
}

func (t *timed) Stats(ctx context.Context) (Stats, error) {
	defer t.since("stats", time.Now())
	return t.Store.Stats(ctx)
}
