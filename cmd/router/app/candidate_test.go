package app

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wasmrouter/wasmrouter/internal/admin"
)

// TestCandidateConfigurationIsConfined: over the admin API, a candidate configuration is read
// only with a token set and only from under the running configuration's directory, so that
// POST /api/v1/replay cannot make the router read /etc/shadow or /dev/zero.
func TestCandidateConfigurationIsConfined(t *testing.T) {
	dir := t.TempDir()
	inside := filepath.Join(dir, "candidate.hcl")
	if err := os.WriteFile(inside, []byte("# empty\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(t.TempDir(), "secret.hcl")
	if err := os.WriteFile(outside, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.hcl")
	if err := os.Symlink(outside, link); err != nil {
		t.Fatal(err)
	}
	withToken := replayAPI{tokenSet: true, dir: dir}
	for _, path := range []string{inside, "candidate.hcl"} {
		if _, err := withToken.candidatePath(path); err != nil {
			t.Errorf("%s: %v", path, err)
		}
	}
	for _, path := range []string{outside, "/etc/passwd", "/dev/zero", "../" + filepath.Base(outside), link} {
		if _, err := withToken.candidatePath(path); err == nil {
			t.Errorf("%s was accepted", path)
		}
	}
	noToken := replayAPI{dir: dir}
	if _, err := noToken.candidatePath(inside); err == nil || !strings.Contains(err.Error(), "admin_token") {
		t.Errorf("without a token: %v", err)
	}
	_, err := noToken.StartReplay(t.Context(), []byte(`{"dry_run":true,"with_config":"/etc/passwd"}`))
	if !errors.Is(err, admin.ErrBadRequest) {
		t.Errorf("StartReplay without a token: %v, want a bad request", err)
	}
}
