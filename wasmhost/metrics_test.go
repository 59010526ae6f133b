package wasmhost

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

func TestMetrics(t *testing.T) {
	h := newHost(t)
	m := h.load(t, ModuleConfig{Name: "mx", Path: cGuest("conformance"), PoolSize: 2})
	ctx := context.Background()
	for _, code := range []string{"0", "0", "1", "2", "3", "9"} {
		m.Call(ctx, RoleFilter, op("return", "code", code))
	}
	m.Call(ctx, RoleFilter, op("body")) // a transform-only function from a filter
	for result, want := range map[string]float64{
		"continue": 2, "drop": 1, "retry": 1, "dead_letter": 1, "error": 2, "trap": 0, "timeout": 0,
	} {
		if got := h.calls("mx", result); got != want {
			t.Errorf("calls{result=%s} = %v, want %v", result, got, want)
		}
	}
	if got := h.created("mx", "start"); got != 2 {
		t.Errorf("instances{reason=start} = %v, want 2", got)
	}
	var hist dto.Metric
	obs, err := h.met.WasmCallDuration.GetMetricWithLabelValues("mx")
	if err != nil {
		t.Fatal(err)
	}
	if err := obs.(interface{ Write(*dto.Metric) error }).Write(&hist); err != nil {
		t.Fatal(err)
	}
	if got := hist.GetHistogram().GetSampleCount(); got != 7 {
		t.Errorf("duration samples = %v, want 7", got)
	}
}

func TestNilMetricsAndLogger(t *testing.T) {
	ctx := context.Background()
	h, err := New(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	m, err := h.Load(ctx, ModuleConfig{Name: "n", Path: cGuest("conformance"), PoolSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	if out := m.Call(ctx, RoleFilter, op("log", "msg", "nobody listens")); out.Code != Continue {
		t.Errorf("%v %q", out.Code, out.Reason)
	}
	if out := m.Call(ctx, RoleFilter, op("return", "code", "8")); out.Code != Retry {
		t.Errorf("%v %q", out.Code, out.Reason)
	}
}

func TestGuestLogRateLimit(t *testing.T) {
	logs := &logRecorder{}
	g := newGuestLog(slog.New(logs).With("module", "chatty"))
	now := time.Unix(1000, 0)
	g.now = func() time.Time { return now }
	g.last = now
	for i := range 80 {
		g.write(slog.LevelInfo, "log", []byte(fmt.Sprint("line ", i)))
	}
	if got := len(logs.root().records); got != logBurst {
		t.Fatalf("%d lines got through a burst of 80, want %d", got, logBurst)
	}
	now = now.Add(time.Second) // refills logRate tokens
	for i := range logRate + 5 {
		g.write(slog.LevelInfo, "log", []byte(fmt.Sprint("later ", i)))
	}
	sup := logs.find("guest output suppressed by rate limit")
	if len(sup) != 1 || sup[0].Attrs["lines"] != "30" || sup[0].Attrs["module"] != "chatty" {
		t.Errorf("suppression reports: %+v", sup)
	}
	// The burst, the report, the refilled lines; the last 5 are held back and reported later.
	if got := len(logs.root().records); got != logBurst+1+logRate {
		t.Errorf("%d records, want %d", got, logBurst+1+logRate)
	}
	now = now.Add(time.Second)
	g.write(slog.LevelInfo, "log", []byte("after"))
	if sup = logs.find("guest output suppressed by rate limit"); len(sup) != 2 || sup[1].Attrs["lines"] != "5" {
		t.Errorf("suppression reports: %+v", sup)
	}
}

func TestGuestOutputLines(t *testing.T) {
	logs := &logRecorder{}
	w := &lineWriter{out: newGuestLog(slog.New(logs)), stream: "stdout", level: slog.LevelInfo}
	fmt.Fprint(w, "a\nb")
	fmt.Fprint(w, "c\n\nd")
	long := make([]byte, maxLogLine+10)
	for i := range long {
		long[i] = 'x'
	}
	w.Write(long)
	w.flush()
	var msgs []string
	for _, r := range logs.root().records {
		msgs = append(msgs, r.Msg)
	}
	want := []string{"a", "bc", "d" + string(long[:maxLogLine-1]), string(long[:11])}
	if fmt.Sprint(msgs) != fmt.Sprint(want) {
		t.Errorf("lines %q, want %q", msgs, want)
	}
}
