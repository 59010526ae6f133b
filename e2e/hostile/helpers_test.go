package hostile

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/testutil/adminapi"
	"github.com/wasmrouter/wasmrouter/internal/testutil/inproc"
	"github.com/wasmrouter/wasmrouter/internal/testutil/logbuf"
	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
)

// startRouter runs the router in this process on config src (written to a temp dir) and waits
// until it is ready; it is stopped when the test ends.
func startRouter(t *testing.T, src string) (admin string, logs *logbuf.Buffer) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "router.hcl")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	r := inproc.Start(t, inproc.LoadFile(t, path), inproc.Options{})
	waitFor(t, 30*time.Second, "the router to be ready", func() bool {
		code, _ := get(r.Admin, "/readyz")
		return code == http.StatusOK
	})
	return r.Admin, r.Logs
}

// get fetches an admin API path; a request that fails answers 0.
func get(admin, path string) (int, string) {
	code, body, _ := adminapi.Get(admin, path)
	return code, string(body)
}

// metric is the value of the sample of name carrying every label of want, or -1.
func metric(admin, name string, want map[string]string) float64 {
	_, body := get(admin, "/metrics")
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, name+"{") {
			continue
		}
		ok := true
		for k, v := range want {
			ok = ok && strings.Contains(line, fmt.Sprintf("%s=%q", k, v))
		}
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err == nil {
			return v
		}
	}
	return -1
}

// waitFor polls cond every 20ms until it holds, failing the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// brokerAddr is the broker's host:port and login, from the test URL.
func brokerAddr(t *testing.T) (addr, user, pass string) {
	t.Helper()
	u, err := amqp.ParseURI(rabbit.URL())
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%s:%d", u.Host, u.Port), u.Username, u.Password
}

// publishRaw publishes one message whose headers hold an 'L' field, as py-amqp writes an
// integer beyond 32 bits.
func publishRaw(t *testing.T, exchange, key, id string) {
	t.Helper()
	publishRawHeaders(t, exchange, key, id, []field{int64Field("big", 'L', 1<<40), longstrField("origin", "py-amqp")})
}

// nestedField is a header of tables nested depth levels deep.
func nestedField(name string, depth int) field {
	var b bytes.Buffer
	writeTable(&b, nil)
	inner := b.Bytes()
	for range depth - 1 {
		var t bytes.Buffer
		writeTable(&t, []field{{name: "n", kind: 'F', value: inner}})
		inner = t.Bytes()
	}
	return field{name: name, kind: 'F', value: inner}
}

// publishRawHeaders publishes a persistent message with hand-encoded headers, confirmed.
func publishRawHeaders(t *testing.T, exchange, key, id string, headers []field) {
	t.Helper()
	addr, user, pass := brokerAddr(t)
	rc, err := dialRaw(addr, user, pass)
	if err != nil {
		t.Fatalf("raw AMQP connection: %v", err)
	}
	if err := rc.publishConfirmed(exchange, key, id, headers, []byte(`{"celery":"task"}`)); err != nil {
		t.Fatalf("raw publish: %v", err)
	}
	if err := rc.close(); err != nil {
		t.Fatalf("raw close: %v", err)
	}
}

// queueSetup declares exchange (durable topic) and a queue bound to it with "#", both deleted
// when the test ends; it returns the queue's name.
func queueSetup(t *testing.T, ch *amqp.Channel, exchange string) string {
	t.Helper()
	if err := ch.ExchangeDeclare(exchange, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	rabbit.DeleteExchangeAtCleanup(t, exchange)
	return rabbit.DeclareQueueBound(t, ch, exchange, "#")
}

// idsIn consumes what is in queue now (up to a short wait) and returns the message ids.
func idsIn(t *testing.T, ch *amqp.Channel, queue string, n int, timeout time.Duration) map[string]bool {
	t.Helper()
	ids := map[string]bool{}
	for _, d := range rabbit.Collect(t, ch, queue, n, timeout) {
		ids[d.MessageId] = true
	}
	return ids
}
