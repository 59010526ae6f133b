//go:build unix

package wasmhost

import (
	"syscall"
	"time"
)

// processCPU is the CPU time used by the process so far; benchmarks report it per operation
// because wall time is unreliable on a machine shared with other work.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
