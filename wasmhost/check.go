package wasmhost

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/wasmrouter/wasmrouter/internal/regfile"
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
	bin, err := regfile.Read(path, MaxModuleSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, moduleErr(name, nil, "no module file (build the guest first, or correct path)", err)
	}
	if err != nil {
		return nil, moduleErr(name, nil, "read", err)
	}
	if bin, err = instrument(bin); err != nil {
		return nil, moduleErr(name, ErrCompile, "compile "+path, err)
	}
	rt, err := h.runtime(ctx)
	if err != nil {
		return nil, moduleErr(name, nil, "start the WASM runtime", err)
	}
	cached := h.seen(bin)
	start := time.Now()
	cm, err := rt.CompileModule(ctx, bin)
	if err != nil {
		return nil, moduleErr(name, ErrCompile, "compile "+path, err)
	}
	from := "compiled"
	if cached {
		from = "cache"
	}
	h.log.Info("guest module compiled", "module", name, "path", path, "from", from,
		"took", time.Since(start).Round(time.Millisecond), "size", len(bin))
	return cm, nil
}

// seen tells whether the runtime compiled this binary before, in this process or (with a cache
// directory) in an earlier one, and records that it has now. wazero does not say whether
// CompileModule hit its cache, so the host keeps its own marks: one file per binary hash.
func (h *Host) seen(bin []byte) bool {
	sum := sha256.Sum256(bin)
	key := hex.EncodeToString(sum[:])
	if _, loaded := h.compiled.LoadOrStore(key, true); loaded {
		return true
	}
	if h.cacheDir == "" {
		return false
	}
	mark := filepath.Join(h.cacheDir, "wasmrouter-seen", key)
	if _, err := os.Stat(mark); err == nil {
		return true
	}
	if os.MkdirAll(filepath.Dir(mark), 0o700) == nil {
		_ = os.WriteFile(mark, nil, 0o600)
	}
	return false
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
			hint := ""
			if export != ExportABIMarker && export != ExportBuffer && export != ExportInitialize {
				hint = " (Go: func(ptr, size uint32) int32; C: int32_t f(const uint8_t *body, int32_t len); AssemblyScript: (ptr: usize, len: i32): i32)"
			}
			_, err := fail("export %q has signature %s, want %s%s", export, signatureOf(def), sig, hint)
			return err
		}
		return nil
	}
	if err := need(ExportABIMarker, sigMarker, sdkHint); err != nil {
		return shape, err
	}
	if err := need(ExportBuffer, sigBuffer, sdkHint); err != nil {
		return shape, err
	}
	for _, r := range roles {
		if r >= numRoles {
			return shape, moduleErr(name, ErrConfig, fmt.Sprintf("unknown role %d", r), nil)
		}
		if err := need(r.Export(), sigEntry, entryHint(r, exports)); err != nil {
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

// sdkHint says how each SDK provides wr_abi_v1 and wr_buffer.
const sdkHint = ": not built with a wasmrouter SDK (Go: import github.com/wasmrouter/wasmrouter/guest/wr; " +
	"C: #define WASMROUTER_IMPLEMENTATION before #include \"wasmrouter.h\" in one file; " +
	"AssemblyScript: export * from the SDK's index)"

// entryHint completes a missing entry point's message with the fix: the role the module does
// serve (a transform listed as a filter), or how each SDK declares the export.
func entryHint(r Role, exports map[string]api.FunctionDefinition) string {
	var has []string
	for other := range numRoles {
		if _, ok := exports[other.Export()]; ok && other != r {
			has = append(has, other.Export())
		}
	}
	if len(has) > 0 {
		lists := make([]string, len(has))
		for i, e := range has {
			lists[i] = roleList(e)
		}
		return fmt.Sprintf(" (needed for the %s role); the module exports only %s: list it under a route's %s, or export %s",
			r, strings.Join(has, " and "), strings.Join(lists, " or "), r.Export())
	}
	return fmt.Sprintf(" (needed for the %s role): export it (Go: //go:wasmexport %s above the function; C: WR_EXPORT(%s); "+
		"AssemblyScript: export function %s)", r, r.Export(), r.Export(), r.Export())
}

// roleList is the route attribute that lists modules of the role whose entry point is export.
func roleList(export string) string {
	switch export {
	case ExportFilter:
		return "filters"
	case ExportTransform:
		return "transforms"
	}
	return "handler"
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
