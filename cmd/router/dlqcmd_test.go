package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

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
			var r deadLetterRecord
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
	res = runCLI(t, "dlq", "replay", "-c", cfg, "--route", "orders")
	if res.code != exitFail || !strings.Contains(res.stderr, "is locked by a running router; stop it to redrive") {
		t.Errorf("locked: exit %d, stderr: %s", res.code, res.stderr)
	}
	for _, args := range [][]string{{"dlq", "--help"}, {"dlq", "list", "--help"}, {"dlq", "replay", "-h"}} {
		res := runCLI(t, args...)
		if res.code != exitOK || !strings.Contains(res.stdout, "Usage: router dlq") || res.stderr != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, res.code, res.stdout, res.stderr)
		}
	}
}
