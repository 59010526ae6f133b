package wasmhost

import (
	"errors"
	"fmt"
)

// Rewriting function bodies and the other places that hold function indices.

func (w *rewriter) funcIndex(idx uint32) uint32 {
	if idx >= w.funcImports {
		return idx + 1
	}
	return idx
}

// elements rewrites the function indices of element segments (all eight encodings).
func (w *rewriter) elements(r *reader) []byte {
	n := r.u32()
	out := appendU32(nil, n)
	for i := uint32(0); i < n && r.err == nil; i++ {
		flags := r.u32()
		out = appendU32(out, flags)
		if flags > 7 {
			r.err = fmt.Errorf("element segment flags %d", flags)
			break
		}
		if flags&2 != 0 && flags&1 == 0 { // explicit table index
			out = appendU32(out, r.u32())
		}
		if flags&1 == 0 { // active: offset expression
			out = w.constExpr(r, out)
		}
		if flags&3 != 0 { // element kind (0x00) or reference type
			out = append(out, r.byte())
		}
		count := r.u32()
		out = appendU32(out, count)
		for j := uint32(0); j < count && r.err == nil; j++ {
			if flags&4 != 0 {
				out = w.constExpr(r, out)
			} else {
				out = appendU32(out, w.funcIndex(r.u32()))
			}
		}
	}
	return out
}

// constExpr copies a constant expression, renumbering ref.func.
func (w *rewriter) constExpr(r *reader, out []byte) []byte {
	for r.err == nil {
		op := r.byte()
		if op == 0x0b {
			return append(out, op)
		}
		if out = w.instr(r, op, out, noLoops); r.err != nil {
			return out
		}
	}
	return out
}

// body copies a function body, adding the loop counter local and the checks.
func (w *rewriter) body(body []byte, params uint32) ([]byte, error) {
	r := &reader{b: body}
	decls := r.u32()
	locals := uint64(params)
	declStart := r.pos
	for n := decls; n > 0 && r.err == nil; n-- {
		locals += uint64(r.u32())
		r.byte()
	}
	if locals >= 1<<32-1 {
		r.fail(errors.New("too many locals"))
	}
	declEnd := r.pos
	w.code = w.code[:0]
	calls := false
	for !r.done() && r.err == nil {
		op := r.byte()
		calls = calls || op == 0x10 || op == 0x11 || op == 0x12 || op == 0x13
		w.code = w.instr(r, op, w.code, uint32(locals))
	}
	if r.err != nil {
		return nil, fmt.Errorf("%w: %v", errInstrument, r.err)
	}
	out := make([]byte, 0, len(body)+len(w.entryCheck)+len(w.code)-len(body)+16)
	out = appendU32(out, decls+1)
	out = append(out, body[declStart:declEnd]...)
	out = append(out, 0x01, 0x7f) // one i32: the loop counter
	if calls {
		out = append(out, w.entryCheck...)
	}
	return append(out, w.code...), nil
}

// noLoops marks constant expressions for instr: they have no loops and take no checks.
const noLoops = 1<<32 - 1

// instr copies one instruction (op already read) with its immediates; loops get the loop check
// on counter (a local), bulk memory instructions the weighted global check.
func (w *rewriter) instr(r *reader, op byte, out []byte, counter uint32) []byte {
	start := r.pos - 1
	switch {
	case op == 0x10 || op == 0x12 || op == 0xd2: // call, return_call, ref.func
		return appendU32(append(out, op), w.funcIndex(r.u32()))
	case op == 0x03: // loop
		r.blockType()
		return w.loopCheck(append(out, r.b[start:r.pos]...), counter)
	case op == 0x02 || op == 0x04: // block, if
		r.blockType()
	case op == 0x0c || op == 0x0d || op >= 0x20 && op <= 0x26: // br, br_if, locals, globals, tables
		r.u32()
	case op == 0x0e: // br_table
		for n := r.u32(); n > 0 && r.err == nil; n-- {
			r.u32()
		}
		r.u32()
	case op == 0x11 || op == 0x13: // call_indirect, return_call_indirect
		r.u32()
		r.u32()
	case op == 0x1c: // select t*
		r.bytes(r.u32())
	case op >= 0x28 && op <= 0x3e: // loads and stores
		r.memarg()
	case op == 0x40: // memory.grow
		r.byte()
		return append(append(out, w.bulkCheck...), r.b[start:r.pos]...)
	case op == 0x3f || op == 0xd0: // memory.size, ref.null
		r.byte()
	case op == 0x41:
		r.sleb(32)
	case op == 0x42:
		r.sleb(64)
	case op == 0x43:
		r.bytes(4)
	case op == 0x44:
		r.bytes(8)
	case op == 0xfc:
		if sub := r.miscImmediates(); (sub == 8 || sub == 10 || sub == 11) && counter != noLoops {
			// memory.init, memory.copy, memory.fill
			out = append(out, w.bulkCheck...)
		}
	case op == 0xfd:
		r.simdImmediates()
	case op <= 0x01 || op == 0x05 || op == 0x0b || op == 0x0f || op == 0x1a || op == 0x1b ||
		op >= 0x45 && op <= 0xc4 || op == 0xd1: // no immediates
	default:
		r.err = fmt.Errorf("unsupported opcode 0x%02x at byte %d", op, start)
	}
	return append(out, r.b[start:r.pos]...)
}

// globalCheck is: counter -= weight; if counter <= 0 { counter = checkInterval; call check }.
func (w *rewriter) globalCheck(weight int32) []byte {
	var b []byte
	b = append(b, 0x23) // global.get
	b = appendU32(b, w.counter)
	b = append(b, 0x41) // i32.const
	b = appendS32(b, weight)
	b = append(b, 0x6b, 0x24) // i32.sub, global.set
	b = appendU32(b, w.counter)
	b = append(b, 0x23)
	b = appendU32(b, w.counter)
	b = append(b, 0x41, 0x00, 0x4c, 0x04, 0x40, 0x41) // i32.const 0, i32.le_s, if (empty), i32.const
	b = appendS32(b, checkInterval)
	b = append(b, 0x24)
	b = appendU32(b, w.counter)
	b = append(b, 0x10) // call
	b = appendU32(b, w.funcImports)
	return append(b, 0x0b) // end
}

// loopCheck is: local += 1; if local & (checkInterval-1) == 0 { call check }.
func (w *rewriter) loopCheck(b []byte, local uint32) []byte {
	b = append(b, 0x20) // local.get
	b = appendU32(b, local)
	b = append(b, 0x41, 0x01, 0x6a, 0x22) // i32.const 1, i32.add, local.tee
	b = appendU32(b, local)
	b = append(b, 0x41) // i32.const
	b = appendS32(b, checkInterval-1)
	b = append(b, 0x71, 0x45, 0x04, 0x40, 0x10) // i32.and, i32.eqz, if (empty), call
	b = appendU32(b, w.funcImports)
	return append(b, 0x0b) // end
}
