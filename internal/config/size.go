package config

import (
	"fmt"
	"math"
	"strings"
)

// sizeUnits maps each accepted unit to its multiplier. Decimal (kB, MB, GB,
// TB) and binary (KiB, MiB, GiB, TiB) units are both accepted; "KB", "K" and
// friends are refused because they are ambiguous between the two.
var sizeUnits = map[string]int64{
	"":    1,
	"B":   1,
	"kB":  1000,
	"MB":  1000 * 1000,
	"GB":  1000 * 1000 * 1000,
	"TB":  1000 * 1000 * 1000 * 1000,
	"KiB": 1 << 10,
	"MiB": 1 << 20,
	"GiB": 1 << 30,
	"TiB": 1 << 40,
}

// ParseSize parses a byte count: a whole number optionally followed by a unit,
// with optional spaces between, e.g. "512", "512B", "10kB" (10000), "64KiB"
// (65536), "1 MiB", "1GiB". Units are case-sensitive: B, kB, MB, GB, TB, KiB,
// MiB, GiB, TiB. Negative, fractional and overflowing sizes are errors.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	end := 0
	for end < len(t) && t[end] >= '0' && t[end] <= '9' {
		end++
	}
	if end == 0 {
		if strings.HasPrefix(t, "-") {
			return 0, fmt.Errorf("size %q must not be negative", s)
		}
		return 0, fmt.Errorf("invalid size %q: want a whole number of bytes, optionally with a unit (B, kB, MB, GB, KiB, MiB, GiB, ...)", s)
	}
	unit := strings.TrimSpace(t[end:])
	mult, ok := sizeUnits[unit]
	if !ok {
		if strings.HasPrefix(unit, ".") {
			return 0, fmt.Errorf("invalid size %q: use a whole number, e.g. \"1536KiB\" rather than \"1.5MiB\"", s)
		}
		return 0, fmt.Errorf("invalid size %q: unknown unit %q (use B, kB, MB, GB, TB, KiB, MiB, GiB or TiB)", s, unit)
	}
	var n int64
	for _, c := range t[:end] {
		digit := int64(c - '0')
		if n > (math.MaxInt64-digit)/10 {
			return 0, errSizeOverflow(s)
		}
		n = n*10 + digit
	}
	if n > math.MaxInt64/mult {
		return 0, errSizeOverflow(s)
	}
	return n * mult, nil
}

func errSizeOverflow(s string) error {
	return fmt.Errorf("size %q is too large", s)
}
