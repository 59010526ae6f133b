package main

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"text/template"

	"github.com/hashicorp/hcl/v2/hclwrite"

	"github.com/wasmrouter/wasmrouter/guest"
)

func cmdGuest(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return dispatch(ctx, "guest", []command{
		{"new", "scaffold a guest in Go, C or AssemblyScript that builds and passes its test", cmdGuestNew},
		{"run", "run one guest on one event, offline, and print what it did", cmdGuestRun},
	}, args, stdout, stderr)
}

// scaffolds holds the templates of `router guest new`, one directory per language.
//
//go:embed scaffold
var scaffolds embed.FS

const guestNewHelp = `
Writes a new guest into DIR (default: ./NAME): source with the entry point of the role, a
build file that works outside this repository (the SDK is written next to the source), and a
router.hcl whose test blocks pass as generated. Then:

  cd NAME && make && make test     (make test runs router test -c router.hcl)

go: a Go module (Go 1.24 or newer) with the SDK in wr/ (a replace directive points at it), the
entry point in main.go (//go:build wasip1) and the logic in NAME.go with unit tests for go test.
c: NAME.c and wasmrouter.h (clang with wasi-libc). as: an AssemblyScript project whose
package.json takes the compiler from npm (npm install runs on the first make).`

// guestName is what NAME may be: it names the directory, the module, the .wasm file and the
// module block.
var guestName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,63}$`)

func cmdGuestNew(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("guest new", "go|c|as NAME [--role filter|transform|handler] [DIR]", stdout, stderr)
	describe(fs, "guest new", "go|c|as NAME [--role filter|transform|handler] [DIR]", guestNewHelp)
	role := fs.String("role", "filter", "the guest's `ROLE`: filter, transform or handler")
	pos, code := parseInterleaved(fs, args, stdout)
	if code >= 0 {
		return code
	}
	if len(pos) < 2 || len(pos) > 3 {
		return usageError(fs, stderr, "want a language (go, c or as), a NAME and optionally a DIR")
	}
	lang, name := pos[0], pos[1]
	if lang != "go" && lang != "c" && lang != "as" {
		return usageError(fs, stderr, "unknown language %q: go, c or as", lang)
	}
	if !guestName.MatchString(name) {
		return usageError(fs, stderr, "NAME %q must start with a letter and hold only letters, digits, - and _", name)
	}
	if *role != "filter" && *role != "transform" && *role != "handler" {
		return usageError(fs, stderr, "--role must be filter, transform or handler; got %q", *role)
	}
	dir := name
	if len(pos) == 3 {
		dir = pos[2]
	}
	files, err := scaffoldFiles(lang, name, *role)
	if err == nil {
		err = writeScaffold(dir, files)
	}
	if err != nil {
		fmt.Fprintf(stderr, "router guest new: %v\n", err)
		return exitFail
	}
	fmt.Fprintf(stdout, "wrote a %s %s in %s:\n", langName(lang), *role, dir)
	for _, f := range files {
		if !strings.HasPrefix(f.path, "wr/") {
			fmt.Fprintf(stdout, "  %s\n", f.path)
		}
	}
	fmt.Fprintf(stdout, "build and test it: cd %s && make && make test\n", dir)
	return exitOK
}

func langName(lang string) string {
	return map[string]string{"go": "Go", "c": "C", "as": "AssemblyScript"}[lang]
}

// scaffoldFile is one file of a scaffold, relative to its directory.
type scaffoldFile struct {
	path string
	data []byte
}

// scaffoldData is what the templates see.
type scaffoldData struct {
	Name, Lower, Lang, Role string
	Export                  string // the entry point: wr_filter, ...
	Func                    string // the Go function wr.Run calls
	ASVersion               string // the assemblyscript package version the SDK is tested with
}

func scaffoldFiles(lang, name, role string) ([]scaffoldFile, error) {
	d := scaffoldData{Name: name, Lower: strings.ToLower(name), Lang: lang, Role: role,
		Export: map[string]string{"filter": "wr_filter", "transform": "wr_transform", "handler": "wr_handle"}[role],
		Func:   map[string]string{"filter": "filter", "transform": "transform", "handler": "handle"}[role]}
	v, err := assemblyScriptVersion()
	if err != nil {
		return nil, err
	}
	d.ASVersion = v
	var files []scaffoldFile
	render := func(tmpl, out string) error {
		src, err := scaffolds.ReadFile(path.Join("scaffold", tmpl))
		if err != nil {
			return err
		}
		t, err := template.New(tmpl).Parse(string(src))
		if err != nil {
			return err
		}
		var b bytes.Buffer
		if err := t.Execute(&b, d); err != nil {
			return err
		}
		data := b.Bytes()
		if strings.HasSuffix(out, ".hcl") {
			data = hclwrite.Format(data) // aligned as `router fmt` writes it
		}
		files = append(files, scaffoldFile{out, data})
		return nil
	}
	sdk := func(from, to string) error {
		b, err := guest.SDKs.ReadFile(from)
		if err == nil {
			files = append(files, scaffoldFile{to, b})
		}
		return err
	}
	var steps []error
	switch lang {
	case "go":
		steps = append(steps,
			render("go/go.mod.tmpl", "go.mod"),
			render("go/main.go.tmpl", "main.go"),
			render("go/logic_"+role+".go.tmpl", name+".go"),
			render("go/test_"+role+".go.tmpl", name+"_test.go"),
			render("go/Makefile.tmpl", "Makefile"))
		files = append(files, scaffoldFile{"wr/go.mod", []byte("module github.com/wasmrouter/wasmrouter/guest/wr\n\ngo 1.24\n")})
		entries, err := fs.ReadDir(guest.SDKs, "wr")
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if !strings.HasSuffix(e.Name(), "_test.go") {
				steps = append(steps, sdk("wr/"+e.Name(), "wr/"+e.Name()))
			}
		}
	case "c":
		steps = append(steps,
			render("c/guest.c.tmpl", name+".c"),
			render("c/Makefile.tmpl", "Makefile"),
			sdk("c/wasmrouter.h", "wasmrouter.h"))
	case "as":
		steps = append(steps,
			render("as/index.ts.tmpl", "assembly/index.ts"),
			render("as/package.json.tmpl", "package.json"),
			render("as/Makefile.tmpl", "Makefile"),
			sdk("as/assembly/wr.ts", "assembly/wr.ts"))
		files = append(files, scaffoldFile{".gitignore", []byte("node_modules/\n*.wasm\ndata/\n")})
	}
	steps = append(steps, render("router.hcl.tmpl", "router.hcl"))
	for _, err := range steps {
		if err != nil {
			return nil, err
		}
	}
	if lang != "as" {
		files = append(files, scaffoldFile{".gitignore", []byte("*.wasm\ndata/\n")})
	}
	return files, nil
}

// assemblyScriptVersion is the compiler version guest/as/package.json pins.
func assemblyScriptVersion() (string, error) {
	b, err := guest.SDKs.ReadFile("as/package.json")
	if err != nil {
		return "", err
	}
	var p struct {
		DevDependencies map[string]string `json:"devDependencies"`
	}
	if err := json.Unmarshal(b, &p); err != nil || p.DevDependencies["assemblyscript"] == "" {
		return "", fmt.Errorf("the AssemblyScript SDK's package.json names no assemblyscript version")
	}
	return p.DevDependencies["assemblyscript"], nil
}

// writeScaffold writes the files into dir, which must not exist or be empty: a scaffold never
// overwrites anything.
func writeScaffold(dir string, files []scaffoldFile) error {
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return fmt.Errorf("%s is not empty; choose another DIR", dir)
	}
	for _, f := range files {
		p := filepath.Join(dir, filepath.FromSlash(f.path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, f.data, 0o644); err != nil {
			return err
		}
	}
	return nil
}
