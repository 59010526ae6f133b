package config

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

var update = flag.Bool("update", false, "rewrite the testdata/*.golden files")

// secretMarker is part of every password and token in testdata and fixtureEnv, so that a test
// can tell whether one leaked.
const secretMarker = "hunter2"

// fixtureEnv is the environment every fixture is loaded with.
func fixtureEnv(name string) (string, bool) {
	value, ok := map[string]string{
		"AMQP_URL":   "amqp://router:hunter2-env@rabbit.example:5672/prod",
		"ADMIN_ADDR": "0.0.0.0:9464",
	}[name]
	return value, ok
}

func formatted(diags hcl.Diagnostics) string {
	var out bytes.Buffer
	FormatDiagnostics(&out, diags)
	return out.String()
}

var diagnosticLine = regexp.MustCompile(`^testdata/[a-z_]+\.hcl:[0-9]+:[0-9]+: (error|warning): \S`)

// TestDiagnosticFixtures loads each invalid_* and warnings_* fixture and compares the
// diagnostics with its .golden file; -update rewrites them.
func TestDiagnosticFixtures(t *testing.T) {
	invalid, _ := filepath.Glob("testdata/invalid_*.hcl")
	warnings, _ := filepath.Glob("testdata/warnings_*.hcl")
	if len(invalid) < 15 || len(warnings) == 0 {
		t.Fatalf("found %d invalid and %d warnings fixtures", len(invalid), len(warnings))
	}
	for _, path := range append(invalid, warnings...) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			cfg, diags := Load(path, fixtureEnv)
			got := formatted(diags)
			for _, line := range strings.Split(strings.TrimSuffix(got, "\n"), "\n") {
				if !diagnosticLine.MatchString(line) {
					t.Errorf("not FILE:LINE:COL: severity: message: %q", line)
				}
			}
			if strings.HasPrefix(filepath.Base(path), "invalid_") != diags.HasErrors() {
				t.Errorf("HasErrors() = %v for %s", diags.HasErrors(), path)
			}
			if !diags.HasErrors() && cfg == nil {
				t.Error("no Config for a file without errors")
			}
			golden := strings.TrimSuffix(path, ".hcl") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("diagnostics differ from %s\n--- got\n%s--- want\n%s", golden, got, want)
			}
		})
	}
}

// TestNoCredentialInDiagnostics loads every fixture and checks that no password or token
// reaches any form of its diagnostics.
func TestNoCredentialInDiagnostics(t *testing.T) {
	paths, _ := filepath.Glob("testdata/*.hcl")
	withSecrets := 0
	for _, path := range paths {
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(src, []byte(secretMarker)) {
			withSecrets++
		}
		_, diags := Load(path, fixtureEnv)
		assertNoSecret(t, path, diags)
	}
	if withSecrets < 5 {
		t.Fatalf("only %d fixtures hold a %q credential; the test would prove little", withSecrets, secretMarker)
	}
}

func assertNoSecret(t *testing.T, name string, diags hcl.Diagnostics) {
	t.Helper()
	if out := formatted(diags); strings.Contains(out, secretMarker) {
		t.Errorf("%s: FormatDiagnostics shows a credential:\n%s", name, out)
	}
	for _, diag := range diags {
		if strings.Contains(diag.Error(), secretMarker) {
			t.Errorf("%s: Diagnostic.Error() shows a credential: %s", name, diag.Error())
		}
	}
}

// TestURLErrorsHidePassword feeds broken URLs of every kind through a cluster block.
func TestURLErrorsHidePassword(t *testing.T) {
	urls := []string{
		"http://user:hunter2-a@host/",
		"amqp://user:hunter2-b@host:port/",
		"amqp://user:hunter2-c@host:99999999999/",
		"amqp://user:hunter2 d@host/",
		"amqp://user:hunter2%zz@host/",
		"amqp://user:hunter2-e@[::1/",
		"user:hunter2-f@host",
		"amqp:user:hunter2-g@host",
		"amqp//user:hunter2-h@host",
		"amqp://user:hunter2-i@host/?heartbeat=x",
		"amqp://user:hunter2-j@host/?connection_timeout=x",
		"amqp://user:hunter2-k@host/?channel_max=x",
		"\x00amqp://user:hunter2-n@host/",
		"amqp://user:hunter2-o@host/\n",
	}
	for _, url := range urls {
		src := "cluster \"c\" {\n  url = " + quoteHCL(url) + "\n}\n"
		_, diags := LoadBytes([]byte(src), "test.hcl", fixtureEnv)
		if !diags.HasErrors() {
			t.Errorf("%q: no error", url)
		}
		assertNoSecret(t, url, diags)
	}
}

// quoteHCL writes s as an HCL string literal (s holds no "${" or "%{").
func quoteHCL(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteString(`\` + string(r))
		case r < 0x20:
			b.WriteString(`\u00`)
			b.WriteString("0123456789abcdef"[r>>4 : r>>4+1])
			b.WriteString("0123456789abcdef"[r&15 : r&15+1])
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
