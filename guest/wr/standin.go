//go:build !wasip1

package wr

import (
	"maps"
	"slices"
	"sync"
	"unsafe"
)

// A stand-in host, so that guest logic can run under `go test` on the development machine:
// outside GOOS=wasip1 the SDK's calls read and record a TestHost instead of calling the router.
// Keep the entry points (//go:wasmexport, which only builds for wasm) in a file with a
// //go:build wasip1 line, and the logic they call in files without one:
//
//	func TestKeepsBigOrders(t *testing.T) {
//		h := wr.NewTestHost()
//		h.Config["min"] = "100"
//		h.Use(t)
//		configure() // what init does in the guest
//		if got := keep([]byte(`{"amount":500}`)); got != wr.Continue {
//			t.Fatalf("keep = %v", got)
//		}
//	}

// TestHost is the stand-in host: the event and config the guest reads, and what it did.
type TestHost struct {
	// What the guest reads: Meta (routing_key, exchange, ...), Headers (as text, the way
	// header_get gives them) and Config.
	Meta    map[string]string
	Headers map[string]string
	Config  map[string]string
	// Targets Emit accepts; nil accepts every target.
	Targets []string

	// What the guest did. Body and RoutingKey are nil and "" until set; SetHeaders holds the
	// headers a transform set; Emitted the events a handler emitted, in order; Error the last
	// SetError or Fail reason; Logs every Log line.
	Body       []byte
	RoutingKey string
	SetHeaders map[string]string
	Emitted    []Emitted
	Error      string
	Logs       []LogLine

	staged map[string]string // headers for the next emit
}

// Emitted is one event a handler emitted on the stand-in host.
type Emitted struct {
	Target, RoutingKey string
	Body               []byte
	Headers            map[string]string // nil when the guest set none
}

// LogLine is one Log call.
type LogLine struct {
	Level Level
	Msg   string
}

// NewTestHost returns a host with empty maps and routing key "test".
func NewTestHost() *TestHost {
	return &TestHost{
		Meta:       map[string]string{"routing_key": "test", "exchange": "", "source": "test", "route": "test", "seq": "1"},
		Headers:    map[string]string{},
		Config:     map[string]string{},
		SetHeaders: map[string]string{},
	}
}

var (
	hostMu  sync.Mutex
	current *TestHost
)

// Use makes h the host of the SDK's calls until the test ends. Tests using it must not run in
// parallel with each other: a guest has one host, as a real instance does.
func (h *TestHost) Use(t interface{ Cleanup(func()) }) {
	hostMu.Lock()
	current = h
	hostMu.Unlock()
	t.Cleanup(func() {
		hostMu.Lock()
		if current == h {
			current = nil
		}
		hostMu.Unlock()
	})
}

func host() *TestHost {
	hostMu.Lock()
	defer hostMu.Unlock()
	if current == nil {
		panic("wr: no stand-in host: call wr.NewTestHost().Use(t) first")
	}
	return current
}

// Run is for entry points, which exist only in a wasip1 build; tests call the function that
// Run would call with the body directly.
func Run(ptr, size uint32, fn func(body []byte) Result) int32 {
	panic("wr.Run only works in a guest (GOOS=wasip1); in tests, call the function given to Run")
}

func bytesAt(p unsafe.Pointer, n int32) []byte {
	if n <= 0 || p == nil {
		return nil
	}
	return unsafe.Slice((*byte)(p), n)
}

// deliver writes at most capacity bytes of v at buf and returns its length, as getters do.
func deliver(v string, present bool, buf unsafe.Pointer, capacity int32) int32 {
	if !present {
		return -1
	}
	copy(bytesAt(buf, capacity), v)
	return int32(len(v))
}

func metaGet(name string, buf unsafe.Pointer, capacity int32) int32 {
	v, ok := host().Meta[name]
	if name == "routing_key" && host().RoutingKey != "" {
		v, ok = host().RoutingKey, true
	}
	return deliver(v, ok, buf, capacity)
}

func headerGet(name string, buf unsafe.Pointer, capacity int32) int32 {
	h := host()
	v, ok := h.SetHeaders[name]
	if !ok {
		v, ok = h.Headers[name]
	}
	return deliver(v, ok, buf, capacity)
}

func configGet(name string, buf unsafe.Pointer, capacity int32) int32 {
	v, ok := host().Config[name]
	return deliver(v, ok, buf, capacity)
}

func bodySet(body unsafe.Pointer, n int32) { host().Body = slices.Clone(bytesAt(body, n)) }

func routingKeySet(key string) {
	if len(key) > 255 {
		panic("wr: routing key over 255 bytes (the router fails the call)")
	}
	host().RoutingKey = key
}

func headerSet(name, value string) { host().SetHeaders[name] = value }

func emit(target, key string, body unsafe.Pointer, n int32) int32 {
	h := host()
	headers := h.staged
	h.staged = nil
	if h.Targets != nil && !slices.Contains(h.Targets, target) {
		return -1
	}
	h.Emitted = append(h.Emitted, Emitted{Target: target, RoutingKey: key, Body: slices.Clone(bytesAt(body, n)), Headers: headers})
	return 0
}

func emitHeaderSet(name, value string) {
	h := host()
	if h.staged == nil {
		h.staged = map[string]string{}
	}
	h.staged[name] = value
}

func emitHeadersCopy() {
	h := host()
	staged := maps.Clone(h.Headers)
	if staged == nil {
		staged = map[string]string{}
	}
	maps.Copy(staged, h.SetHeaders)
	maps.Copy(staged, h.staged)
	h.staged = staged
}

func errorSet(reason string) { host().Error = reason }

func logLine(level int32, msg string) {
	h := host()
	h.Logs = append(h.Logs, LogLine{Level: Level(level), Msg: msg})
}
