//go:build wasip1

package wr

import "unsafe"

// The raw imports of module wasmrouter_v1. A Go string parameter is passed as (pointer, length).

//go:wasmimport wasmrouter_v1 meta_get
func metaGet(name string, buf unsafe.Pointer, capacity int32) int32

//go:wasmimport wasmrouter_v1 header_get
func headerGet(name string, buf unsafe.Pointer, capacity int32) int32

//go:wasmimport wasmrouter_v1 config_get
func configGet(name string, buf unsafe.Pointer, capacity int32) int32

//go:wasmimport wasmrouter_v1 body_set
func bodySet(body unsafe.Pointer, n int32)

//go:wasmimport wasmrouter_v1 routing_key_set
func routingKeySet(key string)

//go:wasmimport wasmrouter_v1 header_set
func headerSet(name, value string)

//go:wasmimport wasmrouter_v1 emit
func emit(target, key string, body unsafe.Pointer, n int32) int32

//go:wasmimport wasmrouter_v1 error_set
func errorSet(reason string)

//go:wasmimport wasmrouter_v1 log
func logLine(level int32, msg string)

// Extensions of ABI version 1: only guests that call EmitWith import them.

//go:wasmimport wasmrouter_v1 emit_header_set
func emitHeaderSet(name, value string)

//go:wasmimport wasmrouter_v1 emit_headers_copy
func emitHeadersCopy()

// buffer receives the event body: the host asks wr_buffer for room and reuses it while it is
// large enough. Go's collector does not move objects, so its address stays valid.
var buffer []byte

//go:wasmexport wr_abi_v1
func abiV1() {}

//go:wasmexport wr_buffer
func wrBuffer(size int32) uint32 {
	if size < 0 {
		return 0
	}
	if buffer == nil || int(size) > cap(buffer) {
		buffer = make([]byte, max(size, 1))
	}
	buffer = buffer[:cap(buffer)]
	return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(buffer))))
}

// Run is the body of an entry point: it hands the event body to fn and returns fn's result.
// The body is valid only until fn returns (the next event overwrites it); copy what you keep.
//
//	//go:wasmexport wr_filter
//	func filter(ptr, size uint32) int32 { return wr.Run(ptr, size, keep) }
func Run(ptr, size uint32, fn func(body []byte) Result) int32 {
	base := uint32(uintptr(unsafe.Pointer(unsafe.SliceData(buffer))))
	if ptr != base || int(size) > len(buffer) {
		// Only a host that ignores the wr_buffer contract gets here.
		errorSet("wr: body is not in the wr_buffer buffer")
		return int32(Retry)
	}
	return int32(fn(buffer[:size:size]))
}
