package wasmhost

import (
	"errors"
	"fmt"
)

// Guest code cannot be preempted: a goroutine running compiled WebAssembly neither stops at a
// deadline nor lets the Go scheduler or collector interrupt it. wazero's answer,
// WithCloseOnContextDone, leaves native code for Go on every loop back-edge, which costs tens of
// nanoseconds each time, and Go's wasm backend makes every branch a back-edge: guests ran 20 to
// 40 times slower with it (wazero issue #2466).
//
// instrument rewrites a module instead, before it is compiled, so that running code calls the
// imported host function interruptModule.interruptFunc now and then. That function runs Go code,
// so the goroutine can be preempted there, and it ends the call with a panic once the deadline
// has passed. Two counters decide when to call it:
//   - each loop header increments a new local of its function and calls the check every
//     checkInterval iterations (a register operation: about a nanosecond);
//   - the entry of each function that calls other functions decrements a new global and calls
//     the check when it reaches zero, which bounds recursion without loops. Functions that make
//     no calls cannot recurse, and their loops are covered by the first counter. Bulk memory
//     instructions and memory.grow, which can take milliseconds each, take bulkWeight from the
//     same global, so a loop of them is checked every few iterations.
//
// The rest of the module is unchanged, except that defined functions move up one index (the
// import comes first), so every function index is renumbered, and the "name" section (debug
// names only) is dropped.

const (
	interruptModule = "wasmrouter_interrupt"
	interruptFunc   = "check"
	checkInterval   = 1 << 10
	bulkWeight      = 128
)

var errInstrument = errors.New("cannot instrument")

// Section ids.
const (
	secCustom    = 0
	secType      = 1
	secImport    = 2
	secFunction  = 3
	secTable     = 4
	secMemory    = 5
	secGlobal    = 6
	secExport    = 7
	secStart     = 8
	secElement   = 9
	secCode      = 10
	secData      = 11
	secDataCount = 12
	secTag       = 13
)

// sectionRank is the order sections must appear in.
func sectionRank(id byte) int {
	switch id {
	case secTag:
		return 55 // between memory and global
	case secDataCount:
		return 95 // between element and code
	}
	return int(id) * 10
}

type section struct {
	id      byte
	payload []byte
}

type rewriter struct {
	funcImports   uint32 // the new import's index; defined functions move up one
	globalImports uint32
	typeCount     uint32
	globalCount   uint32   // defined globals
	typeParams    []uint32 // parameter count of each type
	funcTypes     []uint32 // type of each defined function
	counter       uint32   // index of the new global
	entryCheck    []byte   // inserted at the entry of functions that make calls
	bulkCheck     []byte   // inserted before bulk memory instructions and memory.grow
	code          []byte   // scratch for one function's instructions
}

func instrument(bin []byte) ([]byte, error) {
	if len(bin) < 8 || string(bin[:4]) != "\x00asm" || string(bin[4:8]) != "\x01\x00\x00\x00" {
		return nil, fmt.Errorf("%w: not a WebAssembly 1.0 binary module", errInstrument)
	}
	var sections []section
	r := &reader{b: bin, pos: 8}
	for !r.done() {
		id := r.byte()
		n := r.u32()
		payload := r.bytes(n)
		if r.err != nil {
			return nil, fmt.Errorf("%w: section %d: %v", errInstrument, id, r.err)
		}
		sections = append(sections, section{id, payload})
	}
	w := &rewriter{}
	if err := w.survey(sections); err != nil {
		return nil, err
	}
	w.counter = w.globalImports + w.globalCount
	w.entryCheck = w.globalCheck(1)
	w.bulkCheck = w.globalCheck(bulkWeight)

	out := append(make([]byte, 0, len(bin)+len(bin)/8+64), bin[:8]...)
	added := map[byte]bool{}
	emit := func(id byte, payload []byte) {
		out = append(out, id)
		out = appendU32(out, uint32(len(payload)))
		out = append(out, payload...)
	}
	// Sections the rewrite needs but the module lacks go before the first section ranked after
	// them; these three never exist in their rewritten form otherwise.
	missing := func(before byte) {
		for _, id := range []byte{secType, secImport, secGlobal} {
			if !added[id] && sectionRank(id) < sectionRank(before) {
				added[id] = true
				emit(id, w.newSection(id))
			}
		}
	}
	for _, s := range sections {
		if s.id != secCustom {
			missing(s.id)
		}
		payload, err := w.rewrite(s)
		if err != nil {
			return nil, err
		}
		if payload == nil {
			continue // dropped
		}
		if s.id == secType || s.id == secImport || s.id == secGlobal {
			added[s.id] = true
		}
		emit(s.id, payload)
	}
	missing(0xff)
	return out, nil
}

// survey counts what the rewrite needs to know and refuses modules it cannot handle.
func (w *rewriter) survey(sections []section) error {
	for _, s := range sections {
		r := &reader{b: s.payload}
		switch s.id {
		case secType:
			w.typeCount = r.u32()
			for i := uint32(0); i < w.typeCount && r.err == nil; i++ {
				if form := r.byte(); form != 0x60 {
					return fmt.Errorf("%w: type %d has form 0x%02x", errInstrument, i, form)
				}
				params := r.u32()
				r.bytes(params)
				r.bytes(r.u32()) // results
				w.typeParams = append(w.typeParams, params)
			}
		case secFunction:
			for n := r.u32(); n > 0 && r.err == nil; n-- {
				w.funcTypes = append(w.funcTypes, r.u32())
			}
		case secImport:
			for n := r.u32(); n > 0 && r.err == nil; n-- {
				mod, name := r.name(), r.name()
				if mod == interruptModule {
					return fmt.Errorf("%w: the module imports %s.%s, which is reserved", errInstrument, mod, name)
				}
				switch kind := r.byte(); kind {
				case 0x00: // func
					r.u32()
					w.funcImports++
				case 0x01: // table
					r.byte()
					r.limits()
				case 0x02: // memory
					r.limits()
				case 0x03: // global
					r.byte()
					r.byte()
					w.globalImports++
				case 0x04: // tag
					r.byte()
					r.u32()
				default:
					return fmt.Errorf("%w: import kind %d", errInstrument, kind)
				}
			}
		case secGlobal:
			w.globalCount = r.u32()
		}
		if r.err != nil {
			return fmt.Errorf("%w: section %d: %v", errInstrument, s.id, r.err)
		}
	}
	return nil
}

// newSection builds a section the module lacked, holding only what the rewrite adds.
func (w *rewriter) newSection(id byte) []byte {
	p, _ := w.rewrite(section{id: id, payload: []byte{0}}) // an empty vector
	return p
}

// rewrite returns the new payload of a section, or nil to drop it.
func (w *rewriter) rewrite(s section) ([]byte, error) {
	r := &reader{b: s.payload}
	var out []byte
	switch s.id {
	case secCustom:
		if r.name() == "name" {
			return nil, nil
		}
		return s.payload, nil
	case secType:
		n := r.u32()
		out = appendU32(out, n+1)
		out = append(out, r.rest()...)
		out = append(out, 0x60, 0x00, 0x00) // func () -> ()
	case secImport:
		n := r.u32()
		out = appendU32(out, n+1)
		out = append(out, r.rest()...)
		out = appendName(out, interruptModule)
		out = appendName(out, interruptFunc)
		out = append(out, 0x00)
		out = appendU32(out, w.typeCount)
	case secGlobal:
		n := r.u32()
		out = appendU32(out, n+1)
		for i := uint32(0); i < n && r.err == nil; i++ {
			out = append(out, r.bytes(2)...) // valtype, mutability
			out = w.constExpr(r, out)
		}
		out = append(out, 0x7f, 0x01, 0x41) // i32, mutable, i32.const
		out = appendS32(out, checkInterval)
		out = append(out, 0x0b)
	case secExport:
		n := r.u32()
		out = appendU32(out, n)
		for i := uint32(0); i < n && r.err == nil; i++ {
			out = appendName(out, r.name())
			kind := r.byte()
			idx := r.u32()
			if kind == 0x00 {
				idx = w.funcIndex(idx)
			}
			out = appendU32(append(out, kind), idx)
		}
	case secStart:
		out = appendU32(out, w.funcIndex(r.u32()))
	case secElement:
		out = w.elements(r)
	case secCode:
		n := r.u32()
		out = appendU32(out, n)
		for i := uint32(0); i < n && r.err == nil; i++ {
			if int(i) >= len(w.funcTypes) || int(w.funcTypes[i]) >= len(w.typeParams) {
				return nil, fmt.Errorf("%w: function %d has no valid type", errInstrument, i)
			}
			body := r.bytes(r.u32())
			code, err := w.body(body, w.typeParams[w.funcTypes[i]])
			if err != nil {
				return nil, fmt.Errorf("function %d: %w", i, err)
			}
			out = appendU32(out, uint32(len(code)))
			out = append(out, code...)
		}
	default:
		return s.payload, nil
	}
	if r.err == nil && !r.done() {
		r.err = errors.New("trailing bytes")
	}
	if r.err != nil {
		return nil, fmt.Errorf("%w: section %d: %v", errInstrument, s.id, r.err)
	}
	return out, nil
}
