package e2e

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
)

// configDir writes a router.hcl with text into a fresh directory and returns the directory.
func configDir(t *testing.T, text string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "router.hcl"), []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestValidateRefusesWhatRunRefuses: each configuration here is one that run would refuse
// before connecting; validate must say so, at the attribute, and write nothing.
func TestValidateRefusesWhatRunRefuses(t *testing.T) {
	cases := map[string]struct{ config, want string }{
		"port out of range": {
			strings.Replace(goodConfig, "127.0.0.1:5672", "127.0.0.1:99999", 1),
			"router.hcl:2:9: error: Invalid URL",
		},
		"unreadable ca_file": {
			strings.Replace(goodConfig, `url = "amqp://guest:guest@127.0.0.1:5672/"`,
				"url = \"amqps://guest:guest@127.0.0.1:5671/\"\n  tls { ca_file = \"missing-ca.pem\" }", 1),
			"ca_file",
		},
		"store under a file": {
			goodConfig + "store {\n  path = \"router.hcl/data/router.db\"\n}\n",
			"store.path",
		},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			dir := configDir(t, c.config)
			code, stdout, stderr := runCLI(t, dir, "validate", "-c", "router.hcl")
			if code != 1 || !strings.Contains(stderr, c.want) {
				t.Fatalf("validate exited %d, want 1 with %q\nstdout: %s\nstderr: %s", code, c.want, stdout, stderr)
			}
		})
	}
}

// TestValidateWritesNothing: validate compiles modules in memory and creates no store
// directory, no compilation cache.
func TestValidateWritesNothing(t *testing.T) {
	wasm := wasmRepoFile(t, "examples/wasm/keyfilter/keyfilter.wasm")
	dir := configDir(t, goodConfig+`module "m" {
  path   = "`+wasm+`"
  config = { prefix = "order." }
}
route "filtered" {
  source  = "in"
  filters = ["m"]
  targets = ["out"]
}
store {
  path      = "data/router.db"
  retention = "7d"
}
`)
	code, stdout, stderr := runCLI(t, dir, "validate", "--config", "router.hcl")
	if code != 0 {
		t.Fatalf("validate exited %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("validate left %v in the config's directory, want only router.hcl", names)
	}
}

// TestValidateConnect checks the broker: the right credentials pass, a wrong password fails
// naming the cluster's url attribute, without the password.
func TestValidateConnect(t *testing.T) {
	good := strings.Replace(goodConfig, "amqp://guest:guest@127.0.0.1:5672/", rabbit.URL(), 1)
	code, stdout, stderr := runCLI(t, configDir(t, good), "validate", "-c", "router.hcl", "--connect")
	if code != 0 || !strings.Contains(stdout, "cluster main: connected") {
		t.Fatalf("validate --connect exited %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	u, err := url.Parse(rabbit.URL())
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), "wrong-secret-password")
	bad := strings.Replace(goodConfig, "amqp://guest:guest@127.0.0.1:5672/", u.String(), 1)
	code, stdout, stderr = runCLI(t, configDir(t, bad), "validate", "-c", "router.hcl", "--connect")
	if code != 1 || !strings.Contains(stderr, "router.hcl:2:9: error: cluster.main.url") || !strings.Contains(stderr, "password") {
		t.Fatalf("validate --connect with a wrong password exited %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if strings.Contains(stderr, "wrong-secret-password") {
		t.Errorf("the password appears in the output:\n%s", stderr)
	}
}
