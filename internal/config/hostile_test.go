package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDiagnosticsNeverQuoteWhatWasRead feeds values from file() and env() to attributes that
// refuse them: the diagnostic says what is wrong without quoting what was read, whatever the
// attribute and however the value was transformed on the way.
func TestDiagnosticsNeverQuoteWhatWasRead(t *testing.T) {
	dir := t.TempDir()
	const secret = "root:$6$c0nfidential$hash:19000:0:99999:7:::\nsecond line of the file"
	if err := os.WriteFile(filepath.Join(dir, "shadow"), []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	env := func(name string) (string, bool) {
		if name == "SECRET" {
			return "s3cr3t-from-the-environment", true
		}
		return "", false
	}
	cases := map[string]string{
		"log_level from file":     `router { log_level = file("shadow") }`,
		"log_level from env":      `router { log_level = env("SECRET") }`,
		"log_format upper(file)":  `router { log_format = upper(file("shadow")) }`,
		"admin_addr from file":    `router { admin_addr = file("shadow") }`,
		"size from env":           `router { max_message_size = env("SECRET") }`,
		"duration from file":      `store { retention = file("shadow") }`,
		"number from file":        `store { max_size = tonumber(file("shadow")) }`,
		"on_full interpolated":    `store { on_full = "x${env("SECRET")}y" }`,
		"prefetch from env":       `source "in" { prefetch = env("SECRET") }`,
		"binding list from file":  `source "in" { bindings = [file("shadow")] }`,
		"module config from file": `module "m" { config = { k = jsondecode(file("shadow")) } }`,
	}
	for name, src := range cases {
		t.Run(name, func(t *testing.T) {
			_, diags := LoadBytes([]byte(src), filepath.Join(dir, "router.hcl"), env)
			if !diags.HasErrors() {
				t.Fatalf("no error for %s", src)
			}
			text := formatted(diags)
			for _, leak := range []string{"c0nfidential", "second line", "s3cr3t", "root:"} {
				if strings.Contains(text, leak) {
					t.Errorf("a diagnostic quotes what was read (%q):\n%s", leak, text)
				}
			}
		})
	}
}

// TestLongValuesAreShortened: a long literal is cut in the diagnostic, not quoted whole.
func TestLongValuesAreShortened(t *testing.T) {
	long := strings.Repeat("x", 5000)
	_, diags := LoadBytes([]byte(`router { log_level = "`+long+`" }`), "router.hcl", noEnv)
	text := formatted(diags)
	if !diags.HasErrors() || strings.Contains(text, strings.Repeat("x", 200)) || !strings.Contains(text, "5000 bytes") {
		t.Errorf("want a shortened value with its length:\n%s", text)
	}
}

// TestConfigurationReadsAreBounded: a configuration that is not a regular file, or too big,
// is refused without reading it all, here and in file().
func TestConfigurationReadsAreBounded(t *testing.T) {
	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skip("no /dev/zero")
	}
	_, diags := Load("/dev/zero", noEnv)
	if !diags.HasErrors() || !strings.Contains(formatted(diags), "not a regular file") {
		t.Errorf("Load(/dev/zero) = %s", formatted(diags))
	}
	_, diags = LoadBytes([]byte(`router { log_level = file("/dev/zero") }`), "router.hcl", noEnv)
	if !diags.HasErrors() || !strings.Contains(formatted(diags), "not a regular file") {
		t.Errorf("file(/dev/zero) = %s", formatted(diags))
	}
	big := filepath.Join(t.TempDir(), "big.hcl")
	if err := os.WriteFile(big, make([]byte, maxSourceSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	_, diags = Load(big, noEnv)
	if !diags.HasErrors() || !strings.Contains(formatted(diags), "larger than") {
		t.Errorf("Load(big) = %s", formatted(diags))
	}
}

func noEnv(string) (string, bool) { return "", false }
