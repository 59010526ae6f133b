package streamlog

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
)

func sampleEvent(i int) *event.Event {
	return &event.Event{
		Source:     "in",
		Exchange:   "events",
		RoutingKey: fmt.Sprintf("order.%d", i),
		Props: event.Properties{ContentType: "application/json", DeliveryMode: 2, MessageID: fmt.Sprint("m-", i),
			Timestamp: time.Unix(1700000000, 0).UTC()},
		// Types a JSON round trip or a stream's AMQP headers would lose: the record keeps them.
		Headers: event.Table{
			"n8": int8(-3), "n64": int64(1) << 40, "f": 1.5, "ok": true, "none": nil,
			"list":   []any{int32(1), "two", []any{false}},
			"nested": event.Table{"d": event.Decimal{Scale: 2, Value: 12345}, "raw": []byte{0, 1}},
		},
		Body:       []byte(fmt.Sprintf(`{"amount":%d}`, i)),
		IngestTime: time.Unix(1700000000, int64(i)).UTC(),
	}
}

func openLog(t *testing.T, conn *amqp.Connection, stream string) *Log {
	t.Helper()
	l, err := Open(conn, Options{Stream: stream, MaxAge: 168 * time.Hour, MaxBytes: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

// appendAll appends the events, pipelined, and waits for every confirm.
func appendAll(t *testing.T, l *Log, redelivered bool, evs ...*event.Event) (dups int) {
	t.Helper()
	type result struct {
		dup bool
		err error
	}
	results := make(chan result, len(evs))
	for _, ev := range evs {
		l.Append(ev, redelivered, func(dup bool, err error) { results <- result{dup, err} })
	}
	for range evs {
		select {
		case r := <-results:
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.dup {
				dups++
			}
		case <-time.After(30 * time.Second):
			t.Fatal("appends not confirmed within 30s")
		}
	}
	return dups
}

// readN reads n events from seq from.
func readN(t *testing.T, l *Log, from uint64, n int) []*event.Event {
	t.Helper()
	var got []*event.Event
	enough := errors.New("enough")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := l.Read(ctx, from, func(ev *event.Event) error {
		got = append(got, ev)
		if len(got) == n {
			return enough
		}
		return nil
	})
	if !errors.Is(err, enough) {
		t.Fatalf("read %d of %d events: %v", len(got), n, err)
	}
	return got
}

func TestAppendAndReadKeepTheEventExactly(t *testing.T) {
	conn := rabbit.Dial(t)
	stream := rabbit.Unique("streamlog.log")
	rabbit.DeleteQueueAtCleanup(t, stream)
	l := openLog(t, conn, stream)

	const n = 300
	evs := make([]*event.Event, n)
	for i := range evs {
		evs[i] = sampleEvent(i)
	}
	if dups := appendAll(t, l, false, evs...); dups != 0 {
		t.Fatalf("%d fresh appends reported as redeliveries", dups)
	}
	got := readN(t, l, 1, n)
	for i, ev := range got {
		if ev.Seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d, want %d (its offset; offset 0 is the log's start)", i, ev.Seq, i+1)
		}
		want := *evs[i]
		want.Seq = ev.Seq
		if !reflect.DeepEqual(ev, &want) {
			t.Fatalf("event %d changed in the stream:\n got %#v\nwant %#v", i, ev, &want)
		}
	}
	// Reading from the middle of a chunk starts exactly there.
	if mid := readN(t, l, 150, 1); mid[0].Seq != 150 || mid[0].RoutingKey != evs[149].RoutingKey {
		t.Fatalf("read from 150 starts at seq %d (%s)", mid[0].Seq, mid[0].RoutingKey)
	}
	deadline := time.Now().Add(10 * time.Second)
	for l.LastSeq() != n {
		if time.Now().After(deadline) {
			t.Fatalf("LastSeq %d, want %d", l.LastSeq(), n)
		}
		<-l.Notify()
	}
}

// A redelivery is recognised whichever router wrote the first copy: one that opened after it
// (the index is rebuilt from the tail of the stream) and one that was already running (it
// follows the other routers' appends).
func TestRedeliveryRecognisedAcrossRouters(t *testing.T) {
	stream := rabbit.Unique("streamlog.log")
	rabbit.DeleteQueueAtCleanup(t, stream)
	running := openLog(t, rabbit.Dial(t), stream)

	first := openLog(t, rabbit.Dial(t), stream)
	evs := []*event.Event{sampleEvent(1), sampleEvent(2), sampleEvent(3)}
	appendAll(t, first, false, evs...)

	late := openLog(t, rabbit.Dial(t), stream)
	if dups := appendAll(t, late, true, evs...); dups != len(evs) {
		t.Fatalf("router opened after the first copies recognised %d of %d redeliveries", dups, len(evs))
	}

	deadline := time.Now().Add(10 * time.Second)
	for running.LastSeq() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("running router saw up to seq %d, want 3", running.LastSeq())
		}
		<-running.Notify()
	}
	if dups := appendAll(t, running, true, evs...); dups != len(evs) {
		t.Fatalf("running router recognised %d of %d redeliveries", dups, len(evs))
	}
	// Not redelivered: the same content is a new message (Celery sends identical ones).
	if dups := appendAll(t, running, false, evs[0]); dups != 0 {
		t.Fatal("a message not flagged as redelivered was taken for a redelivery")
	}
	got := readN(t, late, 1, 4) // the routers' start marks are not events
	for i, want := range []string{evs[0].RoutingKey, evs[1].RoutingKey, evs[2].RoutingKey, evs[0].RoutingKey} {
		if got[i].RoutingKey != want || (i > 0 && got[i].Seq <= got[i-1].Seq) {
			t.Fatalf("event %d of the log: seq %d, key %s; want key %s after seq %d", i, got[i].Seq, got[i].RoutingKey, want, got[max(i-1, 0)].Seq)
		}
	}
}

func TestStreamArgsCarryRetention(t *testing.T) {
	args := StreamArgs(Options{MaxAge: 168 * time.Hour, MaxBytes: 10 << 30, ClusterSize: 3})
	want := amqp.Table{"x-queue-type": "stream", "x-max-age": "168h", "x-max-length-bytes": int64(10 << 30), "x-initial-cluster-size": int32(3)}
	if !reflect.DeepEqual(args, want) {
		t.Fatalf("StreamArgs = %v, want %v", args, want)
	}
	for d, want := range map[time.Duration]string{90 * time.Minute: "90m", 1500 * time.Millisecond: "2s", time.Hour: "1h", 61 * time.Second: "61s"} {
		if got := maxAge(d); got != want {
			t.Errorf("maxAge(%s) = %q, want %q", d, got, want)
		}
	}
}
