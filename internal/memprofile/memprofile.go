// Package memprofile turns off the Go runtime's sampling of allocations for the heap and
// allocation profiles, unless GODEBUG's memprofilerate asks for it. Sampling costs the
// router about 1.5 MiB of resident memory that nothing else needs: the runtime's table of
// allocation stacks (a 1.4 MiB array, written all over) and the stacks it records (BENCHMARKS.md,
// "Memory"). An operator who wants /debug/pprof/heap or /debug/pprof/allocs starts the router
// with GODEBUG=memprofilerate=524288 (the runtime's default rate; docs/admin-api.md).
//
// A program imports it for its side effect, as early as it can: the table is allocated with
// the first sample, and a sample is taken about every 512 KiB allocated, so package
// initialisation alone takes some.
package memprofile

import (
	"runtime"
	"strings"
	"syscall"
)

func init() {
	godebug, _ := syscall.Getenv("GODEBUG")
	if !strings.Contains(godebug, "memprofilerate=") {
		runtime.MemProfileRate = 0
	}
}
