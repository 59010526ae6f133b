//go:build wasip1

// Command spin is a Go guest that never returns from wr_filter, for the timeout tests: Go's
// code shape (every branch goes through a dispatch loop) differs from C's.
package main

import "github.com/wasmrouter/wasmrouter/guest/wr"

func main() {}

var counter int

//go:wasmexport wr_filter
func filter(ptr, size uint32) int32 { return wr.Run(ptr, size, spin) }

func spin(body []byte) wr.Result {
	if len(body) == 0 {
		return wr.Continue
	}
	for {
		counter += len(body)
	}
}
