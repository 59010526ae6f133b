package tracingtest

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/wasmrouter/wasmrouter/internal/testutil/otlpreceiver"
	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
)

// celeryPython finds a Python with Celery: Debian's python3-celery installs it for
// /usr/bin/python3, which may not be the python3 first on PATH.
func celeryPython(t *testing.T) string {
	t.Helper()
	for _, py := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(py, "-c", "import celery, kombu").Run() == nil {
			return py
		}
	}
	t.Skip("Celery is not installed (scripts/setup.sh installs Debian's python3-celery)")
	return ""
}

// A real Celery publisher sends a task with trace context in its headers; the router (tracing
// on) delivers it to a real Celery worker, which sees the same trace id, and its parent is the
// router's send span.
func TestCeleryTaskKeepsItsTrace(t *testing.T) {
	py := celeryPython(t)
	w := newWorld(t)
	rcv := otlpreceiver.Start(t)
	w.start(w.config(tracingBlock(rcv.URL)))

	app := filepath.Join(w.dir, "celeryapp.py")
	src, err := os.ReadFile("testdata/celeryapp.py")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(app, src, 0o644); err != nil {
		t.Fatal(err)
	}
	workerQueue := rabbit.Unique("tr.celery")
	rabbit.DeleteQueueAtCleanup(t, workerQueue)
	result := filepath.Join(w.dir, "seen.json")
	env := append(os.Environ(),
		"CELERY_BROKER="+rabbit.URL(), "SOURCE_EXCHANGE="+w.source, "WORKER_EXCHANGE="+w.target,
		"WORKER_QUEUE="+workerQueue, "RESULT_FILE="+result,
		"TRACEPARENT="+traceparent, "TRACESTATE=congo=t61rcWkgMzE")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var workerLog bytes.Buffer
	worker := exec.CommandContext(ctx, py, "-m", "celery", "-A", "celeryapp", "worker", "-Q", workerQueue,
		"--pool=solo", "--concurrency=1", "--without-heartbeat", "--without-mingle", "--without-gossip", "-l", "warning")
	worker.Dir, worker.Env, worker.Stdout, worker.Stderr = w.dir, env, &workerLog, &workerLog
	worker.Cancel = func() error { return worker.Process.Signal(syscall.SIGTERM) }
	worker.WaitDelay = 10 * time.Second
	if err := worker.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = worker.Wait()
		if t.Failed() {
			t.Logf("celery worker output:\n%s", workerLog.String())
		}
	})
	// The worker declares and binds its queue; the router's copy must find it.
	waitUntil(t, 60*time.Second, "the Celery worker consuming", func() bool {
		return queueConsumers(w, workerQueue) > 0
	})

	pub := exec.CommandContext(ctx, py, app, "publish", "celery-marker")
	pub.Dir, pub.Env = w.dir, env
	if out, err := pub.CombinedOutput(); err != nil {
		t.Fatalf("celery publisher: %v\n%s", err, out)
	}

	var seen struct {
		Marker      string `json:"marker"`
		Traceparent string `json:"traceparent"`
		Tracestate  string `json:"tracestate"`
		Route       string `json:"x-router-route"`
	}
	waitUntil(t, 60*time.Second, "the Celery worker running the task", func() bool {
		raw, err := os.ReadFile(result)
		return err == nil && json.Unmarshal(raw, &seen) == nil
	})
	if seen.Marker != "celery-marker" || seen.Route != "orders" {
		t.Fatalf("worker saw %+v", seen)
	}
	if len(seen.Traceparent) != 55 || seen.Traceparent[3:35] != publisherTrace {
		t.Fatalf("worker saw traceparent %q, want one in the publisher's trace %s", seen.Traceparent, publisherTrace)
	}
	if seen.Tracestate != "congo=t61rcWkgMzE" {
		t.Errorf("worker saw tracestate %q", seen.Tracestate)
	}
	parent := seen.Traceparent[36:52]
	spans := rcv.WaitFor(t, 30*time.Second, "the send span the worker's traceparent names", func(s []otlpreceiver.Span) bool {
		_, ok := otlpreceiver.ByID(s, parent)
		return ok
	})
	send, _ := otlpreceiver.ByID(spans, parent)
	if send.Kind != tracepb.Span_SPAN_KIND_PRODUCER || send.Name != "send "+w.target {
		t.Errorf("the worker's parent span is %s", send)
	}
}

func queueConsumers(w *world, queue string) int {
	ch, err := w.conn.Channel()
	if err != nil {
		return 0
	}
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
	if err != nil {
		return 0 // not declared yet
	}
	return q.Consumers
}
