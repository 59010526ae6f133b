package store_test

import (
	"path/filepath"
	"testing"

	"github.com/wasmrouter/wasmrouter/router"
	"github.com/wasmrouter/wasmrouter/router/routertest"
	"github.com/wasmrouter/wasmrouter/store"
)

// The bbolt log passes the conformance suite of the engine's Log port.
func TestLogConformance(t *testing.T) {
	routertest.RunLogSuite(t, func(t *testing.T) router.Log {
		st, err := store.Open(store.Options{Path: filepath.Join(t.TempDir(), "router.db"), NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		return st
	})
}
