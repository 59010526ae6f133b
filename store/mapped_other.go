//go:build !linux

package store

// dropMapped does nothing where the resident set is not trimmed.
func dropMapped(addr, length uintptr) error { return nil }
