package store

import (
	"encoding/binary"

	bolt "go.etcd.io/bbolt"
)

// fpIndex maps the fingerprints of the last Options.RecentIndex committed events to their seqs.
// Only the appender goroutine uses it (and Open, before the appender starts).
//
// Redeliveries are only ever compared with the last few unacknowledged messages of a source
// (the caller's dedup window, as wide as the sources' prefetch: 2,128 events after a restart
// with one source at prefetch 1000), so an index over the whole log would only cost: kept in
// bbolt it made every commit insert random keys into a tree and took an eighth of the
// router's CPU. A redelivery whose original fell out of the index is logged again: a
// duplicate record, never a loss. The default 16,384 entries are 0.5 MiB (65,536 were 2 MiB,
// a sixth of the router's live heap: BENCHMARKS.md, "Memory").
//
// It is an open-addressing hash table of ring slots rather than a Go map keyed by
// fingerprint: each entry costs 4 bytes of table beside the ring's 24 instead of the map's
// 40 or so (for 65,536 entries, 2 MiB instead of 4.7 MiB), and a
// lookup compares the whole fingerprint, so that a match is always a real one.
type fpIndex struct {
	ring  []indexEntry
	next  int
	table []uint32 // linear probing; 0 is empty, else a ring slot + 1
	shift uint     // 64 - log2(len(table))
}

type indexEntry struct {
	seq uint64
	fp  Fingerprint
}

func newFPIndex(size int) *fpIndex {
	bits := uint(1)
	for 1<<bits < 2*size { // at most half full
		bits++
	}
	return &fpIndex{ring: make([]indexEntry, 0, size), table: make([]uint32, 1<<bits), shift: 64 - bits}
}

// home is fp's preferred position in the table.
func (x *fpIndex) home(fp Fingerprint) int {
	h := binary.LittleEndian.Uint64(fp[:8]) ^ binary.LittleEndian.Uint64(fp[8:])
	return int((h * 0x9E3779B97F4A7C15) >> x.shift)
}

// find returns the position of fp's entry, or the empty position where it would go.
func (x *fpIndex) find(fp Fingerprint) (pos int, found bool) {
	mask := len(x.table) - 1
	for i := x.home(fp); ; i = (i + 1) & mask {
		e := x.table[i]
		if e == 0 {
			return i, false
		}
		if x.ring[e-1].fp == fp {
			return i, true
		}
	}
}

// forget removes fp's entry if it points at ring slot: a later copy of the same fingerprint
// stays. Deletion shifts the entries after it back, so that no probe sequence is broken.
func (x *fpIndex) forget(fp Fingerprint, slot int) {
	i, found := x.find(fp)
	if !found || x.table[i] != uint32(slot)+1 {
		return
	}
	mask := len(x.table) - 1
	for j := (i + 1) & mask; x.table[j] != 0; j = (j + 1) & mask {
		k := x.home(x.ring[x.table[j]-1].fp)
		// The entry at j may move to i if its home is not cyclically within (i, j].
		if (j > i && (k <= i || k > j)) || (j < i && k <= i && k > j) {
			x.table[i] = x.table[j]
			i = j
		}
	}
	x.table[i] = 0
}

// add records a committed event; the oldest entry makes room.
func (x *fpIndex) add(fp Fingerprint, seq uint64) {
	var slot int
	if len(x.ring) < cap(x.ring) {
		slot = len(x.ring)
		x.ring = append(x.ring, indexEntry{})
	} else {
		slot = x.next
		x.forget(x.ring[slot].fp, slot)
		x.next = (x.next + 1) % len(x.ring)
	}
	x.ring[slot] = indexEntry{seq, fp}
	pos, _ := x.find(fp)
	x.table[pos] = uint32(slot) + 1 // a later copy replaces an earlier one
}

// lookup returns the seq of the latest indexed event with fingerprint fp, if it lies in w and
// after deletedThrough (an event retention removed does not count). A later copy outside w
// hides an earlier one inside: the redelivery is then logged again, a duplicate record rather
// than a lost message.
func (x *fpIndex) lookup(fp Fingerprint, w Window, deletedThrough uint64) (uint64, bool) {
	pos, ok := x.find(fp)
	if !ok {
		return 0, false
	}
	seq := x.ring[x.table[pos]-1].seq
	return seq, seq > deletedThrough && w.Contains(seq)
}

// load fills the index from the newest events of the log, at the first append; touched
// (may be nil) is told the bytes of each record read.
func (x *fpIndex) load(tx *bolt.Tx, touched func(n int)) error {
	c := tx.Bucket(bucketEvents).Cursor()
	var newest []indexEntry
	for k, v := c.Last(); k != nil && len(newest) < cap(x.ring); k, v = c.Prev() {
		if touched != nil {
			touched(len(v))
		}
		_, fp, err := peekMeta(v)
		if err != nil {
			continue // a corrupt record is reported by whoever reads it
		}
		newest = append(newest, indexEntry{seqOf(k), fp})
	}
	for i := len(newest) - 1; i >= 0; i-- {
		x.add(newest[i].fp, newest[i].seq)
	}
	return nil
}
