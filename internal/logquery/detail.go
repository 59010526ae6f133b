package logquery

import (
	"time"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/router"
	"github.com/wasmrouter/wasmrouter/store"
)

// DeadLetterRecord is a dead letter as `router dlq list` prints it (one per line) and
// GET /api/v1/dlq answers it (in an array).
type DeadLetterRecord struct {
	ID       uint64 `json:"id"`
	Route    string `json:"route"`
	Target   string `json:"target"` // "" when a module failed the event (every target missed it)
	Seq      uint64 `json:"seq"`
	Reason   string `json:"reason"`
	Attempts int    `json:"attempts"`
	Time     string `json:"time"`
	Redriven bool   `json:"redriven"`
	// Event is the dead-lettered event, when asked for (`router dlq list --show`).
	Event *Record `json:"event,omitempty"`
}

// NewDeadLetterRecord converts a stored dead letter.
func NewDeadLetterRecord(dl store.DeadLetter) DeadLetterRecord {
	return DeadLetterRecord{
		ID: dl.ID, Route: dl.Route, Target: dl.Target, Seq: dl.Seq, Reason: dl.Reason,
		Attempts: dl.Attempts, Time: dl.Time.UTC().Format(time.RFC3339Nano), Redriven: dl.Redriven,
	}
}

// Detail is one event as GET /api/v1/events/{seq} answers it: the record, the AMQP type of
// each header, where the event went and its dead letters.
type Detail struct {
	Record
	// HeaderTypes names each header's AMQP type (string, int32, timestamp, table...), which
	// the JSON rendering of the values cannot tell.
	HeaderTypes map[string]string  `json:"header_types,omitempty"`
	Deliveries  []router.Delivery  `json:"deliveries"`
	DeadLetters []DeadLetterRecord `json:"dead_letters"`
}

// DeadLettersOf returns the dead letters recorded for the event with seq, walking them all.
func DeadLettersOf(st Reader, seq uint64) ([]store.DeadLetter, error) {
	var out []store.DeadLetter
	err := st.DeadLetters(1, 0, func(dl store.DeadLetter) bool {
		if dl.Seq == seq {
			out = append(out, dl)
		}
		return true
	})
	return out, err
}

// NewDetail assembles an event's detail; deliveries come from the running engine.
func NewDetail(ev *event.Event, dead []store.DeadLetter, deliveries []router.Delivery) Detail {
	d := Detail{Record: NewRecord(ev), Deliveries: deliveries, DeadLetters: []DeadLetterRecord{}}
	if d.Deliveries == nil {
		d.Deliveries = []router.Delivery{}
	}
	if len(ev.Headers) > 0 {
		d.HeaderTypes = make(map[string]string, len(ev.Headers))
		for k, v := range ev.Headers {
			d.HeaderTypes[k] = TypeName(v)
		}
	}
	for _, dl := range dead {
		d.DeadLetters = append(d.DeadLetters, NewDeadLetterRecord(dl))
	}
	return d
}

// TypeName is the AMQP field type of a header value.
func TypeName(v any) string {
	switch v.(type) {
	case nil:
		return "void"
	case bool:
		return "bool"
	case int8:
		return "int8"
	case uint8:
		return "uint8"
	case int16:
		return "int16"
	case uint16:
		return "uint16"
	case int32:
		return "int32"
	case uint32:
		return "uint32"
	case int64:
		return "int64"
	case float32:
		return "float32"
	case float64:
		return "float64"
	case event.Decimal:
		return "decimal"
	case string:
		return "string"
	case []byte:
		return "bytes"
	case time.Time:
		return "timestamp"
	case event.Table:
		return "table"
	case []any:
		return "array"
	default:
		return "unknown"
	}
}
