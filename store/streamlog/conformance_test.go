package streamlog

import (
	"testing"

	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
	"github.com/wasmrouter/wasmrouter/router"
	"github.com/wasmrouter/wasmrouter/router/routertest"
)

// The log on a stream passes the conformance suite of the engine's Log port, against the real
// broker, as the bbolt log and the in-memory fake do.
func TestLogConformance(t *testing.T) {
	rabbit.SkipIfShort(t)
	routertest.RunLogSuite(t, func(t *testing.T) router.Log { return freshStore(t) })
}
