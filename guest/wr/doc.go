// Package wr is the Go SDK for wasmrouter guests: WebAssembly modules that filter, transform or
// handle events (ABI version 1). Build a guest with the standard Go toolchain as a WASI reactor:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o guest.wasm ./guest
//
// Importing the package exports the ABI plumbing (wr_abi_v1, and wr_buffer with a buffer reused
// from call to call). The guest writes the entry points its roles need (wr_filter,
// wr_transform, wr_handle) itself, so that a module exports exactly those and `router validate`
// can tell a filter from a transform:
//
//	package main
//
//	import "github.com/wasmrouter/wasmrouter/guest/wr"
//
//	func main() {} // required by -buildmode=c-shared; never called
//
//	var min float64 // read once: init runs in _initialize, where Config already works
//
//	func init() { v, _ := wr.Config("min"); min, _ = strconv.ParseFloat(v, 64) }
//
//	//go:wasmexport wr_filter
//	func filter(ptr, size uint32) int32 { return wr.Run(ptr, size, keep) }
//
//	func keep(body []byte) wr.Result {
//		amount, ok := wr.JSONNumber(body, "amount")
//		if !ok {
//			return wr.Fail(wr.DeadLetter, "no amount")
//		}
//		if amount < min {
//			return wr.Drop
//		}
//		return wr.Continue
//	}
//
// # Reading the event
//
// The body is the argument of the entry point; it lives in the SDK's buffer and is overwritten
// by the next event, so copy what must outlive the call. Metadata, headers and module config
// come from Meta, Header and Config (string results, one allocation each), from MetaBytes,
// HeaderBytes and ConfigBytes (no allocation; valid until the next such call), or from
// AppendMeta, AppendHeader and AppendConfig (into your own buffer). Metadata names:
// routing_key, exchange, source, route, message_id, correlation_id, content_type, type, app_id,
// timestamp (Unix milliseconds), seq and trace_id (the event's W3C trace id). Headers come as text: strings and byte arrays as they
// are, numbers in decimal, booleans as true/false, other types as JSON.
//
// # Changing the event and emitting events
//
// Transforms call SetBody, SetRoutingKey (255 bytes at most) and SetHeader; handlers call Emit
// for each new event. Calling them from another entry point fails the call (the host retries
// it). SetError or Fail give the reason recorded with Retry and DeadLetter. Log writes to the
// router's log, rate limited; so do stdout and stderr.
//
// # JSON
//
// encoding/json costs tens to hundreds of microseconds per event inside WebAssembly. JSONGet,
// JSONNumber, JSONInt, JSONBool and JSONString find one value by path ("customer.email",
// "items.0.sku") without decoding the document and without allocating; JSONReplace rewrites one
// value into a reused buffer; JSONEach walks an array; AppendJSONString quotes a string.
// Containers are skipped eight bytes at a time, which matters in WebAssembly, where Go's code
// pays for every branch.
//
// # Limits
//
// A call that runs past the module's timeout, traps, exits or panics is retried by the host on a
// fresh instance. Memory is capped by the module's max_memory; an instance whose memory grew
// past half of it is replaced after the call. Guests have no files, network, environment or
// arguments; clocks and random numbers work, and sleeping never blocks (the host does not let a
// guest park a call), so a sleeping guest only spins.
package wr
