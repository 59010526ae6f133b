package admin

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
)

func get(t *testing.T, url, token string) (int, string) {
	t.Helper()
	resp := request(t, context.Background(), "GET", url, token, "")
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestProfilesNeedTheTokenWhenOneIsSet(t *testing.T) {
	srv := newTestServer(t, "s3cret", fakeEngine{ready: true}, nil)
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/goroutine?debug=1",
		"/debug/pprof/cmdline", "/debug/pprof/profile?seconds=1", "/debug/pprof/trace?seconds=1", "/debug/pprof/symbol"} {
		if code, _ := get(t, srv.URL+path, ""); code != http.StatusUnauthorized {
			t.Errorf("GET %s without the token: %d, want 401", path, code)
		}
		if code, _ := get(t, srv.URL+path, "wrong"); code != http.StatusUnauthorized {
			t.Errorf("GET %s with a wrong token: %d, want 401", path, code)
		}
	}
	code, body := get(t, srv.URL+"/debug/pprof/goroutine?debug=1", "s3cret")
	if code != http.StatusOK || !strings.Contains(body, "goroutine profile:") {
		t.Fatalf("goroutine profile with the token: %d %.200q", code, body)
	}
	// The symbol lookup pprof's tools do is a POST of addresses: it is guarded too.
	if code := do(t, "POST", srv.URL+"/debug/pprof/symbol", "", "0x1"); code != http.StatusUnauthorized {
		t.Fatalf("POST symbol without the token: %d, want 401", code)
	}
}

func TestProfilesAreOpenWithoutAToken(t *testing.T) {
	srv := newTestServer(t, "", fakeEngine{ready: true}, nil)
	code, body := get(t, srv.URL+"/debug/pprof/", "")
	if code != http.StatusOK || !strings.Contains(body, "heap") {
		t.Fatalf("index: %d %.200q", code, body)
	}
	code, body = get(t, srv.URL+"/debug/pprof/heap", "")
	// A binary, gzipped protobuf profile: its gzip magic is enough to know it is one.
	if code != http.StatusOK || !strings.HasPrefix(body, "\x1f\x8b") {
		t.Fatalf("heap profile: %d %.40q", code, body)
	}
	code, body = get(t, srv.URL+"/debug/pprof/profile?seconds=1", "")
	if code != http.StatusOK || !strings.HasPrefix(body, "\x1f\x8b") {
		t.Fatalf("CPU profile: %d %.40q", code, body)
	}
	if code := do(t, "POST", srv.URL+"/debug/pprof/symbol", "", "0x1"); code != http.StatusOK {
		t.Fatalf("POST symbol: %d", code)
	}
}
