package config

import (
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// ErrInvalidSize is wrapped by every ParseSize error.
var ErrInvalidSize = errors.New("invalid size")

// sizeUnits maps a lower-cased unit to its factor: SI units are powers of 1000, IEC units
// powers of 1024, as in docs/configuration.md.
var sizeUnits = map[string]int64{
	"":    1,
	"b":   1,
	"kb":  1000,
	"mb":  1000 * 1000,
	"gb":  1000 * 1000 * 1000,
	"tb":  1000 * 1000 * 1000 * 1000,
	"kib": 1 << 10,
	"mib": 1 << 20,
	"gib": 1 << 30,
	"tib": 1 << 40,
}

// maxSizeDigits bounds the number's text: int64 has 19 digits, and the limit leaves room for
// leading zeros and a fraction while keeping big-number arithmetic cheap.
const maxSizeDigits = 40

// ParseSize parses a byte size such as "64MiB", "500KB", "1.5GiB" or "123" (bytes). Units are
// case-insensitive and may be separated from the number by spaces. A fraction is accepted when
// the result is a whole number of bytes ("1.5KiB" is 1536, "1.5B" is an error). Negative sizes
// and sizes beyond int64 are errors.
func ParseSize(s string) (int64, error) {
	text := strings.TrimSpace(s)
	end := 0
	for end < len(text) && (text[end] >= '0' && text[end] <= '9' || text[end] == '.') {
		end++
	}
	number, unit := text[:end], strings.TrimSpace(text[end:])
	if !validDecimal(number) {
		return 0, fmt.Errorf("%w %s: want a number with an optional unit, such as \"64MiB\"", ErrInvalidSize, quote(s))
	}
	if len(number) > maxSizeDigits {
		return 0, fmt.Errorf("%w %s: too many digits", ErrInvalidSize, quote(s))
	}
	factor, ok := sizeUnits[strings.ToLower(unit)]
	if !ok {
		return 0, fmt.Errorf("%w %s: unknown unit %s (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)", ErrInvalidSize, quote(s), quote(unit))
	}
	value, ok := new(big.Rat).SetString(number)
	if !ok {
		return 0, fmt.Errorf("%w %s: bad number", ErrInvalidSize, quote(s))
	}
	value.Mul(value, new(big.Rat).SetInt64(factor))
	if !value.IsInt() {
		return 0, fmt.Errorf("%w %s: not a whole number of bytes", ErrInvalidSize, quote(s))
	}
	bytes := value.Num()
	if !bytes.IsInt64() {
		return 0, fmt.Errorf("%w %s: too large", ErrInvalidSize, quote(s))
	}
	return bytes.Int64(), nil
}

// validDecimal accepts "12" and "1.5", not "", ".5", "1." or "1.2.3".
func validDecimal(s string) bool {
	whole, frac, hasDot := strings.Cut(s, ".")
	if whole == "" || strings.Trim(whole, "0123456789") != "" {
		return false
	}
	if hasDot && (frac == "" || strings.Trim(frac, "0123456789") != "") {
		return false
	}
	return true
}
