package wasmhost

import "github.com/tetratelabs/wazero/api"

// This file is the guest ABI, version 1 (docs/guest-abi.md), in one place: names, signatures,
// result codes and the host's decisions where the ABI leaves room.
//
// Exports a guest must have:
//
//	memory
//	wr_abi_v1    () -> ()              marker, never called
//	wr_buffer    (size i32) -> i32     pointer to >= size bytes, valid until the next wr_buffer call
//	wr_filter    (ptr i32, len i32) -> i32   for the filter role
//	wr_transform (ptr i32, len i32) -> i32   for the transform role
//	wr_handle    (ptr i32, len i32) -> i32   for the handler role
//	_initialize  () -> ()              reactors only; called once per instance
//
// A module exporting _start but not _initialize is a command, not a reactor, and is refused.
//
// Imports, module "wasmrouter_v1" (all pointers and lengths i32):
//
//	meta_get        (name_ptr, name_len, buf, cap) -> i32
//	header_get      (name_ptr, name_len, buf, cap) -> i32
//	config_get      (name_ptr, name_len, buf, cap) -> i32
//	body_set        (ptr, len)
//	routing_key_set (ptr, len)
//	header_set      (name_ptr, name_len, val_ptr, val_len)
//	emit            (target_ptr, target_len, rk_ptr, rk_len, body_ptr, body_len) -> i32
//	error_set       (ptr, len)
//	log             (level, ptr, len)
//
// Getters write min(cap, length) bytes at buf and return the full length, or -1 when the value is
// absent; a guest whose buffer was too small calls again with a larger one. Module
// "wasi_snapshot_preview1" may also be imported; no other imports are allowed. (The host adds an
// import of its own, "wasmrouter_interrupt", when it instruments a module: see instrument.go.)
//
// Host decisions:
//   - meta_get names: routing_key, exchange, source, route and seq are always present (possibly
//     empty); message_id, correlation_id, content_type, type and app_id are absent (-1) when
//     empty; timestamp is Unix milliseconds, absent when the event has none. trace_id (an
//     extension of version 1; older hosts answer -1, as for any unknown name) is the event's
//     W3C trace id in 32 lower-case hex digits: the router's trace when tracing is on (a replay
//     has its own), else the one of the event's traceparent header; absent without either.
//     Unknown names: -1.
//   - header_get text forms: strings and byte arrays as their raw bytes; booleans true/false;
//     integers, floats and decimals in decimal (floats as encoding/json writes them, NaN and
//     infinities as NaN, +Inf, -Inf); timestamps, nulls, arrays and tables as JSON (timestamps as
//     RFC 3339 strings in UTC, byte arrays inside JSON as base64 strings, decimals as numbers).
//   - config_get also works while _initialize runs, so guests may read their config at start-up;
//     meta_get and header_get return -1 there (no event yet).
//   - body_set, routing_key_set and header_set are for wr_transform only, and emit for wr_handle
//     only: calling them from another entry point fails the call (Code Retry). header_set stores
//     a string header. A routing key over 255 bytes fails the call.
//   - emit returns 0, or -1 for a target the caller does not know (Invocation.KnownTarget).
//   - error_set keeps the last reason, cut to MaxReasonLen bytes.
//   - log levels: <= 0 debug, 1 info, 2 warn, >= 3 error. Guest log lines, stdout and stderr go to
//     the router log, rate limited per module.
//   - A pointer or length outside guest memory, or a negative length, fails the call (Code Retry
//     with a reason naming the function); getters then return -1 and the guest runs on, but its
//     result is ignored.
//   - Changes a transform makes are applied to Invocation.Event as they happen; after a failed
//     call the event may hold some of them, so callers discard it.

// ABIModule is the import module name of the host functions.
const ABIModule = "wasmrouter_v1"

// WASIModule is the only other import module a guest may use.
const WASIModule = "wasi_snapshot_preview1"

// Export names.
const (
	ExportMemory     = "memory"
	ExportABIMarker  = "wr_abi_v1"
	ExportBuffer     = "wr_buffer"
	ExportFilter     = "wr_filter"
	ExportTransform  = "wr_transform"
	ExportHandle     = "wr_handle"
	ExportInitialize = "_initialize"
	exportStart      = "_start"
)

// Role is the part a module plays in a route; it selects the entry point called.
type Role uint8

const (
	RoleFilter Role = iota
	RoleTransform
	RoleHandler
	numRoles
)

// String names the role as the configuration does.
func (r Role) String() string {
	switch r {
	case RoleFilter:
		return "filter"
	case RoleTransform:
		return "transform"
	case RoleHandler:
		return "handler"
	}
	return "unknown role"
}

// Export is the entry point the role calls.
func (r Role) Export() string {
	switch r {
	case RoleFilter:
		return ExportFilter
	case RoleTransform:
		return ExportTransform
	case RoleHandler:
		return ExportHandle
	}
	return ""
}

// Code is the result of a guest call.
type Code int32

const (
	Continue   Code = 0 // keep the event
	Drop       Code = 1 // stop this event for this route; nothing to dead-letter
	Retry      Code = 2 // transient failure; also every trap, timeout and ABI misuse
	DeadLetter Code = 3 // permanent failure
)

// String names the code as metrics and logs do.
func (c Code) String() string {
	switch c {
	case Continue:
		return "continue"
	case Drop:
		return "drop"
	case Retry:
		return "retry"
	case DeadLetter:
		return "dead_letter"
	}
	return "unknown"
}

// Values of the result label of router_wasm_calls_total. The first four are what the guest
// returned; trap (the guest trapped or exited), timeout, and error (ABI misuse: bad pointers,
// an unknown result code, a forbidden call, an over-long routing key, or no instance available)
// are failures the host turned into Retry.
const (
	resultContinue   = "continue"
	resultDrop       = "drop"
	resultRetry      = "retry"
	resultDeadLetter = "dead_letter"
	resultTrap       = "trap"
	resultTimeout    = "timeout"
	resultError      = "error"
)

// resultLabels lists the result label values in the order of the result* indexes below.
var resultLabels = [...]string{resultContinue, resultDrop, resultRetry, resultDeadLetter,
	resultTrap, resultTimeout, resultError}

const (
	idxTrap = iota + 4
	idxTimeout
	idxError
)

// Values of the reason label of router_wasm_instances_created_total.
const (
	reasonStart   = "start"   // the pool was filled at load
	reasonTrap    = "trap"    // replaced an instance that trapped or exited
	reasonTimeout = "timeout" // replaced an instance stopped by the call timeout
	reasonMemory  = "memory"  // replaced an instance whose memory grew past the recycle mark
	reasonError   = "error"   // replaced after a failed replacement or a wr_buffer failure
)

// MaxReasonLen bounds error_set text and failure reasons (they end up in message headers).
const MaxReasonLen = 1024

// maxLogLine bounds one guest log line.
const maxLogLine = 4096

// maxKeyLen is the longest routing key AMQP allows.
const maxKeyLen = 255

// Limits on what a guest writes in one call, checked by the host functions, so that no guest
// write can make the publish of the event fail to encode (an AMQP short string holds at most
// 255 bytes) or pile up host memory. A call that breaks one fails (result 2: retried, then
// dead-lettered), in the router and in `router test` alike.
const (
	maxHeaderNameLen = 255      // AMQP field names are short strings
	maxHeaderValue   = 64 << 10 // one header_set value
	maxHeadersSet    = 256      // header_set calls per call
	maxEmits         = 1024     // emit calls per call
)

var (
	i32 = api.ValueTypeI32

	sigMarker = signature{}
	sigBuffer = signature{params: []api.ValueType{i32}, results: []api.ValueType{i32}}
	sigEntry  = signature{params: []api.ValueType{i32, i32}, results: []api.ValueType{i32}}
	sigInit   = signature{}
)

// signature is a function type, written as WebAssembly text does in messages.
type signature struct{ params, results []api.ValueType }

// hostFunc describes one import of module wasmrouter_v1.
type hostFunc struct {
	name string
	sig  signature
	fn   func(*instance, []uint64)
}

// hostFuncs is the import surface; hostfuncs.go implements each entry.
var hostFuncs = []hostFunc{
	{"meta_get", signature{params: []api.ValueType{i32, i32, i32, i32}, results: []api.ValueType{i32}}, (*instance).metaGet},
	{"header_get", signature{params: []api.ValueType{i32, i32, i32, i32}, results: []api.ValueType{i32}}, (*instance).headerGet},
	{"config_get", signature{params: []api.ValueType{i32, i32, i32, i32}, results: []api.ValueType{i32}}, (*instance).configGet},
	{"body_set", signature{params: []api.ValueType{i32, i32}}, (*instance).bodySet},
	{"routing_key_set", signature{params: []api.ValueType{i32, i32}}, (*instance).routingKeySet},
	{"header_set", signature{params: []api.ValueType{i32, i32, i32, i32}}, (*instance).headerSet},
	{"emit", signature{params: []api.ValueType{i32, i32, i32, i32, i32, i32}, results: []api.ValueType{i32}}, (*instance).emit},
	{"error_set", signature{params: []api.ValueType{i32, i32}}, (*instance).errorSet},
	{"log", signature{params: []api.ValueType{i32, i32, i32}}, (*instance).log},
}
