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
