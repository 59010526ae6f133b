//go:build !linux

package store

func cpuTimes() (idle, total uint64, ok bool) { return 0, 0, false }
