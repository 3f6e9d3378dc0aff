package pgstore

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// pool is a small bounded pool of connections. (pgxpool would need a module
// the build does not carry; the store needs nothing it offers beyond this.)
type pool struct {
	cfg   *pgx.ConnConfig
	slots chan struct{}  // one token per connection that may be open
	idle  chan *pgx.Conn // open connections not in use
}

func newPool(cfg *pgx.ConnConfig, size int) *pool {
	return &pool{cfg: cfg, slots: make(chan struct{}, size), idle: make(chan *pgx.Conn, size)}
}

// acquire returns an idle connection or opens one, waiting while size
// connections are in use.
func (p *pool) acquire(ctx context.Context) (*pgx.Conn, error) {
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case c := <-p.idle:
		return c, nil
	default:
	}
	c, err := pgx.ConnectConfig(ctx, p.cfg)
	if err != nil {
		<-p.slots
		return nil, fmt.Errorf("connecting to postgres: %w", err)
	}
	return c, nil
}

// release gives c back; a connection that failed (or is in a transaction
// that did not end) is closed instead.
func (p *pool) release(c *pgx.Conn, failed bool) {
	if failed || c.IsClosed() || c.PgConn().TxStatus() != 'I' {
		_ = c.Close(context.Background())
	} else {
		p.idle <- c
	}
	<-p.slots
}

// with runs fn on a connection; an error other than the store's own
// outcomes retires the connection.
func (p *pool) with(ctx context.Context, fn func(*pgx.Conn) error) error {
	c, err := p.acquire(ctx)
	if err != nil {
		return err
	}
	err = fn(c)
	p.release(c, err != nil && !isOutcome(err))
	return err
}

func (p *pool) close() {
	for {
		select {
		case c := <-p.idle:
			_ = c.Close(context.Background())
		default:
			return
		}
	}
}
