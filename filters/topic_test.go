package filters

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// refSplit splits like RabbitMQ's split_topic_key: the empty string has no words.
func refSplit(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ".")
}

// refMatch is the slow, obviously correct definition the fast matchers are checked against.
func refMatch(p, k []string) bool {
	if len(p) == 0 {
		return len(k) == 0
	}
	switch p[0] {
	case "#":
		return refMatch(p[1:], k) || len(k) > 0 && refMatch(p, k[1:])
	case "*":
		return len(k) > 0 && refMatch(p[1:], k[1:])
	default:
		return len(k) > 0 && p[0] == k[0] && refMatch(p[1:], k[1:])
	}
}

type topicCase struct {
	pattern, key string
	want         bool
}

// topicCases are checked against Match, the Matcher and the reference. The broker test
// confirms the same rules against RabbitMQ itself.
var topicCases = []topicCase{
	// The empty string has no words, so "*" cannot match it, but "" and "#" can.
	{"", "", true}, {"", "a", false}, {"", ".", false},
	{"*", "", false}, {"*", "a", true}, {"*", ".", false}, {"*", "a.b", false},
	{"#", "", true}, {"#", ".", true}, {"#", "a.b.c", true}, {"#", "#", true},
	{"#.#", "", true}, {"#.#", "a", true}, {"#.#.#", "a.b", true},
	{"*.#", "", false}, {"*.#", "a", true}, {"*.#", "a.b", true},
	{"#.*", "", false}, {"#.*", "a", true}, {"#.*", ".", true},
	{"#.*.#", "", false}, {"#.*.#", ".", true}, {"*.#.*", "a", false}, {"*.#.*", "a.b", true},
	// '#' at the start, middle and end.
	{"a.#", "a", true}, {"a.#", "a.", true}, {"a.#", "a.b.c", true}, {"a.#", "b", false},
	{"a.#", "", false}, {"a.#", "ab", false},
	{"#.a", "a", true}, {"#.a", "x.a", true}, {"#.a", "a.x", false}, {"#.a", "", false},
	{"a.#.b", "a.b", true}, {"a.#.b", "a.x.b", true}, {"a.#.b", "a.x.y.b", true},
	{"a.#.b", "a..b", true}, {"a.#.b", "a.b.x", false}, {"a.#.#.b", "a.b", true},
	{"#.a.#", "a", true}, {"#.a.#", "x.a.y", true}, {"#.a.#", "x.y", false},
	{"#.b.#.b", "b.b", true}, {"#.b.#.b", "b.b.b", true}, {"#.b.#.b", "b", false},
	{"#.b.#.b", "b.a.b.a", false},
	// Empty words are words.
	{".", ".", true}, {".", "", false}, {".", "a", false}, {"*.*", ".", true},
	{"a.", "a.", true}, {"a.", "a", false}, {".a", ".a", true}, {"*.a", ".a", true},
	{"a.*.b", "a..b", true}, {"a.*.b", "a.b", false}, {"a..b", "a..b", true},
	{"#.", "", false}, {"#.", ".", true}, {"#.", "a.", true}, {"#.", "a", false},
	{".#", "", false}, {".#", ".", true}, {".#", ".a", true}, {".#", "a", false},
	// Words that merely contain '*' or '#' are literal.
	{"a.#b", "a.#b", true}, {"a.#b", "a.b", false}, {"a.#b", "a.x.b", false},
	{"ab*", "abc", false}, {"ab*", "ab*", true}, {"*a", "ba", false}, {"a#", "a", false},
	{"**", "a", false}, {"**", "**", true}, {"##", "", false}, {"##", "a", false},
	{"##", "##", true}, {"#*", "#*", true}, {"#*", "a", false},
	// Wildcards in a key are ordinary words.
	{"*", "#", true}, {"a.b", "a.#", false}, {"a.b", "a.*", false}, {"a.*", "a.*", true},
	// Plain words: exact, case-sensitive, byte for byte.
	{"a.b.c", "a.b.c", true}, {"a.b.c", "a.b", false}, {"a.b", "a.b.c", false},
	{"A", "a", false}, {"é.*", "é.ü", true}, {"order.*.created", "order.eu.created", true},
	{"a b", "a b", true}, {"a", " a", false},
}

func TestMatchTable(t *testing.T) {
	for _, c := range topicCases {
		if ref := refMatch(refSplit(c.pattern), refSplit(c.key)); ref != c.want {
			t.Errorf("reference: pattern %q key %q = %v, table says %v", c.pattern, c.key, ref, c.want)
		}
		if got := Match(c.pattern, c.key); got != c.want {
			t.Errorf("Match(%q, %q) = %v, want %v", c.pattern, c.key, got, c.want)
		}
	}
}

func TestValidate(t *testing.T) {
	max := strings.Repeat("a.", 127) + "#" // 255 bytes
	if err := ValidatePattern(max); err != nil {
		t.Errorf("255-byte pattern: %v", err)
	}
	if err := ValidatePattern(max + "x"); !errors.Is(err, ErrPatternTooLong) {
		t.Errorf("256-byte pattern: got %v, want ErrPatternTooLong", err)
	}
	for _, p := range []string{"", ".", "#.#", "a.#b", "**"} {
		if err := ValidatePattern(p); err != nil {
			t.Errorf("ValidatePattern(%q) = %v", p, err)
		}
	}
	if err := ValidateRoutingKey(max[:255]); err != nil {
		t.Errorf("255-byte key: %v", err)
	}
	if err := ValidateRoutingKey(max + "x"); !errors.Is(err, ErrKeyTooLong) {
		t.Errorf("256-byte key: got %v, want ErrKeyTooLong", err)
	}
}

// TestMatchNoBlowup checks that patterns with many '#' stay cheap on long keys; a naive
// backtracking matcher takes exponential time here (the test would time out).
func TestMatchNoBlowup(t *testing.T) {
	key := strings.TrimSuffix(strings.Repeat("a.", 127), ".")              // 127 words
	pattern := strings.Repeat("#.a.", 30) + "#.b"                          // cannot match: no "b"
	pattern2 := strings.TrimSuffix(strings.Repeat("#.a.", 30), ".") + ".#" // matches
	if Match(pattern, key) {
		t.Errorf("Match(%q, 127 a's) = true", pattern)
	}
	if !Match(pattern2, key) {
		t.Errorf("Match(%q, 127 a's) = false", pattern2)
	}
	m := NewMatcher()
	mustAdd(t, m, pattern, 1)
	mustAdd(t, m, pattern2, 2)
	if got := m.Match(key, nil); !slices.Equal(got, []int{2}) {
		t.Errorf("Matcher.Match = %v, want [2]", got)
	}
}

const fuzzMaxLen = 24 // keeps the exponential reference fast

// project maps arbitrary bytes onto a small alphabet so that the fuzzer mostly explores
// structure (dots, wildcards, '|' separating patterns) rather than spelling.
func project(s, alphabet string) string {
	b := []byte(s)
	for i, c := range b {
		b[i] = alphabet[int(c)%len(alphabet)]
	}
	return string(b)
}

func FuzzMatch(f *testing.F) {
	for _, c := range topicCases {
		f.Add(c.pattern, c.key)
	}
	f.Add("a.#|#.b|*.*|a.*.#", "a.b")
	f.Add("#|*|", "")
	f.Add("#.a.#.b|a.#b|#.#.*", "a..b.#b")
	f.Fuzz(func(t *testing.T, pattern, key string) {
		if len(pattern) > fuzzMaxLen || len(key) > fuzzMaxLen {
			t.Skip()
		}
		checkAgainstReference(t, pattern, key)
		checkAgainstReference(t, project(pattern, "ab..*#|"), project(key, "ab..*#"))
	})
}

// checkAgainstReference compares Match and a one-pattern Matcher with the reference for the
// whole of patterns, then a Matcher holding each '|'-separated part (pairs sharing an id).
func checkAgainstReference(t *testing.T, patterns, key string) {
	t.Helper()
	kw := refSplit(key)
	want := refMatch(refSplit(patterns), kw)
	if got := Match(patterns, key); got != want {
		t.Fatalf("Match(%q, %q) = %v, reference %v", patterns, key, got, want)
	}
	one := NewMatcher()
	mustAdd(t, one, patterns, 7)
	var wantIDs []int
	if want {
		wantIDs = []int{7}
	}
	if got := one.Match(key, nil); !slices.Equal(got, wantIDs) {
		t.Fatalf("Matcher{%q}.Match(%q) = %v, want %v", patterns, key, got, wantIDs)
	}
	if got := one.Matches(key); got != want {
		t.Fatalf("Matcher{%q}.Matches(%q) = %v, want %v", patterns, key, got, want)
	}

	parts := strings.Split(patterns, "|")
	many := NewMatcher()
	wantIDs = wantIDs[:0]
	for i, p := range parts {
		id := i / 2
		mustAdd(t, many, p, id)
		if refMatch(refSplit(p), kw) && !slices.Contains(wantIDs, id) {
			wantIDs = append(wantIDs, id)
		}
	}
	got := many.Match(key, []int{-1})
	if !slices.Equal(got, append([]int{-1}, wantIDs...)) {
		t.Fatalf("Matcher%q.Match(%q) = %v, want [-1 %v]", parts, key, got, wantIDs)
	}
	if got := many.Matches(key); got != (len(wantIDs) > 0) {
		t.Fatalf("Matcher%q.Matches(%q) = %v, want %v", parts, key, got, len(wantIDs) > 0)
	}
}

func mustAdd(t testing.TB, m *Matcher, pattern string, id int) {
	t.Helper()
	if err := m.Add(pattern, id); err != nil {
		t.Fatalf("Add(%q, %d): %v", pattern, id, err)
	}
}
