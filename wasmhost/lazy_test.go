package wasmhost

import (
	"context"
	"errors"
	"testing"
)

// A host creates its runtime with the first module, not before: a router with no module
// configured never pays for it. After Close no module compiles and no runtime is created.
func TestRuntimeIsCreatedByTheFirstModule(t *testing.T) {
	h := newHost(t)
	if h.rt != nil {
		t.Fatal("New created the runtime before any module")
	}
	m := h.load(t, ModuleConfig{Path: cGuest("threshold")})
	if h.rt == nil {
		t.Fatal("no runtime after a module was loaded")
	}
	if err := m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	idle := newHost(t)
	if err := idle.Close(context.Background()); err != nil {
		t.Fatalf("closing a host that never created its runtime: %v", err)
	}
	_, err := idle.Load(context.Background(), ModuleConfig{Name: "threshold", Path: cGuest("threshold"), PoolSize: 1})
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("Load after Close: %v, want ErrClosed", err)
	}
	if idle.rt != nil {
		t.Fatal("a closed host created its runtime")
	}
}
