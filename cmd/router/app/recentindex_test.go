package app

import (
	"testing"

	"github.com/wasmrouter/wasmrouter/internal/config"
)

// TestRecentIndexCoversTheRestartWindow checks that the log's redelivery index covers twice
// the window the engine asks about after a restart (router.startDedupWindow): twice each
// source's prefetch and batch.
func TestRecentIndexCoversTheRestartWindow(t *testing.T) {
	cfg := &config.Config{Sources: []config.SourceSpec{{Name: "a", Prefetch: 1000}, {Name: "b", Prefetch: 10000}}}
	window := 2*(1000+64) + 2*(10000+64)
	if got := recentIndex(cfg); got != 2*window {
		t.Fatalf("recentIndex = %d, want %d", got, 2*window)
	}
	if got := recentIndex(&config.Config{}); got != 0 {
		t.Fatalf("recentIndex of no source = %d, want 0 (the store's default)", got)
	}
}
