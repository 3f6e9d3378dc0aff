package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/sessions", s.create)
	mux.HandleFunc("GET /v1/sessions/{id}", s.withID(s.get))
	mux.HandleFunc("PUT /v1/sessions/{id}", s.withID(s.put))
	mux.HandleFunc("DELETE /v1/sessions/{id}", s.withID(s.delete))
	mux.HandleFunc("POST /v1/sessions/{id}/unlock", s.withID(s.unlock))
	mux.HandleFunc("POST /v1/sessions/{id}/touch", s.withID(s.touch))
	mux.HandleFunc("POST /v1/sessions/{id}/renew", s.withID(s.renew))
	mux.HandleFunc("POST /v1/protect", s.protect)
	mux.HandleFunc("POST /v1/unprotect", s.unprotect)
	mux.HandleFunc("GET /v1/stats", s.statsHandler)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="fulcrum-state"`)
			s.fail(w, &apiError{status: http.StatusUnauthorized, code: "unauthorized", msg: "missing or wrong bearer token"})
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		mux.ServeHTTP(w, r)
	})
}

// withID checks the {id} path value: anything NewID could not have made is
// not found, without asking the store.
func (s *Server) withID(h func(w http.ResponseWriter, r *http.Request, id string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if !ValidID(id) {
			s.fail(w, ErrNotFound)
			return
		}
		h(w, r, id)
	}
}

func (s *Server) life() Lifetime { return Lifetime{Idle: s.opts.Timeout, Max: s.opts.MaxLifetime} }

// create answers POST /v1/sessions: a new session holding the request body.
func (s *Server) create(w http.ResponseWriter, r *http.Request) {
	data, err := s.body(w, r)
	if err != nil {
		s.fail(w, err)
		return
	}
	var sess *Session
	for range 3 { // a taken 256-bit random id means a broken random source; try again
		if sess, err = s.store.Create(r.Context(), NewID(), data, s.life()); !errors.Is(err, ErrExists) {
			break
		}
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	w.Header().Set("Location", "/v1/sessions/"+sess.ID)
	w.Header().Set("ETag", etag(sess.Version))
	writeJSON(w, http.StatusCreated, map[string]string{"id": sess.ID})
}

// get answers GET /v1/sessions/{id}: a snapshot, or with lock=exclusive the
// session under its exclusive lock.
func (s *Server) get(w http.ResponseWriter, r *http.Request, id string) {
	q := r.URL.Query()
	var sess *Session
	var err error
	switch q.Get("lock") {
	case "":
		sess, err = s.store.Get(r.Context(), id)
	case "exclusive":
		wait, perr := parseWait(q.Get("wait"))
		if perr != nil {
			s.fail(w, perr)
			return
		}
		sess, err = s.lock(r.Context(), id, min(wait, s.opts.MaxWait))
	default:
		s.fail(w, badRequest("lock must be exclusive, got %q", q.Get("lock")))
		return
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	h := w.Header()
	h.Set("ETag", etag(sess.Version))
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.Itoa(len(sess.Data)))
	if sess.LockID != "" {
		h.Set("Lock-Id", sess.LockID)
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(sess.Data)
}

// parseWait reads wait=: a Go duration ("5s", "250ms") or whole seconds.
func parseWait(v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, badRequest("wait must be a duration such as 5s, got %q", v)
	}
	return d, nil
}

// lock takes id's exclusive lock, waiting up to wait in this process's FIFO
// line for the session.
func (s *Server) lock(ctx context.Context, id string, wait time.Duration) (*Session, error) {
	l, w := s.queue.join(id)
	defer s.queue.leave(id, l, w)
	timer := time.NewTimer(wait)
	defer timer.Stop()
	waited := false
	var age time.Duration = -1
	select {
	case <-w.turn:
	default:
		waited = true
		s.m.lockWaits.Inc()
		select {
		case <-w.turn:
		case <-timer.C:
			return nil, s.lockTimeout(ctx, id, age)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	for {
		sess, err := s.store.Lock(ctx, id, s.opts.LockTimeout)
		var le *LockedError
		if !errors.As(err, &le) {
			if err == nil && sess.BrokeLock {
				s.m.locksBroken.Inc()
			}
			return sess, err
		}
		age = le.Age
		if !waited {
			waited = true
			s.m.lockWaits.Inc()
		}
		// Ask again when a release here wakes us, when the lock becomes
		// breakable, or after PollInterval (a release through another process).
		retry := min(s.opts.PollInterval, max(s.opts.LockTimeout-age, time.Millisecond))
		select {
		case <-l.wake:
		case <-time.After(retry):
		case <-timer.C:
			return nil, s.lockTimeout(ctx, id, age)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// lockTimeout is the 423 of a lock wait that ran out; age < 0 means the
// request never got to ask the store, which is then asked for the age.
func (s *Server) lockTimeout(ctx context.Context, id string, age time.Duration) error {
	s.m.lockTimeouts.Inc()
	if age < 0 {
		sess, err := s.store.Get(ctx, id)
		if err != nil {
			return err
		}
		age = sess.LockAge
	}
	return &LockedError{Age: age}
}

// put answers PUT /v1/sessions/{id}.
func (s *Server) put(w http.ResponseWriter, r *http.Request, id string) {
	data, err := s.body(w, r)
	if err != nil {
		s.fail(w, err)
		return
	}
	c := Cond{LockID: r.Header.Get("Lock-Id")}
	if m := r.Header.Get("If-Match"); m != "" && m != "*" {
		if c.Version, err = parseETag(m); err != nil {
			s.fail(w, err)
			return
		}
	}
	v, err := s.store.Put(r.Context(), id, data, c)
	if err != nil {
		s.fail(w, err)
		return
	}
	if c.LockID != "" {
		s.queue.released(id)
	}
	w.Header().Set("ETag", etag(v))
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) unlock(w http.ResponseWriter, r *http.Request, id string) {
	lockID := r.Header.Get("Lock-Id")
	if lockID == "" {
		s.fail(w, badRequest("missing Lock-Id header"))
		return
	}
	if err := s.store.Unlock(r.Context(), id, lockID); err != nil {
		s.fail(w, err)
		return
	}
	s.queue.released(id)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) touch(w http.ResponseWriter, r *http.Request, id string) {
	if err := s.store.Touch(r.Context(), id); err != nil {
		s.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) delete(w http.ResponseWriter, r *http.Request, id string) {
	if err := s.store.Delete(r.Context(), id); err != nil {
		s.fail(w, err)
		return
	}
	s.queue.released(id) // waiters then get 404
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) renew(w http.ResponseWriter, r *http.Request, id string) {
	var err error
	newID := NewID()
	for range 3 {
		if err = s.store.Renew(r.Context(), id, newID, s.opts.RenewGrace); !errors.Is(err, ErrExists) {
			break
		}
		newID = NewID()
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	s.queue.released(id) // waiters then get 409 renewed
	w.Header().Set("Location", "/v1/sessions/"+newID)
	writeJSON(w, http.StatusCreated, map[string]string{"id": newID})
}

type protectRequest struct {
	Purpose string `json:"purpose"`
	Data    []byte `json:"data"` // base64 (standard, padded) in JSON
	Token   string `json:"token"`
}

func (s *Server) readProtect(w http.ResponseWriter, r *http.Request) (*protectRequest, error) {
	if s.opts.Sealer == nil {
		return nil, &apiError{status: http.StatusNotImplemented, code: "no_key_ring", msg: "no key ring is configured"}
	}
	body, err := s.bodyLimit(w, r, 2*s.opts.MaxSize+4096) // base64 and JSON overhead
	if err != nil {
		return nil, err
	}
	var req protectRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, badRequest("invalid JSON body: %v", err)
	}
	if req.Purpose == "" {
		return nil, badRequest("purpose must not be empty")
	}
	return &req, nil
}

func (s *Server) protect(w http.ResponseWriter, r *http.Request) {
	req, err := s.readProtect(w, r)
	if err != nil {
		s.fail(w, err)
		return
	}
	if int64(len(req.Data)) > s.opts.MaxSize {
		s.fail(w, ErrTooLarge)
		return
	}
	tok, err := s.opts.Sealer.Seal(req.Purpose, req.Data)
	if err != nil {
		s.fail(w, fmt.Errorf("sealing: %w", err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"token": tok})
}

func (s *Server) unprotect(w http.ResponseWriter, r *http.Request) {
	req, err := s.readProtect(w, r)
	if err != nil {
		s.fail(w, err)
		return
	}
	data, err := s.opts.Sealer.Open(req.Purpose, req.Token)
	if err != nil {
		// Tampered, expired, another purpose, unknown key: one answer, so
		// the reply tells an attacker nothing.
		s.fail(w, fmt.Errorf("%w: %w", ErrBadToken, err))
		return
	}
	if data == nil {
		data = []byte{}
	}
	writeJSON(w, http.StatusOK, map[string][]byte{"data": data})
}

func (s *Server) statsHandler(w http.ResponseWriter, r *http.Request) {
	st, err := s.stats(r.Context())
	if err != nil {
		s.fail(w, err)
		return
	}
	type counters struct {
		Sessions     int64 `json:"sessions"`
		Locked       int64 `json:"locked"`
		LockWaiters  int   `json:"lock_waiters"`
		LockWaits    int64 `json:"lock_waits"`
		LockTimeouts int64 `json:"lock_timeouts"`
		LocksBroken  int64 `json:"locks_broken"`
		Expiries     int64 `json:"expiries"`
	}
	writeJSON(w, http.StatusOK, counters{
		Sessions: st.Sessions, Locked: st.Locked, LockWaiters: s.queue.waiting(),
		LockWaits: count(s.m.lockWaits), LockTimeouts: count(s.m.lockTimeouts),
		LocksBroken: count(s.m.locksBroken), Expiries: count(s.m.expiries),
	})
}

// body reads a session body of at most MaxSize bytes.
func (s *Server) body(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	return s.bodyLimit(w, r, s.opts.MaxSize)
}

func (s *Server) bodyLimit(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, ErrTooLarge
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, ErrTooLarge
	}
	if err != nil {
		return nil, badRequest("reading body: %v", err)
	}
	return data, nil
}

func etag(v uint64) string { return `"` + strconv.FormatUint(v, 10) + `"` }

// parseETag reads an If-Match version: one strong ETag as etag writes it.
// Anything else cannot match any version.
func parseETag(s string) (uint64, error) {
	v, ok := strings.CutPrefix(strings.TrimSpace(s), `"`)
	if v, ok2 := strings.CutSuffix(v, `"`); ok && ok2 {
		if n, err := strconv.ParseUint(v, 10, 64); err == nil && n > 0 {
			return n, nil
		}
	}
	return 0, ErrVersionMismatch
}
