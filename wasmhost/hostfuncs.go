package wasmhost

import (
	"fmt"
	"strconv"

	"github.com/tetratelabs/wazero/api"

	"github.com/wasmrouter/wasmrouter/event"
)

// The wasmrouter_v1 host functions. Each gets its parameters and returns its result on the
// wazero value stack; every pointer and length the guest passes is checked against its memory.

var absent = api.EncodeI32(-1)

// read returns a view of guest memory (valid only during the host function), or fails the call.
func (inst *instance) read(fn, what string, ptr, n uint64) ([]byte, bool) {
	p, l := uint32(ptr), uint32(n)
	if int32(l) < 0 {
		inst.fail(fmt.Sprintf("%s: negative %s length %d", fn, what, int32(l)))
		return nil, false
	}
	b, ok := inst.mem.Read(p, l)
	if !ok {
		inst.fail(fmt.Sprintf("%s: %s (ptr %d, len %d) outside guest memory of %d bytes", fn, what, p, l, inst.mem.Size()))
		return nil, false
	}
	return b, true
}

// deliver implements a getter's result: write min(cap, len) bytes of the value at buf and
// return its full length, or -1 when absent (present false) or on a bad buffer.
func (inst *instance) deliver(fn string, stack []uint64, val []byte, present bool) {
	buf, capacity := uint32(stack[2]), api.DecodeI32(stack[3])
	stack[0] = absent
	if capacity < 0 {
		inst.fail(fmt.Sprintf("%s: negative buffer capacity %d", fn, capacity))
		return
	}
	if !present {
		return
	}
	n := min(len(val), int(capacity))
	if n > 0 && !inst.mem.Write(buf, val[:n]) {
		inst.fail(fmt.Sprintf("%s: buffer (ptr %d, len %d) outside guest memory of %d bytes", fn, buf, n, inst.mem.Size()))
		return
	}
	stack[0] = api.EncodeI32(int32(len(val)))
}

// deliverString is deliver for a string value, without converting it to bytes.
func (inst *instance) deliverString(fn string, stack []uint64, val string) {
	buf, capacity := uint32(stack[2]), api.DecodeI32(stack[3])
	stack[0] = absent
	if capacity < 0 {
		inst.fail(fmt.Sprintf("%s: negative buffer capacity %d", fn, capacity))
		return
	}
	n := min(len(val), int(capacity))
	if n > 0 && !inst.mem.WriteString(buf, val[:n]) {
		inst.fail(fmt.Sprintf("%s: buffer (ptr %d, len %d) outside guest memory of %d bytes", fn, buf, n, inst.mem.Size()))
		return
	}
	stack[0] = api.EncodeI32(int32(len(val)))
}

func (inst *instance) event() *event.Event {
	if inst.inv == nil {
		return nil
	}
	return inst.inv.Event
}

func (inst *instance) metaGet(stack []uint64) {
	const fn = "meta_get"
	name, ok := inst.read(fn, "name", stack[0], stack[1])
	ev := inst.event()
	if !ok || ev == nil {
		inst.deliver(fn, stack, nil, false)
		return
	}
	var s string
	switch string(name) {
	case "routing_key":
		inst.deliverString(fn, stack, ev.RoutingKey)
		return
	case "exchange":
		inst.deliverString(fn, stack, ev.Exchange)
		return
	case "source":
		inst.deliverString(fn, stack, ev.Source)
		return
	case "route":
		inst.deliverString(fn, stack, inst.inv.Route)
		return
	case "seq":
		inst.scratch = strconv.AppendUint(inst.scratch[:0], ev.Seq, 10)
		inst.deliver(fn, stack, inst.scratch, true)
		return
	case "timestamp":
		ts := ev.Props.Timestamp
		inst.scratch = strconv.AppendInt(inst.scratch[:0], ts.UnixMilli(), 10)
		inst.deliver(fn, stack, inst.scratch, !ts.IsZero())
		return
	case "message_id":
		s = ev.Props.MessageID
	case "correlation_id":
		s = ev.Props.CorrelationID
	case "content_type":
		s = ev.Props.ContentType
	case "type":
		s = ev.Props.Type
	case "app_id":
		s = ev.Props.AppID
	case "trace_id":
		s = inst.inv.TraceID
		if s == "" {
			s = traceIDOf(ev.Headers["traceparent"])
		}
	}
	if s == "" { // an empty property is an absent one in AMQP; unknown names too
		inst.deliver(fn, stack, nil, false)
		return
	}
	inst.deliverString(fn, stack, s)
}

func (inst *instance) headerGet(stack []uint64) {
	const fn = "header_get"
	name, ok := inst.read(fn, "name", stack[0], stack[1])
	ev := inst.event()
	if !ok || ev == nil {
		inst.deliver(fn, stack, nil, false)
		return
	}
	v, ok := ev.Headers[string(name)]
	if !ok {
		inst.deliver(fn, stack, nil, false)
		return
	}
	switch x := v.(type) {
	case string:
		inst.deliverString(fn, stack, x)
	case []byte:
		inst.deliver(fn, stack, x, true)
	default:
		inst.scratch = appendHeaderText(inst.scratch[:0], v)
		inst.deliver(fn, stack, inst.scratch, true)
	}
}

func (inst *instance) configGet(stack []uint64) {
	const fn = "config_get"
	name, ok := inst.read(fn, "name", stack[0], stack[1])
	if !ok {
		inst.deliver(fn, stack, nil, false)
		return
	}
	v, ok := inst.m.config[string(name)]
	if !ok {
		inst.deliver(fn, stack, nil, false)
		return
	}
	inst.deliverString(fn, stack, v)
}

// allowed fails the call when fn is not meant for the running entry point.
func (inst *instance) allowed(fn string, role Role) bool {
	if inst.role == role && inst.inv != nil {
		return true
	}
	current := "_initialize"
	if inst.role < numRoles {
		current = inst.role.Export()
	}
	inst.fail(fmt.Sprintf("%s called from %s; only %s may call it", fn, current, role.Export()))
	return false
}

// work counts host-call work toward the call's deadline: a guest that calls the host in a
// loop spends its time there, where the instrumented loop checks (every 1024 iterations) do
// not see it. Copying functions call it, so bytes copied and calls made both count.
func (inst *instance) work() {
	if sinceEpoch() >= inst.deadline {
		inst.expired = true
		panic(errInterrupted)
	}
}

func (inst *instance) bodySet(stack []uint64) {
	const fn = "body_set"
	inst.work()
	b, ok := inst.read(fn, "body", stack[0], stack[1])
	if !ok || !inst.allowed(fn, RoleTransform) {
		return
	}
	if int64(len(b)) > inst.m.maxMessage {
		inst.fail(fmt.Sprintf("%s: body of %d bytes exceeds max_message_size (%d)", fn, len(b), inst.m.maxMessage))
		return
	}
	// A new slice, never a write into the old body: the event may share it with the original
	// (Invocation.Event).
	inst.inv.Event.Body = append(make([]byte, 0, len(b)), b...)
}

func (inst *instance) routingKeySet(stack []uint64) {
	const fn = "routing_key_set"
	b, ok := inst.read(fn, "routing key", stack[0], stack[1])
	if !ok || !inst.allowed(fn, RoleTransform) {
		return
	}
	if len(b) > maxKeyLen {
		inst.fail(fmt.Sprintf("%s: routing key of %d bytes exceeds %d", fn, len(b), maxKeyLen))
		return
	}
	inst.inv.Event.RoutingKey = string(b)
}

// readHeader reads the (name, value) pair of header_set and emit_header_set from the guest and
// checks it against the limits of a header on a published message; on false the call failed.
func (inst *instance) readHeader(fn string, role Role, stack []uint64) (name, val []byte, ok bool) {
	inst.work()
	if name, ok = inst.read(fn, "name", stack[0], stack[1]); !ok {
		return nil, nil, false
	}
	if val, ok = inst.read(fn, "value", stack[2], stack[3]); !ok || !inst.allowed(fn, role) {
		return nil, nil, false
	}
	if !inst.headerKnown(name) {
		if msg := CheckHeaderName(string(name)); msg != "" {
			inst.fail(fn + ": " + msg)
			return nil, nil, false
		}
	}
	if len(val) > maxHeaderValue {
		inst.fail(fmt.Sprintf("%s: value of header %q is %d bytes, more than %d", fn, name, len(val), maxHeaderValue))
		return nil, nil, false
	}
	return name, val, true
}

func (inst *instance) headerSet(stack []uint64) {
	const fn = "header_set"
	name, val, ok := inst.readHeader(fn, RoleTransform, stack)
	if !ok {
		return
	}
	if inst.headersSet++; inst.headersSet > maxHeadersSet {
		inst.fail(fmt.Sprintf("%s: more than %d headers set in one call", fn, maxHeadersSet))
		return
	}
	ev := inst.inv.Event
	if ev.Headers == nil {
		ev.Headers = make(event.Table)
	}
	k, v := inst.headerStrings(name, val)
	ev.Headers[k] = v
}

func (inst *instance) emit(stack []uint64) {
	const fn = "emit"
	inst.work()
	target, ok1 := inst.read(fn, "target", stack[0], stack[1])
	key, ok2 := inst.read(fn, "routing key", stack[2], stack[3])
	body, ok3 := inst.read(fn, "body", stack[4], stack[5])
	stack[0] = absent
	if !ok1 || !ok2 || !ok3 || !inst.allowed(fn, RoleHandler) {
		return
	}
	if len(inst.emits) >= maxEmits {
		inst.fail(fmt.Sprintf("%s: more than %d events emitted in one call", fn, maxEmits))
		return
	}
	if inst.emitted += int64(len(body)); inst.emitted > inst.m.maxMessage {
		inst.fail(fmt.Sprintf("%s: more than max_message_size (%d bytes) emitted in one call", fn, inst.m.maxMessage))
		return
	}
	if len(key) > maxKeyLen {
		inst.fail(fmt.Sprintf("%s: routing key of %d bytes exceeds %d", fn, len(key), maxKeyLen))
		return
	}
	headers := inst.emitHeaders
	inst.emitHeaders = nil
	known := inst.inv.KnownTarget
	if known == nil || !known(string(target)) {
		return
	}
	inst.emits = append(inst.emits, Emit{
		Target:     string(target),
		RoutingKey: string(key),
		Body:       append(make([]byte, 0, len(body)), body...),
		Headers:    headers,
	})
	stack[0] = 0
}

// emitHeaderSet stages a string header for the handler's next emit.
func (inst *instance) emitHeaderSet(stack []uint64) {
	const fn = "emit_header_set"
	name, val, ok := inst.readHeader(fn, RoleHandler, stack)
	if !ok {
		return
	}
	if inst.headersSet++; inst.headersSet > maxHeadersSet {
		inst.fail(fmt.Sprintf("%s: more than %d headers set in one call", fn, maxHeadersSet))
		return
	}
	if inst.emitHeaders == nil {
		inst.emitHeaders = make(event.Table)
	}
	k, v := inst.headerStrings(name, val)
	inst.emitHeaders[k] = v
}

// headerKnown reports whether name is one of the header names set recently, all of which
// passed CheckHeaderName.
func (inst *instance) headerKnown(name []byte) bool {
	for i := range inst.headers {
		if h := &inst.headers[i]; h.name != "" && h.name == string(name) {
			return true
		}
	}
	return false
}

// headerStrings returns name and val as a header table holds them, reusing the strings (and
// the boxed value) of a header set recently: a transform that sets the same header on every
// event, often to the same value (a marker, a count), does so without allocating. Strings
// are immutable, so the events may share them.
func (inst *instance) headerStrings(name, val []byte) (string, any) {
	for i := range inst.headers {
		h := &inst.headers[i]
		if h.name == "" || h.name != string(name) {
			continue
		}
		if s, ok := h.value.(string); !ok || s != string(val) {
			h.value = string(val)
		}
		return h.name, h.value
	}
	h := &inst.headers[inst.nextHeader]
	inst.nextHeader = (inst.nextHeader + 1) % len(inst.headers)
	h.name, h.value = string(name), any(string(val))
	return h.name, h.value
}

// emitHeadersCopy makes the handler's next emit start with the event's headers, typed as they
// arrived (and as transforms left them); headers staged with emit_header_set win.
func (inst *instance) emitHeadersCopy(_ []uint64) {
	inst.work()
	if !inst.allowed("emit_headers_copy", RoleHandler) {
		return
	}
	copied := inst.inv.Event.Headers.Clone()
	if copied == nil {
		copied = make(event.Table)
	}
	for k, v := range inst.emitHeaders {
		copied[k] = v
	}
	inst.emitHeaders = copied
}

func (inst *instance) errorSet(stack []uint64) {
	b, ok := inst.read("error_set", "reason", stack[0], stack[1])
	if !ok {
		return
	}
	if len(b) > MaxReasonLen {
		b = b[:MaxReasonLen]
	}
	inst.reason = string(b)
}

func (inst *instance) log(stack []uint64) {
	inst.work()
	level := api.DecodeI32(stack[0])
	b, ok := inst.read("log", "message", stack[1], stack[2])
	if ok {
		inst.m.out.write(levelOf(level), "log", b)
	}
}

// CheckHeaderName says what is wrong with a header name a guest sets, or "" when nothing is:
// 1 to 255 bytes, and not one of the router's own (event.RouterHeaderPrefix).
func CheckHeaderName(name string) string {
	switch {
	case name == "":
		return "empty header name"
	case len(name) > maxHeaderNameLen:
		return fmt.Sprintf("header name of %d bytes exceeds %d", len(name), maxHeaderNameLen)
	case event.IsRouterHeader(name):
		return fmt.Sprintf("header %q is reserved for the router (%s*)", name, event.RouterHeaderPrefix)
	}
	return ""
}

// traceIDOf returns the trace id of a W3C traceparent header value
// ("00-<32 hex trace id>-<16 hex span id>-<2 hex flags>"), or "" when it is not one.
func traceIDOf(v any) string {
	var tp string
	switch x := v.(type) {
	case string:
		tp = x
	case []byte:
		tp = string(x)
	default:
		return ""
	}
	if len(tp) < 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-' || tp[:2] == "ff" || (tp[:2] == "00" && len(tp) != 55) {
		return ""
	}
	id := tp[3:35]
	allZero := true
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return ""
		}
		allZero = allZero && c == '0'
	}
	if allZero {
		return ""
	}
	return id
}
