package store

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestDeadLetters(t *testing.T) {
	opts := testOptions(t)
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	opts.Now = func() time.Time { return now }
	s := openStore(t, opts)

	when := time.Date(2024, 2, 3, 4, 5, 6, 7, time.UTC)
	first := DeadLetter{Route: "orders", Target: "analytics", Seq: 17, Reason: "exchange gone", Attempts: 3, Time: when}
	id, err := s.AddDeadLetter(first)
	if err != nil || id != 1 {
		t.Fatalf("AddDeadLetter = %d, %v", id, err)
	}
	// Idempotent on (route, target, seq), also from many goroutines at once.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			again := first
			again.Reason = "another try"
			if id, err := s.AddDeadLetter(again); err != nil || id != 1 {
				t.Errorf("repeat AddDeadLetter = %d, %v", id, err)
			}
		})
	}
	wg.Wait()
	for i, dl := range []DeadLetter{
		{Route: "orders", Target: "billing", Seq: 17},   // other target
		{Route: "orders", Target: "analytics", Seq: 18}, // other event
		{Route: "ordersanalytics", Target: "", Seq: 17}, // names that concatenate alike
	} {
		if id, err := s.AddDeadLetter(dl); err != nil || id != uint64(i+2) {
			t.Fatalf("AddDeadLetter(%+v) = %d, %v", dl, id, err)
		}
	}
	if s.LastDeadLetterID() != 4 {
		t.Fatalf("LastDeadLetterID = %d", s.LastDeadLetterID())
	}
	if err := s.MarkRedriven(2); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkRedriven(99); !errors.Is(err, ErrNotFound) {
		t.Fatalf("MarkRedriven(99) = %v", err)
	}

	list := func(from uint64, limit int) string {
		var out []string
		err := s.DeadLetters(from, limit, func(dl DeadLetter) bool {
			out = append(out, fmt.Sprintf("%d %s/%s@%d %q %d %s %v", dl.ID, dl.Route, dl.Target, dl.Seq,
				dl.Reason, dl.Attempts, dl.Time.Format(time.RFC3339Nano), dl.Redriven))
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(out)
	}
	want := `[1 orders/analytics@17 "exchange gone" 3 2024-02-03T04:05:06.000000007Z false` +
		` 2 orders/billing@17 "" 0 2024-01-01T00:00:00Z true` +
		` 3 orders/analytics@18 "" 0 2024-01-01T00:00:00Z false` +
		` 4 ordersanalytics/@17 "" 0 2024-01-01T00:00:00Z false]`
	if got := list(0, 0); got != want {
		t.Fatalf("dead letters\n%s\nwant\n%s", got, want)
	}
	if got := list(2, 2); got != `[2 orders/billing@17 "" 0 2024-01-01T00:00:00Z true 3 orders/analytics@18 "" 0 2024-01-01T00:00:00Z false]` {
		t.Fatalf("from 2, limit 2: %s", got)
	}

	s.Close()
	s = openStore(t, opts)
	if got := list(0, 0); got != want {
		t.Fatalf("after reopen\n%s", got)
	}
	if s.LastDeadLetterID() != 4 {
		t.Fatalf("LastDeadLetterID after reopen = %d", s.LastDeadLetterID())
	}
	if id, _ := s.AddDeadLetter(first); id != 1 {
		t.Fatalf("repeat after reopen got id %d", id)
	}
}

func TestDecodeDeadLetterRejects(t *testing.T) {
	b := encodeDeadLetter(&DeadLetter{Route: "r", Target: "t", Seq: 1, Reason: "x", Attempts: 2, Time: time.Unix(5, 0)})
	for i := range len(b) {
		if _, err := decodeDeadLetter(1, b[:i]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated at %d: %v", i, err)
		}
	}
	if _, err := decodeDeadLetter(1, append(b, 0)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("trailing byte: %v", err)
	}
}

func TestDeadLetterAfterRedriveIsNew(t *testing.T) {
	s := openStore(t, testOptions(t))
	dl := DeadLetter{Route: "r", Seq: 7, Reason: "trap", Attempts: 2}
	id1, err := s.AddDeadLetter(dl)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := s.AddDeadLetter(dl); id != id1 {
		t.Fatalf("same dead letter twice: ids %d and %d", id1, id)
	}
	if err := s.MarkRedriven(id1); err != nil {
		t.Fatal(err)
	}
	id2, err := s.AddDeadLetter(dl)
	if err != nil || id2 == id1 {
		t.Fatalf("failing again after a redrive: id %d (first %d), %v; want a new dead letter", id2, id1, err)
	}
}
