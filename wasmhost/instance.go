package wasmhost

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"

	"github.com/wasmrouter/wasmrouter/event"
)

// instance is one guest instance with everything a call needs, reused call after call. Only the
// goroutine that took it from the pool touches it.
type instance struct {
	m      *Module
	mod    api.Module
	mem    api.Memory
	buffer api.Function
	entry  [numRoles]api.Function
	stack  []uint64 // parameters and results of the exports (at most two)

	// The guest buffer the body is copied into: reused while it is large enough.
	bufPtr, bufCap uint32
	bufBroken      bool   // wr_buffer returned a bad pointer: replace the instance
	recycleAt      uint32 // memory size past which the instance is replaced after a call

	gctx     guestCtx
	deadline int64 // sinceEpoch() when the running call expires
	expired  bool  // the interrupt check ended the call at its deadline

	stdout, stderr lineWriter
	memRefused     bool // the memory allocator refused to grow during the call

	// The call in progress; role is callInit while instantiating.
	role       Role
	inv        *Invocation
	failure    string // the first ABI misuse; fails the call
	reason     string // error_set
	emits      []Emit
	emitted    int64  // bytes of the bodies emitted by this call
	headersSet int    // header_set calls of this call
	scratch    []byte // formatted meta and header values

	emitHeaders event.Table // staged for the next emit

	// Headers set by recent calls, as strings to reuse (headerStrings).
	headers    [4]recentHeader
	nextHeader int
}

// recentHeader is a header name that passed CheckHeaderName and the last value set for it (a
// string, boxed once).
type recentHeader struct {
	name  string
	value any
}

const callInit = numRoles

// initTimeout bounds instantiation, start function and _initialize included.
const initTimeout = 10 * time.Second

var epoch = time.Now()

// sinceEpoch reads the monotonic clock only (time.Now also reads the wall clock, and clock reads
// are a good part of a call's cost on virtual machines).
func sinceEpoch() int64 { return int64(time.Since(epoch)) }

// guestCtx is the context every guest call runs with, allocated once per instance: host
// functions find their instance in it with a type assertion (no map, no lock), and it carries
// the memory allocator into instantiation. Deadlines are not a context matter here: the
// interrupt check (instrument.go) compares the clock with instance.deadline.
type guestCtx struct {
	inst   *instance
	parent context.Context // values only
}

type instanceKey struct{}

func (c *guestCtx) Deadline() (time.Time, bool) { return time.Time{}, false }
func (c *guestCtx) Done() <-chan struct{}       { return nil }
func (c *guestCtx) Err() error                  { return nil }

func (c *guestCtx) Value(key any) any {
	if key == (instanceKey{}) {
		return c.inst
	}
	return c.parent.Value(key)
}

// instanceFrom finds the instance a host function was called for.
func instanceFrom(ctx context.Context) *instance {
	if c, ok := ctx.(*guestCtx); ok {
		return c.inst
	}
	inst, _ := ctx.Value(instanceKey{}).(*instance)
	return inst
}

// newInstance instantiates the module and runs _initialize, both under initTimeout.
func (m *Module) newInstance(reason string) (*instance, error) {
	inst := &instance{m: m, stack: make([]uint64, 2), role: callInit, scratch: make([]byte, 0, 64)}
	inst.gctx = guestCtx{
		inst: inst,
		parent: experimental.WithMemoryAllocator(context.Background(),
			limitedAllocator{limit: m.alloc.limit, refused: &inst.memRefused}),
	}
	inst.stdout = lineWriter{out: m.out, stream: "stdout", level: slog.LevelInfo}
	inst.stderr = lineWriter{out: m.out, stream: "stderr", level: slog.LevelWarn, hold: true}

	cfg := m.modCfg.WithStdout(&inst.stdout).WithStderr(&inst.stderr)
	inst.arm(initTimeout)
	mod, err := m.host.rt.InstantiateModule(&inst.gctx, m.compiled, cfg)
	if err == nil {
		inst.mod = mod
		inst.mem = mod.ExportedMemory(ExportMemory)
		if m.shape.reactor {
			_, err = mod.ExportedFunction(ExportInitialize).Call(&inst.gctx)
		}
	}
	var msg string
	switch {
	case inst.expired:
		msg = fmt.Sprintf("timed out after %v", initTimeout)
	case err != nil:
		msg = firstLine(err)
	case inst.failure != "":
		msg = inst.failure
	}
	if msg != "" {
		inst.stderr.flush()
		msg = inst.explain(msg, inst.stderr.release(false))
		inst.close()
		return nil, moduleErr(m.name, ErrInstantiate, "instantiate: "+msg, nil)
	}
	inst.buffer = mod.ExportedFunction(ExportBuffer)
	for r := range numRoles {
		inst.entry[r] = mod.ExportedFunction(r.Export())
	}
	inst.recycleAt = max(uint32(m.limit/2), inst.mem.Size())
	inst.role = 0
	inst.stderr.release(true)
	inst.reset()
	m.countInstance(reason)
	return inst, nil
}

// close frees the instance; it is safe on a partly built one.
func (inst *instance) close() {
	inst.stdout.flush()
	inst.stderr.flush()
	inst.stderr.release(true)
	if inst.mod != nil {
		_ = inst.mod.Close(context.Background())
	}
}

// arm sets the deadline of a call of at most d.
func (inst *instance) arm(d time.Duration) {
	inst.deadline = sinceEpoch() + int64(d)
}

// errInterrupted ends a guest call from the interrupt check. wazero hands an *sys.ExitError
// panic back as the call's error without building a stack trace.
var errInterrupted = sys.NewExitError(sys.ExitCodeDeadlineExceeded)

// interrupt is the host side of the check instrument.go puts in guest loops and function
// entries, run every checkInterval of them: a deadline passed, or a host shutting down, ends the
// call. Being Go code, it is also where the scheduler and the collector can stop the goroutine.
func (inst *instance) interrupt() {
	if sinceEpoch() >= inst.deadline || inst.m.host.closed.Load() {
		inst.expired = true
		panic(errInterrupted)
	}
}

// call runs one entry point on in, from start (sinceEpoch). It returns the outcome, the index of
// its result label, and the reason to replace the instance ("" to keep it).
func (inst *instance) call(role Role, in *Invocation, start int64) (Outcome, int, string) {
	m := inst.m
	inst.role, inst.inv = role, in
	inst.memRefused = false
	defer inst.reset()

	body := in.Event.Body
	inst.deadline = start + int64(m.timeout)
	err := inst.copyBody(body)
	if err == nil && inst.failure == "" {
		inst.stack[0], inst.stack[1] = uint64(inst.bufPtr), uint64(len(body))
		err = inst.entry[role].CallWithStack(&inst.gctx, inst.stack)
	}
	if inst.expired {
		if m.host.closed.Load() {
			return Outcome{Code: Retry, Reason: "host closed during the call"}, idxError, reasonError
		}
		return Outcome{Code: Retry, Reason: inst.explain(m.timeoutReason, nil)}, idxTimeout, reasonTimeout
	}
	if err != nil {
		return Outcome{Code: Retry, Reason: inst.explain(trapReason(err), inst.stderr.output())}, idxTrap, reasonTrap
	}
	recycle := ""
	if inst.mem.Size() > inst.recycleAt {
		recycle = reasonMemory
	}
	if inst.failure != "" {
		if inst.bufBroken {
			recycle = reasonError // the next call would fail the same way
		}
		return Outcome{Code: Retry, Reason: inst.explain(inst.failure, nil)}, idxError, recycle
	}
	code := api.DecodeI32(inst.stack[0])
	if code < int32(Continue) || code > int32(DeadLetter) {
		reason := inst.explain(fmt.Sprintf("unknown result code %d (want 0 continue, 1 drop, 2 retry or 3 dead letter)", code), nil)
		return Outcome{Code: Retry, Reason: reason}, idxError, recycle
	}
	reason := inst.reason
	if inst.memRefused && code >= int32(Retry) {
		reason = truncate(reasonOr(reason, "failed") + "; " + m.memoryNote())
	}
	return Outcome{Code: Code(code), Reason: reason, Emits: inst.emits}, int(code), recycle
}

// explain completes the reason of a call the host failed with what the guest said: the panic
// or fatal error line of its stderr output, its error_set text, and max_memory when the memory
// limit refused to grow during the call.
func (inst *instance) explain(reason string, output []byte) string {
	if line := panicLine(output); line != "" {
		reason = line + " (" + reason + ")"
	}
	if inst.reason != "" {
		reason += " (guest error: " + inst.reason + ")"
	}
	if inst.memRefused {
		reason += "; " + inst.m.memoryNote()
	}
	return truncate(reason)
}

// memoryNote names the limit a guest ran into, and how to raise it.
func (m *Module) memoryNote() string {
	return fmt.Sprintf("the guest ran out of memory at max_memory = %q (raise max_memory in module %q)", sizeText(m.limit), m.name)
}

// sizeText writes a byte count as the configuration would ("64MiB").
func sizeText(n uint64) string {
	switch {
	case n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// panicLine finds what a Go guest printed when it panicked or hit a fatal error ("panic: boom",
// "fatal error: out of memory"), or an AssemblyScript or C guest's "abort:" line.
func panicLine(output []byte) string {
	for len(output) > 0 {
		line, rest, _ := bytes.Cut(output, []byte("\n"))
		output = rest
		for _, prefix := range []string{"panic: ", "fatal error: ", "abort: "} {
			if bytes.HasPrefix(line, []byte(prefix)) {
				return string(bytes.TrimSuffix(line, []byte(" [recovered]")))
			}
		}
	}
	return ""
}

func reasonOr(reason, fallback string) string {
	if reason == "" {
		return fallback
	}
	return reason
}

// reset forgets the call, so that the instance keeps no reference to the event.
func (inst *instance) reset() {
	inst.inv, inst.failure, inst.reason, inst.emits = nil, "", "", nil
	inst.emitted, inst.headersSet = 0, 0
	inst.emitHeaders = nil
}

// copyBody writes the body into the guest, asking wr_buffer for room only when the buffer the
// guest gave last time is too small. Sizes are rounded up so that growing bodies need few calls.
func (inst *instance) copyBody(body []byte) error {
	if uint64(len(body)) > uint64(inst.m.limit) {
		inst.fail(fmt.Sprintf("body of %d bytes exceeds max_memory", len(body)))
		return nil
	}
	n := uint32(len(body))
	if inst.bufCap == 0 || n > inst.bufCap {
		want := bufferSize(n)
		inst.stack[0] = uint64(want)
		if err := inst.buffer.CallWithStack(&inst.gctx, inst.stack); err != nil {
			return err
		}
		ptr := uint32(inst.stack[0])
		if ptr == 0 || uint64(ptr)+uint64(want) > uint64(inst.mem.Size()) {
			inst.bufPtr, inst.bufCap, inst.bufBroken = 0, 0, true
			inst.fail(fmt.Sprintf("wr_buffer(%d) returned %d, outside guest memory of %d bytes", want, ptr, inst.mem.Size()))
			return nil
		}
		inst.bufPtr, inst.bufCap = ptr, want
	}
	if !inst.mem.Write(inst.bufPtr, body) {
		inst.fail("cannot write the body into guest memory")
	}
	return nil
}

// bufferSize rounds n up: to a power of two up to 1 MiB (at least 1 KiB), then to 64 KiB.
func bufferSize(n uint32) uint32 {
	const small, large = 1 << 10, 1 << 20
	if n <= small {
		return small
	}
	if n <= large {
		p := uint32(small)
		for p < n {
			p <<= 1
		}
		return p
	}
	if r := (uint64(n) + pageSize - 1) &^ (pageSize - 1); r <= 1<<32-1 {
		return uint32(r)
	}
	return n
}

// trapReason keeps the first line of a wazero error (the rest is a stack trace).
func trapReason(err error) string { return truncate("trap: " + firstLine(err)) }

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

func truncate(s string) string {
	if len(s) > MaxReasonLen {
		return s[:MaxReasonLen]
	}
	return s
}

// fail records the first ABI misuse of the call.
func (inst *instance) fail(msg string) {
	if inst.failure == "" {
		inst.failure = truncate(msg)
	}
}
