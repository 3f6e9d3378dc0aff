package health

import (
	"encoding/json"
	"time"
)

// MarshalJSON renders a Result for the admin API: times in milliseconds,
// evidence as text, directions by name.
func (r Result) MarshalJSON() ([]byte, error) {
	type segment struct {
		Dir    string  `json:"dir"`
		Offset int     `json:"offset"`
		Len    int     `json:"len"`
		AtMS   float64 `json:"at_ms"`
	}
	segs := make([]segment, len(r.Segments))
	for i, s := range r.Segments {
		segs[i] = segment{Dir: s.Dir.String(), Offset: s.Offset, Len: s.Len, AtMS: millis(s.At)}
	}
	return json.Marshal(struct {
		OK          bool      `json:"ok"`
		At          time.Time `json:"at"`
		DurationMS  float64   `json:"duration_ms"`
		Reason      string    `json:"reason"`
		Status      int       `json:"status,omitempty"`
		Connection  string    `json:"connection,omitempty"`
		Sent        string    `json:"sent,omitempty"`
		Received    string    `json:"received,omitempty"`
		Segments    []segment `json:"segments,omitempty"`
		Hash        string    `json:"hash,omitempty"`
		HashChanged bool      `json:"hash_changed,omitempty"`
		Notes       []string  `json:"notes,omitempty"`
	}{r.OK, r.At, millis(r.Duration), r.Reason, r.Status, r.Conn.String(), string(r.Sent), string(r.Received),
		segs, r.Hash, r.HashChanged, r.Notes})
}

// MarshalJSON renders a Transition as {"at","from","to","reason"}.
func (t Transition) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		At     time.Time `json:"at"`
		From   Health    `json:"from"`
		To     Health    `json:"to"`
		Reason string    `json:"reason"`
	}{t.At, t.From, t.To, t.Reason})
}

func (d Dir) String() string {
	switch d {
	case DirSent:
		return "sent"
	case DirReceived:
		return "received"
	case DirRetry:
		return "retry"
	}
	return "unknown"
}

func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
