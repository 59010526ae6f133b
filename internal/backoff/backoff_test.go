package backoff

import (
	"context"
	"testing"
	"time"
)

func TestExponentialDoublesUpToTheLimit(t *testing.T) {
	base, limit := 100*time.Millisecond, time.Second
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, w := range want {
		if got := Exponential(base, limit, i+1); got != w*time.Millisecond {
			t.Errorf("attempt %d: %v, want %v", i+1, got, w*time.Millisecond)
		}
	}
	if got := Exponential(base, 0, 5); got != base {
		t.Errorf("no limit, attempt 5: %v, want the base", got)
	}
	if got := Exponential(0, limit, 3); got != 0 {
		t.Errorf("zero base: %v", got)
	}
}

func TestJitterStaysInItsRange(t *testing.T) {
	d := 80 * time.Millisecond
	for range 1000 {
		if h := HalfJitter(d); h < d/2 || h > d {
			t.Fatalf("half jitter %v outside [%v, %v]", h, d/2, d)
		}
		if f := FullJitter(d); f < 0 || f > d {
			t.Fatalf("full jitter %v outside [0, %v]", f, d)
		}
	}
	if HalfJitter(0) != 0 || FullJitter(-1) != 0 {
		t.Fatal("no wait should stay no wait")
	}
}

func TestSleepEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if Sleep(ctx, time.Hour) {
		t.Fatal("Sleep on an ended context reported it live")
	}
	if Sleep(ctx, 0) {
		t.Fatal("Sleep(0) on an ended context reported it live")
	}
	if !Sleep(context.Background(), time.Millisecond) {
		t.Fatal("a finished Sleep reported its context ended")
	}
}
