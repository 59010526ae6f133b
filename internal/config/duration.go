package config

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"time"
)

// dayPrefix is a leading number of days, "7d" or "1.5d", before an optional Go duration.
var dayPrefix = regexp.MustCompile(`^([+-]?)([0-9]+(?:\.[0-9]+)?)d(.*)$`)

// ParseDuration reads a Go duration ("250ms", "36h") that may start with a number of days
// ("7d", "1d12h"): retention and replay windows are naturally said in days, and Go's own
// parser stops at hours. A day is 24 hours.
func ParseDuration(s string) (time.Duration, error) {
	m := dayPrefix.FindStringSubmatch(s)
	if m == nil {
		return time.ParseDuration(s)
	}
	days, err := strconv.ParseFloat(m[2], 64)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q", s)
	}
	total := days * float64(24*time.Hour)
	if m[3] != "" {
		rest, err := time.ParseDuration(m[3])
		if err != nil || rest < 0 || m[3][0] == '+' {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		total += float64(rest)
	}
	if total >= math.MaxInt64 {
		return 0, fmt.Errorf("invalid duration %q: too long", s)
	}
	if m[1] == "-" {
		total = -total
	}
	return time.Duration(total), nil
}
