package replaytest

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/router"
)

// deadLetterLine is a line of `router dlq list`.
type deadLetterLine struct {
	ID       uint64 `json:"id"`
	Route    string `json:"route"`
	Target   string `json:"target"`
	Seq      uint64 `json:"seq"`
	Reason   string `json:"reason"`
	Attempts int    `json:"attempts"`
	Redriven bool   `json:"redriven"`
}

func dlqList(t *testing.T, args ...string) []deadLetterLine {
	t.Helper()
	res := cli(t, append([]string{"dlq", "list"}, args...)...)
	if res.code != 0 {
		t.Fatalf("dlq list: exit %d, stderr: %s", res.code, res.stderr)
	}
	var out []deadLetterLine
	for _, l := range strings.Split(strings.TrimSpace(res.stdout), "\n") {
		if l == "" {
			continue
		}
		var d deadLetterLine
		if err := json.Unmarshal([]byte(l), &d); err != nil {
			t.Fatalf("dlq list line %q: %v", l, err)
		}
		out = append(out, d)
	}
	return out
}

func TestDeadLetterRedriveAfterFix(t *testing.T) {
	w := newWorld(t)
	// Nothing is bound to the target exchange: the broker returns every publish (mandatory),
	// and with one attempt each event is dead-lettered at once.
	r := w.startRouter(w.writeConfig("router.hcl", "127.0.0.1:0", oneRoute))
	w.publish("dl.x", ids("d", 3)...)
	r.waitDelivered(t, 3)
	r.stop()
	cliCfg := w.writeConfig("cli.hcl", deadAddr(t), oneRoute)

	dls := dlqList(t, "-c", cliCfg)
	if len(dls) != 3 {
		t.Fatalf("dead letters %+v", dls)
	}
	for i, d := range dls {
		if d.Route != "all" || d.Target != "out" || d.Seq != uint64(i+1) || d.Attempts != 1 || d.Redriven ||
			!strings.Contains(d.Reason, "NO_ROUTE") {
			t.Errorf("dead letter %+v", d)
		}
	}

	// Still nothing bound: the redrive fails again and the dead letter stays pending.
	res := cli(t, "dlq", "replay", "-c", cliCfg, "--id", "1")
	if res.code != 1 || res.stdout != "redriven 0 dead letters\n" || !strings.Contains(res.stderr, "1 dead letters were not delivered and stay pending") {
		t.Errorf("redrive before the fix: exit %d, stdout %q, stderr: %s", res.code, res.stdout, res.stderr)
	}
	if got := dlqList(t, "-c", cliCfg); len(got) != 3 {
		t.Errorf("pending after a failed redrive: %+v", got)
	}

	// The fix: a queue bound to the target.
	out := w.bind(w.out)
	res = cli(t, "dlq", "replay", "-c", cliCfg, "--route", "all")
	if res.code != 0 || res.stdout != "redriven 3 dead letters\n" {
		t.Fatalf("redrive: exit %d, stdout %q, stderr: %s", res.code, res.stdout, res.stderr)
	}
	checkReplayed(t, out.take(3, waitMsgs), ids("d", 3))
	out.expectNone(w)
	if got := dlqList(t, "-c", cliCfg); len(got) != 0 {
		t.Errorf("pending after the redrive: %+v", got)
	}
	all := dlqList(t, "-c", cliCfg, "--all")
	if len(all) != 3 {
		t.Fatalf("dlq list --all: %+v", all)
	}
	for _, d := range all {
		if !d.Redriven {
			t.Errorf("not marked redriven: %+v", d)
		}
	}
}

func TestReplayNeedsTheAdminToken(t *testing.T) {
	w := newWorld(t)
	r := w.startRouter(w.writeConfig("router.hcl", "127.0.0.1:0", oneRoute))
	base := "http://" + r.Admin
	post := func(auth string) *http.Response {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/v1/replay", bytes.NewReader([]byte(`{"dry_run":true}`)))
		if err != nil {
			t.Fatal(err)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	for _, auth := range []string{"", "Bearer wrong", adminToken} {
		if resp := post(auth); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("Authorization %q: %s, want 401", auth, resp.Status)
		}
	}
	resp := post("Bearer " + adminToken)
	var started struct{ ID string }
	if err := json.NewDecoder(resp.Body).Decode(&started); err != nil || resp.StatusCode != http.StatusAccepted || started.ID == "" {
		t.Fatalf("with the token: %s, id %q, %v", resp.Status, started.ID, err)
	}
	// Reading a job's progress needs no token.
	waitUntil(t, 10*time.Second, "the dry run to finish", func() bool {
		resp, err := http.Get(base + "/api/v1/replay/" + started.ID)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var p router.ReplayProgress
		if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&p) != nil {
			t.Fatalf("GET progress: %s", resp.Status)
		}
		return p.State == "done"
	})

	// The command line sends the configured token. On an empty log, a replay ends at once.
	cliCfg := w.writeConfig("cli.hcl", r.Admin, oneRoute)
	res := cli(t, "replay", "-c", cliCfg, "--dry-run")
	if res.code != 0 || res.stdout != "would replay 0 events\n  selected events looked at: 0\n" {
		t.Errorf("dry run with the token: exit %d, stdout %q, stderr: %s", res.code, res.stdout, res.stderr)
	}
	res = cli(t, "replay", "-c", cliCfg)
	if res.code != 0 || res.stdout != "replayed 0 events\n" {
		t.Errorf("replay of an empty log: exit %d, stdout %q, stderr: %s", res.code, res.stdout, res.stderr)
	}
	// And says so when the token is wrong.
	bad := strings.Replace(readFile(t, cliCfg), adminToken, "not-the-token", 1)
	res = cli(t, "replay", "-c", writeFile(t, w.dir, "bad.hcl", bad))
	if res.code != 1 || !strings.Contains(res.stderr, "refused router.admin_token (401)") {
		t.Errorf("wrong token: exit %d, stderr: %s", res.code, res.stderr)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDeadLetterRedriveWhileTheRouterRuns(t *testing.T) {
	w := newWorld(t)
	// As above, nothing is bound to the target yet: both events are dead-lettered at once.
	r := w.startRouter(w.writeConfig("router.hcl", "127.0.0.1:0", oneRoute))
	w.publish("dl.live", ids("l", 2)...)
	r.waitDelivered(t, 2)
	// The router holds the log: every command below works through its admin API, with the
	// token of the configuration.
	cliCfg := w.writeConfig("cli.hcl", r.Admin, oneRoute)

	dls := dlqList(t, "-c", cliCfg, "--route", "all")
	if len(dls) != 2 {
		t.Fatalf("dead letters %+v", dls)
	}
	for i, d := range dls {
		if d.Route != "all" || d.Target != "out" || d.Seq != uint64(i+1) || d.Redriven || !strings.Contains(d.Reason, "NO_ROUTE") {
			t.Errorf("dead letter %+v", d)
		}
	}
	first := strconv.FormatUint(dls[0].ID, 10)

	// Before the fix the redrive fails again, and the dead letter stays pending.
	res := cli(t, "dlq", "replay", "-c", cliCfg, "--id", first)
	if res.code != 1 || res.stdout != "redriven 0 dead letters\n" || !strings.Contains(res.stderr, "1 dead letters were not delivered and stay pending") {
		t.Errorf("redrive before the fix: exit %d, stdout %q, stderr: %s", res.code, res.stdout, res.stderr)
	}
	if got := dlqList(t, "-c", cliCfg); len(got) != 2 {
		t.Errorf("pending after a failed redrive: %+v", got)
	}

	bad := strings.Replace(readFile(t, cliCfg), adminToken, "not-the-token", 1)
	res = cli(t, "dlq", "replay", "-c", writeFile(t, w.dir, "bad.hcl", bad), "--id", first)
	if res.code != 1 || !strings.Contains(res.stderr, "refused router.admin_token (401)") {
		t.Errorf("wrong token: exit %d, stderr: %s", res.code, res.stderr)
	}
	res = cli(t, "dlq", "replay", "-c", cliCfg, "--id", first+",999")
	if res.code != 1 || !strings.Contains(res.stderr, "no dead letter with id [999] to redrive") {
		t.Errorf("unknown id: exit %d, stderr: %s", res.code, res.stderr)
	}

	// The fix: a queue bound to the target. Only the selected dead letter goes out.
	out := w.bind(w.out)
	res = cli(t, "dlq", "replay", "-c", cliCfg, "--id", first)
	if res.code != 0 || res.stdout != "redriven 1 dead letters\n" {
		t.Fatalf("redrive: exit %d, stdout %q, stderr: %s", res.code, res.stdout, res.stderr)
	}
	checkReplayed(t, out.take(1, waitMsgs), []string{"l-1"})
	out.expectNone(w)

	pending := dlqList(t, "-c", cliCfg)
	if len(pending) != 1 || pending[0].ID != dls[1].ID || pending[0].Redriven {
		t.Errorf("pending after the redrive: %+v, want only %d", pending, dls[1].ID)
	}
	all := dlqList(t, "-c", cliCfg, "--all")
	if len(all) != 2 || all[0].ID != dls[0].ID || !all[0].Redriven || all[1].Redriven {
		t.Errorf("dlq list --all: %+v, want %d redriven and %d not", all, dls[0].ID, dls[1].ID)
	}
	// A redriven one is selected again only with --all.
	res = cli(t, "dlq", "replay", "-c", cliCfg, "--id", first)
	if res.code != 1 || !strings.Contains(res.stderr, "no dead letter with id ["+first+"] to redrive (redriven ones need --all)") {
		t.Errorf("redriven id without --all: exit %d, stderr: %s", res.code, res.stderr)
	}
}
