package wasmhost

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// A hand-assembled module using what the rewriter must renumber and clang or Go rarely emit:
// a start function, ref.func in a global initializer and in an expression element segment, a
// declarative segment, call_indirect, and loops.
func rewriteTestModule() []byte {
	sec := func(id byte, items ...[]byte) []byte {
		var p []byte
		p = appendU32(p, uint32(len(items)))
		for _, it := range items {
			p = append(p, it...)
		}
		return append(appendU32([]byte{id}, uint32(len(p))), p...)
	}
	raw := func(id byte, payload []byte) []byte {
		return append(appendU32([]byte{id}, uint32(len(payload))), payload...)
	}
	body := func(locals []byte, code ...byte) []byte {
		b := append(locals, code...)
		return append(appendU32(nil, uint32(len(b))), b...)
	}
	noLocals := []byte{0}
	const (
		fImport = 0 // wasmrouter_v1.log
		fSeven  = 1
		fSum    = 2
		fStart  = 3
		fGlobal = 4
		fLoop   = 5
		fRef    = 6
		fFill   = 7
	)
	m := []byte("\x00asm\x01\x00\x00\x00")
	m = append(m, sec(secType,
		[]byte{0x60, 0, 1, 0x7f},             // 0: () -> i32
		[]byte{0x60, 0, 0},                   // 1: () -> ()
		[]byte{0x60, 3, 0x7f, 0x7f, 0x7f, 0}, // 2: (i32, i32, i32) -> ()
	)...)
	m = append(m, sec(secImport, append(append(appendName(nil, "wasmrouter_v1"), appendName(nil, "log")...), 0x00, 2))...)
	m = append(m, sec(secFunction, []byte{0}, []byte{0}, []byte{1}, []byte{0}, []byte{0}, []byte{0}, []byte{0})...)
	m = append(m, sec(secTable, []byte{0x70, 0x00, 4})...) // funcref, min 4
	m = append(m, sec(secMemory, []byte{0x00, 1})...)      // 1 page
	m = append(m, sec(secGlobal,
		[]byte{0x7f, 0x01, 0x41, 0x00, 0x0b},   // $g: i32 mut = 0
		[]byte{0x70, 0x00, 0xd2, fSeven, 0x0b}, // $fref: funcref = ref.func fSeven
	)...)
	m = append(m, sec(secExport,
		append(appendName(nil, "memory"), 0x02, 0),
		append(appendName(nil, "seven"), 0x00, fSeven),
		append(appendName(nil, "sum"), 0x00, fSum),
		append(appendName(nil, "loop"), 0x00, fLoop),
		append(appendName(nil, "ref"), 0x00, fRef),
		append(appendName(nil, "fill"), 0x00, fFill),
	)...)
	m = append(m, raw(secStart, []byte{fStart})...)
	m = append(m, sec(secElement,
		[]byte{0, 0x41, 0, 0x0b, 1, fSeven},              // flags 0: table[0] = fSeven
		[]byte{4, 0x41, 2, 0x0b, 1, 0xd2, fGlobal, 0x0b}, // flags 4: table[2] = ref.func fGlobal
		[]byte{3, 0x00, 1, fRef},                         // flags 3: declarative
		[]byte{5, 0x70, 1, 0xd2, fLoop, 0x0b},            // flags 5: passive expressions
	)...)
	m = append(m, sec(secCode,
		body(noLocals, 0x41, 7, 0x0b), // seven: 7
		// sum: table[0]() + table[2]()
		body(noLocals, 0x41, 0, 0x11, 0, 0, 0x41, 2, 0x11, 0, 0, 0x6a, 0x0b),
		body(noLocals, 0x41, 42, 0x24, 0, 0x0b), // start: $g = 42
		body(noLocals, 0x23, 0, 0x0b),           // global: $g
		// loop: i = 0; do { i++ } while (i < 5000); i
		body([]byte{1, 1, 0x7f}, 0x03, 0x40, 0x20, 0, 0x41, 1, 0x6a, 0x22, 0, 0x41, 0x88, 0x27, 0x48, 0x0d, 0, 0x0b, 0x20, 0, 0x0b),
		// ref: table[1] = $fref; table[1]() + seven()
		body(noLocals, 0x41, 1, 0x23, 1, 0x26, 0, 0x41, 1, 0x11, 0, 0, 0x10, fSeven, 0x6a, 0x0b),
		// fill: i = 0; do { memory.fill(0, 0, 100); i++ } while (i < 100); i
		// (100 is 0xe4 0x00 as a signed LEB128.)
		body([]byte{1, 1, 0x7f}, 0x03, 0x40, 0x41, 0, 0x41, 0, 0x41, 0xe4, 0x00, 0xfc, 11, 0,
			0x20, 0, 0x41, 1, 0x6a, 0x22, 0, 0x41, 0xe4, 0x00, 0x48, 0x0d, 0, 0x0b, 0x20, 0, 0x0b),
	)...)
	return append(m, raw(secCustom, appendName(nil, "name"))...)
}

func runRewriteTestModule(t *testing.T, bin []byte, withCheck bool) (results map[string]uint64, checks map[string]int) {
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	count := 0
	checks = map[string]int{}
	_, err := rt.NewHostModuleBuilder(ABIModule).NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(context.Context, api.Module, []uint64) {}),
			[]api.ValueType{i32, i32, i32}, nil).Export("log").Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if withCheck {
		_, err = rt.NewHostModuleBuilder(interruptModule).NewFunctionBuilder().
			WithGoModuleFunction(api.GoModuleFunc(func(context.Context, api.Module, []uint64) { count++ }), nil, nil).
			Export(interruptFunc).Instantiate(ctx)
		if err != nil {
			t.Fatal(err)
		}
	}
	mod, err := rt.InstantiateWithConfig(ctx, bin, wazero.NewModuleConfig().WithName(""))
	if err != nil {
		t.Fatal(err)
	}
	results = map[string]uint64{}
	for _, name := range []string{"seven", "sum", "loop", "ref", "fill"} {
		before := count
		r, err := mod.ExportedFunction(name).Call(ctx)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		results[name], checks[name] = r[0], count-before
	}
	return results, checks
}

func TestInstrumentRenumbers(t *testing.T) {
	bin := rewriteTestModule()
	want := map[string]uint64{"seven": 7, "sum": 49, "loop": 5000, "ref": 14, "fill": 100}
	before, _ := runRewriteTestModule(t, bin, false)
	for k, v := range want {
		if before[k] != v {
			t.Fatalf("the test module itself is wrong: %s = %d, want %d", k, before[k], v)
		}
	}
	out, err := instrument(bin)
	if err != nil {
		t.Fatal(err)
	}
	after, checks := runRewriteTestModule(t, out, true)
	for k, v := range want {
		if after[k] != v {
			t.Errorf("instrumented: %s = %d, want %d", k, after[k], v)
		}
	}
	// 5000 loop iterations make 4 checks (every 1024); 100 memory.fill make 12 (128 steps each).
	if checks["loop"] != 4 || checks["fill"] != 12 {
		t.Errorf("interrupt checks %v, want 4 for loop and 12 for fill", checks)
	}
	// Idempotence is not expected, but a second pass must refuse rather than corrupt.
	if _, err := instrument(out); !errors.Is(err, errInstrument) {
		t.Errorf("instrumenting twice: %v", err)
	}
}

func TestInstrumentCreatesSections(t *testing.T) {
	// noop.wasm has no imports or globals of its own; the rewrite adds all three sections.
	bin, err := os.ReadFile(cGuest("noop"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := instrument(bin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wazero.NewRuntime(context.Background()).CompileModule(context.Background(), out); err != nil {
		t.Errorf("rewritten module does not compile: %v", err)
	}
	minimal := []byte("\x00asm\x01\x00\x00\x00")
	out, err = instrument(minimal)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wazero.NewRuntime(context.Background()).CompileModule(context.Background(), out); err != nil {
		t.Errorf("rewritten empty module does not compile: %v", err)
	}
}

func TestInstrumentRefuses(t *testing.T) {
	for name, bin := range map[string][]byte{
		"not wasm":  []byte("hello world"),
		"version 2": []byte("\x00asm\x02\x00\x00\x00"),
		"truncated": []byte("\x00asm\x01\x00\x00\x00\x01\x05\x01"),
		"bad leb":   []byte("\x00asm\x01\x00\x00\x00\x01\xff\xff\xff\xff\xff\x01"),
		"opcode":    append([]byte("\x00asm\x01\x00\x00\x00\x01\x04\x01\x60\x00\x00\x03\x02\x01\x00"), 0x0a, 0x04, 0x01, 0x02, 0x00, 0xff),
	} {
		if _, err := instrument(bin); !errors.Is(err, errInstrument) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
