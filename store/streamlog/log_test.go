package streamlog

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
	"github.com/wasmrouter/wasmrouter/store"
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
	l, err := Open(conn, Options{Native: mainNative(t), Stream: stream, MaxAge: 168 * time.Hour, MaxBytes: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

// everywhere is a redelivery window that holds every seq.
var everywhere = store.Window{From: 1, To: math.MaxUint64}

// appendAll appends the events, pipelined, waits until every append is done and returns their
// seqs and how many were recognised as redeliveries (with dedup non-empty).
func appendAll(t *testing.T, l *Log, dedup store.Window, evs ...*event.Event) (seqs []uint64, dups int) {
	t.Helper()
	type result struct {
		seq uint64
		dup bool
		err error
	}
	results := make(chan result, len(evs))
	for _, ev := range evs {
		l.Append(ev, store.FingerprintOf(ev), dedup, func(seq uint64, dup bool, err error) { results <- result{seq, dup, err} })
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
			if len(seqs) > 0 && !r.dup && r.seq <= seqs[len(seqs)-1] {
				t.Fatalf("append done with seq %d after seq %d: not in append order", r.seq, seqs[len(seqs)-1])
			}
			seqs = append(seqs, r.seq)
		case <-time.After(30 * time.Second):
			t.Fatal("appends not done within 30s")
		}
	}
	return seqs, dups
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
	// Not redeliveries: a redelivery is judged after a catch-up mark, which takes an offset.
	seqs, _ := appendAll(t, l, store.Window{}, evs...)
	got := readN(t, l, 1, n)
	for i, ev := range got {
		if ev.Seq != uint64(i+1) || seqs[i] != ev.Seq {
			t.Fatalf("event %d has seq %d in the stream, %d from its append; want %d (its offset; offset 0 is the log's start)", i, ev.Seq, seqs[i], i+1)
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
	firstSeqs, _ := appendAll(t, first, everywhere, evs...)

	late := openLog(t, rabbit.Dial(t), stream)
	seqs, dups := appendAll(t, late, everywhere, evs...)
	if dups != len(evs) || !reflect.DeepEqual(seqs, firstSeqs) {
		t.Fatalf("router opened after the first copies recognised %d of %d redeliveries, as seqs %v; want %v", dups, len(evs), seqs, firstSeqs)
	}
	// A window that does not hold the first copy's seq: written again.
	if _, dups := appendAll(t, late, store.Window{From: firstSeqs[2] + 1, To: math.MaxUint64}, evs[2]); dups != 0 {
		t.Fatal("a redelivery matched an event outside its window")
	}

	deadline := time.Now().Add(10 * time.Second)
	for running.LastSeq() < firstSeqs[2] {
		if time.Now().After(deadline) {
			t.Fatalf("running router saw up to seq %d, want %d", running.LastSeq(), firstSeqs[2])
		}
		<-running.Notify()
	}
	if _, dups := appendAll(t, running, everywhere, evs[:2]...); dups != 2 {
		t.Fatalf("running router recognised %d of 2 redeliveries", dups)
	}
	// Not redelivered: the same content is a new message (Celery sends identical ones).
	if _, dups := appendAll(t, running, store.Window{}, evs[0]); dups != 0 {
		t.Fatal("a message not flagged as redelivered was taken for a redelivery")
	}
	got := readN(t, late, 1, 5) // the routers' start marks are not events
	for i, want := range []string{evs[0].RoutingKey, evs[1].RoutingKey, evs[2].RoutingKey, evs[2].RoutingKey, evs[0].RoutingKey} {
		if got[i].RoutingKey != want || (i > 0 && got[i].Seq <= got[i-1].Seq) {
			t.Fatalf("event %d of the log: seq %d, key %s; want key %s after seq %d", i, got[i].Seq, got[i].RoutingKey, want, got[max(i-1, 0)].Seq)
		}
	}
}

// Scan, Get and ScanHeads read the same events whether the records are recent (in memory) or
// older (read back from the broker).
func TestScanGetAndHeads(t *testing.T) {
	conn := rabbit.Dial(t)
	stream := rabbit.Unique("streamlog.log")
	rabbit.DeleteQueueAtCleanup(t, stream)
	writer := openLog(t, conn, stream)
	evs := make([]*event.Event, 100)
	for i := range evs {
		evs[i] = sampleEvent(i)
		if i%2 == 1 {
			evs[i].Source = "other"
		}
	}
	seqs, _ := appendAll(t, writer, store.Window{}, evs...)

	recent := writer
	older, err := Open(rabbit.Dial(t), Options{Native: mainNative(t), Stream: stream, MaxAge: 168 * time.Hour, MaxBytes: 1 << 30, Recent: 10, Recognised: 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(older.Close)
	for name, l := range map[string]*Log{"recent": recent, "older": older} {
		t.Run(name, func(t *testing.T) {
			deadline := time.Now().Add(10 * time.Second)
			for l.LastSeq() < seqs[99] {
				if time.Now().After(deadline) {
					t.Fatalf("LastSeq %d, want at least %d", l.LastSeq(), seqs[99])
				}
				<-l.Notify()
			}
			if first := l.FirstSeq(); first == 0 || first > seqs[0] {
				t.Fatalf("FirstSeq %d, want 1..%d", first, seqs[0])
			}
			var got []*event.Event
			keepIn := func(source, _ string) bool { return source == "in" }
			next, err := l.Scan(seqs[10], 20, event.ByHead(keepIn), func(ev *event.Event) bool { got = append(got, ev); return true })
			if err != nil {
				t.Fatal(err)
			}
			if next != seqs[30] || len(got) != 10 || got[0].Seq != seqs[10] || got[9].Seq != seqs[28] {
				t.Fatalf("Scan from %d over 20 records: next %d, %d events (want next %d, 10 events %d..%d)", seqs[10], next, len(got), seqs[30], seqs[10], seqs[28])
			}
			for _, ev := range got {
				want := *evs[ev.Seq-seqs[0]]
				want.Seq = ev.Seq
				if !reflect.DeepEqual(ev, &want) {
					t.Fatalf("Scan returned %#v, want %#v", ev, &want)
				}
			}
			ev, err := l.Get(seqs[42])
			if err != nil || ev.RoutingKey != evs[42].RoutingKey || ev.Seq != seqs[42] {
				t.Fatalf("Get(%d) = %v, %v", seqs[42], ev, err)
			}
			if _, err := l.Get(l.LastSeq() + 1); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("Get past the end: %v, want ErrNotFound", err)
			}
			var heads []uint64
			if err := l.ScanHeads(seqs[95], seqs[99], func(h store.RecordHead) error {
				if string(h.RoutingKey) != evs[h.Seq-seqs[0]].RoutingKey || !h.IngestTime.Equal(evs[h.Seq-seqs[0]].IngestTime) {
					t.Errorf("head %d: %s at %s", h.Seq, h.RoutingKey, h.IngestTime)
				}
				heads = append(heads, h.Seq)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if len(heads) != 5 || heads[0] != seqs[95] {
				t.Fatalf("ScanHeads [%d, %d] visited %v", seqs[95], seqs[99], heads)
			}
		})
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

// A stream declared with other limits (retention or max_size changed since) is used as it
// is: RabbitMQ keeps a queue's arguments, and a router must still start.
func TestOpenKeepsAStreamWithOtherLimits(t *testing.T) {
	rabbit.SkipIfShort(t)
	conn := rabbit.Dial(t)
	stream := rabbit.Unique("streamlog.limits")
	rabbit.DeleteQueueAtCleanup(t, stream)
	first := openLog(t, conn, stream)
	seqs, _ := appendAll(t, first, store.Window{}, sampleEvent(1))
	first.Close()

	second, err := Open(conn, Options{Native: mainNative(t), Stream: stream, MaxAge: time.Hour, MaxBytes: 1 << 20})
	if err != nil {
		t.Fatalf("opening the stream with other limits: %v", err)
	}
	defer second.Close()
	ev, err := second.Get(seqs[0])
	if err != nil || ev.Props.MessageID != "m-1" {
		t.Fatalf("Get(%d) = %v, %v; want the event appended before", seqs[0], ev, err)
	}
}

// A redelivery reaching a router whose tail has not read the first copy yet is judged only
// once the tail has caught up with the stream: it is recognised, not logged again.
func TestRedeliveryJudgedAfterTheTailCatchesUp(t *testing.T) {
	stream := rabbit.Unique("streamlog.log")
	rabbit.DeleteQueueAtCleanup(t, stream)
	var gated atomic.Bool
	release := make(chan struct{})
	lagging := newLog(rabbit.Dial(t), Options{Native: mainNative(t), Stream: stream})
	lagging.onRecord = func(off uint64, d record) {
		if gated.Load() {
			<-release // the tail stops here until the redelivery was handed over
		}
		lagging.observeEvent(off, d)
	}
	if err := lagging.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lagging.Close)
	writer := openLog(t, rabbit.Dial(t), stream)

	gated.Store(true)
	ev := sampleEvent(1)
	first, _ := appendAll(t, writer, store.Window{}, ev)
	type result struct {
		seq uint64
		dup bool
		err error
	}
	res := make(chan result, 1)
	lagging.Append(ev, store.FingerprintOf(ev), everywhere, func(seq uint64, dup bool, err error) { res <- result{seq, dup, err} })
	close(release)
	select {
	case r := <-res:
		if r.err != nil {
			t.Fatal(r.err)
		}
		if !r.dup || r.seq != first[0] {
			t.Fatalf("redelivery done with seq %d, dup %v; want the first copy's seq %d, dup", r.seq, r.dup, first[0])
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the redelivery was not judged within 30s")
	}
	// Appends after it, redelivered or not, go on in order.
	seqs, dups := appendAll(t, lagging, everywhere, sampleEvent(2), sampleEvent(3))
	if dups != 0 || seqs[0] <= first[0] {
		t.Fatalf("later redeliveries of new messages: seqs %v, %d dups", seqs, dups)
	}
}

// A redelivery matches only among the latest Unacked events of the router that wrote the
// first copy: an identical message that router logged before those is another message.
func TestRedeliveryMatchesOnlyTheWritersLatest(t *testing.T) {
	stream := rabbit.Unique("streamlog.log")
	rabbit.DeleteQueueAtCleanup(t, stream)
	writer, err := Open(rabbit.Dial(t), Options{Native: mainNative(t), Stream: stream, Unacked: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(writer.Close)
	reader, err := Open(rabbit.Dial(t), Options{Native: mainNative(t), Stream: stream, Unacked: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reader.Close)
	evs := []*event.Event{sampleEvent(1), sampleEvent(2), sampleEvent(3), sampleEvent(4)}
	appendAll(t, writer, store.Window{}, evs...)
	// 1 is the fourth latest of the writer's events: too old; 2 is the third: recognised.
	if _, dups := appendAll(t, reader, everywhere, evs[0]); dups != 0 {
		t.Fatal("a redelivery matched an event older than its writer's latest Unacked")
	}
	if _, dups := appendAll(t, reader, everywhere, evs[1]); dups != 1 {
		t.Fatal("a redelivery of one of its writer's latest Unacked events was logged again")
	}
}

// Every append handed to a closed log is done with ErrClosed, redeliveries included: one
// admitted after the log failed (a slot was free) would otherwise wait for a catch-up mark
// that is never written.
func TestAppendsToAClosedLogFail(t *testing.T) {
	for _, n := range []*Native{nil, mainNative(t)} {
		stream := rabbit.Unique("streamlog.closed")
		rabbit.DeleteQueueAtCleanup(t, stream)
		l := openLogOver(t, n, stream)
		l.Close()
		// Each try picks a free slot or the closed log at random (take's select): enough
		// tries take both ways.
		for i := range 32 {
			dedup := store.Window{}
			if i%2 == 1 {
				dedup = everywhere
			}
			res, ok := appendWithin(l, sampleEvent(i), dedup)
			if !ok {
				t.Fatalf("native %t, append %d (redelivery %t) to a closed log: not done within 30s", n != nil, i, i%2 == 1)
			}
			if !errors.Is(res.err, ErrClosed) {
				t.Fatalf("native %t, append %d (redelivery %t) to a closed log: %+v, want ErrClosed", n != nil, i, i%2 == 1, res)
			}
		}
	}
}
