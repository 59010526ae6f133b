package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

type fakeEngine struct {
	ready  bool
	reason string
}

func (f fakeEngine) StatusJSON() (bool, string, []string, any) {
	return f.ready, f.reason, nil, map[string]any{"ready": f.ready}
}

type fakeReplayer struct{ started, stopped int }

func (f *fakeReplayer) StartReplay(context.Context, []byte) (string, error) {
	f.started++
	return "job-1", nil
}
func (f *fakeReplayer) ReplayStatus(id string) (any, bool) {
	return map[string]string{"id": id}, id == "job-1"
}
func (f *fakeReplayer) StopReplay(id string) bool {
	f.stopped++
	return id == "job-1"
}

func newTestServer(t *testing.T, token string, e Engine, r Replayer) *httptest.Server {
	t.Helper()
	return newTestServerWith(t, Options{Token: token, Engine: e, Replayer: r})
}

func newTestServerWith(t *testing.T, opts Options) *httptest.Server {
	t.Helper()
	opts.Gatherer = prometheus.NewRegistry()
	s := &Server{opts: opts}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv
}

func do(t *testing.T, method, url, token, body string) int {
	t.Helper()
	resp := request(t, context.Background(), method, url, token, body)
	resp.Body.Close()
	return resp.StatusCode
}

// request sends a request under ctx with token as its bearer (none if empty); the caller
// closes the response's body.
func request(t *testing.T, ctx context.Context, method, url, token, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
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
	return resp
}

func TestMutatingCallsNeedTheToken(t *testing.T) {
	rep := &fakeReplayer{}
	srv := newTestServer(t, "s3cret", fakeEngine{ready: true}, rep)
	for _, tc := range []struct {
		method, path, token string
		want                int
	}{
		{"POST", "/api/v1/replay", "", http.StatusUnauthorized},
		{"POST", "/api/v1/replay", "wrong", http.StatusUnauthorized},
		{"POST", "/api/v1/replay", "s3cret", http.StatusAccepted},
		{"DELETE", "/api/v1/replay/job-1", "", http.StatusUnauthorized},
		{"DELETE", "/api/v1/replay/job-1", "s3cret", http.StatusAccepted},
		{"DELETE", "/api/v1/replay/nope", "s3cret", http.StatusNotFound},
		{"GET", "/api/v1/replay/job-1", "", http.StatusOK},
		{"GET", "/api/v1/replay/nope", "", http.StatusNotFound},
		{"GET", "/healthz", "", http.StatusOK},
		{"GET", "/readyz", "", http.StatusOK},
		{"GET", "/api/v1/status", "", http.StatusOK},
		{"GET", "/metrics", "", http.StatusOK},
	} {
		if got := do(t, tc.method, srv.URL+tc.path, tc.token, "{}"); got != tc.want {
			t.Errorf("%s %s token=%q: %d, want %d", tc.method, tc.path, tc.token, got, tc.want)
		}
	}
	if rep.started != 1 {
		t.Errorf("%d replays started, want only the authorised one", rep.started)
	}
}

func TestRequestBodiesAreLimited(t *testing.T) {
	srv := newTestServer(t, "", fakeEngine{ready: true}, &fakeReplayer{})
	big := strings.Repeat("x", MaxBodyBytes+1)
	if got := do(t, "POST", srv.URL+"/api/v1/replay", "", big); got != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized body: %d", got)
	}
}

func TestReadinessFollowsTheEngine(t *testing.T) {
	srv := newTestServer(t, "", fakeEngine{ready: false, reason: "source in is not consuming"}, nil)
	if got := do(t, "GET", srv.URL+"/readyz", "", ""); got != http.StatusServiceUnavailable {
		t.Fatalf("readyz %d, want 503", got)
	}
	if got := do(t, "POST", srv.URL+"/api/v1/replay", "", "{}"); got != http.StatusNotImplemented {
		t.Fatalf("replay without a replayer: %d", got)
	}
}

func TestCheckAddr(t *testing.T) {
	for _, tc := range []struct {
		addr, token string
		ok          bool
	}{
		{"127.0.0.1:9464", "", true},
		{"[::1]:9464", "", true},
		{"localhost:9464", "", true},
		{"LOCALHOST:9464", "", true}, // as the configuration check accepts it
		{"0.0.0.0:9464", "", false},
		{":9464", "", false},
		{"10.1.2.3:9464", "", false},
		{"0.0.0.0:9464", "t", true},
		{"nonsense", "", false},
	} {
		if err := CheckAddr(tc.addr, tc.token); (err == nil) != tc.ok {
			t.Errorf("CheckAddr(%q, token=%q) = %v", tc.addr, tc.token, err)
		}
	}
}

// fakeDeadLetters selects dead letters 1 and 3 of route "orders"; route "none" selects nothing,
// and a request without ids or route is the caller's mistake.
type fakeDeadLetters struct {
	mu       sync.Mutex
	queries  []url.Values
	redrives int
}

type fakeRecord struct {
	ID       uint64 `json:"id"`
	Route    string `json:"route"`
	Redriven bool   `json:"redriven"`
}

func (f *fakeDeadLetters) ListDeadLetters(q url.Values) (any, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries = append(f.queries, q)
	if q.Has("bogus") {
		return nil, fmt.Errorf("%w: unknown parameter %q", ErrBadRequest, "bogus")
	}
	if q.Get("route") == "none" {
		return []fakeRecord{}, nil
	}
	return []fakeRecord{{ID: 1, Route: "orders"}, {ID: 3, Route: "orders", Redriven: true}}, nil
}

func (f *fakeDeadLetters) RedriveDeadLetters(_ context.Context, body []byte) (string, []uint64, error) {
	var req struct {
		IDs   []uint64 `json:"ids"`
		Route string   `json:"route"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return "", nil, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	switch {
	case len(req.IDs) == 0 && req.Route == "":
		return "", nil, fmt.Errorf("%w: select dead letters by id or by route", ErrBadRequest)
	case req.Route == "broken":
		return "", nil, errors.New("store: closed")
	case req.Route == "none":
		return "", nil, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.redrives++
	return "job-2", []uint64{1, 3}, nil
}

func (f *fakeDeadLetters) started() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.redrives
}

// call makes a request and returns its status and JSON answer.
func call(t *testing.T, method, url, token, body string, answer any) int {
	t.Helper()
	resp := request(t, context.Background(), method, url, token, body)
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q", method, url, ct)
	}
	if err := json.NewDecoder(resp.Body).Decode(answer); err != nil {
		t.Fatalf("%s %s: %s: %v", method, url, resp.Status, err)
	}
	return resp.StatusCode
}

func TestRedriveNeedsTheToken(t *testing.T) {
	dl := &fakeDeadLetters{}
	srv := newTestServerWith(t, Options{Token: "s3cret", Engine: fakeEngine{ready: true}, DeadLetters: dl})
	const body = `{"ids":[1,3]}`
	for _, token := range []string{"", "wrong"} {
		var answer map[string]any
		if code := call(t, "POST", srv.URL+"/api/v1/dlq/replay", token, body, &answer); code != http.StatusUnauthorized {
			t.Errorf("token %q: %d, want 401", token, code)
		}
	}
	if n := dl.started(); n != 0 {
		t.Fatalf("%d redrives started without the token", n)
	}
	var started struct {
		ID  string   `json:"id"`
		IDs []uint64 `json:"ids"`
	}
	if code := call(t, "POST", srv.URL+"/api/v1/dlq/replay", "s3cret", body, &started); code != http.StatusAccepted ||
		started.ID != "job-2" || !slices.Equal(started.IDs, []uint64{1, 3}) {
		t.Errorf("with the token: %d %+v, want 202 with job-2 and ids [1 3]", code, started)
	}
	if n := dl.started(); n != 1 {
		t.Errorf("%d redrives started, want 1", n)
	}
	// The list names events: it is a content endpoint, and needs the token too.
	var refused map[string]any
	if code := call(t, "GET", srv.URL+"/api/v1/dlq", "", "", &refused); code != http.StatusUnauthorized {
		t.Errorf("list without a token: %d, want 401", code)
	}
	var list []fakeRecord
	if code := call(t, "GET", srv.URL+"/api/v1/dlq", "s3cret", "", &list); code != http.StatusOK || len(list) != 2 {
		t.Errorf("list with the token: %d %+v", code, list)
	}
}

func TestRedriveAnswers(t *testing.T) {
	srv := newTestServerWith(t, Options{Engine: fakeEngine{ready: true}, DeadLetters: &fakeDeadLetters{}})
	for _, tc := range []struct {
		body  string
		want  int
		error string // in the answer's "error"
	}{
		{`{}`, http.StatusBadRequest, "bad request: select dead letters by id or by route"},
		{`{"ids":"1"}`, http.StatusBadRequest, "bad request: json: cannot unmarshal"},
		{`{"route":"broken"}`, http.StatusInternalServerError, "store: closed"},
	} {
		var answer map[string]any
		code := call(t, "POST", srv.URL+"/api/v1/dlq/replay", "", tc.body, &answer)
		if msg, _ := answer["error"].(string); code != tc.want || !strings.HasPrefix(msg, tc.error) {
			t.Errorf("%s: %d %v, want %d with error %q", tc.body, code, answer, tc.want, tc.error)
		}
	}
	// Nothing selected: no job, and an empty list rather than none.
	var answer map[string]any
	code := call(t, "POST", srv.URL+"/api/v1/dlq/replay", "", `{"route":"none"}`, &answer)
	if ids, ok := answer["ids"].([]any); code != http.StatusOK || !ok || len(ids) != 0 || answer["id"] != nil {
		t.Errorf("empty selection: %d %v, want 200 {\"ids\":[]}", code, answer)
	}
}

func TestListDeadLetters(t *testing.T) {
	dl := &fakeDeadLetters{}
	srv := newTestServerWith(t, Options{Engine: fakeEngine{ready: true}, DeadLetters: dl})
	var list []map[string]any
	code := call(t, "GET", srv.URL+"/api/v1/dlq?route=orders&since=15m&all=true&ids=1,3&limit=5", "", "", &list)
	want := []map[string]any{
		{"id": float64(1), "route": "orders", "redriven": false},
		{"id": float64(3), "route": "orders", "redriven": true},
	}
	if code != http.StatusOK || fmt.Sprint(list) != fmt.Sprint(want) {
		t.Errorf("list: %d %v, want 200 %v", code, list, want)
	}
	dl.mu.Lock()
	q := dl.queries[0]
	dl.mu.Unlock()
	if q.Get("route") != "orders" || q.Get("since") != "15m" || q.Get("all") != "true" || q.Get("ids") != "1,3" || q.Get("limit") != "5" {
		t.Errorf("query handed on: %v", q)
	}
	// An empty selection is an empty array, not null.
	var raw json.RawMessage
	if code := call(t, "GET", srv.URL+"/api/v1/dlq?route=none", "", "", &raw); code != http.StatusOK || string(raw) != "[]" {
		t.Errorf("empty list: %d %s", code, raw)
	}
	var answer map[string]string
	if code := call(t, "GET", srv.URL+"/api/v1/dlq?bogus=1", "", "", &answer); code != http.StatusBadRequest || !strings.Contains(answer["error"], "bogus") {
		t.Errorf("bad query: %d %v", code, answer)
	}

	none := newTestServerWith(t, Options{Engine: fakeEngine{ready: true}})
	if code := call(t, "GET", none.URL+"/api/v1/dlq", "", "", &answer); code != http.StatusNotImplemented {
		t.Errorf("list without a backend: %d", code)
	}
	if code := call(t, "POST", none.URL+"/api/v1/dlq/replay", "", `{"ids":[1]}`, &answer); code != http.StatusNotImplemented {
		t.Errorf("redrive without a backend: %d", code)
	}
}
