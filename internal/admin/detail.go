package admin

import (
	"net/http"
	"sort"
	"time"

	"github.com/fulcrumlb/fulcrum/internal/pool"
)

// detailJSON answers GET /api/v1/pools/{pool}/servers/{server}/detail:
// everything the dashboard's server page shows.
type detailJSON struct {
	Pool     string         `json:"pool"`
	Server   liveServerJSON `json:"server"`
	Checks   any            `json:"checks"` // Runtime.Checks, null without keepalive
	Timeline timelineJSON   `json:"timeline"`
	// Reference is the newest body seen whose hash was the learned
	// reference; Failed the newest that did not match it. The keepalive
	// keeps only the reference hash, so these are what the admin saw.
	Reference   *bodyJSON `json:"reference"`
	Failed      *bodyJSON `json:"failed"`
	Persistence *int      `json:"persistence"` // this server's entries; null without a table
}

type bodyJSON struct {
	At     time.Time `json:"at"`
	Hash   string    `json:"hash"`
	Reason string    `json:"reason,omitempty"`
	Body   string    `json:"body"`
}

// keptTransitions is how many transitions a keepalive keeps
// (health.KeepHistory): a full history may not reach back an hour.
const keptTransitions = 100

type timelineJSON struct {
	From     time.Time     `json:"from"`
	To       time.Time     `json:"to"`
	Segments []segmentJSON `json:"segments"`
	// Complete is false when the keepalive's history may not reach back
	// to From (it keeps its last transitions, see health.KeepHistory).
	Complete bool `json:"complete"`
}

type segmentJSON struct {
	From  time.Time  `json:"from"`
	To    time.Time  `json:"to"`
	State pool.State `json:"state"`
}

func (s *Server) detail(w http.ResponseWriter, r *http.Request) {
	p, sv, apiErr := s.lookupServer(r)
	if apiErr != nil {
		writeError(w, apiErr)
		return
	}
	in := s.inspector()
	out := detailJSON{Pool: p.Name(), Server: liveServerJSON{serverJSON: s.serverJSON(p, sv), rates: s.track.rates(sv)}}
	if rec, ok := s.rt.Checks(p.Name(), sv.Name()); ok {
		out.Checks = rec
	}
	var health []HealthChange
	if in != nil {
		if reply, ok := in.LastReply(p.Name(), sv.Name()); ok {
			s.track.noteReply(sv, reply)
		}
		health, _ = in.HealthHistory(p.Name(), sv.Name())
	}
	ref, fail := s.track.bodies(sv)
	if ref.Body != "" || ref.Hash != "" {
		out.Reference = &ref
	}
	if fail.Body != "" || fail.Hash != "" {
		out.Failed = &fail
	}
	now := s.track.now()
	out.Timeline = timeline(now.Add(-timelineSpan), now, health, s.track.adminChanges(sv), sv.State())
	if t, ok := s.rt.Persistence(p.Name()); ok {
		n := t.Counts()[sv.Name()]
		out.Persistence = &n
	}
	writeJSON(w, http.StatusOK, out)
}

// timeline merges keepalive transitions and operator actions into the
// combined state (as pool.Server.State combines them) over [from, to].
// Before the first known transition the server is taken to be up and
// administratively normal, as a new server is; the last segment ends in
// the current state.
func timeline(from, to time.Time, health []HealthChange, admins []adminChange, current pool.State) timelineJSON {
	type event struct {
		at     time.Time
		health string // "" for an operator action
		admin  pool.Admin
	}
	events := make([]event, 0, len(health)+len(admins))
	for _, h := range health {
		events = append(events, event{at: h.At, health: h.To})
	}
	for _, a := range admins {
		events = append(events, event{at: a.At, admin: a.State})
	}
	sort.SliceStable(events, func(i, j int) bool { return events[i].at.Before(events[j].at) })

	out := timelineJSON{From: from.UTC(), To: to.UTC(), Segments: []segmentJSON{},
		Complete: len(health) < keptTransitions || !health[0].At.After(from)}
	h, a := "up", pool.AdminNone
	start := from
	emit := func(end time.Time, st pool.State) {
		if !end.After(start) {
			return
		}
		if n := len(out.Segments); n > 0 && out.Segments[n-1].State == st {
			out.Segments[n-1].To = end.UTC()
		} else {
			out.Segments = append(out.Segments, segmentJSON{From: start.UTC(), To: end.UTC(), State: st})
		}
		start = end
	}
	for _, e := range events {
		if e.at.After(to) {
			break
		}
		if e.at.After(from) {
			emit(e.at, combined(h, a))
		}
		if e.health != "" {
			h = e.health
		} else {
			a = e.admin
		}
	}
	emit(to, current)
	return out
}

// combined is pool.Server.State for a health name and an admin state.
func combined(health string, a pool.Admin) pool.State {
	switch a {
	case pool.AdminDisabled:
		return pool.StateDisabled
	case pool.AdminDraining:
		return pool.StateDraining
	}
	return pool.State(health)
}
