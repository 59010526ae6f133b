package routertest_test

import (
	"testing"

	"github.com/wasmrouter/wasmrouter/router"
	"github.com/wasmrouter/wasmrouter/router/routertest"
)

func TestFakeLogConformance(t *testing.T) {
	routertest.RunLogSuite(t, func(*testing.T) router.Log { return routertest.NewLog() })
}
