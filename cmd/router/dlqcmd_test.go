package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/cmd/router/app"
	"github.com/wasmrouter/wasmrouter/internal/admin"
	"github.com/wasmrouter/wasmrouter/router"
	"github.com/wasmrouter/wasmrouter/store"
)

// seededDeadLetters writes a log of three events and four dead letters: ids 1 (orders -> a,
// seq 1), 2 (pay, module failure, seq 2, redriven), 3 (orders -> a, seq 3, an hour later),
// 4 (pay -> a, seq 2).
func seededDeadLetters(t *testing.T) (cfg, dir string, base time.Time) {
	t.Helper()
	dir = t.TempDir()
	cfg = writeCLIConfig(t, dir, "router.hcl", cliConfig{})
	base = time.Now().Add(-3 * time.Hour).UTC().Truncate(time.Second)
	st, err := store.Open(store.Options{Path: storePath(dir), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	appendEvents(t, st,
		testEvent("in", "order.created", "1", base),
		testEvent("in", "payment.done", "2", base),
		testEvent("in", "order.created", "3", base),
	)
	for _, dl := range []store.DeadLetter{
		{Route: "orders", Target: "a", Seq: 1, Reason: "NO_ROUTE", Attempts: 1, Time: base},
		{Route: "pay", Seq: 2, Reason: "module check: bad", Attempts: 3, Time: base},
		{Route: "orders", Target: "a", Seq: 3, Reason: "NO_ROUTE", Attempts: 1, Time: base.Add(time.Hour)},
		{Route: "pay", Target: "a", Seq: 2, Reason: "NO_ROUTE", Attempts: 2, Time: base.Add(time.Hour)},
	} {
		if _, err := st.AddDeadLetter(dl); err != nil {
			t.Fatal(err)
		}
	}
	must(t, st.MarkRedriven(2))
	closeStore(t, st)
	return cfg, dir, base
}

func TestDLQList(t *testing.T) {
	cfg, _, base := seededDeadLetters(t)
	for _, tc := range []struct {
		args []string
		want []uint64
	}{
		{nil, []uint64{1, 3, 4}},
		{[]string{"--all"}, []uint64{1, 2, 3, 4}},
		{[]string{"--route", "orders"}, []uint64{1, 3}},
		{[]string{"--route", "pay", "--all"}, []uint64{2, 4}},
		{[]string{"--since", base.Add(30 * time.Minute).Format(time.RFC3339)}, []uint64{3, 4}},
		{[]string{"--since", "2h30m"}, []uint64{3, 4}},
		{[]string{"--limit", "2", "--all"}, []uint64{1, 2}},
	} {
		res := runCLI(t, append([]string{"dlq", "list", "-c", cfg}, tc.args...)...)
		if res.code != exitOK {
			t.Fatalf("%v: exit %d, stderr: %s", tc.args, res.code, res.stderr)
		}
		var ids []uint64
		for _, l := range lines(res.stdout) {
			var r app.DeadLetterRecord
			if err := json.Unmarshal([]byte(l), &r); err != nil {
				t.Fatalf("%q: %v", l, err)
			}
			ids = append(ids, r.ID)
		}
		if !equalSeqs(ids, tc.want) {
			t.Errorf("%v: ids %v, want %v", tc.args, ids, tc.want)
		}
	}

	res := runCLI(t, "dlq", "list", "-c", cfg, "--all", "--route", "pay", "--limit", "1")
	var r map[string]any
	if err := json.Unmarshal([]byte(res.stdout), &r); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"id": float64(2), "route": "pay", "target": "", "seq": float64(2), "reason": "module check: bad",
		"attempts": float64(3), "time": base.Format(time.RFC3339Nano), "redriven": true,
	}
	for k, v := range want {
		if r[k] != v {
			t.Errorf("%s = %v, want %v", k, r[k], v)
		}
	}
}

func TestDLQReplayRefusals(t *testing.T) {
	t.Parallel() // waits out the file lock
	cfg, dir, _ := seededDeadLetters(t)
	for _, args := range [][]string{
		{},
		{"--id", "x"},
		{"--id", "0"},
		{"--route", "orders", "--since", "soon"},
		{"--route", "orders", "extra"},
	} {
		res := runCLI(t, append([]string{"dlq", "replay", "-c", cfg}, args...)...)
		if res.code != exitUsage {
			t.Errorf("%v: exit %d, stderr %q; want a usage error", args, res.code, res.stderr)
		}
	}
	res := runCLI(t, "dlq", "replay", "-c", cfg, "--id", "2,9")
	if res.code != exitFail || !strings.Contains(res.stderr, "no dead letter with id [2 9]") {
		t.Errorf("unknown and redriven ids: exit %d, stderr: %s", res.code, res.stderr)
	}
	res = runCLI(t, "dlq", "replay", "-c", cfg, "--route", "orders", "--since", "1m")
	if res.code != exitOK || res.stdout != "redriven 0 dead letters\n" {
		t.Errorf("nothing selected: exit %d, stdout %q, stderr: %s", res.code, res.stdout, res.stderr)
	}

	st, err := store.Open(store.Options{Path: storePath(dir), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer closeStore(t, st)
	// A router holds the log, but no admin API answers at the configured address.
	for _, cmd := range []string{"replay", "list"} {
		res = runCLI(t, "dlq", cmd, "-c", cfg, "--route", "orders")
		if res.code != exitFail || !strings.Contains(res.stderr, "is locked by a running router, but its admin API at") {
			t.Errorf("dlq %s, locked: exit %d, stderr: %s", cmd, res.code, res.stderr)
		}
	}
	for _, args := range [][]string{{"dlq", "--help"}, {"dlq", "list", "--help"}, {"dlq", "replay", "-h"}} {
		res := runCLI(t, args...)
		if res.code != exitOK || !strings.Contains(res.stdout, "Usage: router dlq") || res.stderr != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, res.code, res.stdout, res.stderr)
		}
	}
}

// fakeDeadLetters is a dead-letter and job backend behind the real admin HTTP handler. Its
// redrive job is done at the first poll and leaves the records in after (keyed by id) as the
// router's marks.
type fakeDeadLetters struct {
	mu       sync.Mutex
	lists    []url.Values
	redrives []app.RedriveBody
	selected []uint64 // what a redrive takes; none: no job
	records  []app.DeadLetterRecord
	after    map[uint64]app.DeadLetterRecord
}

func (f *fakeDeadLetters) ListDeadLetters(q url.Values) (any, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists = append(f.lists, q)
	if q.Get("ids") == "" {
		return f.records, nil
	}
	out := []app.DeadLetterRecord{}
	for _, s := range strings.Split(q.Get("ids"), ",") {
		id, _ := strconv.ParseUint(s, 10, 64)
		if rec, ok := f.after[id]; ok {
			out = append(out, rec)
		}
	}
	return out, nil
}

func (f *fakeDeadLetters) RedriveDeadLetters(_ context.Context, body []byte) (string, []uint64, error) {
	var b app.RedriveBody
	if err := json.Unmarshal(body, &b); err != nil {
		return "", nil, err
	}
	if slices.Contains(b.IDs, 9) {
		return "", nil, fmt.Errorf("%w: no dead letter with id [9] to redrive (redriven ones need --all)", admin.ErrBadRequest)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.redrives = append(f.redrives, b)
	if len(f.selected) == 0 {
		return "", nil, nil
	}
	return "job-1", f.selected, nil
}

func (f *fakeDeadLetters) StartReplay(context.Context, []byte) (string, error) {
	return "", errors.New("not a replay backend")
}
func (f *fakeDeadLetters) StopReplay(string) bool { return false }

func (f *fakeDeadLetters) ReplayStatus(id string) (any, bool) {
	return router.ReplayProgress{ID: id, State: "done", Total: 2, Done: 2, Delivered: 1}, id == "job-1"
}

func TestDLQThroughAdminAPI(t *testing.T) {
	fake := &fakeDeadLetters{
		records: []app.DeadLetterRecord{
			{ID: 1, Route: "orders", Target: "a", Seq: 1, Reason: "NO_ROUTE", Attempts: 1, Time: "2025-01-02T03:04:05Z"},
			{ID: 3, Route: "orders", Target: "a", Seq: 3, Reason: `<"quoted">`, Attempts: 2, Time: "2025-01-02T04:04:05.5Z"},
		},
		selected: []uint64{1, 3},
		after: map[uint64]app.DeadLetterRecord{
			1: {ID: 1, Redriven: true},
			3: {ID: 3, Redriven: false},
		},
	}
	addr := serveAdminWith(t, admin.Options{Token: "s3cret", Replayer: fake, DeadLetters: fake})
	dir := t.TempDir() // no log here: every answer comes from the admin API
	cfg := writeCLIConfig(t, dir, "router.hcl", cliConfig{adminAddr: addr, token: "s3cret"})

	res := runCLI(t, "dlq", "list", "-c", cfg, "--route", "orders", "--since", "2h", "--all", "--limit", "7")
	want := `{"id":1,"route":"orders","target":"a","seq":1,"reason":"NO_ROUTE","attempts":1,"time":"2025-01-02T03:04:05Z","redriven":false}` + "\n" +
		`{"id":3,"route":"orders","target":"a","seq":3,"reason":"<\"quoted\">","attempts":2,"time":"2025-01-02T04:04:05.5Z","redriven":false}` + "\n"
	if res.code != exitOK || res.stdout != want {
		t.Fatalf("list: exit %d, stdout:\n%s\nstderr: %s", res.code, res.stdout, res.stderr)
	}
	fake.mu.Lock()
	q := fake.lists[0]
	fake.mu.Unlock()
	if q.Get("route") != "orders" || q.Get("since") != "2h" || q.Get("all") != "true" || q.Get("limit") != "7" || q.Has("ids") {
		t.Errorf("list query %v", q)
	}

	// One of the two is delivered, the other stays pending: exit 1, as offline.
	res = runCLI(t, "dlq", "replay", "-c", cfg, "--route", "orders", "--since", "1h")
	if res.code != exitFail || !strings.HasPrefix(res.stdout, "redriven 1 dead letters\n") ||
		!strings.Contains(res.stderr, "1 dead letters were not delivered and stay pending") {
		t.Errorf("replay: exit %d, stdout %q, stderr: %s", res.code, res.stdout, res.stderr)
	}
	fake.mu.Lock()
	body, readBack := fake.redrives[0], fake.lists[len(fake.lists)-1]
	fake.selected = nil
	fake.mu.Unlock()
	if body.Route != "orders" || body.Since != "1h" || body.All || len(body.IDs) != 0 {
		t.Errorf("redrive body %+v", body)
	}
	if readBack.Get("ids") != "1,3" || readBack.Get("all") != "true" || readBack.Get("limit") != "0" {
		t.Errorf("marks read back with %v", readBack)
	}

	res = runCLI(t, "dlq", "replay", "-c", cfg, "--id", "4,5", "--all")
	if res.code != exitOK || res.stdout != "redriven 0 dead letters\n" {
		t.Errorf("nothing selected: exit %d, stdout %q, stderr: %s", res.code, res.stdout, res.stderr)
	}
	fake.mu.Lock()
	body = fake.redrives[len(fake.redrives)-1]
	fake.mu.Unlock()
	if !equalSeqs(body.IDs, []uint64{4, 5}) || !body.All {
		t.Errorf("redrive body %+v", body)
	}
	res = runCLI(t, "dlq", "replay", "-c", cfg, "--id", "9")
	if res.code != exitFail || !strings.Contains(res.stderr, "no dead letter with id [9] to redrive") {
		t.Errorf("bad selection: exit %d, stderr: %s", res.code, res.stderr)
	}
	bad := writeCLIConfig(t, dir, "bad.hcl", cliConfig{adminAddr: addr, token: "wrong"})
	res = runCLI(t, "dlq", "replay", "-c", bad, "--id", "1")
	if res.code != exitFail || !strings.Contains(res.stderr, "refused router.admin_token (401)") {
		t.Errorf("wrong token: exit %d, stderr: %s", res.code, res.stderr)
	}
}
