//go:build !linux

package exepages

// Release does nothing where the resident set is not trimmed.
func Release() (int64, error) { return 0, nil }

// Evict does nothing where the resident set is not trimmed.
func Evict() (int64, error) { return 0, nil }
