package inproc

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
)

// TestStartWaitReadyStop runs a router with one cluster and nothing to route: it becomes ready,
// and stops without an error, however often it is stopped.
func TestStartWaitReadyStop(t *testing.T) {
	rabbit.SkipIfShort(t)
	dir := t.TempDir()
	src := "store {\n  path = " + strconv.Quote(filepath.Join(dir, "router.db")) + "\n}\n" +
		"cluster \"main\" {\n  url = " + strconv.Quote(rabbit.URL()) + "\n}\n"
	path := filepath.Join(dir, "router.hcl")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	r := Start(t, LoadFile(t, path), Options{})
	if r.Admin == "" || r.Engine == nil {
		t.Fatalf("started router without an admin address or engine: %+v", r)
	}
	r.WaitReady(t, 30*time.Second)
	for range 2 {
		if err := r.Stop(); err != nil {
			t.Fatalf("stop: %v\n%s", err, r.Logs.Tail(20))
		}
	}
}
