package store

import (
	"os"
	"testing"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// The file is written, without a hole, from the high-water mark to at least a chunk past it,
// and the events written over the zeros read back.
func TestTailIsWrittenAhead(t *testing.T) {
	opts := testOptions(t)
	opts.NoSync = false
	s := openStore(t, opts)
	const n = 300 // about 300 KiB of records: the tail is extended over several commits
	for i := range n {
		appendSync(t, s, testEvent(i, 1024), false)
	}
	var hwm int64
	if err := s.db.View(func(tx *bolt.Tx) error { hwm = tx.Size(); return nil }); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(opts.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	hole, err := unix.Seek(int(f.Fd()), hwm, unix.SEEK_HOLE)
	if err != nil {
		t.Fatal(err)
	}
	if hole < hwm+zeroChunk {
		t.Fatalf("first hole at %d, high-water mark %d: want the file written at least %d bytes past it", hole, hwm, zeroChunk)
	}
	if !s.tail.failedAt.IsZero() {
		t.Fatal("the tail's writes failed")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openStore(t, opts)
	for i := range n {
		ev, err := s2.Get(uint64(i + 1))
		if err != nil {
			t.Fatalf("event %d: %v", i+1, err)
		}
		if want := testEvent(i, 1024); string(ev.Body) != string(want.Body) {
			t.Fatalf("event %d: body differs after reopening", i+1)
		}
	}
}
