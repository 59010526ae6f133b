package wasmhost

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// moduleShape is what the export check learned about a compiled module.
type moduleShape struct {
	reactor     bool   // exports _initialize
	minMemBytes uint64 // the memory's initial size
}

// compile reads and compiles the module file.
func (h *Host) compile(ctx context.Context, name, path string) (wazero.CompiledModule, error) {
	if h.closed.Load() {
		return nil, moduleErr(name, ErrClosed, "host closed", nil)
	}
	bin, err := readModuleFile(path)
	if err != nil {
		return nil, moduleErr(name, nil, "read", err)
	}
	if bin, err = instrument(bin); err != nil {
		return nil, moduleErr(name, ErrCompile, "compile "+path, err)
	}
	cm, err := h.rt.CompileModule(ctx, bin)
	if err != nil {
		return nil, moduleErr(name, ErrCompile, "compile "+path, err)
	}
	return cm, nil
}

// checkModule verifies the exports the roles need and that every import is a host function
// with the right signature. maxMemory (0: no limit) must hold the initial memory.
func (h *Host) checkModule(cm wazero.CompiledModule, name string, roles []Role, maxMemory int64) (moduleShape, error) {
	var shape moduleShape
	fail := func(format string, args ...any) (moduleShape, error) {
		return shape, moduleErr(name, ErrABI, fmt.Sprintf(format, args...), nil)
	}
	mem, ok := cm.ExportedMemories()[ExportMemory]
	if !ok {
		return fail("missing export %q", ExportMemory)
	}
	if len(cm.ImportedMemories()) > 0 {
		return fail("imports a memory; guests must define their own")
	}
	shape.minMemBytes = uint64(mem.Min()) * pageSize
	if maxMemory > 0 && shape.minMemBytes > uint64(maxMemory) {
		return fail("initial memory of %d bytes exceeds max_memory of %d bytes", shape.minMemBytes, maxMemory)
	}

	exports := cm.ExportedFunctions()
	need := func(export string, sig signature, why string) error {
		def, ok := exports[export]
		if !ok {
			_, err := fail("missing export %q%s", export, why)
			return err
		}
		if !sig.matches(def) {
			_, err := fail("export %q has signature %s, want %s", export, signatureOf(def), sig)
			return err
		}
		return nil
	}
	if err := need(ExportABIMarker, sigMarker, ""); err != nil {
		return shape, err
	}
	if err := need(ExportBuffer, sigBuffer, ""); err != nil {
		return shape, err
	}
	for _, r := range roles {
		if r >= numRoles {
			return shape, moduleErr(name, ErrConfig, fmt.Sprintf("unknown role %d", r), nil)
		}
		if err := need(r.Export(), sigEntry, fmt.Sprintf(" (needed for the %s role)", r)); err != nil {
			return shape, err
		}
	}
	if _, ok := exports[ExportInitialize]; ok {
		if err := need(ExportInitialize, sigInit, ""); err != nil {
			return shape, err
		}
		shape.reactor = true
	} else if _, ok := exports[exportStart]; ok {
		return fail("exports %q but not %q: build a reactor (Go: -buildmode=c-shared; C: -mexec-model=reactor)",
			exportStart, ExportInitialize)
	}

	for _, def := range cm.ImportedFunctions() {
		mod, fn, _ := def.Import()
		var want signature
		switch mod {
		case interruptModule:
			continue // added by instrument, which refuses modules importing it themselves
		case ABIModule:
			i := slices.IndexFunc(hostFuncs, func(f hostFunc) bool { return f.name == fn })
			if i < 0 {
				return fail("imports unknown function %s.%s", mod, fn)
			}
			want = hostFuncs[i].sig
		case WASIModule:
			wdef, ok := h.wasi[fn]
			if !ok {
				return fail("imports unknown function %s.%s", mod, fn)
			}
			want = signature{params: wdef.ParamTypes(), results: wdef.ResultTypes()}
		default:
			return fail("imports %s.%s; only %s and %s may be imported", mod, fn, ABIModule, WASIModule)
		}
		if !want.matches(def) {
			return fail("import %s.%s has signature %s, want %s", mod, fn, signatureOf(def), want)
		}
	}
	return shape, nil
}

func (s signature) matches(def api.FunctionDefinition) bool {
	return slices.Equal(s.params, def.ParamTypes()) && slices.Equal(s.results, def.ResultTypes())
}

func signatureOf(def api.FunctionDefinition) signature {
	return signature{params: def.ParamTypes(), results: def.ResultTypes()}
}

// String writes the signature as "(i32, i32) -> i32".
func (s signature) String() string {
	var b strings.Builder
	list := func(ts []api.ValueType) {
		b.WriteByte('(')
		for i, t := range ts {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(api.ValueTypeName(t))
		}
		b.WriteByte(')')
	}
	list(s.params)
	b.WriteString(" -> ")
	if len(s.results) == 1 {
		b.WriteString(api.ValueTypeName(s.results[0]))
	} else {
		list(s.results)
	}
	return b.String()
}

// MaxModuleSize bounds a module file: a path to a device or a huge file is refused, not read.
const MaxModuleSize = 256 << 20

// readModuleFile reads a regular file of at most MaxModuleSize bytes.
func readModuleFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if info.Size() > MaxModuleSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, MaxModuleSize)
	}
	return io.ReadAll(io.LimitReader(f, MaxModuleSize))
}
