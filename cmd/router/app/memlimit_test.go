package app

import (
	"log/slog"
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
