package store

import (
	"maps"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// onDisk reads a cursor as committed in the file, -1 if absent.
func onDisk(t *testing.T, s *Store, name string) int64 {
	t.Helper()
	v := int64(-1)
	err := s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketCursors).Get([]byte(name)); b != nil {
			v = int64(seqOf(b))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestCursors(t *testing.T) {
	opts := testOptions(t)
	s := openStore(t, opts)
	if c, err := s.Cursor("a"); c != 0 || err != nil {
		t.Fatalf("unknown cursor = %d, %v", c, err)
	}
	if s.MinCursor() != 0 {
		t.Fatal("MinCursor without cursors")
	}
	s.SetCursor("a", 10)
	s.SetCursor("a", 7) // backwards: ignored
	s.SetCursor("b", 4)
	s.SetCursor("", 4) // invalid: ignored
	if c, _ := s.Cursor("a"); c != 10 {
		t.Fatalf("a = %d", c)
	}
	if s.MinCursor() != 0 {
		t.Fatalf("MinCursor = %d without delivery cursors", s.MinCursor())
	}
	s.SetCursor(DeliveryCursorPrefix+"r/t1", 9)
	s.SetCursor(DeliveryCursorPrefix+"r/t2", 6)
	if s.MinCursor() != 6 {
		t.Fatalf("MinCursor = %d, want 6: only delivery cursors count", s.MinCursor())
	}
	// Without any events the moves reach the file on their own.
	waitFor(t, "cursor flush", func() bool { return onDisk(t, s, "a") == 10 && onDisk(t, s, "b") == 4 })

	// A reset goes backwards and is durable on return; a move pending before it is dropped.
	s.SetCursor("a", 100)
	if err := s.ResetCursor("a", 5); err != nil {
		t.Fatal(err)
	}
	if onDisk(t, s, "a") != 5 {
		t.Fatalf("after reset the file has %d", onDisk(t, s, "a"))
	}
	appendSync(t, s, testEvent(1, 10), false) // a commit that would carry a stale move
	if onDisk(t, s, "a") != 5 {
		t.Fatalf("stale move overwrote the reset: %d", onDisk(t, s, "a"))
	}
	s.SetCursor("a", 6)
	if err := s.DeleteCursor("b"); err != nil {
		t.Fatal(err)
	}
	if onDisk(t, s, "b") != -1 {
		t.Fatal("deleted cursor still in the file")
	}
	if err := s.ResetCursor("", 1); err == nil {
		t.Fatal("ResetCursor with an empty name succeeded")
	}
	want := map[string]uint64{"a": 6, DeliveryCursorPrefix + "r/t1": 9, DeliveryCursorPrefix + "r/t2": 6}
	if got, _ := s.Cursors(); !maps.Equal(got, want) {
		t.Fatalf("Cursors = %v", got)
	}

	// Close writes the pending move; everything survives reopening.
	s.SetCursor("a", 8)
	want["a"] = 8
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, opts)
	if got, _ := s.Cursors(); !maps.Equal(got, want) {
		t.Fatalf("Cursors after reopen = %v, want %v", got, want)
	}
}
