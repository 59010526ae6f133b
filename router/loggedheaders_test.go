package router

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/internal/testutil/amqptable"
	"github.com/wasmrouter/wasmrouter/store"
)

// encodingPublisher is a publisher that takes encoded headers; nothing is published here.
type encodingPublisher struct{ Publisher }

func (encodingPublisher) TakesEncodedHeaders() bool { return true }

// loggedEvent logs ev and reads it back as a stream does, from the file (the log reopened, so
// that its ring of recent events is empty).
func loggedEvent(t *testing.T, ev *event.Event) (*store.Store, *event.Event) {
	return loggedEventRead(t, ev, false)
}

// loggedEventRead is loggedEvent; with raw, the header table is left undecoded
// (ScanBoundedRawHeaders).
func loggedEventRead(t *testing.T, ev *event.Event, raw bool) (*store.Store, *event.Event) {
	t.Helper()
	path := t.TempDir() + "/log.db"
	st, err := store.Open(store.Options{Path: path, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	st.Append(ev, store.FingerprintOf(ev), store.Window{}, func(_ uint64, _ bool, err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if st, err = store.Open(store.Options{Path: path, NoSync: true}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var got *event.Event
	scan := st.ScanBounded
	if raw {
		scan = st.ScanBoundedRawHeaders
	}
	if _, err := scan(1, 1, 1<<20, nil, func(e *event.Event) bool { got = e; return true }); err != nil || got == nil {
		t.Fatalf("reading the event back: %v, %v", got, err)
	}
	if got.LoggedHeaders == nil {
		t.Fatal("the event read back carries no LoggedHeaders")
	}
	return st, got
}

// TestLoggedMessageIsTheMessageMessagesForBuilds: a message whose headers are encoded from the
// log's bytes carries exactly what messagesFor's does (the same entries with the same types
// and values, properties, key, exchange and body), live and replayed, to a target with and
// without a fixed routing key; logged x-router-* entries are replaced or removed as there.
func TestLoggedMessageIsTheMessageMessagesForBuilds(t *testing.T) {
	ev := &event.Event{
		Source: "in", Exchange: "src", RoutingKey: "order.created", Body: []byte(`{"a":1}`),
		IngestTime: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC),
		Headers: event.Table{
			"n": int64(1) << 40, "i": int32(-3), "u8": uint8(9), "f": float32(0.5), "s": "text",
			"d": event.Decimal{Scale: 2, Value: 1234}, "b": []byte{0, 1}, "nil": nil, "ok": false,
			"when": time.Unix(1700000000, 0).UTC(), "nested": event.Table{"list": []any{int16(1), "x", event.Table{"k": true}}},
			"x-router-replay": true, "x-router-seq": int64(99), "x-router-error": "from the publisher",
		},
		Props: event.Properties{MessageID: "m-1", DeliveryMode: 2, ContentType: "application/json",
			Timestamp: time.Unix(1700000001, 0).UTC(), Priority: 3, AppID: "app", UserID: "guest"},
	}
	st, logged := loggedEvent(t, ev)
	r := testRoute(t, "a", "b")
	for _, replay := range []bool{false, true} {
		for _, tgt := range []*config.TargetSpec{{Name: "a", Exchange: "xa"}, {Name: "b", Exchange: "xb", RoutingKey: "fixed"}} {
			s := &stream{e: &Engine{store: st}, pub: encodingPublisher{}, bounds: bounds{replay: replay}}
			d := runRoute(context.Background(), nil, r, logged, replay)
			got, ok := s.loggedMessage(r, tgt, logged, &d)
			if !ok {
				t.Fatalf("replay %v, target %s: not built from the log's bytes", replay, tgt.Name)
			}
			want := messagesFor(r, tgt, logged, &d, replay, nil)
			if len(want) != 1 {
				t.Fatalf("messagesFor built %d messages", len(want))
			}
			headers, err := amqptable.Parse(got.msg.EncodedHeaders)
			if err != nil {
				t.Fatalf("replay %v, target %s: encoded headers: %v", replay, tgt.Name, err)
			}
			if !reflect.DeepEqual(headers, want[0].msg.Headers) {
				t.Errorf("replay %v, target %s: headers\n%#v\nwant\n%#v", replay, tgt.Name, headers, want[0].msg.Headers)
			}
			if got.msg.Headers != nil {
				t.Errorf("replay %v, target %s: Headers %v beside the encoded ones", replay, tgt.Name, got.msg.Headers)
			}
			got.msg.EncodedHeaders, want[0].msg.Headers = nil, nil
			if !reflect.DeepEqual(got, want[0]) {
				t.Errorf("replay %v, target %s: message\n%+v\nwant\n%+v", replay, tgt.Name, got, want[0])
			}
		}
	}
}

// TestLoggedMessageOnlyWhereNothingChangesTheHeaders: an event from memory, a transformed
// event, a dry run, a target that is not the route's and a publisher that does not take
// encoded headers all get messagesFor's message.
func TestLoggedMessageOnlyWhereNothingChangesTheHeaders(t *testing.T) {
	st, logged := loggedEvent(t, &event.Event{Source: "in", RoutingKey: "k", Headers: event.Table{"h": "v"}, Body: []byte("x")})
	r := testRoute(t, "a")
	tgt := &config.TargetSpec{Name: "a", Exchange: "xa"}
	pass := Decision{Verdict: Pass, Event: logged}
	fromMemory := *logged
	fromMemory.LoggedHeaders = nil
	for name, tc := range map[string]struct {
		s  *stream
		ev *event.Event
		d  Decision
	}{
		"from memory":  {&stream{e: &Engine{store: st}, pub: encodingPublisher{}}, &fromMemory, Decision{Verdict: Pass, Event: &fromMemory}},
		"transformed":  {&stream{e: &Engine{store: st}, pub: encodingPublisher{}}, logged, Decision{Verdict: Pass, Event: logged.Clone()}},
		"dry run":      {&stream{e: &Engine{store: st}, pub: encodingPublisher{}, bounds: bounds{dryRun: true}}, logged, pass},
		"other target": {&stream{e: &Engine{store: st}, pub: encodingPublisher{}}, logged, pass},
		"publisher":    {&stream{e: &Engine{store: st}, pub: nil}, logged, pass},
	} {
		tt := tgt
		if name == "other target" {
			tt = &config.TargetSpec{Name: "b", Exchange: "xb"}
		}
		if _, ok := tc.s.loggedMessage(r, tt, tc.ev, &tc.d); ok {
			t.Errorf("%s: built from the log's bytes", name)
		}
	}
}

// TestUndecodedHeadersDecodedForMessagesFor: a stream that has the log leave header tables
// undecoded encodes its messages from the log's bytes; an event that takes messagesFor's path
// all the same (here, a publisher that does not take encoded headers) has its table decoded
// first, and gets the message it would have got from a decoded read.
func TestUndecodedHeadersDecodedForMessagesFor(t *testing.T) {
	ev := &event.Event{Source: "in", RoutingKey: "k", Headers: event.Table{"h": "v", "n": []any{int8(1)}}, Body: []byte("x")}
	st, raw := loggedEventRead(t, ev, true)
	_, decoded := loggedEvent(t, ev)
	if raw.Headers != nil {
		t.Fatalf("raw read decoded the headers: %v", raw.Headers)
	}
	r := testRoute(t, "a")
	tgt := &config.TargetSpec{Name: "a", Exchange: "xa"}
	s := &stream{e: &Engine{store: st}, pub: encodingPublisher{}, bounds: bounds{replay: true}}
	if !s.encodesLoggedHeaders(r) {
		t.Fatal("a stream of a route without modules, to an encoding publisher, does not leave headers undecoded")
	}
	d := Decision{Verdict: Pass, Event: raw}
	m, ok := s.loggedMessage(r, tgt, raw, &d)
	if !ok {
		t.Fatal("an undecoded event's message not built from the log's bytes")
	}
	dd := Decision{Verdict: Pass, Event: decoded}
	want := messagesFor(r, tgt, decoded, &dd, true, nil)[0]
	if h, err := amqptable.Parse(m.msg.EncodedHeaders); err != nil || !reflect.DeepEqual(h, want.msg.Headers) {
		t.Errorf("headers %v, %v; want %v", h, err, want.msg.Headers)
	}

	plain := &stream{e: &Engine{store: st}, bounds: bounds{replay: true}}
	if plain.encodesLoggedHeaders(r) {
		t.Error("a publisher that does not take encoded headers would get undecoded events")
	}
	if err := plain.decodeHeaders(raw); err != nil {
		t.Fatal(err)
	}
	got := messagesFor(r, tgt, raw, &d, true, nil)[0]
	if !reflect.DeepEqual(got.msg.Headers, want.msg.Headers) {
		t.Errorf("after decoding: headers %v, want %v", got.msg.Headers, want.msg.Headers)
	}
}
