package session

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sync"
)

// Session is one request's view of a session: values by key, JSON-encoded
// in the state service as one JSON object. It is safe for concurrent use
// by the handler's goroutines. Changes are written back when the handler
// returns, and only when the encoded session differs from what was read.
type Session struct {
	mu       sync.Mutex
	id       string
	readOnly bool
	isNew    bool
	// private: the id was made in this request (created or renewed), so no
	// other request can know it yet and the write needs no lock.
	private bool
	lockID  string
	orig    []byte
	values  map[string]json.RawMessage
	m       *manager
	w       http.ResponseWriter // for re-issuing the cookie
}

type ctxKey struct{}

// From returns the request's session, or nil when the handler is not
// behind Middleware.
func From(ctx context.Context) *Session {
	s, _ := ctx.Value(ctxKey{}).(*Session)
	return s
}

func decodeValues(data []byte) (map[string]json.RawMessage, error) {
	values := map[string]json.RawMessage{}
	if len(bytes.TrimSpace(data)) == 0 {
		return values, nil
	}
	if err := json.Unmarshal(data, &values); err != nil {
		return nil, fmt.Errorf("session data is not a JSON object: %w", err)
	}
	if values == nil { // the JSON null
		values = map[string]json.RawMessage{}
	}
	return values, nil
}

// ID is the session's id in the state service; empty for the empty
// session a read-only handler sees when the client has none.
func (s *Session) ID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.id
}

// IsNew reports whether the session was created by this request.
func (s *Session) IsNew() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.isNew
}

// ReadOnly reports whether the handler is read-only: the session was read
// without its lock and cannot be changed.
func (s *Session) ReadOnly() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.readOnly
}

// Get decodes the value stored under key into v (as json.Unmarshal) and
// reports whether there was one.
func (s *Session) Get(key string, v any) (bool, error) {
	s.mu.Lock()
	raw, ok := s.values[key]
	s.mu.Unlock()
	if !ok {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return true, fmt.Errorf("decoding session value %q: %w", key, err)
	}
	return true, nil
}

// Set stores v (JSON-encoded) under key.
func (s *Session) Set(key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding session value %q: %w", key, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.readOnly {
		return ErrReadOnly
	}
	s.values[key] = raw
	return nil
}

// Delete removes the value under key.
func (s *Session) Delete(key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.readOnly {
		return ErrReadOnly
	}
	delete(s.values, key)
	return nil
}

// Clear removes every value (the session and its id stay).
func (s *Session) Clear() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.readOnly {
		return ErrReadOnly
	}
	clear(s.values)
	return nil
}

// Keys lists the keys in order.
func (s *Session) Keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.values))
}

// Renew gives the session a new id with the same values and re-issues the
// cookie: call it on login (and privilege changes) against session
// fixation, before the handler writes its response. Requests still in
// flight with the old id may read it for the service's grace period; their
// writes are refused.
func (s *Session) Renew(ctx context.Context) error {
	s.mu.Lock()
	ro, id := s.readOnly, s.id
	s.mu.Unlock()
	if ro {
		return ErrReadOnly
	}
	newID, err := s.m.opts.Client.Renew(ctx, id)
	if err != nil {
		return err
	}
	// The service released the old id's lock; the new id is known to no
	// other request until the cookie reaches the client.
	s.mu.Lock()
	s.id, s.lockID, s.private = newID, "", true
	s.mu.Unlock()
	return s.m.setCookie(s.w, newID)
}

// encoded returns the session as it would be written, and whether it
// differs from what was read.
func (s *Session) encoded() ([]byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	data, err := json.Marshal(s.values) // map keys sorted: the same values encode the same
	if err != nil {
		return nil, false, fmt.Errorf("encoding session: %w", err)
	}
	return data, !bytes.Equal(data, s.orig), nil
}

// Get returns the value under key decoded as a T, whether there was one,
// and a decoding error. A nil session holds nothing.
func Get[T any](s *Session, key string) (v T, ok bool, err error) {
	if s == nil {
		return v, false, ErrNoSession
	}
	ok, err = s.Get(key, &v)
	return v, ok, err
}
