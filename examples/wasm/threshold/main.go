//go:build wasip1

// Command threshold is a filter guest: it keeps events whose numeric JSON field is at least a
// minimum and drops the others. A body without the field, or with a non-numeric one, is
// dead-lettered with the reason.
//
// Config: field (a path such as "amount" or "order.total"; default "amount"), min (required).
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o threshold.wasm ./examples/wasm/threshold
package main

import (
	"strconv"

	"github.com/wasmrouter/wasmrouter/guest/wr"
)

func main() {}

var (
	field = "amount"
	limit float64
	// The reasons are built once, so that a call allocates nothing.
	missing, notNumber string
)

func init() {
	if v, ok := wr.Config("field"); ok && v != "" {
		field = v
	}
	v, ok := wr.Config("min")
	if !ok {
		configError(`config "min" is required`)
	}
	var err error
	if limit, err = strconv.ParseFloat(v, 64); err != nil {
		configError(`config "min": ` + strconv.Quote(v) + " is not a number")
	}
	missing = "threshold: field " + strconv.Quote(field) + " is missing"
	notNumber = "threshold: field " + strconv.Quote(field) + " is not a number"
}

// configError makes the module fail at start-up, with the reason in the host's error.
func configError(msg string) {
	wr.SetError("threshold: " + msg)
	panic("threshold: " + msg)
}

//go:wasmexport wr_filter
func filter(ptr, size uint32) int32 { return wr.Run(ptr, size, keep) }

func keep(body []byte) wr.Result {
	v, ok := wr.JSONNumber(body, field)
	if !ok {
		if _, _, found := wr.JSONGet(body, field); found {
			return wr.Fail(wr.DeadLetter, notNumber)
		}
		return wr.Fail(wr.DeadLetter, missing)
	}
	if v >= limit {
		return wr.Continue
	}
	return wr.Drop
}
