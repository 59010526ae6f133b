package store

import (
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/event"
)

func TestFingerprintIgnoresLogFields(t *testing.T) {
	a := testEvent(1, 50)
	b := a.Clone()
	b.Seq, b.IngestTime = 99, time.Now()
	if FingerprintOf(a) != FingerprintOf(b) {
		t.Fatal("seq or ingest time changed the fingerprint")
	}
	// Equal tables built in another order hash alike.
	c := a.Clone()
	c.Headers = event.Table{}
	for _, k := range []string{"tenant", "retry", "n"} {
		c.Headers[k] = a.Headers[k]
	}
	if FingerprintOf(a) != FingerprintOf(c) {
		t.Fatal("header insertion order changed the fingerprint")
	}
}

func TestFingerprintCoversContent(t *testing.T) {
	base := testEvent(1, 50)
	changes := map[string]func(e *event.Event){
		"source":       func(e *event.Event) { e.Source = "other" },
		"exchange":     func(e *event.Event) { e.Exchange = "x" },
		"routing key":  func(e *event.Event) { e.RoutingKey = "x" },
		"message id":   func(e *event.Event) { e.Props.MessageID = "" },
		"timestamp":    func(e *event.Event) { e.Props.Timestamp = time.Time{} },
		"priority":     func(e *event.Event) { e.Props.Priority = 1 },
		"user id":      func(e *event.Event) { e.Props.UserID = "u" },
		"header value": func(e *event.Event) { e.Headers["tenant"] = "other" },
		"header type":  func(e *event.Event) { e.Headers["n"] = int64(e.Headers["n"].(int32)) },
		"header added": func(e *event.Event) { e.Headers["extra"] = nil },
		"body":         func(e *event.Event) { e.Body[0] = '[' },
		// Moving bytes between fields must not collide: the encoding is length-prefixed.
		"shifted": func(e *event.Event) { e.Exchange, e.RoutingKey = e.Exchange+e.RoutingKey[:1], e.RoutingKey[1:] },
	}
	want := FingerprintOf(base)
	for name, change := range changes {
		e := base.Clone()
		change(e)
		if FingerprintOf(e) == want {
			t.Errorf("%s: fingerprint unchanged", name)
		}
	}
}

func TestFingerprintUnsupportedValues(t *testing.T) {
	// A value a record cannot hold still yields a stable fingerprint, distinct per value.
	self := event.Table{}
	self["self"] = self
	a := &event.Event{Headers: event.Table{"n": 1}}
	b := &event.Event{Headers: event.Table{"n": 2}}
	if FingerprintOf(a) != FingerprintOf(a) || FingerprintOf(a) == FingerprintOf(b) {
		t.Fatal("fingerprints of unsupported values are not stable and distinct")
	}
	FingerprintOf(&event.Event{Headers: self}) // terminates
}

func TestFingerprintIgnoresQuorumDeliveryCount(t *testing.T) {
	a := &event.Event{RoutingKey: "k", Body: []byte("b"), Headers: event.Table{"task": "t1"}}
	b := &event.Event{RoutingKey: "k", Body: []byte("b"), Headers: event.Table{"task": "t1", "x-delivery-count": int64(3)}}
	if FingerprintOf(a) != FingerprintOf(b) {
		t.Fatal("a quorum redelivery (x-delivery-count) changes the fingerprint")
	}
	if _, ok := b.Headers["x-delivery-count"]; !ok {
		t.Fatal("fingerprinting changed the event's headers")
	}
}

func TestEncodeComputesTheFingerprintOfFingerprintOf(t *testing.T) {
	s := openStore(t, testOptions(t))
	events := []*event.Event{{}, {Body: []byte("x")}, {Headers: event.Table{"x-delivery-count": int64(2), "a": "b"}, Body: []byte("b")}}
	for i := range 40 {
		ev := testEvent(i, i*37)
		switch i % 4 {
		case 1:
			ev.Props = event.Properties{}
		case 2:
			ev.Headers = nil
		case 3:
			ev.Headers["x-delivery-count"] = int64(i) // left out of the fingerprint
		}
		events = append(events, ev)
	}
	for i, ev := range events {
		enc := s.Encode(ev)
		if enc.err != nil {
			t.Fatalf("event %d: %v", i, enc.err)
		}
		fp := FingerprintOf(ev)
		if enc.Fingerprint() != fp {
			t.Fatalf("event %d: Encode's fingerprint %x, FingerprintOf's %x", i, enc.Fingerprint(), fp)
		}
		want, err := appendRecord(nil, ev, fp)
		if err != nil || string(enc.rec) != string(want) {
			t.Fatalf("event %d: Encode's record differs from appendRecord's (%v)", i, err)
		}
	}
	// A table a record cannot hold: the error, and still FingerprintOf's fingerprint.
	self := event.Table{}
	self["self"] = self
	bad := &event.Event{Headers: event.Table{"loop": self}}
	if enc := s.Encode(bad); enc.err == nil || enc.Fingerprint() != FingerprintOf(bad) {
		t.Fatalf("unsupported header: err %v", enc.err)
	}
}
