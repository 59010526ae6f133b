package hostile

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/app"
	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/internal/testutil/logbuf"
	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
)

// logBuffer keeps the router's log for failure messages.
type logBuffer = logbuf.Buffer

// startRouter runs the router in this process on config src (written to a temp dir) and waits
// until it is ready; it is stopped when the test ends.
func startRouter(t *testing.T, src string) (admin string, logs *logBuffer) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "router.hcl")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, diags := config.Load(path, func(string) (string, bool) { return "", false })
	if diags.HasErrors() {
		var b bytes.Buffer
		config.FormatDiagnostics(&b, diags)
		t.Fatalf("config does not load:\n%s", b.String())
	}
	logs = &logBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan app.Running, 1)
	done := make(chan error, 1)
	go func() {
		done <- app.Run(ctx, cfg, log, app.Options{AdminAddr: "127.0.0.1:0", Started: func(r app.Running) { started <- r }})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("router stopped with an error: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("router did not stop within 30s")
		}
		if t.Failed() {
			t.Logf("router log:\n%s", tail(logs.String(), 40))
		}
	})
	select {
	case r := <-started:
		admin = r.AdminAddr
	case err := <-done:
		t.Fatalf("router did not start: %v\n%s", err, logs.String())
	case <-time.After(30 * time.Second):
		t.Fatal("router not started after 30s")
	}
	waitFor(t, 30*time.Second, "the router to be ready", func() bool {
		code, _ := get(admin, "/readyz")
		return code == http.StatusOK
	})
	return admin, logs
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func get(admin, path string) (int, string) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + admin + path)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
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
	addr, user, pass := brokerAddr(t)
	rc, err := dialRaw(addr, user, pass)
	if err != nil {
		t.Fatalf("raw AMQP connection: %v", err)
	}
	headers := []field{int64Field("big", 'L', 1<<40), longstrField("origin", "py-amqp")}
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
