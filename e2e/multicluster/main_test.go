package multicluster

import (
	"flag"
	"fmt"
	"os"
	"testing"

	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbitnode"
)

// second is the second cluster: one RabbitMQ node, with a TLS listener, for the whole package
// (a node takes several seconds to boot).
var second = &rabbitnode.Shared{Options: rabbitnode.Options{TLS: true}}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if err := second.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "multicluster: stopping the second RabbitMQ node:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}
