package wasmhost

import (
	"cmp"
	"context"
	"crypto/rand"
	"fmt"
	"maps"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tetratelabs/wazero"

	"github.com/wasmrouter/wasmrouter/event"
)

// Defaults for zero fields of ModuleConfig.
const (
	DefaultTimeout   = time.Second
	DefaultMaxMemory = 64 << 20
	// MaxMemoryLimit is the largest max_memory: 65535 pages (wazero's sizes are uint32 bytes).
	MaxMemoryLimit = (1<<16 - 1) * pageSize
)

// DefaultPoolSize is the number of instances per module when PoolSize is 0.
func DefaultPoolSize() int { return runtime.GOMAXPROCS(0) }

// ModuleConfig describes one module block.
type ModuleConfig struct {
	Name      string
	Path      string
	Config    map[string]string // readable by the guest through config_get
	Timeout   time.Duration     // per call; 0: DefaultTimeout
	MaxMemory int64             // bytes of linear memory per instance; 0: DefaultMaxMemory
	PoolSize  int               // instances; 0: DefaultPoolSize()
	Roles     []Role            // entry points checked at load
	// MaxMessageSize bounds what one call may write: a body_set body, and the bodies emitted
	// by one handler call together; 0: DefaultMaxMessageSize.
	MaxMessageSize int64
}

// DefaultMaxMessageSize is the router's default max_message_size.
const DefaultMaxMessageSize = 128 << 20

// Invocation is the input of one call.
type Invocation struct {
	// Event is what the guest reads; a transform changes it in place (RoutingKey, Headers,
	// created if nil, and Body, which it replaces and never writes into), so the caller passes
	// a private copy; the copy may share the original's body (event.Event.CloneSharingBody).
	Event *event.Event
	// Route is what meta_get("route") returns.
	Route string
	// KnownTarget tells whether emit may name a target; nil knows none.
	KnownTarget func(name string) bool
	// TraceID is what meta_get("trace_id") returns when the router traces the event (32
	// lower-case hex digits); "" falls back to the trace id of the event's traceparent header.
	TraceID string
}

// Outcome is the result of one call.
type Outcome struct {
	Code   Code
	Reason string // error_set text, or why the host failed the call (trap, timeout, ABI misuse)
	Emits  []Emit // events a handler emitted, in order
}

// Emit is one event a handler emitted.
type Emit struct {
	Target, RoutingKey string
	Body               []byte
	Headers            event.Table // nil unless the handler set or copied headers
}

// Module is a compiled guest with its pool of instances. Call is safe for concurrent use.
type Module struct {
	name     string
	host     *Host
	compiled wazero.CompiledModule
	shape    moduleShape
	modCfg   wazero.ModuleConfig
	alloc    limitedAllocator
	config   map[string]string
	timeout  time.Duration
	limit    uint64
	// maxMessage bounds body_set and the bytes emitted by one call.
	maxMessage int64
	out        *guestLog

	timeoutReason string

	// pool holds size entries; nil marks a slot whose replacement failed (filled on next use).
	pool      chan *instance
	size      int
	closing   chan struct{}
	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error

	calls    [len(resultLabels)]prometheus.Counter // nil without metrics
	duration prometheus.Observer
}

// Load compiles the module once, checks its exports and imports for cfg.Roles, and fills its
// pool, so that a module that cannot start fails here rather than on the first event.
func (h *Host) Load(ctx context.Context, cfg ModuleConfig) (*Module, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	cm, err := h.compile(ctx, cfg.Name, cfg.Path)
	if err != nil {
		return nil, err
	}
	shape, err := h.checkModule(cm, cfg.Name, cfg.Roles, cfg.MaxMemory)
	if err != nil {
		_ = cm.Close(ctx)
		return nil, err
	}
	m := &Module{
		name:     cfg.Name,
		host:     h,
		compiled: cm,
		shape:    shape,
		// No args, environment, preopened directories or sockets; real clocks and randomness.
		// Sleeping stays wazero's no-op, so a guest cannot park a call in the host.
		modCfg: wazero.NewModuleConfig().WithName("").WithStartFunctions().
			WithSysWalltime().WithSysNanotime().WithRandSource(rand.Reader),
		alloc:         limitedAllocator{limit: uint64(cfg.MaxMemory)},
		config:        maps.Clone(cfg.Config),
		timeout:       cfg.Timeout,
		limit:         uint64(cfg.MaxMemory),
		maxMessage:    cmp.Or(cfg.MaxMessageSize, DefaultMaxMessageSize),
		out:           newGuestLog(h.log.With("module", cfg.Name)),
		timeoutReason: fmt.Sprintf("timeout after %v", cfg.Timeout),
		pool:          make(chan *instance, cfg.PoolSize),
		size:          cfg.PoolSize,
		closing:       make(chan struct{}),
	}
	if h.metrics != nil {
		for i, l := range resultLabels {
			m.calls[i] = h.metrics.WasmCalls.WithLabelValues(cfg.Name, l)
		}
		m.duration = h.metrics.WasmCallDuration.WithLabelValues(cfg.Name)
	}
	h.mu.Lock()
	if h.closed.Load() {
		h.mu.Unlock()
		_ = cm.Close(ctx)
		return nil, moduleErr(cfg.Name, ErrClosed, "host closed", nil)
	}
	h.modules[m] = struct{}{}
	h.mu.Unlock()
	for range cfg.PoolSize {
		inst, err := m.newInstance(reasonStart)
		if err != nil {
			close(m.pool)
			for inst := range m.pool {
				inst.close()
			}
			_ = cm.Close(ctx)
			m.forget()
			return nil, err
		}
		m.pool <- inst
	}
	return m, nil
}

func (cfg *ModuleConfig) normalize() error {
	bad := func(format string, args ...any) error {
		return moduleErr(cfg.Name, ErrConfig, fmt.Sprintf(format, args...), nil)
	}
	switch {
	case cfg.Name == "":
		return bad("empty name")
	case cfg.Path == "":
		return bad("empty path")
	case cfg.Timeout < 0:
		return bad("negative timeout %v", cfg.Timeout)
	case cfg.MaxMemory < 0 || cfg.MaxMemory > MaxMemoryLimit:
		return bad("max_memory %d outside 0..%d bytes", cfg.MaxMemory, int64(MaxMemoryLimit))
	case cfg.MaxMemory > 0 && cfg.MaxMemory < pageSize:
		return bad("max_memory %d is less than one 64 KiB page", cfg.MaxMemory)
	case cfg.PoolSize < 0:
		return bad("negative pool size %d", cfg.PoolSize)
	}
	for _, r := range cfg.Roles {
		if r >= numRoles {
			return bad("unknown role %d", r)
		}
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxMemory == 0 {
		cfg.MaxMemory = DefaultMaxMemory
	}
	if cfg.PoolSize == 0 {
		cfg.PoolSize = DefaultPoolSize()
	}
	return nil
}

// Name is the module's name.
func (m *Module) Name() string { return m.name }

// Call runs the role's entry point on one pooled instance, waiting for a free one while ctx
// allows. ctx bounds only that wait; the guest itself runs under the module's timeout. Every
// failure comes back as Code Retry with a reason; Call never panics on guest misbehaviour.
func (m *Module) Call(ctx context.Context, role Role, in *Invocation) Outcome {
	if role >= numRoles {
		return m.failed(fmt.Sprintf("unknown role %d", role))
	}
	if in == nil || in.Event == nil {
		return m.failed("no event")
	}
	if m.closed.Load() {
		return m.failed("module closed")
	}
	var inst *instance
	select {
	case inst = <-m.pool:
	default:
		select {
		case inst = <-m.pool:
		case <-ctx.Done():
			return m.failed("waiting for an instance: " + ctx.Err().Error())
		case <-m.closing:
			return m.failed("module closed")
		}
	}
	if inst == nil {
		var err error
		if inst, err = m.newInstance(reasonError); err != nil {
			m.pool <- nil
			return m.failed(truncate(err.Error()))
		}
	}
	if inst.entry[role] == nil {
		m.pool <- inst
		return m.failed(fmt.Sprintf("no export %q for the %s role", role.Export(), role))
	}

	start := sinceEpoch()
	out, result, recycle := inst.call(role, in, start)
	if result >= idxTrap {
		m.out.failure(role, resultLabels[result], out.Reason, inst.stderr.release(false))
	} else {
		inst.stderr.release(true)
	}
	if m.duration != nil {
		m.duration.Observe(float64(sinceEpoch()-start) / 1e9)
		m.calls[result].Inc()
	}
	if recycle == "" {
		m.pool <- inst
	} else {
		go m.replace(inst, recycle)
	}
	return out
}

// failed is the outcome of a call that never reached the guest.
func (m *Module) failed(reason string) Outcome {
	if m.calls[idxError] != nil {
		m.calls[idxError].Inc()
	}
	return Outcome{Code: Retry, Reason: reason}
}

// replace closes a dead or bloated instance and fills its pool slot with a fresh one. It runs on
// its own goroutine, so the call that found the problem returns at once.
func (m *Module) replace(old *instance, reason string) {
	old.close()
	var inst *instance
	if !m.closed.Load() {
		var err error
		if inst, err = m.newInstance(reason); err != nil {
			m.host.log.Warn("cannot replace guest instance", "module", m.name, "error", err)
			inst = nil
		}
	}
	m.pool <- inst
}

func (m *Module) countInstance(reason string) {
	if m.host.metrics != nil {
		m.host.metrics.WasmInstances.WithLabelValues(m.name, reason).Inc()
	}
}

// Close waits (while ctx allows) for calls in progress, then frees every instance and the
// compiled module. Calls made after Close fail at once.
func (m *Module) Close(ctx context.Context) error {
	m.closeOnce.Do(func() {
		m.closed.Store(true)
		close(m.closing)
		for range m.size {
			select {
			case inst := <-m.pool:
				if inst != nil {
					inst.close()
				}
			case <-ctx.Done():
				m.closeErr = fmt.Errorf("module %q: close: %w", m.name, ctx.Err())
				return
			}
		}
		m.closeErr = m.compiled.Close(ctx)
		m.forget()
	})
	return m.closeErr
}

func (m *Module) forget() {
	m.host.mu.Lock()
	delete(m.host.modules, m)
	m.host.mu.Unlock()
}
