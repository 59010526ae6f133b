package filters

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
)

// TestMatcherTable puts every table pattern into one Matcher and checks each table key
// against all of them at once, using Match as the judge for the pairs the table lacks.
func TestMatcherTable(t *testing.T) {
	m := NewMatcher()
	for i, c := range topicCases {
		mustAdd(t, m, c.pattern, i)
	}
	for _, c := range topicCases {
		var want []int
		for i, p := range topicCases {
			if Match(p.pattern, c.key) {
				want = append(want, i)
			}
		}
		if got := m.Match(c.key, nil); !slices.Equal(got, want) {
			t.Errorf("key %q: got %v, want %v", c.key, got, want)
		}
	}
	for i, c := range topicCases {
		got := slices.Contains(m.Match(c.key, nil), i)
		if got != c.want {
			t.Errorf("pattern %q key %q: matched=%v, want %v", c.pattern, c.key, got, c.want)
		}
	}
}

func TestMatcherIDsOnceAscending(t *testing.T) {
	m := NewMatcher()
	for _, b := range []struct {
		pattern string
		id      int
	}{
		{"a.#", 5}, {"#", 2}, {"a.*", 5}, {"#.#.a", 9}, {"a", 2}, {"a", 2}, {"b", 1}, {"#.a.#", -3},
	} {
		mustAdd(t, m, b.pattern, b.id)
	}
	if got := m.Len(); got != 8 {
		t.Errorf("Len() = %d, want 8", got)
	}
	got := m.Match("a", []int{100})
	if want := []int{100, -3, 2, 5, 9}; !slices.Equal(got, want) {
		t.Errorf("Match(a) = %v, want %v", got, want)
	}
	if got := m.Match("b", nil); !slices.Equal(got, []int{1, 2}) {
		t.Errorf("Match(b) = %v, want [1 2]", got)
	}
}

func TestMatcherEmpty(t *testing.T) {
	m := NewMatcher()
	if got := m.Match("a.b", nil); got != nil {
		t.Errorf("empty Matcher: Match = %v", got)
	}
	if m.Matches("") {
		t.Error("empty Matcher: Matches(\"\") = true")
	}
}

func TestMatcherAddTooLong(t *testing.T) {
	m := NewMatcher()
	err := m.Add(strings.Repeat("a", 256), 1)
	if !errors.Is(err, ErrPatternTooLong) {
		t.Fatalf("Add(256 bytes) = %v, want ErrPatternTooLong", err)
	}
	if m.Len() != 0 || m.Matches(strings.Repeat("a", 256)) {
		t.Error("a rejected pattern was kept")
	}
}

// TestMatcherAddAfterMatch checks that scratch space made for a smaller trie is not reused
// for a bigger one.
func TestMatcherAddAfterMatch(t *testing.T) {
	m := NewMatcher()
	mustAdd(t, m, "a", 1)
	if got := m.Match("a.b.c", nil); got != nil {
		t.Fatalf("Match = %v", got)
	}
	mustAdd(t, m, "a.b.c", 2)
	mustAdd(t, m, "a.*.#", 3)
	if got := m.Match("a.b.c", nil); !slices.Equal(got, []int{2, 3}) {
		t.Errorf("Match = %v, want [2 3]", got)
	}
}

func TestMatcherNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	m, keys := benchMatcher(t)
	dst := make([]int, 0, m.Len())
	for _, key := range keys {
		allocs := testing.AllocsPerRun(50, func() {
			dst = m.Match(key, dst[:0])
			_ = m.Matches(key)
		})
		if allocs != 0 {
			t.Errorf("key %q: %v allocations per Match+Matches", key, allocs)
		}
	}
	if allocs := testing.AllocsPerRun(50, func() { Match("a.#.*.c", "a.b.b.b.c") }); allocs != 0 {
		t.Errorf("Match: %v allocations", allocs)
	}
}

// TestMatcherConcurrent runs many matches at once (meaningful under -race) and checks each
// result against Match.
func TestMatcherConcurrent(t *testing.T) {
	m := NewMatcher()
	var patterns []string
	for i, c := range topicCases {
		patterns = append(patterns, c.pattern)
		mustAdd(t, m, c.pattern, i)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			var dst []int
			for r := range 200 {
				key := topicCases[(g*31+r)%len(topicCases)].key
				dst = m.Match(key, dst[:0])
				for i, p := range patterns {
					if slices.Contains(dst, i) != Match(p, key) {
						errs <- fmt.Errorf("key %q pattern %q: Matcher and Match disagree", key, p)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
