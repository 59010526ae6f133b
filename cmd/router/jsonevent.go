package main

import (
	"bytes"
	"encoding/json"
	"io"

	"github.com/wasmrouter/wasmrouter/event"
)

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// bodyFromJSON takes a JSON string as the body text, any other JSON value as its encoding.
func bodyFromJSON(raw json.RawMessage) []byte {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []byte(s)
	}
	return bytes.TrimSpace(raw)
}

// headersFromJSON maps JSON header values to AMQP types: integers to int64 (as Celery and
// most clients send them), other numbers to float64, objects to tables.
func headersFromJSON(h map[string]any) event.Table {
	if h == nil {
		return nil
	}
	t := make(event.Table, len(h))
	for k, v := range h {
		t[k] = headerValue(v)
	}
	return t
}

func headerValue(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		return headersFromJSON(x)
	case []any:
		a := make([]any, len(x))
		for i, e := range x {
			a[i] = headerValue(e)
		}
		return a
	default:
		return v
	}
}
