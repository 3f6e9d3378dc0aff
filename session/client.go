package session

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client speaks the state service's HTTP API (state/README.md). It is safe
// for concurrent use.
type Client struct {
	base  string
	token string
	hc    *http.Client
}

// Snapshot is a session as read from the service.
type Snapshot struct {
	ID      string
	Data    []byte
	Version uint64
	// LockID is the exclusive lock granted to this reader (Lock only).
	LockID string
}

// NewClient returns a client for the service at baseURL (e.g.
// "http://127.0.0.1:9100"), sending token as a bearer token when it is not
// empty. A nil httpClient gets a transport that keeps up to 64 idle
// connections to the service (the default of 2 would open a connection per
// request under load). Lock waits are bounded by the caller's context and
// the wait passed to Lock, so httpClient's Timeout, if any, must exceed the
// longest wait.
func NewClient(baseURL, token string, httpClient *http.Client) *Client {
	if httpClient == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 64
		httpClient = &http.Client{Transport: t}
	}
	return &Client{base: strings.TrimSuffix(baseURL, "/"), token: token, hc: httpClient}
}

func (c *Client) sessionURL(id, suffix string) string {
	return c.base + "/v1/sessions/" + url.PathEscape(id) + suffix
}

// Create makes a new session holding data and returns it (POST /v1/sessions).
func (c *Client) Create(ctx context.Context, data []byte) (*Snapshot, error) {
	res, err := c.do(ctx, "creating session", http.MethodPost, c.base+"/v1/sessions", data, nil, http.StatusCreated)
	if err != nil {
		return nil, err
	}
	var reply struct {
		ID string `json:"id"`
	}
	if err := decodeJSON(res, &reply); err != nil {
		return nil, fmt.Errorf("creating session: %w", err)
	}
	return &Snapshot{ID: reply.ID, Data: data, Version: version(res)}, nil
}

// Get reads a snapshot of the session without waiting for any lock.
func (c *Client) Get(ctx context.Context, id string) (*Snapshot, error) {
	return c.read(ctx, "reading session", id, "")
}

// Lock takes the session's exclusive lock, queueing in the service for up to
// wait. A lock that is not granted in time is an error for which
// errors.Is(err, ErrLocked) holds. Release it with Put (LockID set) or Unlock.
func (c *Client) Lock(ctx context.Context, id string, wait time.Duration) (*Snapshot, error) {
	q := "?lock=exclusive&wait=" + url.QueryEscape(wait.String())
	return c.read(ctx, "locking session", id, q)
}

func (c *Client) read(ctx context.Context, op, id, query string) (*Snapshot, error) {
	res, err := c.do(ctx, op, http.MethodGet, c.sessionURL(id, query), nil, nil, http.StatusOK)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, fmt.Errorf("%s: reading the answer: %w", op, err)
	}
	return &Snapshot{ID: id, Data: data, Version: version(res), LockID: res.Header.Get("Lock-Id")}, nil
}

// PutOptions are the conditions of a write.
type PutOptions struct {
	// LockID, when set, is the lock the writer holds; the write releases it.
	LockID string
	// IfMatch, when not 0, makes the write a compare-and-swap on this version.
	IfMatch uint64
}

// Put writes the session and returns its new version.
func (c *Client) Put(ctx context.Context, id string, data []byte, o PutOptions) (uint64, error) {
	h := http.Header{}
	if o.LockID != "" {
		h.Set("Lock-Id", o.LockID)
	}
	if o.IfMatch != 0 {
		h.Set("If-Match", `"`+strconv.FormatUint(o.IfMatch, 10)+`"`)
	}
	res, err := c.do(ctx, "writing session", http.MethodPut, c.sessionURL(id, ""), data, h, http.StatusNoContent)
	if err != nil {
		return 0, err
	}
	drain(res)
	return version(res), nil
}

// Unlock releases the lock without writing.
func (c *Client) Unlock(ctx context.Context, id, lockID string) error {
	h := http.Header{"Lock-Id": {lockID}}
	return c.simple(ctx, "unlocking session", http.MethodPost, c.sessionURL(id, "/unlock"), h, http.StatusNoContent)
}

// Touch pushes the session's sliding expiry back.
func (c *Client) Touch(ctx context.Context, id string) error {
	return c.simple(ctx, "touching session", http.MethodPost, c.sessionURL(id, "/touch"), nil, http.StatusNoContent)
}

// Delete abandons the session.
func (c *Client) Delete(ctx context.Context, id string) error {
	return c.simple(ctx, "deleting session", http.MethodDelete, c.sessionURL(id, ""), nil, http.StatusNoContent)
}

// Renew moves the session to a new id (same data, unlocked) and returns it;
// the old id stays readable for the service's grace period and its lock,
// if any, is released.
func (c *Client) Renew(ctx context.Context, id string) (string, error) {
	res, err := c.do(ctx, "renewing session", http.MethodPost, c.sessionURL(id, "/renew"), nil, nil, http.StatusCreated)
	if err != nil {
		return "", err
	}
	var reply struct {
		ID string `json:"id"`
	}
	if err := decodeJSON(res, &reply); err != nil {
		return "", fmt.Errorf("renewing session: %w", err)
	}
	return reply.ID, nil
}

func (c *Client) simple(ctx context.Context, op, method, u string, h http.Header, want int) error {
	res, err := c.do(ctx, op, method, u, nil, h, want)
	if err == nil {
		drain(res)
	}
	return err
}

// do sends one request and returns the response when its status is want;
// otherwise the service's error as an *Error (the body is consumed).
func (c *Client) do(ctx context.Context, op, method, u string, body []byte, h http.Header, want int) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if res.StatusCode == want {
		return res, nil
	}
	defer drain(res)
	e := &Error{Op: op, Status: res.StatusCode}
	var reply struct {
		Error string `json:"error"`
		Code  string `json:"code"`
	}
	if json.NewDecoder(io.LimitReader(res.Body, 64<<10)).Decode(&reply) == nil {
		e.Code, e.Message = reply.Code, reply.Error
	} else {
		e.Message = res.Status
	}
	if s, err := strconv.Atoi(res.Header.Get("Lock-Age")); err == nil {
		e.LockAge = time.Duration(s) * time.Second
	}
	return nil, e
}

func decodeJSON(res *http.Response, v any) error {
	defer drain(res)
	if err := json.NewDecoder(io.LimitReader(res.Body, 64<<10)).Decode(v); err != nil {
		return fmt.Errorf("decoding the answer: %w", err)
	}
	return nil
}

// drain reads what is left of a small body so the connection is reused.
func drain(res *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	_ = res.Body.Close()
}

// version reads the ETag the service sends ("7"); 0 when absent.
func version(res *http.Response) uint64 {
	v, _ := strconv.ParseUint(strings.Trim(res.Header.Get("ETag"), `"`), 10, 64)
	return v
}
