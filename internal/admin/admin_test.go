package admin

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

type fakeEngine struct {
	ready  bool
	reason string
}

func (f fakeEngine) StatusJSON() (bool, string, any) {
	return f.ready, f.reason, map[string]any{"ready": f.ready}
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
	s := &Server{opts: Options{Token: token, Gatherer: prometheus.NewRegistry(), Engine: e, Replayer: r}}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv
}

func do(t *testing.T, method, url, token, body string) int {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
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
