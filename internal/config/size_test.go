package config

import (
	"strconv"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr string
	}{
		{"0", 0, ""},
		{"512", 512, ""},
		{"512B", 512, ""},
		{"10kB", 10000, ""},
		{"64KiB", 64 << 10, ""},
		{" 1 MiB ", 1 << 20, ""},
		{"1GiB", 1 << 30, ""},
		{"2MB", 2000000, ""},
		{"1TiB", 1 << 40, ""},
		{"9223372036854775807", 1<<63 - 1, ""},
		{"9223372036854775808", 0, "too large"},
		{"8388608TiB", 0, "too large"},
		{"64KB", 0, `unknown unit "KB"`},
		{"64k", 0, `unknown unit "k"`},
		{"1.5MiB", 0, "whole number"},
		{"-1", 0, "must not be negative"},
		{"", 0, "invalid size"},
		{"MiB", 0, "invalid size"},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		switch {
		case tt.wantErr == "" && (err != nil || got != tt.want):
			t.Errorf("ParseSize(%q): got %d, %v; want %d", tt.in, got, err, tt.want)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("ParseSize(%q): got %d, %v; want error containing %q", tt.in, got, err, tt.wantErr)
		}
	}
}

func FuzzSize(f *testing.F) {
	for _, s := range []string{"0", "512B", "10kB", "64KiB", "1 MiB", "1GiB", "1.5MiB", "-1", "99999999999999999999", "8388607TiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			return
		}
		if n < 0 {
			t.Fatalf("ParseSize(%q) = %d, want non-negative", s, n)
		}
		// A bare number means bytes, exactly as strconv reads it.
		if digits := strings.TrimSpace(s); digits != "" && strings.Trim(digits, "0123456789") == "" {
			if want, err := strconv.ParseInt(digits, 10, 64); err != nil || want != n {
				t.Fatalf("ParseSize(%q) = %d, strconv says %d (%v)", s, n, want, err)
			}
		}
		// Adding the B unit never changes the value.
		if m, err := ParseSize(strings.TrimSpace(s) + "B"); strings.Trim(strings.TrimSpace(s), "0123456789") == "" && (err != nil || m != n) {
			t.Fatalf("ParseSize(%q+\"B\") = %d, %v; want %d", s, m, err, n)
		}
	})
}
