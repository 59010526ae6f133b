package wr

import (
	"encoding/binary"
	"math/bits"
)

// skipContainer skips a whole object or array (b[i] is its opening bracket) by counting
// brackets outside strings. It looks at eight bytes per step without branching on each byte: in
// WebAssembly every branch is costly (Go's wasm backend jumps through a dispatch loop), so a
// byte loop costs several times more. Only a step holding a closing bracket that may end the
// container looks at its brackets one by one.
func skipContainer(b []byte, i int) (int, bool) {
	depth, inString, escape := 0, false, uint(0)
	for i+8 <= len(b) {
		x := binary.LittleEndian.Uint64(b[i:])
		// Escaped bytes, from the backslashes and whether the previous step ended in an escape.
		esc := escapes[escape<<8|uint(byteMask(zeroBytes(x^(lows*'\\'))))]
		escape = uint(esc >> 8)
		quotes := byteMask(zeroBytes(x^(lows*'"'))) &^ uint8(esc)
		folded := x | lows*0x20 // '[' -> '{', ']' -> '}'
		opens := byteMask(zeroBytes(folded ^ (lows * '{')))
		closes := byteMask(zeroBytes(folded ^ (lows * '}')))
		// Bytes inside strings: the running parity of quotes, from the state at the step's start.
		in := prefixXor(quotes)
		if inString {
			in = ^in
		}
		opens &^= in | uint8(esc)
		closes &^= in | uint8(esc)
		inString = inString != (bits.OnesCount8(quotes)&1 == 1)
		if closes != 0 && depth <= bits.OnesCount8(closes) {
			for m := opens | closes; m != 0; m &= m - 1 {
				bit := m & -m
				if opens&bit != 0 {
					depth++
				} else if depth--; depth == 0 {
					return i + bits.TrailingZeros8(bit) + 1, true
				}
			}
		} else {
			depth += bits.OnesCount8(opens) - bits.OnesCount8(closes)
		}
		i += 8
	}
	// The last few bytes, one at a time.
	i += int(escape)
	for ; i < len(b); i++ {
		c := b[i]
		if c == '\\' { // outside strings too, as in the steps above (it is invalid there anyway)
			i++
			continue
		}
		if inString {
			inString = c != '"'
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
		case '}', ']':
			if depth--; depth == 0 {
				return i + 1, true
			}
		}
	}
	return 0, false
}

// escapes[carry<<8 | backslashes] gives, for a step of eight bytes with the given backslash
// mask, the mask of escaped bytes (low 8 bits) and whether the step's last byte escapes the
// next step's first (bit 8); carry says whether the step's first byte is escaped.
var escapes = func() (t [512]uint16) {
	for carry := range 2 {
		for bs := range 256 {
			escaped, esc := uint16(0), carry == 1
			for k := range 8 {
				switch {
				case esc:
					escaped |= 1 << k
					esc = false
				case bs>>k&1 == 1:
					esc = true
				}
			}
			if esc {
				escaped |= 1 << 8
			}
			t[carry<<8|bs] = escaped
		}
	}
	return t
}()

const lows = 0x0101010101010101 // one in each byte

// zeroBytes sets the high bit of each zero byte of x, and no other bit (exact, unlike the
// shorter haszero formula, which may flag bytes after a zero one).
func zeroBytes(x uint64) uint64 {
	const low7 = 0x7f7f7f7f7f7f7f7f
	return ^((x&low7 + low7) | x | low7)
}

// byteMask gathers the high bits of zeroBytes into one bit per byte (bit k = byte k).
func byteMask(m uint64) uint8 {
	return uint8((m >> 7) * 0x0102040810204080 >> 56)
}

// prefixXor sets bit k to the parity of bits 0..k of m.
func prefixXor(m uint8) uint8 {
	m ^= m << 1
	m ^= m << 2
	return m ^ m<<4
}
