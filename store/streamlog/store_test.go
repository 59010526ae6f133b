package streamlog

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
	"github.com/wasmrouter/wasmrouter/store"
)

func openStore(t *testing.T, stream, holder string) *Store {
	t.Helper()
	s, err := OpenStore(rabbit.Dial(t), Options{Native: mainNative(t), Stream: stream}, holder)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func freshStore(t *testing.T) *Store {
	t.Helper()
	stream := rabbit.Unique("streamlog.store")
	rabbit.DeleteQueueAtCleanup(t, stream)
	rabbit.DeleteQueueAtCleanup(t, ControlStream(stream))
	return openStore(t, stream, "router-a")
}

// The promises the engine relies on from any log, kept by the log on a stream.
func TestStoreKeepsTheLogPromises(t *testing.T) {
	t.Run("appends in order with consecutive seqs", func(t *testing.T) {
		s := freshStore(t)
		notify := s.Notify()
		evs := []*event.Event{sampleEvent(0), sampleEvent(1), sampleEvent(2), sampleEvent(3), sampleEvent(4)}
		seqs, _ := appendAll(t, s.Log, store.Window{}, evs...)
		for i := 1; i < len(seqs); i++ {
			if seqs[i] != seqs[i-1]+1 {
				t.Fatalf("seqs %v are not consecutive", seqs)
			}
		}
		select {
		case <-notify:
		case <-time.After(30 * time.Second):
			t.Fatal("Notify was not closed by the appends")
		}
		if s.LastSeq() != seqs[4] || s.FirstSeq() != seqs[0] {
			t.Fatalf("range [%d, %d], want [%d, %d]", s.FirstSeq(), s.LastSeq(), seqs[0], seqs[4])
		}
		if _, err := s.Get(seqs[4] + 100); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Get past the end: %v", err)
		}
	})

	t.Run("scan with no limit stops where fn does", func(t *testing.T) {
		s := freshStore(t)
		evs := make([]*event.Event, 10)
		for i := range evs {
			evs[i] = sampleEvent(i)
		}
		seqs, _ := appendAll(t, s.Log, store.Window{}, evs...)
		var got []uint64
		next, err := s.Scan(seqs[4], 0, nil, func(ev *event.Event) bool { got = append(got, ev.Seq); return len(got) < 2 })
		if err != nil || !reflect.DeepEqual(got, []uint64{seqs[4], seqs[5]}) || next != seqs[6] {
			t.Fatalf("scan stopped by fn: seqs %v next %d, %v", got, next, err)
		}
	})

	t.Run("cursors only move forward until deleted", func(t *testing.T) {
		s := freshStore(t)
		for _, name := range []string{store.DeliveryCursorPrefix + "r/t", "ingest/acknowledged"} {
			if pos, err := s.Cursor(name); err != nil || pos != 0 {
				t.Fatalf("unset cursor %s: %d, %v", name, pos, err)
			}
			s.SetCursor(name, 5)
			s.SetCursor(name, 3)
			if pos, _ := s.Cursor(name); pos != 5 {
				t.Fatalf("cursor %s: %d after 5 then 3, want 5", name, pos)
			}
			if err := s.DeleteCursor(name); err != nil {
				t.Fatal(err)
			}
			if pos, _ := s.Cursor(name); pos != 0 {
				t.Fatalf("deleted cursor %s reads %d", name, pos)
			}
		}
	})

	t.Run("dead letters and jobs", func(t *testing.T) {
		s := freshStore(t)
		dl := store.DeadLetter{Route: "r", Target: "t", Seq: 1, Reason: "refused", Attempts: 3}
		id, err := s.AddDeadLetter(dl)
		if err != nil {
			t.Fatal(err)
		}
		if again, _ := s.AddDeadLetter(dl); again != id || s.LastDeadLetterID() != id {
			t.Fatalf("recorded twice: ids %d %d, last %d", id, again, s.LastDeadLetterID())
		}
		var seen []store.DeadLetter
		if err := s.DeadLetters(1, 0, func(d store.DeadLetter) bool { seen = append(seen, d); return true }); err != nil {
			t.Fatal(err)
		}
		if len(seen) != 1 || seen[0].ID != id || seen[0].Time.IsZero() {
			t.Fatalf("dead letters %+v", seen)
		}
		if err := s.SaveJob("j1", []byte("spec")); err != nil {
			t.Fatal(err)
		}
		if ids, err := s.Jobs(); err != nil || !reflect.DeepEqual(ids, []string{"j1"}) {
			t.Fatalf("Jobs: %v, %v", ids, err)
		}
	})

	t.Run("a fresh log is healthy and a barrier settles after the appends", func(t *testing.T) {
		s := freshStore(t)
		if s.Full() || s.CommitError() != nil || s.Size() < 0 {
			t.Fatalf("fresh log: full %v, commit error %v, size %d", s.Full(), s.CommitError(), s.Size())
		}
		order := make(chan string, 2)
		ev := sampleEvent(1)
		s.Append(ev, s.Fingerprint(ev), store.Window{}, func(uint64, bool, error) { order <- "append" })
		s.Barrier(func(err error) {
			if err != nil {
				t.Error(err)
			}
			order <- "barrier"
		})
		for _, want := range []string{"append", "barrier"} {
			select {
			case got := <-order:
				if got != want {
					t.Fatalf("%s done before the append before it", got)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("%s not done", want)
			}
		}
	})
}

// A delivery cursor is the pair's position, shared: when the router delivering the pair stops,
// the next one resumes where the first had written it.
func TestDeliveryCursorMovesWithThePair(t *testing.T) {
	stream := rabbit.Unique("streamlog.store")
	rabbit.DeleteQueueAtCleanup(t, stream)
	rabbit.DeleteQueueAtCleanup(t, ControlStream(stream))
	const cursor = store.DeliveryCursorPrefix + "orders/analytics"
	rabbit.DeleteQueueAtCleanup(t, LeaseQueue(stream, cursor))
	a, b := openStore(t, stream, "router-a"), openStore(t, stream, "router-b")

	la, err := a.Claim(cursor)
	if err != nil {
		t.Fatal(err)
	}
	waitGranted(t, la, 10*time.Second)
	lb, err := b.Claim(cursor)
	if err != nil {
		t.Fatal(err)
	}
	a.SetCursor(cursor, 41)
	a.SetCursor(cursor, 42)
	waitPosition(t, la, 43) // written into the token by the flush
	select {
	case <-lb.Granted():
		t.Fatal("both routers hold the pair")
	default:
	}
	if pos, _ := b.Cursor(cursor); pos != 0 {
		t.Fatalf("a router that does not hold the pair reads its cursor as %d", pos)
	}

	if err := la.Close(); err != nil { // A loses the pair (its lease's channel closes)
		t.Fatal(err)
	}
	waitGranted(t, lb, 10*time.Second)
	if pos, _ := b.Cursor(cursor); pos != 42 {
		t.Fatalf("the router taking over reads the cursor as %d, want 42", pos)
	}

	// A claims again (a new lease), B moves on and stops: A resumes where B left the pair,
	// not at its own older position.
	la, err = a.Claim(cursor)
	if err != nil {
		t.Fatal(err)
	}
	b.SetCursor(cursor, 50)
	waitPosition(t, lb, 51)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	waitGranted(t, la, 10*time.Second)
	if pos, _ := a.Cursor(cursor); pos != 50 {
		t.Fatalf("the router holding the pair again reads the cursor as %d, want 50", pos)
	}
}
