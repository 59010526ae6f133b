// wasmrouter guest SDK for AssemblyScript (ABI version 1).
//
// A guest's entry file re-exports the ABI plumbing and exports the entry points its roles need:
//
//   import * as wr from "./wr";
//   export { wr_abi_v1, wr_buffer } from "./wr";
//
//   const min = parseFloat(wr.configOr("min", "100")); // top-level code runs in _initialize
//
//   export function wr_filter(ptr: usize, len: i32): i32 {
//     const body = wr.body(ptr, len);
//     ...
//     return wr.CONTINUE;
//   }
//
// Build (asc from npm's assemblyscript package) as a reactor without the JavaScript imports:
//
//   asc assembly/index.ts -o guest.wasm -O3 --runtime incremental --exportStart _initialize \
//     --use abort=assembly/wr/abort --noAssert
//
// Strings cross the ABI as UTF-8. The body given to an entry point is a view of the SDK's
// buffer, valid only during the call: copy what must outlive it.

// Result codes of wr_filter, wr_transform and wr_handle.
export const CONTINUE: i32 = 0; // keep the event
export const DROP: i32 = 1; // stop the event for this route
export const RETRY: i32 = 2; // transient failure
export const DEAD_LETTER: i32 = 3; // permanent failure

// Levels of log().
export const DEBUG: i32 = 0;
export const INFO: i32 = 1;
export const WARN: i32 = 2;
export const ERROR: i32 = 3;

// The raw imports of module wasmrouter_v1.
@external("wasmrouter_v1", "meta_get")
declare function meta_get(name: usize, nameLen: i32, buf: usize, cap: i32): i32;
@external("wasmrouter_v1", "header_get")
declare function header_get(name: usize, nameLen: i32, buf: usize, cap: i32): i32;
@external("wasmrouter_v1", "config_get")
declare function config_get(name: usize, nameLen: i32, buf: usize, cap: i32): i32;
@external("wasmrouter_v1", "body_set")
declare function body_set(ptr: usize, len: i32): void;
@external("wasmrouter_v1", "routing_key_set")
declare function routing_key_set(ptr: usize, len: i32): void;
@external("wasmrouter_v1", "header_set")
declare function header_set(name: usize, nameLen: i32, val: usize, valLen: i32): void;
@external("wasmrouter_v1", "emit")
declare function emit_raw(target: usize, targetLen: i32, key: usize, keyLen: i32, body: usize, bodyLen: i32): i32;
@external("wasmrouter_v1", "error_set")
declare function error_set(ptr: usize, len: i32): void;
@external("wasmrouter_v1", "log")
declare function log_raw(level: i32, ptr: usize, len: i32): void;
// Extensions of version 1: only guests calling emitWith import them.
@external("wasmrouter_v1", "emit_header_set")
declare function emit_header_set(name: usize, nameLen: i32, val: usize, valLen: i32): void;
@external("wasmrouter_v1", "emit_headers_copy")
declare function emit_headers_copy(): void;

// The marker export of ABI version 1.
export function wr_abi_v1(): void {}

// The body buffer, grown on demand and reused between calls; heap memory is not moved.
let buffer: usize = 0;
let bufferCap: i32 = 0;

export function wr_buffer(size: i32): usize {
  if (size < 0) return 0;
  if (buffer == 0 || size > bufferCap) {
    if (buffer != 0) heap.free(buffer);
    buffer = heap.alloc(<usize>max(size, 1));
    bufferCap = size;
  }
  return buffer;
}

// body returns the event body of the entry point's (ptr, len) as bytes (a view: valid during
// the call only).
export function body(ptr: usize, len: i32): Uint8Array {
  const view = Uint8Array.wrap(changetype<ArrayBuffer>(bufferObject(ptr, len)));
  return view;
}

// bodyString returns the body decoded from UTF-8.
export function bodyString(ptr: usize, len: i32): string {
  return String.UTF8.decodeUnsafe(ptr, <usize>len);
}

// bufferObject copies the body into a managed ArrayBuffer (AssemblyScript cannot view raw
// memory as a typed array without owning it).
function bufferObject(ptr: usize, len: i32): ArrayBuffer {
  const out = new ArrayBuffer(len);
  memory.copy(changetype<usize>(out), ptr, <usize>len);
  return out;
}

type Getter = (name: usize, nameLen: i32, buf: usize, cap: i32) => i32;

// scratch is the first try of every getter; a longer value gets a second call with its size.
const scratch = new ArrayBuffer(256);

function getValue(get: Getter, name: string): string | null {
  const n = String.UTF8.encode(name);
  const np = changetype<usize>(n);
  const nl = n.byteLength;
  let len = get(np, nl, changetype<usize>(scratch), scratch.byteLength);
  if (len < 0) return null;
  if (len <= scratch.byteLength) return String.UTF8.decodeUnsafe(changetype<usize>(scratch), <usize>len);
  const big = new ArrayBuffer(len);
  len = get(np, nl, changetype<usize>(big), len);
  return String.UTF8.decodeUnsafe(changetype<usize>(big), <usize>len);
}

// meta returns a metadata value (routing_key, exchange, source, route, message_id,
// correlation_id, content_type, type, app_id, timestamp in Unix ms, seq), or null when absent.
export function meta(name: string): string | null {
  return getValue(meta_get, name);
}

// header returns a header as text (numbers in decimal, booleans true/false, other types as
// JSON), or null when absent.
export function header(name: string): string | null {
  return getValue(header_get, name);
}

// config returns a value of the module's config map, or null; it works in top-level code.
export function config(name: string): string | null {
  return getValue(config_get, name);
}

// configOr returns a config value, or def when the config lacks it.
export function configOr(name: string, def: string): string {
  const v = config(name);
  return v === null ? def : v;
}

// setBody replaces the body (transforms only).
export function setBody(b: Uint8Array): void {
  body_set(b.dataStart, b.byteLength);
}

// setBodyString replaces the body with a string's UTF-8 (transforms only).
export function setBodyString(s: string): void {
  const b = String.UTF8.encode(s);
  body_set(changetype<usize>(b), b.byteLength);
}

// setRoutingKey replaces the routing key (transforms only; over 255 bytes fails the call).
export function setRoutingKey(key: string): void {
  const b = String.UTF8.encode(key);
  routing_key_set(changetype<usize>(b), b.byteLength);
}

// setHeader sets a string header (transforms only).
export function setHeader(name: string, value: string): void {
  const n = String.UTF8.encode(name);
  const v = String.UTF8.encode(value);
  header_set(changetype<usize>(n), n.byteLength, changetype<usize>(v), v.byteLength);
}

// emit sends a new event to a target the configuration declares (handlers only); false for
// an unknown target.
export function emit(target: string, routingKey: string, b: Uint8Array): bool {
  const t = String.UTF8.encode(target);
  const k = String.UTF8.encode(routingKey);
  return emit_raw(changetype<usize>(t), t.byteLength, changetype<usize>(k), k.byteLength, b.dataStart, b.byteLength) == 0;
}

// emitString is emit with a string body.
export function emitString(target: string, routingKey: string, b: string): bool {
  return emit(target, routingKey, Uint8Array.wrap(String.UTF8.encode(b)));
}

// emitWith is emit with headers: copyHeaders starts from the event's headers (typed as they
// arrived); headers (name, value, name, value, ...) are set over them. It uses an extension of
// ABI version 1.
export function emitWith(target: string, routingKey: string, b: Uint8Array, copyHeaders: bool, headers: string[]): bool {
  if (copyHeaders) emit_headers_copy();
  for (let i = 0; i + 1 < headers.length; i += 2) {
    const n = String.UTF8.encode(headers[i]);
    const v = String.UTF8.encode(headers[i + 1]);
    emit_header_set(changetype<usize>(n), n.byteLength, changetype<usize>(v), v.byteLength);
  }
  return emit(target, routingKey, b);
}

// setError records the reason reported with a RETRY or DEAD_LETTER result.
export function setError(reason: string): void {
  const b = String.UTF8.encode(reason);
  error_set(changetype<usize>(b), b.byteLength);
}

// fail records reason and returns code: `return wr.fail(wr.DEAD_LETTER, "no amount")`.
export function fail(code: i32, reason: string): i32 {
  setError(reason);
  return code;
}

// log writes a line to the router's log (rate limited by the host).
export function log(level: i32, msg: string): void {
  const b = String.UTF8.encode(msg);
  log_raw(level, changetype<usize>(b), b.byteLength);
}

// abort replaces AssemblyScript's JavaScript abort import (build with
// --use abort=assembly/wr/abort): the message becomes the call's failure reason.
export function abort(message: string | null = null, fileName: string | null = null, line: u32 = 0, column: u32 = 0): void {
  let text = "abort: " + (message === null ? "(no message)" : message);
  if (fileName !== null) text += " at " + fileName + ":" + line.toString() + ":" + column.toString();
  setError(text);
  unreachable();
}
