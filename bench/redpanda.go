package bench

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// DefaultRedpandaMaxInFlight is the Redpanda Connect output's max_in_flight the side uses
// unless told otherwise: publishes awaiting their confirm at once (BENCHMARKS.md).
const DefaultRedpandaMaxInFlight = 64

// RedpandaConnect runs Redpanda Connect (Benthos) with its amqp_0_9 input and output between
// the same queues: a binary built apart (BENCHMARKS.md says how), since none of it is part of
// this repository. Its input acknowledges a message once the output's publish is confirmed,
// the guarantee the router gives.
type RedpandaConnect struct {
	Bin      string
	URL      string
	Prefetch int
	// MaxInFlight is the output's max_in_flight (default DefaultRedpandaMaxInFlight).
	MaxInFlight int
}

var _ Side = RedpandaConnect{}

// Name implements Side.
func (RedpandaConnect) Name() string { return "redpanda" }

// SecondCluster implements Side.
func (RedpandaConnect) SecondCluster() bool { return false }

// Config is the Redpanda Connect configuration for topology t. The broker's URL is not in it:
// the process reads it from URLEnv, as the other sides do, so it shows neither in ps nor in
// the run's files.
func (r RedpandaConnect) Config(t Topology) string {
	inFlight := r.MaxInFlight
	if inFlight <= 0 {
		inFlight = DefaultRedpandaMaxInFlight
	}
	var b strings.Builder
	fmt.Fprintf(&b, `# Made by the wasmrouter benchmark (bench/redpanda.go).
http:
  enabled: false
metrics:
  none: {}
logger:
  level: WARN
input:
  amqp_0_9:
    urls: ["${%s}"]
    queue: %s
    queue_declare:
      enabled: false
    prefetch_count: %d
    auto_ack: false
output:
  amqp_0_9:
    urls: ["${%s}"]
    exchange: %s
    # The properties the benchmark's messages carry, copied as the other sides copy them; its
    # headers come from the input's metadata, less the input's own amqp_ fields.
    key: '${! @amqp_routing_key }'
    content_type: '${! @amqp_content_type }'
    message_id: '${! @amqp_message_id }'
    app_id: '${! @amqp_app_id }'
    metadata:
      exclude_prefixes: [amqp_]
    persistent: true
    max_in_flight: %d
`, URLEnv, strconv.Quote(t.SourceQueue), r.Prefetch, URLEnv, strconv.Quote(t.TargetExchange), inFlight)
	return b.String()
}

// Start implements Side: it writes the configuration into run.Dir and runs the binary on it.
func (r RedpandaConnect) Start(run RunDir) (Running, error) {
	if r.Bin == "" {
		return nil, errors.New("bench: side redpanda needs a Redpanda Connect binary (-redpanda-bin PATH; BENCHMARKS.md says how to build one)")
	}
	path := filepath.Join(run.Dir, "redpanda.yaml")
	if err := os.WriteFile(path, []byte(r.Config(run.Topology)), 0o600); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	return StartProcess(r.Bin, []string{"run", path}, filepath.Join(run.Dir, "redpanda.log"), URLEnv+"="+r.URL)
}
