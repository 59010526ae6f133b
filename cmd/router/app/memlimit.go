package app

import (
	"errors"
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"time"
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
// any, the limit follows the live heap (followLiveHeap).
func setMemoryLimit(configured int64, log *slog.Logger) {
	follower.stop()
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	limit, from := configured, "router.memory_limit"
	if limit == 0 {
		max, err := readCgroupMax(cgroupMemoryMax)
		if err != nil || max == 0 {
			follower.start(defaultLimitFloor)
			log.Info("memory limit for the Go runtime follows the live heap", "floor_bytes", defaultLimitFloor)
			return
		}
		limit, from = max/10*9, "90% of the cgroup's memory.max"
	}
	debug.SetMemoryLimit(limit)
	log.Info("memory limit for the Go runtime", "bytes", limit, "from", from)
}

// The default soft limit: twice the live heap and limitHeadroom (the runtime's own
// structures, stacks, a collection's garbage), and never under defaultLimitFloor. With the
// live heap of a router without guests (6-10 MiB: the prefetched deliveries, the ring, the
// windows) the floor binds: the heap's transients (a backlog's prefetch arriving at once)
// are collected and returned to the kernel instead of doubling, for no measurable CPU in
// BENCHMARKS.md ("Memory"), where a 16 MiB limit doubled the CPU per event. A larger live
// heap (large messages, guests' memories, many streams) raises the limit with it, so that
// the collector never runs more than GOGC=100 asks: the limit only trims what is left over.
const (
	defaultLimitFloor = 24 << 20
	limitHeadroom     = 8 << 20
	limitEvery        = time.Second
)

// follower is the goroutine that moves the default limit; at most one runs.
var follower liveHeapFollower

type liveHeapFollower struct {
	mu   sync.Mutex
	done chan struct{}
}

func (f *liveHeapFollower) start(floor int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.done = make(chan struct{})
	debug.SetMemoryLimit(limitFor(floor, liveHeap()))
	go followLiveHeap(f.done, floor)
}

// stop ends the follower, if one runs, leaving the limit it set until the caller sets another.
func (f *liveHeapFollower) stop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.done != nil {
		close(f.done)
		f.done = nil
	}
}

// followLiveHeap sets the limit from the live heap every limitEvery until done is closed.
func followLiveHeap(done <-chan struct{}, floor int64) {
	tick := time.NewTicker(limitEvery)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
			debug.SetMemoryLimit(limitFor(floor, liveHeap()))
		}
	}
}

func limitFor(floor, live int64) int64 {
	return max(floor, 2*live+limitHeadroom)
}

// liveHeap is the heap's live bytes as the last collection marked them.
func liveHeap() int64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return int64(s[0].Value.Uint64())
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
