package wr

import (
	"bytes"
	"strconv"
	"unsafe"
)

// The scanner behind the JSON functions: finding a path, skipping values, checking numbers.

func kindOf(c byte) Kind {
	switch {
	case c == '{':
		return Object
	case c == '[':
		return Array
	case c == '"':
		return String
	case c == 't' || c == 'f':
		return Bool
	case c == 'n':
		return Null
	case c == '-' || c >= '0' && c <= '9':
		return Number
	}
	return Invalid
}

// find returns the span of the value at path.
func find(body []byte, path string) (start, end int, ok bool) {
	i := skipSpace(body, 0)
	for {
		seg := path
		dot := indexDot(path)
		if dot >= 0 {
			seg, path = path[:dot], path[dot+1:]
		}
		if i >= len(body) {
			return 0, 0, false
		}
		switch body[i] {
		case '{':
			i, ok = findKey(body, i, seg)
		case '[':
			i, ok = findIndex(body, i, seg)
		default:
			ok = false
		}
		if !ok {
			return 0, 0, false
		}
		if dot < 0 {
			end, ok := skipValue(body, i)
			return i, end, ok
		}
	}
}

func indexDot(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			return i
		}
	}
	return -1
}

// findKey returns the start of the value of key in the object at body[i].
func findKey(body []byte, i int, key string) (int, bool) {
	i = skipSpace(body, i+1)
	if i < len(body) && body[i] == '}' {
		return 0, false
	}
	for i < len(body) && body[i] == '"' {
		keyEnd, ok := scanString(body, i)
		if !ok {
			return 0, false
		}
		match := keyEquals(body[i+1:keyEnd-1], key)
		i = skipSpace(body, keyEnd)
		if i >= len(body) || body[i] != ':' {
			return 0, false
		}
		i = skipSpace(body, i+1)
		if match {
			return i, i < len(body)
		}
		if i, ok = skipValue(body, i); !ok {
			return 0, false
		}
		i = skipSpace(body, i)
		if i >= len(body) || body[i] != ',' {
			return 0, false // '}' (not found) or malformed
		}
		i = skipSpace(body, i+1)
	}
	return 0, false
}

// findIndex returns the start of element seg (decimal) of the array at body[i].
func findIndex(body []byte, i int, seg string) (int, bool) {
	if seg == "" || len(seg) > 9 {
		return 0, false
	}
	want := 0
	for j := 0; j < len(seg); j++ {
		if seg[j] < '0' || seg[j] > '9' {
			return 0, false
		}
		want = want*10 + int(seg[j]-'0')
	}
	i = skipSpace(body, i+1)
	if i < len(body) && body[i] == ']' {
		return 0, false
	}
	for n := 0; i < len(body); n++ {
		if n == want {
			return i, true
		}
		var ok bool
		if i, ok = skipValue(body, i); !ok {
			return 0, false
		}
		i = skipSpace(body, i)
		if i >= len(body) || body[i] != ',' {
			return 0, false
		}
		i = skipSpace(body, i+1)
	}
	return 0, false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// scanString returns the end (after the closing quote) of the string starting at b[i].
func scanString(b []byte, i int) (int, bool) {
	i++
	for {
		q := bytes.IndexByte(b[i:], '"')
		if q < 0 {
			return 0, false
		}
		j := i + q
		// The quote is escaped when an odd number of backslashes precede it.
		k := j
		for k > i && b[k-1] == '\\' {
			k--
		}
		if (j-k)%2 == 0 {
			return j + 1, true
		}
		i = j + 1
	}
}

// skipValue returns the end of the value starting at b[i].
func skipValue(b []byte, i int) (int, bool) {
	if i >= len(b) {
		return 0, false
	}
	switch c := b[i]; {
	case c == '"':
		return scanString(b, i)
	case c == '{' || c == '[':
		return skipContainer(b, i)
	case c == 't':
		return literal(b, i, "true")
	case c == 'f':
		return literal(b, i, "false")
	case c == 'n':
		return literal(b, i, "null")
	case c == '-' || c >= '0' && c <= '9':
		j := i + 1
		for j < len(b) && (b[j] >= '0' && b[j] <= '9' || b[j] == '.' || b[j] == 'e' || b[j] == 'E' || b[j] == '+' || b[j] == '-') {
			j++
		}
		return j, true
	}
	return 0, false
}

func literal(b []byte, i int, lit string) (int, bool) {
	if len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit {
		return i + len(lit), true
	}
	return 0, false
}

// validNumber checks JSON number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func validNumber(b []byte) bool {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return false
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return false
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	return i == len(b)
}

// parseNumber reads a JSON number. Most numbers in events (up to 15 significant digits, small
// exponents) take an exact shortcut: the digits as an integer, then one multiplication or
// division by a power of ten, which IEEE arithmetic rounds correctly. The rest go to strconv.
func parseNumber(raw []byte) (float64, bool) {
	if !validNumber(raw) {
		return 0, false
	}
	i, neg := 0, raw[0] == '-'
	if neg {
		i++
	}
	var mant uint64
	digits, exp := 0, 0
	for ; i < len(raw) && raw[i] >= '0' && raw[i] <= '9'; i++ {
		mant = mant*10 + uint64(raw[i]-'0')
		digits++
	}
	if i < len(raw) && raw[i] == '.' {
		for i++; i < len(raw) && raw[i] >= '0' && raw[i] <= '9'; i++ {
			mant = mant*10 + uint64(raw[i]-'0')
			digits++
			exp--
		}
	}
	if i == len(raw) && digits <= 15 && exp >= -22 { // no exponent part; mant < 10^15 < 2^53
		f := float64(mant)
		if exp < 0 {
			f /= pow10[-exp]
		}
		if neg {
			f = -f
		}
		return f, true
	}
	f, err := strconv.ParseFloat(unsafe.String(unsafe.SliceData(raw), len(raw)), 64)
	return f, err == nil
}

var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14,
	1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}
