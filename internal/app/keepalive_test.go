package app_test

import (
	"testing"

	"github.com/fulcrumlb/fulcrum/internal/app"
	"github.com/fulcrumlb/fulcrum/internal/config"
	"github.com/fulcrumlb/fulcrum/internal/health"
)

// reuse: false is one check per connection; reuse_max carries over; only
// http keeps connections.
func TestKeepaliveOptionsReuse(t *testing.T) {
	tests := []struct {
		name string
		k    config.Keepalive
		want int
	}{
		{"http reuse", config.Keepalive{Type: "http", Reuse: true, ReuseMax: 20}, 20},
		{"http no reuse", config.Keepalive{Type: "http", Reuse: false}, 1},
		{"tcp", config.Keepalive{Type: "tcp"}, health.DefaultReuseMax},
	}
	for _, tt := range tests {
		if got := app.KeepaliveOptions(tt.k).ReuseMax; got != tt.want {
			t.Errorf("%s: got ReuseMax %d, want %d", tt.name, got, tt.want)
		}
	}
}
