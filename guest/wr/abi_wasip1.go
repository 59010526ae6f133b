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

// MetaGet, HeaderGet and ConfigGet are the bare getters: they write at most len(buf) bytes and
// return the value's full length, or -1 when it is absent. Prefer the Append and string forms.
func MetaGet(name string, buf []byte) int32 {
	return metaGet(name, unsafe.Pointer(unsafe.SliceData(buf)), int32(len(buf)))
}

func HeaderGet(name string, buf []byte) int32 {
	return headerGet(name, unsafe.Pointer(unsafe.SliceData(buf)), int32(len(buf)))
}

func ConfigGet(name string, buf []byte) int32 {
	return configGet(name, unsafe.Pointer(unsafe.SliceData(buf)), int32(len(buf)))
}

// appendValue appends a getter's value to dst, calling it again with more room when the
// spare capacity of dst was too small.
func appendValue(get func(string, []byte) int32, dst []byte, name string) ([]byte, bool) {
	n := get(name, dst[len(dst):cap(dst)])
	if n < 0 {
		return dst, false
	}
	if int(n) > cap(dst)-len(dst) {
		grown := make([]byte, len(dst), len(dst)+int(n))
		copy(grown, dst)
		dst = grown
		if m := get(name, dst[len(dst):cap(dst)]); m != n {
			return dst, false // the value changed between the calls; cannot happen within a call
		}
	}
	return dst[:len(dst)+int(n)], true
}

// AppendMeta appends the event metadata value name to dst (see the package doc for the names).
// It allocates only when dst lacks room.
func AppendMeta(dst []byte, name string) ([]byte, bool) { return appendValue(MetaGet, dst, name) }

// AppendHeader appends the text form of header name to dst.
func AppendHeader(dst []byte, name string) ([]byte, bool) { return appendValue(HeaderGet, dst, name) }

// AppendConfig appends the module config value name to dst.
func AppendConfig(dst []byte, name string) ([]byte, bool) { return appendValue(ConfigGet, dst, name) }

// scratch backs the Bytes getters.
var scratch = make([]byte, 0, 256)

// MetaBytes returns the metadata value name without allocating; the slice is valid until the
// next MetaBytes, HeaderBytes or ConfigBytes call.
func MetaBytes(name string) ([]byte, bool) { return scratchValue(MetaGet, name) }

// HeaderBytes is MetaBytes for a header's text form.
func HeaderBytes(name string) ([]byte, bool) { return scratchValue(HeaderGet, name) }

// ConfigBytes is MetaBytes for a config value.
func ConfigBytes(name string) ([]byte, bool) { return scratchValue(ConfigGet, name) }

func scratchValue(get func(string, []byte) int32, name string) ([]byte, bool) {
	v, ok := appendValue(get, scratch[:0], name)
	if cap(v) > cap(scratch) {
		scratch = v[:0]
	}
	return v, ok
}

// Meta returns the metadata value name: routing_key, exchange, source, route, message_id,
// correlation_id, content_type, type, app_id, timestamp (Unix ms), seq or trace_id (the W3C
// trace id, 32 hex digits).
func Meta(name string) (string, bool) {
	v, ok := MetaBytes(name)
	return string(v), ok
}

// Header returns the text form of header name.
func Header(name string) (string, bool) {
	v, ok := HeaderBytes(name)
	return string(v), ok
}

// Config returns the module config value name. It works in init functions too.
func Config(name string) (string, bool) {
	v, ok := ConfigBytes(name)
	return string(v), ok
}

// SetBody replaces the event body (transforms only). The host copies it.
func SetBody(body []byte) { bodySet(unsafe.Pointer(unsafe.SliceData(body)), int32(len(body))) }

// SetRoutingKey replaces the routing key (transforms only); over 255 bytes fails the call.
func SetRoutingKey(key string) { routingKeySet(key) }

// SetHeader sets a string header (transforms only).
func SetHeader(name, value string) { headerSet(name, value) }

// Emit sends a new event to a target the configuration declares (handlers only). It returns
// false for an unknown target.
func Emit(target, routingKey string, body []byte) bool {
	return emit(target, routingKey, unsafe.Pointer(unsafe.SliceData(body)), int32(len(body))) == 0
}

// SetError records the reason reported with a Retry or DeadLetter result.
func SetError(reason string) { errorSet(reason) }

// Fail records reason and returns code: `return wr.Fail(wr.DeadLetter, "no amount")`.
func Fail(code Result, reason string) Result {
	errorSet(reason)
	return code
}

// Log writes a line to the router log (rate limited by the host).
func Log(level Level, msg string) { logLine(int32(level), msg) }
