package state

import (
	"context"
	"fmt"
	"time"
)

// Sealer signs and encrypts data for a purpose; a token opens only for the
// same purpose. *keyring.Ring (the farm key ring) is one.
type Sealer interface {
	Seal(purpose string, plaintext []byte) (string, error)
	Open(purpose, token string) ([]byte, error)
}

// SealPurpose is the purpose session data is sealed for at rest. It does not
// name the session: Renew moves sealed data to a new id as is.
const SealPurpose = "fulcrum/state/session-data"

// Sealed returns a Store that seals data with sealer before store keeps it
// and opens it on the way out: encryption at rest (config encrypt: true).
// Closing it closes store.
func Sealed(store Store, sealer Sealer) Store { return &sealed{Store: store, s: sealer} }

type sealed struct {
	Store
	s Sealer
}

func (x *sealed) seal(data []byte) ([]byte, error) {
	tok, err := x.s.Seal(SealPurpose, data)
	if err != nil {
		return nil, fmt.Errorf("sealing session data: %w", err)
	}
	return []byte(tok), nil
}

func (x *sealed) open(sess *Session, err error) (*Session, error) {
	if err != nil {
		return nil, err
	}
	data, err := x.s.Open(SealPurpose, string(sess.Data))
	if err != nil {
		return nil, fmt.Errorf("opening sealed session data: %w", err)
	}
	sess.Data = data
	return sess, nil
}

func (x *sealed) Create(ctx context.Context, id string, data []byte, life Lifetime) (*Session, error) {
	tok, err := x.seal(data)
	if err != nil {
		return nil, err
	}
	sess, err := x.Store.Create(ctx, id, tok, life)
	if err == nil {
		sess.Data = append([]byte{}, data...)
	}
	return sess, err
}

func (x *sealed) Get(ctx context.Context, id string) (*Session, error) {
	return x.open(x.Store.Get(ctx, id))
}

func (x *sealed) Lock(ctx context.Context, id string, breakAfter time.Duration) (*Session, error) {
	return x.open(x.Store.Lock(ctx, id, breakAfter))
}

func (x *sealed) Put(ctx context.Context, id string, data []byte, c Cond) (uint64, error) {
	tok, err := x.seal(data)
	if err != nil {
		return 0, err
	}
	return x.Store.Put(ctx, id, tok, c)
}
