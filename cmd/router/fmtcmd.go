package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/internal/hclfmt"
)

const fmtHelp = `
Rewrites HCL files in canonical form (the layout of terraform fmt), keeping comments. A
directory means every .hcl file in it and below it (hidden directories skipped); no argument
means the current directory; "-" reads standard input and writes the result to standard output.
With -check nothing is written: the command lists the files that would change and exits 1 if
any would. -diff prints what would change as a unified diff. A file that does not parse is
left as it is and its diagnostics are printed (exit 1).`

func cmdFmt(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("fmt", "[-check] [-diff] [FILE|DIR]...", stdout, stderr)
	describe(fs, "fmt", "[-check] [-diff] [FILE|DIR]...", fmtHelp)
	check := fs.Bool("check", false, "write nothing; list the files not in canonical form and exit 1 if there are any")
	diff := fs.Bool("diff", false, "print the changes as a unified diff")
	paths, code := parseInterleaved(fs, args, stdout)
	if code >= 0 {
		return code
	}
	if len(paths) == 0 {
		paths = []string{"."}
	}
	f := formatter{check: *check, diff: *diff, stdout: stdout, stderr: stderr}
	for _, p := range paths {
		if p == "-" {
			f.stdin(os.Stdin)
			continue
		}
		files, err := hclFiles(p)
		if err != nil {
			fmt.Fprintf(stderr, "%s: error: %v\n", p, err)
			f.failed = true
			continue
		}
		for _, file := range files {
			f.file(file)
		}
	}
	if f.failed || (f.check && f.changed) {
		return exitFail
	}
	return exitOK
}

type formatter struct {
	check, diff    bool
	stdout, stderr io.Writer
	changed        bool // some file is not in canonical form
	failed         bool // some file could not be read, parsed or written
}

func (f *formatter) file(path string) {
	src, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintf(f.stderr, "%s: error: %v\n", path, err)
		f.failed = true
		return
	}
	out, ok := f.format(src, path)
	if !ok || bytes.Equal(src, out) {
		return
	}
	f.changed = true
	if f.diff {
		fmt.Fprint(f.stdout, hclfmt.Diff(path, path, src, out))
	}
	if f.check {
		if !f.diff {
			fmt.Fprintln(f.stdout, path)
		}
		return
	}
	if err := writeKeepingMode(path, out); err != nil {
		fmt.Fprintf(f.stderr, "%s: error: %v\n", path, err)
		f.failed = true
		return
	}
	if !f.diff {
		fmt.Fprintln(f.stdout, path)
	}
}

func (f *formatter) stdin(r io.Reader) {
	src, err := io.ReadAll(r)
	if err != nil {
		fmt.Fprintf(f.stderr, "<stdin>: error: %v\n", err)
		f.failed = true
		return
	}
	out, ok := f.format(src, "<stdin>")
	if !ok {
		return
	}
	if !bytes.Equal(src, out) {
		f.changed = true
	}
	switch {
	case f.diff:
		fmt.Fprint(f.stdout, hclfmt.Diff("<stdin>", "<stdin>", src, out))
	case !f.check:
		_, _ = f.stdout.Write(out)
	}
}

func (f *formatter) format(src []byte, name string) ([]byte, bool) {
	out, diags := hclfmt.Format(src, name)
	if diags.HasErrors() {
		config.FormatDiagnostics(f.stderr, diags)
		f.failed = true
		return nil, false
	}
	return out, true
}

// writeKeepingMode replaces path's content through a temporary file and a rename, so that an
// interrupted write never leaves half a configuration behind.
func writeKeepingMode(path string, data []byte) error {
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".fmt-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(info.Mode().Perm()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// hclFiles is path itself for a file, or the .hcl files under a directory, sorted.
func hclFiles(path string) ([]string, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		return []string{path}, nil
	}
	var files []string
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != path && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(d.Name(), ".hcl") {
			files = append(files, p)
		}
		return nil
	})
	sort.Strings(files)
	return files, err
}
