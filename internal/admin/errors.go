package admin

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
)

// APIError is the one error type the admin API renders. It is shown as
// {"error": Msg, "details": [...]} with status Status. The Runtime may return
// one from Reload or Rehash to choose the status itself.
type APIError struct {
	Status  int      // HTTP status, 4xx or 5xx
	Msg     string   // short, lower-case summary
	Details []string // optional: one line per mistake
}

func (e *APIError) Error() string {
	if len(e.Details) == 0 {
		return e.Msg
	}
	return e.Msg + ": " + strings.Join(e.Details, "; ")
}

// asAPIError returns err as an *APIError: the one err carries, or one with
// the given fallback status and message and err's text as details, one
// entry per line.
func asAPIError(err error, status int, msg string) *APIError {
	if ae, ok := errors.AsType[*APIError](err); ok {
		return ae
	}
	return &APIError{Status: status, Msg: msg, Details: lines(err.Error())}
}

// lines splits text into its non-blank lines.
func lines(text string) []string {
	var out []string
	for l := range strings.Lines(text) {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

type errorBody struct {
	Error   string   `json:"error"`
	Details []string `json:"details,omitempty"`
}

// writeError renders e. It is the only place errors become responses.
func writeError(w http.ResponseWriter, e *APIError) {
	status := e.Status
	if status < 400 || status > 599 {
		status = http.StatusInternalServerError
	}
	writeJSON(w, status, errorBody{Error: e.Msg, Details: e.Details})
}

// writeJSON writes v as the response. A value that cannot be marshalled
// (a Runtime bug) becomes a 500 instead of a half-written body.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body, _ = json.Marshal(errorBody{Error: "encoding response", Details: []string{err.Error()}})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}
