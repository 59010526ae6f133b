package bench

import (
	"strings"
	"testing"
)

// The configuration consumes the topology's source queue with the prefetch given, publishes
// to its target exchange persistently with the routing key it received, keeps the URL out of
// the file and defaults max_in_flight.
func TestRedpandaConfig(t *testing.T) {
	top := NewTopology("bench.rpc")
	conf := RedpandaConnect{Bin: "rpconnect", URL: "amqp://u:secret@h:5672/", Prefetch: 1000}.Config(top)
	for _, want := range []string{
		"    urls: [\"${" + URLEnv + "}\"]\n    queue: \"" + top.SourceQueue + "\"\n",
		"    prefetch_count: 1000\n    auto_ack: false\n",
		"    urls: [\"${" + URLEnv + "}\"]\n    exchange: \"" + top.TargetExchange + "\"\n",
		"    key: '${! @amqp_routing_key }'\n",
		"      exclude_prefixes: [amqp_]\n",
		"    persistent: true\n    max_in_flight: 64\n",
		"http:\n  enabled: false\n",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("configuration lacks %q:\n%s", want, conf)
		}
	}
	if strings.Contains(conf, "secret") {
		t.Errorf("the broker's URL is in the configuration:\n%s", conf)
	}
	if strings.Contains(conf, "\t") {
		t.Errorf("a tab in YAML:\n%s", conf)
	}
	conf = RedpandaConnect{Prefetch: 10, MaxInFlight: 1}.Config(top)
	if !strings.Contains(conf, "    prefetch_count: 10\n") || !strings.Contains(conf, "    max_in_flight: 1\n") {
		t.Errorf("prefetch 10, max_in_flight 1 not in:\n%s", conf)
	}
}

func TestRedpandaNeedsBinary(t *testing.T) {
	_, err := RedpandaConnect{URL: "amqp://127.0.0.1/"}.Start(RunDir{Topology: NewTopology("bench.rpc"), Dir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "-redpanda-bin") {
		t.Fatalf("Start without a binary: %v", err)
	}
}

func TestSentAt(t *testing.T) {
	for _, c := range []struct {
		v    any
		want int64
		ok   bool
	}{
		{int64(1765000000123456789), 1765000000123456789, true},
		{"1765000000123456789", 1765000000123456789, true},
		{"12.5", 0, false},
		{int32(5), 0, false},
		{nil, 0, false},
	} {
		if got, ok := sentAt(c.v); got != c.want || ok != c.ok {
			t.Errorf("sentAt(%#v) = %d, %v; want %d, %v", c.v, got, ok, c.want, c.ok)
		}
	}
}
