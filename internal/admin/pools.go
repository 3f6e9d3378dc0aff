package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"time"

	"github.com/fulcrumlb/fulcrum/internal/pool"
)

type poolsJSON struct {
	Pools []poolJSON `json:"pools"`
}

type poolJSON struct {
	Name    string       `json:"name"`
	Balance string       `json:"balance"`
	Servers []serverJSON `json:"servers"`
}

type serverJSON struct {
	Name     string        `json:"name"`
	Address  string        `json:"address"`
	Weight   int           `json:"weight"`
	State    pool.State    `json:"state"`
	Since    time.Time     `json:"since"`
	Active   int64         `json:"active"`
	Requests uint64        `json:"requests"`
	Failures uint64        `json:"failures"`
	Check    *CheckSummary `json:"check,omitempty"`
}

func (s *Server) poolJSON(p *pool.Pool) poolJSON {
	out := poolJSON{Name: p.Name(), Balance: p.Balance(), Servers: make([]serverJSON, 0, len(p.Servers()))}
	for _, sv := range p.Servers() {
		out.Servers = append(out.Servers, s.serverJSON(p, sv))
	}
	return out
}

func (s *Server) serverJSON(p *pool.Pool, sv *pool.Server) serverJSON {
	out := serverJSON{
		Name:     sv.Name(),
		Address:  sv.Address(),
		Weight:   sv.Weight(),
		State:    sv.State(),
		Since:    sv.Since().UTC().Truncate(time.Millisecond),
		Active:   sv.Active(),
		Requests: sv.Requests(),
		Failures: sv.Failures(),
	}
	if c, ok := s.rt.LastCheck(p.Name(), sv.Name()); ok {
		out.Check = &c
	}
	return out
}

// lookupPool finds the pool named by the {pool} path value.
func (s *Server) lookupPool(r *http.Request) (*pool.Pool, *APIError) {
	name := r.PathValue("pool")
	for _, p := range s.rt.Pools() {
		if p.Name() == name {
			return p, nil
		}
	}
	return nil, &APIError{Status: http.StatusNotFound, Msg: fmt.Sprintf("no pool %q", name)}
}

// lookupServer finds the server named by the {pool} and {server} path values.
func (s *Server) lookupServer(r *http.Request) (*pool.Pool, *pool.Server, *APIError) {
	p, apiErr := s.lookupPool(r)
	if apiErr != nil {
		return nil, nil, apiErr
	}
	name := r.PathValue("server")
	sv := p.Server(name)
	if sv == nil {
		return nil, nil, &APIError{Status: http.StatusNotFound, Msg: fmt.Sprintf("no server %q in pool %q", name, p.Name())}
	}
	return p, sv, nil
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) versionInfo(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"version": s.version, "go": runtime.Version()})
}

func (s *Server) listPools(w http.ResponseWriter, _ *http.Request) {
	pools := s.rt.Pools()
	out := poolsJSON{Pools: make([]poolJSON, 0, len(pools))}
	for _, p := range pools {
		out.Pools = append(out.Pools, s.poolJSON(p))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getPool(w http.ResponseWriter, r *http.Request) {
	p, apiErr := s.lookupPool(r)
	if apiErr != nil {
		writeError(w, apiErr)
		return
	}
	writeJSON(w, http.StatusOK, s.poolJSON(p))
}

func (s *Server) getServer(w http.ResponseWriter, r *http.Request) {
	p, sv, apiErr := s.lookupServer(r)
	if apiErr != nil {
		writeError(w, apiErr)
		return
	}
	writeJSON(w, http.StatusOK, s.serverJSON(p, sv))
}

// setAdmin returns the handler that puts a server in the administrative
// state a (drain, disable, enable) and answers with the server.
func (s *Server) setAdmin(a pool.Admin, verb string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, sv, apiErr := s.lookupServer(r)
		if apiErr != nil {
			writeError(w, apiErr)
			return
		}
		if sv.SetAdmin(a) {
			s.track.noteAdmin(sv, a)
			s.log.Info("admin: server "+verb, "pool", p.Name(), "server", sv.Name(), "remote", r.RemoteAddr)
		}
		writeJSON(w, http.StatusOK, s.serverJSON(p, sv))
	}
}

// Weights an operator may set. The upper bound keeps weighted pickers'
// arithmetic small and catches typos (10000 for 100).
const (
	minWeight = 1
	maxWeight = 1000
)

func (s *Server) setWeight(w http.ResponseWriter, r *http.Request) {
	p, sv, apiErr := s.lookupServer(r)
	if apiErr != nil {
		writeError(w, apiErr)
		return
	}
	var body struct {
		Weight *int `json:"weight"`
	}
	if err := decodeJSON(r.Body, &body); err != nil {
		writeError(w, &APIError{Status: http.StatusBadRequest, Msg: "bad request body", Details: []string{err.Error()}})
		return
	}
	if body.Weight == nil || *body.Weight < minWeight || *body.Weight > maxWeight {
		writeError(w, &APIError{Status: http.StatusBadRequest,
			Msg: fmt.Sprintf("weight must be an integer from %d to %d", minWeight, maxWeight)})
		return
	}
	if old := sv.Weight(); old != *body.Weight {
		sv.SetWeight(*body.Weight)
		s.log.Info("admin: server weight set", "pool", p.Name(), "server", sv.Name(),
			"from", old, "to", *body.Weight, "remote", r.RemoteAddr)
	}
	writeJSON(w, http.StatusOK, s.serverJSON(p, sv))
}

// decodeJSON reads exactly one JSON object with only known fields.
func decodeJSON(body io.Reader, v any) error {
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decoding JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("decoding JSON: unexpected data after the object")
	}
	return nil
}

func (s *Server) rehash(w http.ResponseWriter, r *http.Request) {
	p, sv, apiErr := s.lookupServer(r)
	if apiErr != nil {
		writeError(w, apiErr)
		return
	}
	if err := s.rt.Rehash(p.Name(), sv.Name()); err != nil {
		writeError(w, asAPIError(err, http.StatusConflict, "rehash refused"))
		return
	}
	s.log.Info("admin: server rehashed", "pool", p.Name(), "server", sv.Name(), "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, s.serverJSON(p, sv))
}

func (s *Server) checks(w http.ResponseWriter, r *http.Request) {
	p, sv, apiErr := s.lookupServer(r)
	if apiErr != nil {
		writeError(w, apiErr)
		return
	}
	rec, ok := s.rt.Checks(p.Name(), sv.Name())
	if !ok {
		writeError(w, &APIError{Status: http.StatusNotFound,
			Msg: fmt.Sprintf("no checks for server %q in pool %q", sv.Name(), p.Name())})
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

func (s *Server) reload(w http.ResponseWriter, r *http.Request) {
	if err := s.rt.Reload(); err != nil {
		apiErr := asAPIError(err, http.StatusBadRequest, "reload refused")
		s.log.Warn("admin: reload refused", "remote", r.RemoteAddr, "mistakes", len(apiErr.Details))
		writeError(w, apiErr)
		return
	}
	s.log.Info("admin: reloaded", "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, map[string]string{"status": "reloaded"})
}
