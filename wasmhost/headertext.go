package wasmhost

import (
	"encoding/base64"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/wasmrouter/wasmrouter/event"
)

// appendHeaderText appends the text form header_get gives a header value (see abi.go): scalars
// as plain text, the rest as JSON.
func appendHeaderText(dst []byte, v any) []byte {
	switch x := v.(type) {
	case string:
		return append(dst, x...)
	case []byte:
		return append(dst, x...)
	case float32:
		return appendFloatText(dst, float64(x), 32)
	case float64:
		return appendFloatText(dst, x, 64)
	}
	return appendJSON(dst, v)
}

// appendFloatText writes NaN and infinities as Go does; JSON has no form for them.
func appendFloatText(dst []byte, f float64, bits int) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return strconv.AppendFloat(dst, f, 'g', -1, bits)
	}
	return appendFloat(dst, f, bits)
}

// appendJSON appends v as JSON. Table keys are sorted so the text is stable.
func appendJSON(dst []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...)
	case bool:
		return strconv.AppendBool(dst, x)
	case int8:
		return strconv.AppendInt(dst, int64(x), 10)
	case uint8:
		return strconv.AppendUint(dst, uint64(x), 10)
	case int16:
		return strconv.AppendInt(dst, int64(x), 10)
	case uint16:
		return strconv.AppendUint(dst, uint64(x), 10)
	case int32:
		return strconv.AppendInt(dst, int64(x), 10)
	case uint32:
		return strconv.AppendUint(dst, uint64(x), 10)
	case int64:
		return strconv.AppendInt(dst, x, 10)
	case int:
		return strconv.AppendInt(dst, int64(x), 10)
	case uint64:
		return strconv.AppendUint(dst, x, 10)
	case float32:
		return appendJSONFloat(dst, float64(x), 32)
	case float64:
		return appendJSONFloat(dst, x, 64)
	case event.Decimal:
		return appendDecimal(dst, x)
	case string:
		return appendJSONString(dst, x)
	case []byte:
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, x)
		return append(dst, '"')
	case time.Time:
		dst = append(dst, '"')
		dst = x.UTC().AppendFormat(dst, time.RFC3339Nano)
		return append(dst, '"')
	case event.Table:
		return appendJSONObject(dst, x)
	case map[string]any:
		return appendJSONObject(dst, x)
	case []any:
		dst = append(dst, '[')
		for i, e := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSON(dst, e)
		}
		return append(dst, ']')
	}
	// Not an AMQP type; the text keeps the guest informed rather than failing the call.
	return appendJSONString(dst, fmt.Sprint(v))
}

func appendJSONObject[M ~map[string]any](dst []byte, t M) []byte {
	dst = append(dst, '{')
	for i, k := range slices.Sorted(maps.Keys(t)) {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, k)
		dst = append(dst, ':')
		dst = appendJSON(dst, t[k])
	}
	return append(dst, '}')
}

// appendJSONFloat writes NaN and infinities as strings, the only JSON that can hold them.
func appendJSONFloat(dst []byte, f float64, bits int) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		dst = append(dst, '"')
		dst = strconv.AppendFloat(dst, f, 'g', -1, bits)
		return append(dst, '"')
	}
	return appendFloat(dst, f, bits)
}

// appendFloat formats a finite float as encoding/json does: plain decimal unless the exponent is
// extreme, shortest digits that read back to the same value.
func appendFloat(dst []byte, f float64, bits int) []byte {
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 {
		if bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	dst = strconv.AppendFloat(dst, f, format, -1, bits)
	if format == 'e' { // 1e-07 -> 1e-7
		n := len(dst)
		if n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst
}

// appendDecimal writes Value / 10^Scale exactly, e.g. {2, -1234} as -12.34.
func appendDecimal(dst []byte, d event.Decimal) []byte {
	v := int64(d.Value)
	if v < 0 {
		dst = append(dst, '-')
		v = -v
	}
	var digits [24]byte
	s := strconv.AppendInt(digits[:0], v, 10)
	scale := int(d.Scale)
	if scale == 0 {
		return append(dst, s...)
	}
	if len(s) <= scale { // 0.00ddd
		dst = append(dst, '0', '.')
		for range scale - len(s) {
			dst = append(dst, '0')
		}
		return append(dst, s...)
	}
	dst = append(dst, s[:len(s)-scale]...)
	dst = append(dst, '.')
	return append(dst, s[len(s)-scale:]...)
}

// appendJSONString quotes s; invalid UTF-8 becomes U+FFFD as encoding/json does.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}
