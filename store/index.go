package store

import (
	"bytes"

	bolt "go.etcd.io/bbolt"
)

// The fingerprint index maps a fingerprint to the seq of the latest event that has it. It is
// split into generations of 2^fpGenBits seqs, a nested bucket each: a batch's inserts, random
// by nature, then touch the pages of one small tree instead of those of an index over the
// whole log (which doubled the pages a commit writes), and retention drops a generation whole,
// without rewriting pages, once all its events are gone. A lookup probes the generations
// newest first, one B+tree lookup each; an entry whose event has been removed does not count.
const defaultFPGenBits = 15

// fpIndex is the index as seen from one write transaction.
type fpIndex struct {
	root    *bolt.Bucket // generation -> nested bucket (fingerprint -> seq)
	events  *bolt.Bucket
	genBits uint
	cur     *bolt.Bucket // the generation last written
	curGen  uint64
}

func newFPIndex(tx *bolt.Tx, genBits uint) *fpIndex {
	return &fpIndex{root: tx.Bucket(bucketFP), events: tx.Bucket(bucketEvents), genBits: genBits}
}

// lookup returns the seq of the latest event with fingerprint fp still in the log, if it lies
// in w. A later copy outside w hides an earlier one inside: the redelivery is then logged
// again, a duplicate record rather than a lost message.
func (x *fpIndex) lookup(fp []byte, w Window) (uint64, bool) {
	c := x.root.Cursor()
	for k, v := c.Last(); k != nil; k, v = c.Prev() {
		if v != nil {
			continue // not a generation bucket
		}
		if (seqOf(k)+1)<<x.genBits <= w.From {
			return 0, false // this generation and every older one end below from
		}
		if s := x.root.Bucket(k).Get(fp); len(s) == 8 {
			// Older generations hold older seqs: if this event is gone, so are those.
			seq := seqOf(s)
			return seq, w.Contains(seq) && x.events.Get(s) != nil
		}
	}
	return 0, false
}

// put records fp for seq. fp must stay unchanged until the transaction ends.
func (x *fpIndex) put(fp []byte, seq uint64) error {
	gen := seq >> x.genBits
	if x.cur == nil || gen != x.curGen {
		b, err := x.root.CreateBucketIfNotExists(seqKey(gen))
		if err != nil {
			return err
		}
		x.cur, x.curGen = b, gen
	}
	return x.cur.Put(fp, seqKey(seq))
}

// dropThrough deletes the generations all of whose seqs are at most seq.
func (x *fpIndex) dropThrough(seq uint64) error {
	var gone [][]byte
	c := x.root.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if v != nil {
			continue
		}
		if lastOfGen := (seqOf(k)+1)<<x.genBits - 1; lastOfGen > seq {
			break
		}
		gone = append(gone, bytes.Clone(k))
	}
	for _, k := range gone {
		if err := x.root.DeleteBucket(k); err != nil {
			return err
		}
	}
	return nil
}
