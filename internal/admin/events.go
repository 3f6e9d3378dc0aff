package admin

import (
	"bytes"
	"encoding/json"
	"net/http"
	"time"

	"github.com/fulcrumlb/fulcrum/internal/pool"
)

// Event stream timing.
const (
	// snapshotEvery is how often the stream sends a snapshot when nothing
	// changes.
	snapshotEvery = time.Second
	// changePoll is how often the stream looks for a state change between
	// snapshots: a change is sent within this of happening.
	changePoll = 100 * time.Millisecond
)

// snapshotJSON is one event of GET /api/v1/events, and the answer of
// GET /api/v1/snapshot.
type snapshotJSON struct {
	At        time.Time      `json:"at"`
	Version   string         `json:"version"`
	Listeners []ListenerInfo `json:"listeners"`
	Pools     []livePoolJSON `json:"pools"`
	State     *StateStats    `json:"state,omitempty"` // omitted without a state service
	// Cluster is true when another room serves GET /api/v1/cluster.
	Cluster bool `json:"cluster"`
}

type livePoolJSON struct {
	Name        string           `json:"name"`
	Balance     string           `json:"balance"`
	Persistence *int             `json:"persistence"` // entries; null without a table
	Servers     []liveServerJSON `json:"servers"`
}

type liveServerJSON struct {
	serverJSON
	rates
}

// snapshot samples the counters (at most once per sampleEvery) and builds
// the dashboard's view of everything.
func (s *Server) snapshot() snapshotJSON {
	pools := s.rt.Pools()
	in := s.inspector()
	s.track.sample(pools, in)
	out := snapshotJSON{At: s.track.now().UTC(), Version: s.version, Listeners: []ListenerInfo{},
		Pools: make([]livePoolJSON, 0, len(pools)), Cluster: s.mounted(http.MethodGet, "/api/v1/cluster")}
	if in != nil {
		if ls := in.Topology(); ls != nil {
			out.Listeners = ls
		}
		if st, ok := in.StateStats(); ok {
			out.State = &st
		}
	}
	for _, p := range pools {
		lp := livePoolJSON{Name: p.Name(), Balance: p.Balance(), Servers: make([]liveServerJSON, 0, len(p.Servers()))}
		if t, ok := s.rt.Persistence(p.Name()); ok {
			n := t.Len()
			lp.Persistence = &n
		}
		for _, sv := range p.Servers() {
			lp.Servers = append(lp.Servers, liveServerJSON{serverJSON: s.serverJSON(p, sv), rates: s.track.rates(sv)})
		}
		out.Pools = append(out.Pools, lp)
	}
	return out
}

// mounted reports whether a route serves method and path.
func (s *Server) mounted(method, path string) bool {
	r, err := http.NewRequest(method, path, nil)
	if err != nil {
		return false
	}
	_, pattern := s.mux.Handler(r)
	return pattern != ""
}

// changes sums the state changes of every server: a cheap way to notice
// that one happened (or that a reload changed the set of servers).
func changes(pools []*pool.Pool) uint64 {
	var n uint64
	for _, p := range pools {
		n += uint64(len(p.Servers())) << 32
		for _, sv := range p.Servers() {
			n += sv.Changes()
		}
	}
	return n
}

// snapshotOnce answers GET /api/v1/snapshot: one snapshot, for clients that
// cannot read a stream.
func (s *Server) snapshotOnce(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.snapshot())
}

// events answers GET /api/v1/events with Server-Sent Events: a "snapshot"
// event every snapshotEvery, and at once (within changePoll) when a
// server's state changes. The stream ends when the client goes, when the
// server shuts down (Close), or when the browser session it was opened
// with ends (logout).
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// Ask the browser to wait a little before reconnecting after a restart.
	if _, err := w.Write([]byte("retry: 1000\n\n")); err != nil {
		return
	}
	poll := time.NewTicker(changePoll)
	defer poll.Stop()
	var (
		buf      bytes.Buffer
		lastSent time.Time
		seen     = ^uint64(0)
	)
	for {
		now := time.Now()
		if c := changes(s.rt.Pools()); c != seen || now.Sub(lastSent) >= snapshotEvery {
			seen, lastSent = c, now
			buf.Reset()
			buf.WriteString("event: snapshot\ndata: ")
			if err := json.NewEncoder(&buf).Encode(s.snapshot()); err != nil {
				return
			}
			buf.WriteString("\n")
			if _, err := w.Write(buf.Bytes()); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
		}
		select {
		case <-r.Context().Done():
			return
		case <-s.done:
			return
		case <-poll.C:
		}
		if s.auth != nil && now.Sub(lastSent) < changePoll && !s.allowed(r) {
			return // logged out: the stream ends with the session
		}
	}
}

// Close ends the open event streams, so the HTTP server's Shutdown does not
// wait for them. The root registers it with RegisterOnShutdown.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.done) })
}
