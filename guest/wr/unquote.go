package wr

import (
	"bytes"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// JSONUnquote appends the contents of the JSON string raw (with its quotes) to dst, decoding
// escapes; invalid escapes make it fail, lone surrogates become U+FFFD.
func JSONUnquote(dst, raw []byte) ([]byte, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return dst, false
	}
	return unescape(dst, raw[1:len(raw)-1])
}

func unescape(dst, s []byte) ([]byte, bool) {
	for {
		i := bytes.IndexByte(s, '\\')
		if i < 0 {
			return append(dst, s...), true
		}
		dst = append(dst, s[:i]...)
		s = s[i:]
		if len(s) < 2 {
			return dst, false
		}
		switch c := s[1]; c {
		case '"', '\\', '/':
			dst = append(dst, c)
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, ok := hex4(s[2:])
			if !ok {
				return dst, false
			}
			n := 6
			if utf16.IsSurrogate(r) {
				r2, ok := rune(-1), false
				if len(s) >= 12 && s[6] == '\\' && s[7] == 'u' {
					r2, ok = hex4(s[8:])
				}
				if r = utf16.DecodeRune(r, r2); r != utf8.RuneError && ok {
					n = 12
				}
			}
			dst = utf8.AppendRune(dst, r)
			s = s[n:]
			continue
		default:
			return dst, false
		}
		s = s[2:]
	}
}

func hex4(s []byte) (rune, bool) {
	if len(s) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range s[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// keyEquals compares a raw object key (without quotes) with a path segment.
func keyEquals(raw []byte, key string) bool {
	if string(raw) == key {
		// A backslash in raw starts an escape, which decodes to fewer bytes than key has.
		return strings.IndexByte(key, '\\') < 0
	}
	// An escape only ever shortens the key, so a raw key no longer than key cannot match.
	if len(raw) <= len(key) || bytes.IndexByte(raw, '\\') < 0 {
		return false
	}
	var buf [128]byte
	decoded, ok := unescape(buf[:0], raw)
	return ok && string(decoded) == key
}
