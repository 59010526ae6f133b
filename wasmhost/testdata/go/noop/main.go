//go:build wasip1

// Command noop is the cheapest Go filter: the floor of a Go guest call in the benchmarks.
package main

import "github.com/wasmrouter/wasmrouter/guest/wr"

func main() {}

//go:wasmexport wr_filter
func filter(ptr, size uint32) int32 { return wr.Run(ptr, size, keep) }

func keep([]byte) wr.Result { return wr.Continue }
