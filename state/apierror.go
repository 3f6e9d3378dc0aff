package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// apiError is an error with the HTTP status and the stable code the API
// answers with.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &apiError{status: http.StatusBadRequest, code: "bad_request", msg: fmt.Sprintf(format, args...)}
}

// statusOf is the one place errors become HTTP statuses and codes.
func statusOf(err error) (status int, code string) {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		return ae.status, ae.code
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound, "not_found"
	case errors.Is(err, ErrLocked):
		return http.StatusLocked, "locked"
	case errors.Is(err, ErrLockLost):
		return http.StatusConflict, "lock_lost"
	case errors.Is(err, ErrRenewed):
		return http.StatusConflict, "renewed"
	case errors.Is(err, ErrVersionMismatch):
		return http.StatusPreconditionFailed, "version_mismatch"
	case errors.Is(err, ErrTooLarge):
		return http.StatusRequestEntityTooLarge, "too_large"
	case errors.Is(err, ErrBadToken):
		return http.StatusBadRequest, "bad_token"
	case errors.Is(err, ErrExists):
		return http.StatusConflict, "exists"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, "unavailable"
	default:
		return http.StatusInternalServerError, "internal"
	}
}

// writeError answers {"error": message, "code": code}; a 423 also carries
// Lock-Age in whole seconds (like Age). Internal errors are not detailed.
func writeError(w http.ResponseWriter, err error) {
	status, code := statusOf(err)
	var le *LockedError
	if errors.As(err, &le) {
		w.Header().Set("Lock-Age", strconv.FormatInt(int64(le.Age.Seconds()), 10))
	}
	msg := err.Error()
	switch {
	case status == http.StatusInternalServerError:
		msg = "internal error"
	case code == "bad_token":
		msg = ErrBadToken.Error()
	}
	writeJSON(w, status, map[string]string{"error": msg, "code": code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// count reads a counter's value.
func count(c prometheus.Counter) int64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return 0
	}
	return int64(m.GetCounter().GetValue())
}

// fail answers err, logging those that are the service's own failure.
func (s *Server) fail(w http.ResponseWriter, err error) {
	if status, _ := statusOf(err); status >= 500 {
		s.opts.Logger.Error("state: request failed", "err", err)
	}
	writeError(w, err)
}
