package wasmhost

import "github.com/tetratelabs/wazero/experimental"

const pageSize = 65536

// limitedAllocator backs each instance's linear memory and refuses to grow it past limit bytes.
// wazero's own WithMemoryLimitPages is one value for the whole runtime, while max_memory is per
// module; refusing the growth here makes the guest's memory.grow return -1 exactly as a
// WithMemoryLimitPages limit would.
// refused, when set, records a refusal, so that a failing call can name max_memory as the cause.
type limitedAllocator struct {
	limit   uint64
	refused *bool
}

func (a limitedAllocator) Allocate(capacity, max uint64) experimental.LinearMemory {
	limit := min(a.limit, max)
	return &limitedMemory{limit: limit, refused: a.refused, buf: make([]byte, 0, min(capacity, limit))}
}

type limitedMemory struct {
	limit   uint64
	refused *bool
	buf     []byte
}

// Reallocate grows the memory to size bytes; nil refuses the growth. Spare capacity grows
// geometrically (capped at the limit) so that a guest growing a page at a time does not copy its
// whole memory each time.
func (m *limitedMemory) Reallocate(size uint64) []byte {
	if size > m.limit {
		if m.refused != nil {
			*m.refused = true
		}
		return nil
	}
	if size <= uint64(cap(m.buf)) {
		m.buf = m.buf[:size]
		return m.buf
	}
	newCap := min(max(size, 2*uint64(cap(m.buf))), m.limit)
	grown := make([]byte, size, newCap)
	copy(grown, m.buf)
	m.buf = grown
	return m.buf
}

func (m *limitedMemory) Free() { m.buf = nil }
