package store

import (
	"sync"
	"time"
)

// busyThreshold is the share of the machine's CPU time left idle under which the group commit
// wait is taken (see gather): with more idle CPU than that, the commits the wait saves give
// nothing anyone is short of, and the wait only adds its length to every event's latency. A
// tenth, not a quarter: at half the loop's peak rate a quarter made the wait the larger part of
// an event's latency, and at full load batches pass batchMin without it (BENCHMARKS.md, "The
// wait only on a machine nine tenths busy").
const busyThreshold = 0.10

// idleEvery is how often the machine's idle share is read again.
const idleEvery = 100 * time.Millisecond

// cpuIdle tells whether the machine has been busy lately, from the kernel's CPU time counters
// (cpuTimes), read at most every idleEvery by whoever asks.
type cpuIdle struct {
	mu          sync.Mutex
	read        func() (idle, total uint64, ok bool)
	at          time.Time
	idle, total uint64
	busy        bool
}

// machineBusy reports whether less than busyThreshold of the CPU time since the previous
// reading was idle. Until there are two readings, and where the counters cannot be read, it
// reports the machine idle: no wait, as with no load.
func (c *cpuIdle) machineBusy(now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.at.IsZero() && now.Sub(c.at) < idleEvery {
		return c.busy
	}
	idle, total, ok := c.read()
	if !ok {
		c.busy = false
		return false
	}
	c.busy = !c.at.IsZero() && total > c.total && float64(idle-c.idle) < busyThreshold*float64(total-c.total)
	c.at, c.idle, c.total = now, idle, total
	return c.busy
}
