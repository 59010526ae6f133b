package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/logquery"
	"github.com/wasmrouter/wasmrouter/router"
	"github.com/wasmrouter/wasmrouter/store"
)

// seededLog writes a configuration and a log of six events, one minute apart from base.
func seededLog(t *testing.T) (cfg string, dir string, base time.Time) {
	t.Helper()
	dir = t.TempDir()
	cfg = writeCLIConfig(t, dir, "router.hcl", cliConfig{})
	base = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	at := func(i int) time.Time { return base.Add(time.Duration(i) * time.Minute) }
	seedLog(t, storePath(dir),
		testEvent("in", "order.created", "1", at(0)),
		testEvent("in", "order.paid", "2", at(1)),
		testEvent("other", "order.created", "3", at(2)),
		testEvent("in", "payment.done.eu", "4", at(3)),
		testEvent("in", "user.signup", "5", at(4)),
		testEvent("in", "order.created", "6", at(5)),
	)
	return cfg, dir, base
}

func decodeRecords(t *testing.T, out string) []logquery.Record {
	t.Helper()
	var recs []logquery.Record
	for _, l := range lines(out) {
		var r logquery.Record
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("line %q is not a JSON event: %v", l, err)
		}
		recs = append(recs, r)
	}
	return recs
}

func seqsOf(recs []logquery.Record) []uint64 {
	out := make([]uint64, len(recs))
	for i, r := range recs {
		out[i] = r.Seq
	}
	return out
}

func equalSeqs(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestLogListFilters(t *testing.T) {
	cfg, _, base := seededLog(t)
	ts := func(i int) string { return base.Add(time.Duration(i) * time.Minute).Format(time.RFC3339) }
	cases := []struct {
		name string
		args []string
		want []uint64
	}{
		{"all", nil, []uint64{1, 2, 3, 4, 5, 6}},
		{"limit", []string{"--limit", "2"}, []uint64{1, 2}},
		{"seq range", []string{"--from-seq", "2", "--to-seq", "4"}, []uint64{2, 3, 4}},
		{"source", []string{"--source", "other"}, []uint64{3}},
		{"key pattern", []string{"--key", "order.*"}, []uint64{1, 2, 3, 6}},
		{"key hash", []string{"--key", "payment.#"}, []uint64{4}},
		{"source and key", []string{"--source", "in", "--key", "order.created"}, []uint64{1, 6}},
		{"since", []string{"--since", ts(3)}, []uint64{4, 5, 6}},
		{"until", []string{"--until", ts(1)}, []uint64{1, 2}},
		{"since and until", []string{"--since", ts(2), "--until", ts(4)}, []uint64{3, 4, 5}},
		{"since and limit", []string{"--since", ts(1), "--limit", "1"}, []uint64{2}},
		{"duration ago", []string{"--since", "1m"}, nil},
		{"past the end", []string{"--from-seq", "7"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := runCLI(t, append([]string{"log", "list", "-c", cfg}, tc.args...)...)
			if res.code != exitOK {
				t.Fatalf("exit %d, stderr: %s", res.code, res.stderr)
			}
			if got := seqsOf(decodeRecords(t, res.stdout)); !equalSeqs(got, tc.want) {
				t.Errorf("seqs %v, want %v", got, tc.want)
			}
		})
	}
}

func TestLogRecordFormat(t *testing.T) {
	dir := t.TempDir()
	cfg := writeCLIConfig(t, dir, "router.hcl", cliConfig{})
	at := time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)
	ev := testEvent("in", "order.created", "", at)
	ev.Body = []byte{0xff, 0x00, 0x01}
	ev.Headers = event.Table{"tenant": "acme", "n": int32(7), "ok": true, "raw": []byte("xy")}
	ev.Props.ContentType = "application/octet-stream"
	ev.Props.CorrelationID = "c-1"
	ev.Props.Timestamp = time.Date(2025, 3, 1, 11, 0, 0, 0, time.UTC)
	text := testEvent("in", "order.paid", `{"a":"<b>"}`, at.Add(time.Second))
	seedLog(t, storePath(dir), ev, text)

	res := runCLI(t, "log", "show", "-c", cfg, "1", "2")
	if res.code != exitOK {
		t.Fatalf("exit %d, stderr: %s", res.code, res.stderr)
	}
	var raw map[string]any
	if err := json.Unmarshal([]byte(lines(res.stdout)[0]), &raw); err != nil {
		t.Fatal(err)
	}
	if raw["time"] != "2025-03-01T12:00:00.123456789Z" || raw["source"] != "in" || raw["exchange"] != "events" ||
		raw["routing_key"] != "order.created" || raw["message_id"] != ev.Props.MessageID {
		t.Errorf("record fields: %v", raw)
	}
	if raw["body_encoding"] != "base64" || raw["body"] != base64.StdEncoding.EncodeToString([]byte{0xff, 0, 1}) {
		t.Errorf("binary body: %v %v", raw["body_encoding"], raw["body"])
	}
	h := raw["headers"].(map[string]any)
	if h["tenant"] != "acme" || h["n"] != float64(7) || h["ok"] != true || h["raw"] != "xy" {
		t.Errorf("headers: %v", h)
	}
	p := raw["properties"].(map[string]any)
	if p["content_type"] != "application/octet-stream" || p["correlation_id"] != "c-1" ||
		p["timestamp"] != "2025-03-01T11:00:00Z" || p["delivery_mode"] != float64(2) {
		t.Errorf("properties: %v", p)
	}
	if _, ok := p["reply_to"]; ok {
		t.Errorf("unset property printed: %v", p)
	}
	if second := lines(res.stdout)[1]; !strings.Contains(second, `"body":"{\"a\":\"<b>\"}"`) || strings.Contains(second, "body_encoding") {
		t.Errorf("text body: %s", second)
	}
}

func TestLogShowMissingSeq(t *testing.T) {
	cfg, _, _ := seededLog(t)
	res := runCLI(t, "log", "show", "2", "-c", cfg, "99")
	if res.code != exitFail {
		t.Fatalf("exit %d, want %d", res.code, exitFail)
	}
	if got := seqsOf(decodeRecords(t, res.stdout)); !equalSeqs(got, []uint64{2}) {
		t.Errorf("printed %v, want [2]", got)
	}
	if !strings.Contains(res.stderr, "seq 99 is not in the log (it holds 1 to 6)") {
		t.Errorf("stderr: %s", res.stderr)
	}
}

func TestLogTail(t *testing.T) {
	cfg, _, _ := seededLog(t)
	for _, tc := range []struct {
		args []string
		want []uint64
	}{
		{nil, []uint64{1, 2, 3, 4, 5, 6}},
		{[]string{"-n", "2"}, []uint64{5, 6}},
		{[]string{"-n", "2", "--key", "order.#"}, []uint64{3, 6}},
		{[]string{"-n", "0"}, nil},
	} {
		res := runCLI(t, append([]string{"log", "tail", "-c", cfg}, tc.args...)...)
		if res.code != exitOK {
			t.Fatalf("%v: exit %d, stderr: %s", tc.args, res.code, res.stderr)
		}
		if got := seqsOf(decodeRecords(t, res.stdout)); !equalSeqs(got, tc.want) {
			t.Errorf("%v: seqs %v, want %v", tc.args, got, tc.want)
		}
	}
}

func TestLogTailFollow(t *testing.T) {
	cfg, dir, base := seededLog(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"log", "tail", "-c", cfg, "-n", "1", "-f", "--interval", "20ms", "--source", "in"}, &out, &errb)
	}()
	waitFor(t, func() bool { return len(lines(out.String())) == 1 }, "the last event")
	// Another process appends while tail waits: tail holds the file only while it reads.
	seedLog(t, storePath(dir),
		testEvent("in", "order.created", "7", base.Add(time.Hour)),
		testEvent("other", "order.created", "8", base.Add(time.Hour)),
		testEvent("in", "order.created", "9", base.Add(time.Hour)),
	)
	waitFor(t, func() bool { return len(lines(out.String())) >= 3 }, "the appended events")
	cancel()
	if code := <-done; code != exitOK {
		t.Fatalf("exit %d, stderr: %s", code, errb.String())
	}
	if got := seqsOf(decodeRecords(t, out.String())); !equalSeqs(got, []uint64{6, 7, 9}) {
		t.Errorf("seqs %v, want [6 7 9]", got)
	}
}

// waitFor polls cond for up to 10s.
func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestLogStats(t *testing.T) {
	cfg, dir, base := seededLog(t)
	st, err := store.Open(store.Options{Path: storePath(dir), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	must(t, st.ResetCursor(router.CursorName("orders", "a", ""), 4))
	must(t, st.ResetCursor(router.CursorName("gone", "b", "dr"), 6))
	must(t, st.ResetCursor(router.DeadLetterCursor("orders"), 1))
	for _, seq := range []uint64{2, 4} {
		if _, err := st.AddDeadLetter(store.DeadLetter{Route: "orders", Target: "a", Seq: seq, Reason: "refused", Attempts: 1}); err != nil {
			t.Fatal(err)
		}
	}
	must(t, st.MarkRedriven(1))
	closeStore(t, st)

	res := runCLI(t, "log", "stats", "-c", cfg)
	if res.code != exitOK || len(lines(res.stdout)) != 1 {
		t.Fatalf("exit %d, stdout %q, stderr: %s", res.code, res.stdout, res.stderr)
	}
	var s logquery.LogStats
	if err := json.Unmarshal([]byte(res.stdout), &s); err != nil {
		t.Fatal(err)
	}
	if s.Count != 6 || s.FirstSeq != 1 || s.LastSeq != 6 || s.SizeBytes <= 0 {
		t.Errorf("range: %+v", s)
	}
	if s.Oldest != base.Format(time.RFC3339Nano) || s.Newest != base.Add(5*time.Minute).Format(time.RFC3339Nano) {
		t.Errorf("times %s .. %s", s.Oldest, s.Newest)
	}
	if s.PerSource["in"] != 5 || s.PerSource["other"] != 1 {
		t.Errorf("per source: %v", s.PerSource)
	}
	want := []logquery.StreamPosition{
		{Route: "gone", Target: "b", Cluster: "dr", Position: 6, Lag: 0},
		{Route: "orders", Target: "a", Position: 4, Lag: 2, Configured: true},
	}
	if len(s.Streams) != len(want) || s.Streams[0] != want[0] || s.Streams[1] != want[1] {
		t.Errorf("streams %+v, want %+v", s.Streams, want)
	}
	if s.DeadLetters != 2 || s.DeadLettersPending != 1 {
		t.Errorf("dead letters %d, pending %d", s.DeadLetters, s.DeadLettersPending)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestLogLockedAndMissing(t *testing.T) {
	t.Parallel() // waits out the file lock
	cfg, dir, _ := seededLog(t)
	st, err := store.Open(store.Options{Path: storePath(dir), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	// dlq list, which tries the admin API first, words it differently (dlqcmd_test.go).
	for _, args := range [][]string{{"log", "list"}, {"log", "stats"}, {"log", "tail"}} {
		res := runCLI(t, append(args, "-c", cfg)...)
		if res.code != exitFail || !strings.Contains(res.stderr, "is locked by a running router") ||
			!strings.Contains(res.stderr, "/api/v1/status") {
			t.Errorf("%v: exit %d, stderr: %s", args, res.code, res.stderr)
		}
	}
	closeStore(t, st)

	empty := writeCLIConfig(t, t.TempDir(), "router.hcl", cliConfig{})
	res := runCLI(t, "log", "list", "-c", empty)
	if res.code != exitFail || !strings.Contains(res.stderr, "there is no event log at") {
		t.Errorf("missing log: exit %d, stderr: %s", res.code, res.stderr)
	}
}

func TestLogUsage(t *testing.T) {
	cfg, _, _ := seededLog(t)
	for _, args := range [][]string{
		{"log"},
		{"log", "nosuch"},
		{"log", "list", "--key", strings.Repeat("a", 256)},
		{"log", "list", "--since", "yesterday"},
		{"log", "list", "--limit", "-1"},
		{"log", "list", "--from-seq", "5", "--to-seq", "2"},
		{"log", "list", "extra"},
		{"log", "show"},
		{"log", "show", "x"},
		{"log", "tail", "-n", "-3"},
		{"log", "tail", "-f", "--interval", "0s"},
		{"log", "stats", "extra"},
		{"log", "list", "--nosuch"},
	} {
		res := runCLI(t, append(args, "-c", cfg)...)
		if res.code != exitUsage || res.stderr == "" {
			t.Errorf("%v: exit %d, stderr %q; want a usage error", args, res.code, res.stderr)
		}
	}
	for _, args := range [][]string{{"log", "--help"}, {"log", "list", "--help"}, {"log", "show", "-h"}, {"log", "tail", "--help"}, {"log", "stats", "--help"}} {
		res := runCLI(t, args...)
		if res.code != exitOK || !strings.Contains(res.stdout, "Usage: router log") || res.stderr != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, res.code, res.stdout, res.stderr)
		}
	}
}
