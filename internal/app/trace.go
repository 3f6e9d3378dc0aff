package app

import (
	"encoding/json"
	"net/http"
	"net/netip"

	"github.com/fulcrumlb/fulcrum/internal/admin"
	"github.com/fulcrumlb/fulcrum/internal/httpproxy"
)

// traceResult is a routing explanation plus the chosen server's last
// keepalive verdict.
type traceResult struct {
	httpproxy.Trace
	Check *admin.CheckSummary `json:"check,omitempty"`
}

// mountTrace adds GET /api/v1/trace?client=IP&host=H&path=P[&listener=NAME]
// [&method=M][&cookie=C]: how fulcrum would route such a request now.
func (a *App) mountTrace(srv *admin.Server) {
	srv.Mount("GET /api/v1/trace", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		fail := func(status int, msg string) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			json.NewEncoder(w).Encode(map[string]string{"error": msg})
		}
		client, err := netip.ParseAddr(q.Get("client"))
		if err != nil {
			fail(http.StatusBadRequest, "client: want an IP address, got "+strconvQuote(q.Get("client")))
			return
		}
		path := q.Get("path")
		if path == "" {
			path = "/"
		}
		if path[0] != '/' {
			fail(http.StatusBadRequest, "path: must start with /")
			return
		}
		method := q.Get("method")
		if method == "" {
			method = "GET"
		}
		h := a.httpHandler(q.Get("listener"))
		if h == nil {
			fail(http.StatusNotFound, "no such HTTP listener (give ?listener=NAME when there are several)")
			return
		}
		hdr := map[string]string{}
		if c := q.Get("cookie"); c != "" {
			hdr["Cookie"] = c
		}
		tr := h.Trace(httpproxy.TraceQuery{Client: client, Method: method, Host: q.Get("host"), Path: path, Header: hdr})
		res := traceResult{Trace: tr}
		if tr.Server != "" {
			if cs, ok := (runtime{a}).LastCheck(tr.Pool, tr.Server); ok {
				res.Check = &cs
			}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(res)
	}))
}

// httpHandler returns the named HTTP listener's handler, or the only one
// when name is empty.
func (a *App) httpHandler(name string) *httpproxy.Handler {
	a.reload.Lock()
	defer a.reload.Unlock()
	var found *httpproxy.Handler
	n := 0
	for ln, l := range a.listeners {
		if l.http == nil {
			continue
		}
		if ln == name {
			return l.http
		}
		found = l.http
		n++
	}
	if name == "" && n == 1 {
		return found
	}
	return nil
}

func strconvQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
