// Package filters decides which routes an event belongs to. Topic patterns follow RabbitMQ's
// topic exchange exactly (as in rabbit_exchange_type_topic of RabbitMQ 3.10):
//
//   - a routing key or pattern is a list of words separated by '.'; empty words count
//     ("a..b" has three words, "a." two), but the empty string has no words at all;
//   - in a pattern, the word "*" matches exactly one word and "#" zero or more words;
//   - any other word, including one that merely contains '*' or '#' ("a#", "*b"), matches
//     only the identical word;
//   - a pattern or routing key longer than 255 bytes (event.MaxKeyLen) is invalid.
package filters

import (
	"errors"
	"fmt"
	"strings"

	"github.com/wasmrouter/wasmrouter/event"
)

// Sentinel errors returned by ValidatePattern, ValidateRoutingKey and Matcher.Add.
var (
	ErrPatternTooLong = errors.New("filters: topic pattern longer than 255 bytes")
	ErrKeyTooLong     = errors.New("filters: routing key longer than 255 bytes")
)

// Words with a special meaning in a pattern.
const (
	wordOne  = "*" // exactly one word
	wordMany = "#" // zero or more words
)

// ValidatePattern reports why p cannot be a binding pattern. RabbitMQ accepts every pattern
// that fits in an AMQP short string, so length is the only rule.
func ValidatePattern(p string) error {
	if len(p) > event.MaxKeyLen {
		return fmt.Errorf("pattern of %d bytes: %w", len(p), ErrPatternTooLong)
	}
	return nil
}

// ValidateRoutingKey reports why k cannot be a routing key.
func ValidateRoutingKey(k string) error {
	if len(k) > event.MaxKeyLen {
		return fmt.Errorf("routing key of %d bytes: %w", len(k), ErrKeyTooLong)
	}
	return nil
}

// Words are visited by byte offset so that matching never allocates. firstWord gives the
// offset of a string's first word and wordsEnd the offset meaning "no word left"; it is one
// past the end because a trailing empty word (as in "a.") starts at len(s).

func firstWord(s string) int {
	if s == "" {
		return wordsEnd(s) // RabbitMQ splits the empty string into no words
	}
	return 0
}

func wordsEnd(s string) int { return len(s) + 1 }

// nextWord returns the word starting at offset i and the offset of the word after it.
func nextWord(s string, i int) (word string, next int) {
	j := strings.IndexByte(s[i:], '.')
	if j < 0 {
		return s[i:], wordsEnd(s)
	}
	return s[i : i+j], i + j + 1
}

// Match reports whether routing key key matches pattern. It needs no compilation and does
// not allocate; a Matcher is faster when many patterns are tried against the same key.
//
// It is wildcard matching over words with the usual single-backtrack-point method: only the
// latest '#' ever needs to take more words, because any earlier '#' could have taken them
// instead. This bounds the work by len(pattern words) * len(key words).
func Match(pattern, key string) bool {
	pEnd, kEnd := wordsEnd(pattern), wordsEnd(key)
	p, k := firstWord(pattern), firstWord(key)
	resumeP, resumeK := -1, -1 // after the latest '#': where the pattern and key resume
	for k < kEnd {
		if p < pEnd {
			pw, pn := nextWord(pattern, p)
			if pw == wordMany {
				resumeP, resumeK = pn, k
				p = pn
				continue
			}
			kw, kn := nextWord(key, k)
			if pw == wordOne || pw == kw {
				p, k = pn, kn
				continue
			}
		}
		if resumeP < 0 {
			return false
		}
		_, resumeK = nextWord(key, resumeK) // the latest '#' takes one more word
		p, k = resumeP, resumeK
	}
	for p < pEnd { // the key is used up: only '#' words may remain
		pw, pn := nextWord(pattern, p)
		if pw != wordMany {
			return false
		}
		p = pn
	}
	return true
}
