package filters

import (
	"slices"
	"sync"
)

// Matcher is a compiled set of topic patterns, each carrying an integer id (a route index,
// say). Patterns share a word trie, as in RabbitMQ's topic exchange, and matching runs the
// trie as a nondeterministic automaton: the set of nodes reachable after each key word is
// kept without duplicates, so the work per key is bounded by words * nodes whatever the
// patterns (a backtracking walk can take exponential time on patterns like "#.a.#.a.#.b").
//
// Add every pattern first; after that, Match and Matches are safe for concurrent use. Add
// must not run concurrently with any other method. The zero Matcher is not usable; call
// NewMatcher.
type Matcher struct {
	nodes    []node
	ids      []int         // slot -> id
	slotOf   map[int]int32 // id -> slot
	patterns int
	scratch  sync.Pool // *matchState
}

// node is a trie node: the patterns that end here and the edges to longer patterns.
// Node 0 is the root; as nothing points back to it, 0 also means "no edge".
type node struct {
	words map[string]int32 // edges for literal words
	one   int32            // edge for "*"
	many  int32            // edge for "#"
	loops bool             // reached through "#": may take any number of further words
	slots []int32          // ids of the patterns ending here, as slots
}

// NewMatcher returns an empty Matcher.
func NewMatcher() *Matcher {
	return &Matcher{nodes: make([]node, 1), slotOf: make(map[int]int32)}
}

// Len returns the number of patterns added.
func (m *Matcher) Len() int { return m.patterns }

// Add compiles pattern into the set under id. Several patterns may share an id (Match then
// reports the id once); the same pattern may be added under several ids.
func (m *Matcher) Add(pattern string, id int) error {
	if err := ValidatePattern(pattern); err != nil {
		return err
	}
	n := int32(0)
	prevMany := false
	for i, end := firstWord(pattern), wordsEnd(pattern); i < end; {
		var w string
		w, i = nextWord(pattern, i)
		if w == wordMany && prevMany {
			continue // "#.#" matches exactly what "#" matches
		}
		prevMany = w == wordMany
		n = m.child(n, w)
	}
	slot, ok := m.slotOf[id]
	if !ok {
		slot = int32(len(m.ids))
		m.ids = append(m.ids, id)
		m.slotOf[id] = slot
	}
	if !slices.Contains(m.nodes[n].slots, slot) {
		m.nodes[n].slots = append(m.nodes[n].slots, slot)
	}
	m.patterns++
	return nil
}

// child returns the node under n for pattern word w, creating it if needed.
func (m *Matcher) child(n int32, w string) int32 {
	nd := &m.nodes[n]
	var c int32
	switch w {
	case wordOne:
		c = nd.one
	case wordMany:
		c = nd.many
	default:
		c = nd.words[w]
	}
	if c != 0 {
		return c
	}
	c = int32(len(m.nodes))
	switch w {
	case wordOne:
		nd.one = c
	case wordMany:
		nd.many = c
	default:
		if nd.words == nil {
			nd.words = make(map[string]int32)
		}
		nd.words[w] = c
	}
	// nd is not used past this point: the append may move the nodes.
	m.nodes = append(m.nodes, node{loops: w == wordMany})
	return c
}

// Match appends to dst the ids of the patterns that key matches, each once, and returns the
// extended slice. The appended ids are in ascending order; dst's existing elements are left
// as they are. Scratch space is pooled, so once warm it does not allocate when dst has room
// for the result.
func (m *Matcher) Match(key string, dst []int) []int {
	st := m.getState()
	defer m.scratch.Put(st)
	m.run(key, st)
	start := len(dst)
	stamp := st.next()
	for _, n := range st.cur {
		for _, s := range m.nodes[n].slots {
			if st.slotSeen[s] != stamp {
				st.slotSeen[s] = stamp
				dst = append(dst, m.ids[s])
			}
		}
	}
	slices.Sort(dst[start:])
	return dst
}

// Matches reports whether key matches any pattern.
func (m *Matcher) Matches(key string) bool {
	st := m.getState()
	defer m.scratch.Put(st)
	m.run(key, st)
	for _, n := range st.cur {
		if len(m.nodes[n].slots) > 0 {
			return true
		}
	}
	return false
}

// run leaves in st.cur the nodes reached after the last word of key: the nodes whose
// patterns match key.
func (m *Matcher) run(key string, st *matchState) {
	st.cur = st.cur[:0]
	stamp := st.next()
	st.cur = m.enter(st.cur, st.nodeSeen, stamp, 0)
	for i, end := firstWord(key), wordsEnd(key); i < end && len(st.cur) > 0; {
		var w string
		w, i = nextWord(key, i)
		stamp = st.next()
		st.alt = st.alt[:0]
		for _, n := range st.cur {
			nd := &m.nodes[n]
			if nd.loops {
				st.alt = m.enter(st.alt, st.nodeSeen, stamp, n)
			}
			if nd.one != 0 {
				st.alt = m.enter(st.alt, st.nodeSeen, stamp, nd.one)
			}
			if len(nd.words) > 0 {
				if c := nd.words[w]; c != 0 {
					st.alt = m.enter(st.alt, st.nodeSeen, stamp, c)
				}
			}
		}
		st.cur, st.alt = st.alt, st.cur
	}
}

// enter adds node n to set unless it is already there, together with the "#" nodes below it,
// which are reached without taking a word.
func (m *Matcher) enter(set []int32, seen []uint32, stamp uint32, n int32) []int32 {
	for seen[n] != stamp {
		seen[n] = stamp
		set = append(set, n)
		if n = m.nodes[n].many; n == 0 {
			break
		}
	}
	return set
}

// matchState is the scratch space of one Match call, recycled through a sync.Pool. A set's
// members are marked with the current stamp, so clearing a set costs nothing.
type matchState struct {
	stamp    uint32
	nodeSeen []uint32 // by node index
	slotSeen []uint32 // by slot
	cur, alt []int32  // node sets before and after a word
}

func (m *Matcher) getState() *matchState {
	st, _ := m.scratch.Get().(*matchState)
	if st == nil {
		st = new(matchState)
	}
	if len(st.nodeSeen) < len(m.nodes) || len(st.slotSeen) < len(m.ids) {
		// New state, or patterns were added since this one was made.
		st.nodeSeen = make([]uint32, len(m.nodes))
		st.slotSeen = make([]uint32, len(m.ids))
		st.stamp = 0
	}
	return st
}

// next returns a stamp no set member carries yet.
func (st *matchState) next() uint32 {
	st.stamp++
	if st.stamp == 0 { // wrapped: old marks could collide with new stamps
		clear(st.nodeSeen)
		clear(st.slotSeen)
		st.stamp = 1
	}
	return st.stamp
}
