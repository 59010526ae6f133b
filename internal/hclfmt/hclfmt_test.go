package hclfmt

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every testdata/NAME.in.hcl formats to testdata/NAME.golden.hcl.
func TestFormatGolden(t *testing.T) {
	ins, err := filepath.Glob("testdata/*.in.hcl")
	if err != nil || len(ins) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, in := range ins {
		t.Run(filepath.Base(in), func(t *testing.T) {
			src, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(strings.TrimSuffix(in, ".in.hcl") + ".golden.hcl")
			if err != nil {
				t.Fatal(err)
			}
			got, diags := Format(src, in)
			if diags.HasErrors() {
				t.Fatalf("diagnostics: %v", diags)
			}
			if string(got) != string(want) {
				t.Errorf("formatted differently from the golden file:\n%s", Diff("golden", "got", want, got))
			}
		})
	}
}

// Formatting twice gives what formatting once gives, for the golden outputs and the inputs,
// and for the repository's own configurations.
func TestFormatIdempotent(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.hcl")
	more, _ := filepath.Glob("../../*.hcl")
	valid, _ := filepath.Glob("../config/testdata/valid_*.hcl")
	more = append(more, valid...)
	files = append(files, more...)
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		once, diags := Format(src, f)
		if diags.HasErrors() {
			t.Fatalf("%s: %v", f, diags)
		}
		twice, _ := Format(once, f)
		if string(once) != string(twice) {
			t.Errorf("%s: fmt twice differs from fmt once:\n%s", f, Diff("once", "twice", once, twice))
		}
	}
}

func TestFormatKeepsComments(t *testing.T) {
	src := []byte("# head\nroute \"r\" {   # after the label\n  // inside\n  source=\"s\" /* inline */\n}\n")
	got, diags := Format(src, "c.hcl")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	for _, c := range []string{"# head", "# after the label", "// inside", "/* inline */"} {
		if !strings.Contains(string(got), c) {
			t.Errorf("comment %q lost:\n%s", c, got)
		}
	}
}

func TestFormatRefusesBrokenFile(t *testing.T) {
	_, diags := Format([]byte("route \"r\" {\n  source = \n"), "broken.hcl")
	if !diags.HasErrors() {
		t.Fatal("a broken file formatted without diagnostics")
	}
	if r := diags[0].Subject; r == nil || r.Filename != "broken.hcl" || r.Start.Line < 2 {
		t.Errorf("diagnostic without a useful position: %v", diags[0])
	}
}

func TestDiff(t *testing.T) {
	a := []byte("one\ntwo\nthree\nfour\nfive\nsix\nseven\neight\nnine\nten\neleven\ntwelve\n")
	b := []byte("one\nTWO\nthree\nfour\nfive\nsix\nseven\neight\nnine\nten\neleven\ntwelve\nthirteen\n")
	want := `--- a
+++ b
@@ -1,5 +1,5 @@
 one
-two
+TWO
 three
 four
 five
@@ -10,3 +10,4 @@
 ten
 eleven
 twelve
+thirteen
`
	if got := Diff("a", "b", a, b); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if got := Diff("a", "b", a, a); got != "" {
		t.Errorf("equal inputs gave a diff: %q", got)
	}
}
