package app

import (
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
)

func TestReadCgroupMax(t *testing.T) {
	dir := t.TempDir()
	for text, want := range map[string]int64{"max\n": 0, "536870912\n": 512 << 20} {
		p := filepath.Join(dir, "memory.max")
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		if got, err := readCgroupMax(p); err != nil || got != want {
			t.Errorf("%q: %d %v, want %d", text, got, err, want)
		}
	}
	p := filepath.Join(dir, "bad")
	_ = os.WriteFile(p, []byte("lots"), 0o600)
	if _, err := readCgroupMax(p); err == nil {
		t.Error("a bad memory.max: want an error")
	}
	if _, err := readCgroupMax(filepath.Join(dir, "absent")); err == nil {
		t.Error("no memory.max: want an error")
	}
}

func TestSetMemoryLimitFromTheConfiguration(t *testing.T) {
	if os.Getenv("GOMEMLIMIT") != "" {
		t.Skip("GOMEMLIMIT is set: it wins over the configuration")
	}
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	setMemoryLimit(300<<20, slog.New(slog.DiscardHandler))
	if got := debug.SetMemoryLimit(-1); got != 300<<20 {
		t.Fatalf("memory limit %d, want %d", got, 300<<20)
	}
	t.Setenv("GOMEMLIMIT", "1GiB")
	setMemoryLimit(200<<20, slog.New(slog.DiscardHandler))
	if got := debug.SetMemoryLimit(-1); got != 300<<20 {
		t.Fatalf("with GOMEMLIMIT set the configuration changed the limit to %d", got)
	}
}

func TestDefaultLimitFollowsTheLiveHeapAboveAFloor(t *testing.T) {
	for _, c := range []struct{ live, want int64 }{
		{0, defaultLimitFloor},
		{8 << 20, defaultLimitFloor},
		{10 << 20, 28 << 20},
		{100 << 20, 208 << 20},
	} {
		if got := limitFor(defaultLimitFloor, c.live); got != c.want {
			t.Errorf("live heap %d MiB: limit %d MiB, want %d", c.live>>20, got>>20, c.want>>20)
		}
	}
}

func TestSetMemoryLimitWithoutAnyFollowsTheLiveHeap(t *testing.T) {
	if os.Getenv("GOMEMLIMIT") != "" {
		t.Skip("GOMEMLIMIT is set: it wins")
	}
	if max, err := readCgroupMax(cgroupMemoryMax); err == nil && max > 0 {
		t.Skip("this cgroup has a memory limit: the default comes from it")
	}
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { follower.stop(); debug.SetMemoryLimit(before) })
	debug.SetMemoryLimit(math.MaxInt64)
	setMemoryLimit(0, slog.New(slog.DiscardHandler))
	if got, want := debug.SetMemoryLimit(-1), limitFor(defaultLimitFloor, liveHeap()); got < defaultLimitFloor || got > want+(1<<20) {
		t.Fatalf("default memory limit %d, want about %d", got, want)
	}
	// A configured limit stops the follower: its next tick must not overwrite the limit.
	setMemoryLimit(300<<20, slog.New(slog.DiscardHandler))
	follower.mu.Lock()
	running := follower.done != nil
	follower.mu.Unlock()
	if running {
		t.Fatal("the follower still runs under a configured limit")
	}
	if got := debug.SetMemoryLimit(-1); got != 300<<20 {
		t.Fatalf("memory limit %d, want the configured %d", got, 300<<20)
	}
}
