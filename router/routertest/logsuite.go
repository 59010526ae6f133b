package routertest

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/router"
)

// RunLogSuite checks that a log implementation keeps the promises the engine relies on. open
// returns an empty log for one subtest (closed by the test's cleanup).
func RunLogSuite(t *testing.T, open func(t *testing.T) router.Log) {
	t.Run("appends in order with increasing seqs and reads back typed values", func(t *testing.T) {
		l := open(t)
		notify := l.Notify()
		var seqs []uint64
		for i := range 5 {
			seq, dup := appendSync(t, l, sample(i, "a"), event.Window{})
			if dup {
				t.Fatalf("event %d taken for a duplicate", i)
			}
			seqs = append(seqs, seq)
		}
		for i := 1; i < len(seqs); i++ {
			if seqs[i] != seqs[i-1]+1 {
				t.Fatalf("seqs %v are not consecutive", seqs)
			}
		}
		select {
		case <-notify:
		case <-time.After(5 * time.Second):
			t.Fatal("Notify was not closed by the appends")
		}
		if l.LastSeq() != seqs[4] || l.FirstSeq() != seqs[0] {
			t.Fatalf("range [%d, %d], want [%d, %d]", l.FirstSeq(), l.LastSeq(), seqs[0], seqs[4])
		}
		got, err := l.Get(seqs[2])
		if err != nil {
			t.Fatal(err)
		}
		want := sample(2, "a")
		if got.Seq != seqs[2] || got.RoutingKey != want.RoutingKey || !bytes.Equal(got.Body, want.Body) {
			t.Fatalf("Get(%d) = seq %d key %q body %q", seqs[2], got.Seq, got.RoutingKey, got.Body)
		}
		if !reflect.DeepEqual(got.Headers, want.Headers) {
			t.Fatalf("headers changed in the log:\n got %#v\nwant %#v", got.Headers, want.Headers)
		}
		if _, err := l.Get(seqs[4] + 100); !errors.Is(err, event.ErrNotFound) {
			t.Fatalf("Get past the end: %v, want event.ErrNotFound", err)
		}
	})

	t.Run("scan selects by source and key, within its limit, and resumes", func(t *testing.T) {
		l := open(t)
		for i := range 10 {
			key := "a"
			if i%2 == 1 {
				key = "b"
			}
			appendSync(t, l, sample(i, key), event.Window{})
		}
		first := l.FirstSeq()
		var got []uint64
		keepA := event.ByHead(func(source, key string) bool { return source == "src" && key == "a" })
		next, err := l.Scan(first, 4, keepA, func(ev *event.Event) bool { got = append(got, ev.Seq); return true })
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, []uint64{first, first + 2}) || next != first+4 {
			t.Fatalf("scan of 4 records: seqs %v next %d", got, next)
		}
		got = nil
		next, err = l.Scan(next, 0, keepA, func(ev *event.Event) bool { got = append(got, ev.Seq); return len(got) < 2 })
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, []uint64{first + 4, first + 6}) || next != first+7 {
			t.Fatalf("scan stopped by fn: seqs %v next %d", got, next)
		}
		var heads []string
		err = l.ScanHeads(first, first+2, func(h event.RecordHead) error {
			heads = append(heads, string(h.Source)+"/"+string(h.RoutingKey))
			return nil
		})
		if err != nil || !reflect.DeepEqual(heads, []string{"src/a", "src/b", "src/a"}) {
			t.Fatalf("heads %v, %v", heads, err)
		}
	})

	t.Run("a redelivery within the window is not logged twice", func(t *testing.T) {
		l := open(t)
		ev := sample(1, "a")
		seq, _ := appendSync(t, l, ev, event.Window{})
		again, dup := appendSync(t, l, sample(1, "a"), event.Window{From: seq, To: seq})
		if !dup || again != seq {
			t.Fatalf("redelivery within the window: seq %d dup %v, want %d true", again, dup, seq)
		}
		other, dup := appendSync(t, l, sample(1, "a"), event.Window{})
		if dup || other == seq {
			t.Fatalf("identical message outside any window: seq %d dup %v, want a new event", other, dup)
		}
		// With the zero fingerprint the log fingerprints the event itself, the same way.
		again, dup = appendWith(t, l, sample(1, "a"), event.Fingerprint{}, event.Window{From: seq, To: other})
		if !dup || (again != seq && again != other) {
			t.Fatalf("redelivery fingerprinted by the log: seq %d dup %v, want one of %d %d", again, dup, seq, other)
		}
		if l.Fingerprint(sample(1, "a")) == l.Fingerprint(sample(2, "a")) {
			t.Fatal("two different messages share a fingerprint")
		}
	})

	t.Run("cursors only move forward until deleted", func(t *testing.T) {
		l := open(t)
		const name = event.DeliveryCursorPrefix + "r/t"
		if pos, err := l.Cursor(name); err != nil || pos != 0 {
			t.Fatalf("unset cursor: %d, %v", pos, err)
		}
		l.SetCursor(name, 5)
		l.SetCursor(name, 3)
		if pos, _ := l.Cursor(name); pos != 5 {
			t.Fatalf("cursor %d after 5 then 3, want 5", pos)
		}
		if err := l.DeleteCursor(name); err != nil {
			t.Fatal(err)
		}
		if pos, _ := l.Cursor(name); pos != 0 {
			t.Fatalf("deleted cursor reads %d", pos)
		}
	})

	t.Run("dead letters are kept once until redriven", func(t *testing.T) {
		l := open(t)
		seq, _ := appendSync(t, l, sample(1, "a"), event.Window{})
		dl := event.DeadLetter{Route: "r", Target: "t", Seq: seq, Reason: "refused", Attempts: 3}
		id, err := l.AddDeadLetter(dl)
		if err != nil {
			t.Fatal(err)
		}
		if again, _ := l.AddDeadLetter(dl); again != id || l.LastDeadLetterID() != id {
			t.Fatalf("recorded twice: ids %d %d, last %d", id, again, l.LastDeadLetterID())
		}
		var seen []event.DeadLetter
		if err := l.DeadLetters(1, 0, func(d event.DeadLetter) bool { seen = append(seen, d); return true }); err != nil {
			t.Fatal(err)
		}
		if len(seen) != 1 || seen[0].ID != id || seen[0].Reason != "refused" || seen[0].Attempts != 3 || seen[0].Time.IsZero() {
			t.Fatalf("dead letters %+v", seen)
		}
		if err := l.MarkRedriven(id); err != nil {
			t.Fatal(err)
		}
		if next, _ := l.AddDeadLetter(dl); next == id {
			t.Fatal("a redriven dead letter that fails again is not recorded again")
		}
	})

	t.Run("jobs are kept until deleted", func(t *testing.T) {
		l := open(t)
		if err := l.SaveJob("j1", []byte(`{"from_seq":1}`)); err != nil {
			t.Fatal(err)
		}
		if spec, err := l.Job("j1"); err != nil || string(spec) != `{"from_seq":1}` {
			t.Fatalf("Job: %q, %v", spec, err)
		}
		if ids, err := l.Jobs(); err != nil || !reflect.DeepEqual(ids, []string{"j1"}) {
			t.Fatalf("Jobs: %v, %v", ids, err)
		}
		if err := l.DeleteJob("j1"); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Job("j1"); !errors.Is(err, event.ErrNoJob) {
			t.Fatalf("deleted job: %v, want event.ErrNoJob", err)
		}
	})

	t.Run("a fresh log is healthy and a barrier settles", func(t *testing.T) {
		l := open(t)
		if l.Full() || l.CommitError() != nil || l.Size() < 0 {
			t.Fatalf("fresh log: full %v, commit error %v, size %d", l.Full(), l.CommitError(), l.Size())
		}
		done := make(chan error, 1)
		l.Barrier(func(err error) { done <- err })
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Barrier never called back")
		}
	})
}

// appendSync appends with the event's fingerprint and waits for the commit.
func appendSync(t *testing.T, l router.Log, ev *event.Event, dedup event.Window) (uint64, bool) {
	t.Helper()
	return appendWith(t, l, ev, l.Fingerprint(ev), dedup)
}

// appendWith appends with fingerprint fp and waits for the commit.
func appendWith(t *testing.T, l router.Log, ev *event.Event, fp event.Fingerprint, dedup event.Window) (uint64, bool) {
	t.Helper()
	type result struct {
		seq uint64
		dup bool
		err error
	}
	done := make(chan result, 1)
	l.Append(ev, fp, dedup, func(seq uint64, dup bool, err error) { done <- result{seq, dup, err} })
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatal(r.err)
		}
		return r.seq, r.dup
	case <-time.After(10 * time.Second):
		t.Fatal("append never committed")
		return 0, false
	}
}

// sample is the i-th test event, with headers of every kind a log must keep typed.
func sample(i int, key string) *event.Event {
	return &event.Event{
		Source: "src", Exchange: "x", RoutingKey: key,
		Props: event.Properties{MessageID: "m-" + string(rune('a'+i)), ContentType: "application/json", DeliveryMode: 2},
		Headers: event.Table{
			"i64": int64(1) << 40, "i32": int32(-7), "u8": uint8(200), "f": 1.5, "b": true, "s": "text",
			"bytes": []byte{0, 1}, "dec": event.Decimal{Scale: 2, Value: 12345},
			"nested": event.Table{"n": int16(3)}, "list": []any{int64(1), "two"}, "null": nil,
		},
		Body:       []byte(`{"n":` + string(rune('0'+i%10)) + `}`),
		IngestTime: time.Date(2026, 1, 1, 0, 0, i, 0, time.UTC),
	}
}
