package config

import (
	"io"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad checks that any input gives diagnostics, each with a position, and never a panic.
func FuzzLoad(f *testing.F) {
	paths, _ := filepath.Glob("testdata/*.hcl")
	for _, path := range paths {
		src, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(src)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		// The name places file() under testdata, where the seeds' files are.
		cfg, diags := LoadBytes(src, "testdata/fuzz.hcl", fixtureEnv)
		for _, diag := range diags {
			if diag.Subject == nil {
				t.Fatalf("diagnostic without a position: %s", diag.Error())
			}
		}
		if cfg == nil && !diags.HasErrors() {
			t.Fatal("neither a Config nor an error")
		}
		FormatDiagnostics(io.Discard, diags)
		if cfg != nil {
			_ = cfg.Summary()
		}
	})
}
