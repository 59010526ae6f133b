package app

import (
	"errors"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// cgroupMemoryMax is cgroup v2's memory limit of the process's cgroup, as seen from inside a
// container.
const cgroupMemoryMax = "/sys/fs/cgroup/memory.max"

// setMemoryLimit gives the Go runtime a soft memory limit, so that the garbage collector
// works harder as the process nears it instead of letting the heap double past what its
// container allows (an OOM kill loses nothing, the log and the broker hold everything, but it
// stops delivery). The GOMEMLIMIT variable wins, as the runtime already applied it; then the
// configuration's router.memory_limit; then 90% of the cgroup's memory.max, leaving room for
// what the runtime does not count (the log's mapped pages, guests' compiled code). Without
// any, there is no limit, as Go's default.
func setMemoryLimit(configured int64, log *slog.Logger) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	limit, from := configured, "router.memory_limit"
	if limit == 0 {
		max, err := readCgroupMax(cgroupMemoryMax)
		if err != nil || max == 0 {
			return
		}
		limit, from = max/10*9, "90% of the cgroup's memory.max"
	}
	debug.SetMemoryLimit(limit)
	log.Info("memory limit for the Go runtime", "bytes", limit, "from", from)
}

// readCgroupMax reads a cgroup v2 memory.max file: a byte count, or "max" (no limit: 0).
func readCgroupMax(path string) (int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	text := strings.TrimSpace(string(data))
	if text == "max" {
		return 0, nil
	}
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil || n <= 0 {
		return 0, errors.New("memory.max: not a byte count: " + text)
	}
	return n, nil
}
