// ABI conformance guest in AssemblyScript, the twin of ../c/conformance.c and
// ../go/conformance: the header "op" selects what a call does, and one test table
// (conformance_test.go) runs against all three.
import * as wr from "../../../guest/as/assembly/wr";
export { wr_abi_v1, wr_buffer } from "../../../guest/as/assembly/wr";

// Raw getters, for the "small" op (the SDK's getters hide the buffer protocol).
@external("wasmrouter_v1", "meta_get")
declare function meta_get(name: usize, nameLen: i32, buf: usize, cap: i32): i32;
// stdout and stderr, for the "print" op.
@external("wasi_snapshot_preview1", "fd_write")
declare function fd_write(fd: i32, iovs: usize, iovsLen: i32, written: usize): i32;

const initConfig = wr.configOr("init", "<absent>");

const metaNames = ["routing_key", "exchange", "source", "route", "message_id",
  "correlation_id", "content_type", "type", "app_id", "timestamp", "seq", "nope"];

function headerOr(name: string, def: string): string {
  const v = wr.header(name);
  return v === null ? def : v!;
}

function report(kind: string, prefix: string, name: string): void {
  let v: string | null = null;
  if (kind == "m") v = wr.meta(name);
  else if (kind == "h") v = wr.header(name);
  else v = wr.config(name);
  wr.setHeader(prefix + name, v === null ? "<absent>" : v!);
}

function reportList(kind: string, prefix: string): void {
  const names = wr.header("names");
  if (names === null) return;
  const list = names.split(",");
  for (let i = 0; i < list.length; i++) report(kind, prefix, list[i]);
}

function write(fd: i32, s: string): void {
  const b = String.UTF8.encode(s);
  const iov = new ArrayBuffer(8);
  store<u32>(changetype<usize>(iov), <u32>changetype<usize>(b));
  store<u32>(changetype<usize>(iov) + 4, <u32>b.byteLength);
  const written = new ArrayBuffer(4);
  fd_write(fd, changetype<usize>(iov), 1, changetype<usize>(written));
}

function fnv1a(b: Uint8Array): u64 {
  let h: u64 = 0xcbf29ce484222325;
  for (let i = 0; i < b.length; i++) {
    h ^= <u64>b[i];
    h *= 0x100000001b3;
  }
  return h;
}

function hex16(x: u64): string {
  const digits = "0123456789abcdef";
  let s = "";
  for (let i = 15; i >= 0; i--) s += digits.charAt(<i32>((x >> (<u64>i * 4)) & 0xf));
  return s;
}

function run(ptr: usize, len: i32): i32 {
  const op = headerOr("op", "");
  const body = wr.body(ptr, len);
  if (op == "return") return I32.parseInt(headerOr("code", "0"));
  if (op == "meta") {
    for (let i = 0; i < metaNames.length; i++) report("m", "m.", metaNames[i]);
  } else if (op == "header") {
    reportList("h", "h.");
  } else if (op == "config") {
    reportList("c", "c.");
  } else if (op == "small") {
    const buf = String.UTF8.encode("########");
    const name = String.UTF8.encode("routing_key");
    const n = meta_get(changetype<usize>(name), name.byteLength, changetype<usize>(buf), 3);
    const n0 = meta_get(changetype<usize>(name), name.byteLength, 0, 0);
    wr.setHeader("small", n.toString() + ":" + String.UTF8.decode(buf) + ":" + n0.toString());
  } else if (op == "body") {
    const out = new Uint8Array(len + 2);
    out[0] = 60; // <
    out.set(body, 1);
    out[len + 1] = 62; // >
    wr.setBody(out);
  } else if (op == "rk") {
    const v = wr.header("value");
    if (v !== null) wr.setRoutingKey(v);
  } else if (op == "hset") {
    const name = wr.header("name");
    const value = wr.header("value");
    if (name !== null && value !== null) wr.setHeader(name, value);
  } else if (op == "emit") {
    const count = I32.parseInt(headerOr("count", "1"));
    const target = wr.header("target");
    const key = wr.header("key");
    for (let i = 0; i < count && target !== null && key !== null; i++) {
      if (!wr.emit(target!, key!, body)) return wr.fail(wr.DEAD_LETTER, "emit returned -1");
    }
  } else if (op == "emith") {
    if (!wr.emitWith("out", "k", body, headerOr("copy", "0") == "1", ["x-e", headerOr("value", "v")]) ||
      !wr.emit("out", "k", body)) {
      return wr.fail(wr.DEAD_LETTER, "emit returned -1");
    }
  } else if (op == "error") {
    const reason = wr.header("reason");
    if (reason !== null) wr.setError(reason);
    return I32.parseInt(headerOr("code", "3"));
  } else if (op == "log") {
    const msg = wr.header("msg");
    if (msg !== null) wr.log(I32.parseInt(headerOr("level", "1")), msg);
  } else if (op == "print") {
    const msg = headerOr("msg", "");
    write(1, msg + "\n");
    write(2, "err:" + msg + "\n");
  } else if (op == "hash") {
    wr.setHeader("len", len.toString());
    wr.setHeader("fnv", hex16(fnv1a(body)));
  } else if (op == "initcfg") {
    wr.setHeader("init", initConfig);
  } else if (op == "cfgdef") {
    const a = wr.configOr("a", "dflt");
    const m = wr.configOr("missing", "dflt");
    let long = wr.configOr("long", "dflt");
    long = long.length > 7 ? "-1:" : long.length.toString() + ":" + long;
    wr.setHeader("d", a.length.toString() + ":" + a + "|" + m.length.toString() + ":" + m + "|" + long);
  } else if (op == "abort") {
    abort("conformance: " + headerOr("msg", "boom"));
  } else {
    return wr.fail(wr.DEAD_LETTER, "unknown op");
  }
  return wr.CONTINUE;
}

export function wr_filter(ptr: usize, len: i32): i32 { return run(ptr, len); }
export function wr_transform(ptr: usize, len: i32): i32 { return run(ptr, len); }
export function wr_handle(ptr: usize, len: i32): i32 { return run(ptr, len); }
