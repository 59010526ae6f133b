//go:build wasip1

// Command jsonstd is the threshold filter written with encoding/json, to compare its cost with
// the SDK's JSON reader in the benchmarks.
package main

import (
	"encoding/json"

	"github.com/wasmrouter/wasmrouter/guest/wr"
)

func main() {}

//go:wasmexport wr_filter
func filter(ptr, size uint32) int32 { return wr.Run(ptr, size, keep) }

func keep(body []byte) wr.Result {
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil {
		return wr.Fail(wr.DeadLetter, "body is not JSON")
	}
	amount, ok := doc["amount"].(float64)
	if !ok {
		return wr.Fail(wr.DeadLetter, "no numeric amount")
	}
	if amount >= 100 {
		return wr.Continue
	}
	return wr.Drop
}
