package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/cmd/router/app"
	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
)

func postReload(t *testing.T, admin, token, body string) (int, app.ReloadAnswer) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+admin+"/api/v1/reload", bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ans app.ReloadAnswer
	_ = json.NewDecoder(resp.Body).Decode(&ans)
	return resp.StatusCode, ans
}

// POST /api/v1/reload: the token, a dry run with the what-if over the log's history, then the
// reload itself; GET /api/v1/config keeps the history.
func TestReloadAdminAPIWhatIf(t *testing.T) {
	rabbit.SkipIfShort(t)
	w := newReloadWorld(t)
	token := "reload-secret"
	w.base = "router {\n  admin_token = " + hclString(token) + "\n}\n" + w.base
	one := "route \"all\" {\n  source  = \"in\"\n  match   = [\"order.*\"]\n  targets = [\"t1\"]\n}\n"
	w.write(t, one)
	r := startRouter(t, w.path)
	orders, orderIDs := numbered("o", "order.x", 30)
	others, _ := numbered("p", "payment.y", 20)
	mustPublish(t, w.srcX, append(orders, others...)...)
	w.collectors["t1"].waitIDs(t, "t1", orderIDs, 30*time.Second)

	// The candidate: payments newly routed to t2.
	w.write(t, one+"route \"payments\" {\n  source  = \"in\"\n  match   = [\"payment.*\"]\n  targets = [\"t2\"]\n}\n")
	if code, _ := postReload(t, r.Admin, "", `{"dry_run": true}`); code != http.StatusUnauthorized {
		t.Errorf("reload without the token: %d, want 401", code)
	}
	code, ans := postReload(t, r.Admin, token, `{"dry_run": true, "history": "1h"}`)
	if code != 200 || ans.Applied || !ans.DryRun || ans.Generation != 2 || ans.WhatIf == nil || ans.WhatIf.Diff == nil {
		t.Fatalf("dry run: %d %+v", code, ans)
	}
	if d := ans.WhatIf.Diff; d.NewlyRouted != 20 || d.NoLongerRouted != 0 {
		t.Errorf("what-if: newly routed %d, no longer routed %d; want 20 and 0", d.NewlyRouted, d.NoLongerRouted)
	}
	if len(ans.Changes) != 1 || ans.Changes[0].String() != `+ route "payments"` {
		t.Errorf("changes %v", ans.Changes)
	}
	if st := r.Engine.Status(); st.Generation != 1 || len(st.Routes) != 1 {
		t.Fatalf("a dry run changed the router: generation %d, routes %v", st.Generation, st.Routes)
	}
	if code, _ := postReload(t, r.Admin, token, `{"history": "yesterday"}`); code != http.StatusBadRequest {
		t.Errorf("a bad history: %d, want 400", code)
	}

	code, ans = postReload(t, r.Admin, token, `{}`)
	if code != 200 || !ans.Applied || ans.Generation != 2 {
		t.Fatalf("reload: %d %+v", code, ans)
	}
	// The new route starts at the end of the log: only what comes now.
	later, laterIDs := numbered("q", "payment.y", 10)
	mustPublish(t, w.srcX, later...)
	t2 := w.collectors["t2"]
	t2.waitIDs(t, "t2 after the reload", laterIDs, 30*time.Second)
	for _, m := range t2.messages() {
		if strings.HasPrefix(m.MessageId, "p-") {
			t.Fatalf("the new route received history from before the reload: %s", m.MessageId)
		}
	}

	info := getConfigInfo(t, r.Admin)
	if info.Generation != 2 || info.File != w.path || len(info.Hash) != 64 || len(info.Reloads) != 2 {
		t.Errorf("GET /api/v1/config: %+v", info)
	}
	var results []string
	for _, rec := range info.Reloads {
		results = append(results, rec.Trigger+" "+rec.Result)
	}
	if strings.Join(results, ", ") != "api dry_run, api applied" {
		t.Errorf("history: %v", results)
	}
}
