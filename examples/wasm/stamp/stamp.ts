// stamp is a transform guest in AssemblyScript: it sets the header `header` (default
// "x-stamped-by") to `value` (default "wasmrouter") and, when `prefix` is set, puts it in front
// of the routing key. It reads its config once, in top-level code (_initialize).
//
// Build: make -C examples/wasm as (needs npm; the committed stamp.wasm is used without it).
import * as wr from "../../../guest/as/assembly/wr";
export { wr_abi_v1, wr_buffer } from "../../../guest/as/assembly/wr";

const header = wr.configOr("header", "x-stamped-by");
const value = wr.configOr("value", "wasmrouter");
const prefix = wr.configOr("prefix", "");

export function wr_transform(ptr: usize, len: i32): i32 {
  wr.setHeader(header, value);
  if (prefix.length > 0) {
    const key = wr.meta("routing_key");
    if (key === null) return wr.fail(wr.DEAD_LETTER, "stamp: the event has no routing key");
    wr.setRoutingKey(prefix + key);
  }
  return wr.CONTINUE;
}
