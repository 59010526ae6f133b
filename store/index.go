package store

import (
	bolt "go.etcd.io/bbolt"
)

// recentIndexSize is how many of the latest events the fingerprint index covers. Redeliveries
// are only ever compared with the last few unacknowledged messages of a source (the caller's
// dedup window), so an index over the whole log would only cost: kept in bbolt it made every
// commit insert random keys into a tree and took an eighth of the router's CPU. A redelivery
// whose original fell out of the index is logged again: a duplicate record, never a loss.
const recentIndexSize = 1 << 16

// fpIndex maps the fingerprints of the last recentIndexSize committed events to their seqs.
// Only the appender goroutine uses it (and Open, before the appender starts).
type fpIndex struct {
	ring []indexEntry
	next int
	byFP map[Fingerprint]uint64
}

type indexEntry struct {
	seq uint64
	fp  Fingerprint
}

func newFPIndex(size int) *fpIndex {
	return &fpIndex{ring: make([]indexEntry, 0, size), byFP: make(map[Fingerprint]uint64, size)}
}

// add records a committed event; the oldest entry makes room.
func (x *fpIndex) add(fp Fingerprint, seq uint64) {
	if len(x.ring) < cap(x.ring) {
		x.ring = append(x.ring, indexEntry{seq, fp})
	} else {
		old := x.ring[x.next]
		if x.byFP[old.fp] == old.seq {
			delete(x.byFP, old.fp)
		}
		x.ring[x.next] = indexEntry{seq, fp}
		x.next = (x.next + 1) % len(x.ring)
	}
	x.byFP[fp] = seq
}

// lookup returns the seq of the latest indexed event with fingerprint fp, if it lies in w and
// after deletedThrough (an event retention removed does not count). A later copy outside w
// hides an earlier one inside: the redelivery is then logged again, a duplicate record rather
// than a lost message.
func (x *fpIndex) lookup(fp Fingerprint, w Window, deletedThrough uint64) (uint64, bool) {
	seq, ok := x.byFP[fp]
	return seq, ok && seq > deletedThrough && w.Contains(seq)
}

// load fills the index from the newest events of the log, at Open.
func (x *fpIndex) load(tx *bolt.Tx) error {
	c := tx.Bucket(bucketEvents).Cursor()
	var newest []indexEntry
	for k, v := c.Last(); k != nil && len(newest) < cap(x.ring); k, v = c.Prev() {
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
