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
	return event.Table(fromJSON.Table(h))
}

// fromJSON walks JSON values (decoded with UseNumber) into header values.
var fromJSON = event.Walker{
	AsTable:   func(v any) (map[string]any, bool) { m, ok := v.(map[string]any); return m, ok },
	MakeTable: event.MakeEventTable,
	Leaf: func(v any) any {
		if x, ok := v.(json.Number); ok {
			if i, err := x.Int64(); err == nil {
				return i
			}
			f, _ := x.Float64()
			return f
		}
		return v
	},
}
