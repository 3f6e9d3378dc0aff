package admin

import (
	"net/http"
	"time"
)

// persistence answers GET /api/v1/pools/{pool}/persistence: entries per
// server, or, with ?key=K, the entry for one key.
func (s *Server) persistence(w http.ResponseWriter, r *http.Request) {
	p, apiErr := s.lookupPool(r)
	if apiErr != nil {
		writeError(w, apiErr)
		return
	}
	t, ok := s.rt.Persistence(p.Name())
	if !ok {
		writeError(w, &APIError{Status: http.StatusNotFound, Msg: "pool " + p.Name() + " keeps no persistence table"})
		return
	}
	if key := r.URL.Query().Get("key"); key != "" {
		e, found := t.Peek(key)
		if !found {
			writeError(w, &APIError{Status: http.StatusNotFound, Msg: "no entry for that key"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"pool": p.Name(), "key": e.Key, "server": e.Server,
			"last_seen": e.Seen.UTC().Format(time.RFC3339), "expires": e.Seen.Add(t.Timeout()).UTC().Format(time.RFC3339),
		})
		return
	}
	counts := t.Counts()
	servers := make(map[string]int, len(p.Servers()))
	for _, sv := range p.Servers() {
		servers[sv.Name()] = counts[sv.Name()]
	}
	writeJSON(w, http.StatusOK, map[string]any{"pool": p.Name(), "entries": t.Len(), "servers": servers})
}

// persistenceDelete answers DELETE /api/v1/pools/{pool}/persistence?key=K.
func (s *Server) persistenceDelete(w http.ResponseWriter, r *http.Request) {
	p, apiErr := s.lookupPool(r)
	if apiErr != nil {
		writeError(w, apiErr)
		return
	}
	t, ok := s.rt.Persistence(p.Name())
	if !ok {
		writeError(w, &APIError{Status: http.StatusNotFound, Msg: "pool " + p.Name() + " keeps no persistence table"})
		return
	}
	key := r.URL.Query().Get("key")
	if key == "" {
		writeError(w, &APIError{Status: http.StatusBadRequest, Msg: "missing ?key="})
		return
	}
	if !t.Delete(key) {
		writeError(w, &APIError{Status: http.StatusNotFound, Msg: "no entry for that key"})
		return
	}
	s.log.Info("persistence entry deleted", "pool", p.Name(), "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, map[string]any{"pool": p.Name(), "deleted": key})
}
