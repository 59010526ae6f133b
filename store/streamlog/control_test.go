package streamlog

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
	"github.com/wasmrouter/wasmrouter/store"
)

func openControl(t *testing.T, stream string) *Control {
	t.Helper()
	c, err := OpenControl(rabbit.Dial(t), Options{Native: mainNative(t), Stream: stream})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// eventually polls cond until it holds, for up to 10s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	eventuallyWithin(t, 10*time.Second, what, cond)
}

func eventuallyWithin(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func deadLetters(t *testing.T, c *Control, from uint64) []store.DeadLetter {
	t.Helper()
	var got []store.DeadLetter
	if err := c.DeadLetters(from, 0, func(dl store.DeadLetter) bool { got = append(got, dl); return true }); err != nil {
		t.Fatal(err)
	}
	return got
}

// Dead letters and jobs written by one router are seen by the others, the ones running and the
// ones that start later.
func TestControlIsSharedByTheRouters(t *testing.T) {
	stream := rabbit.Unique("streamlog.log")
	rabbit.DeleteQueueAtCleanup(t, ControlStream(stream))
	a, b := openControl(t, stream), openControl(t, stream)

	when := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	dl := store.DeadLetter{Route: "orders", Target: "analytics", Seq: 42, Reason: "refused", Attempts: 3, Time: when}
	id, err := a.AddDeadLetter(dl)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := a.AddDeadLetter(dl); err != nil || again != id {
		t.Fatalf("recording the same dead letter again: id %d, %v; want %d", again, err, id)
	}
	eventually(t, "the other router sees the dead letter", func() bool { return b.LastDeadLetterID() == id })
	if again, err := b.AddDeadLetter(dl); err != nil || again != id {
		t.Fatalf("the other router recording it again: id %d, %v; want %d", again, err, id)
	}
	want := dl
	want.ID = id
	if got := deadLetters(t, b, 1); !reflect.DeepEqual(got, []store.DeadLetter{want}) {
		t.Fatalf("dead letters on the other router: %+v, want %+v", got, want)
	}

	if err := b.MarkRedriven(id); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the first router sees the redrive", func() bool {
		got := deadLetters(t, a, id)
		return len(got) == 1 && got[0].Redriven
	})
	second, err := a.AddDeadLetter(dl) // failed again after its redrive: a new dead letter
	if err != nil || second <= id {
		t.Fatalf("dead letter after a redrive: id %d, %v; want a new id after %d", second, err, id)
	}
	if err := a.MarkRedriven(second + 1000); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("redriving an unknown dead letter: %v, want ErrNotFound", err)
	}

	if err := a.SaveJob("r1", []byte(`{"from":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := a.SaveJob("r2", []byte(`{"from":2}`)); err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteJob("r1"); err != nil {
		t.Fatal(err)
	}
	late := openControl(t, stream)
	for name, c := range map[string]*Control{"running": b, "late": late} {
		eventually(t, name+" router sees the jobs", func() bool {
			ids, _ := c.Jobs()
			return reflect.DeepEqual(ids, []string{"r2"})
		})
		if spec, err := c.Job("r2"); err != nil || string(spec) != `{"from":2}` {
			t.Fatalf("%s router: Job(r2) = %s, %v", name, spec, err)
		}
		if _, err := c.Job("r1"); !errors.Is(err, store.ErrNoJob) {
			t.Fatalf("%s router: deleted job: %v, want ErrNoJob", name, err)
		}
	}
	if got := deadLetters(t, late, 1); len(got) != 2 || !got[0].Redriven || got[1].Redriven || got[1].ID != second {
		t.Fatalf("dead letters on a router that started later: %+v", got)
	}
}
