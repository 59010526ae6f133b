package bench

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCallgrindTotal(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, text string
		want       int64
		ok         bool
	}{
		{"summary", "version: 1\nevents: Ir\nfn=main\n1 5\nsummary: 123456\n", 123456, true},
		{"totals", "events: Ir\ntotals: 987\n", 987, true},
		{"none", "events: Ir\nfn=main\n1 5\n", 0, false},
	} {
		path := filepath.Join(dir, tc.name)
		if err := os.WriteFile(path, []byte(tc.text), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := callgrindTotal(path)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("%s: got %d, %v; want %d (ok %v)", tc.name, got, err, tc.want, tc.ok)
		}
	}
}
