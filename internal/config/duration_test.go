package config

import (
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	day := 24 * time.Hour
	good := map[string]time.Duration{
		"250ms": 250 * time.Millisecond,
		"36h":   36 * time.Hour,
		"7d":    7 * day,
		"1d12h": day + 12*time.Hour,
		"1.5d":  day + 12*time.Hour,
		"0d":    0,
		"-2d":   -2 * day,
		"30d1m": 30*day + time.Minute,
	}
	for in, want := range good {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "d", "7", "7dd", "7d-1h", "7d+1h", "1w", "d7", "999999999999d", "7 d"} {
		if got, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", in, got)
		}
	}
}
