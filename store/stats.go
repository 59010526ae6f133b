package store

import (
	"time"

	bolt "go.etcd.io/bbolt"
)

// Stats describe the log.
type Stats struct {
	Events            uint64
	FirstSeq, LastSeq uint64 // FirstSeq is 0 when the log is empty
	Oldest, Newest    time.Time
	FileSize          int64
	PerSource         map[string]uint64 // only when asked for
}

// statsChunk is how many records one read transaction of ScanHeads looks at.
const statsChunk = 1 << 16

// Stats returns the log's range and size. withPerSource adds the count of events per source,
// which reads every record's header (but decodes nothing else).
func (s *Store) Stats(withPerSource bool) (Stats, error) {
	if err := s.checkOpen(); err != nil {
		return Stats{}, err
	}
	st := Stats{FileSize: s.Size()}
	var lastKey uint64
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEvents)
		if b == nil {
			return nil
		}
		st.LastSeq = b.Sequence()
		c := b.Cursor()
		k, v := c.First()
		if k == nil {
			return nil
		}
		st.FirstSeq = seqOf(k)
		st.Oldest = ingestTimeOf(v)
		k, v = c.Last()
		lastKey = seqOf(k)
		st.Newest = ingestTimeOf(v)
		st.Events = lastKey - st.FirstSeq + 1 // seqs are contiguous: only the oldest are removed
		return nil
	})
	if err != nil || !withPerSource {
		return st, err
	}
	st.PerSource = map[string]uint64{}
	if st.FirstSeq == 0 {
		return st, nil
	}
	counts, n, err := s.countPerSource(st.FirstSeq, lastKey)
	for src, c := range counts {
		st.PerSource[src] = *c
	}
	st.Events = n
	return st, err
}

// countPerSource counts the records in [from, to] by source from their heads.
func (s *Store) countPerSource(from, to uint64) (map[string]*uint64, uint64, error) {
	counts := map[string]*uint64{} // pointers: incrementing needs no key allocation
	var total uint64
	err := s.ScanHeads(from, to, func(h RecordHead) error {
		p := counts[string(h.Source)]
		if p == nil {
			p = new(uint64)
			counts[string(h.Source)] = p
		}
		*p++
		total++
		return nil
	})
	return counts, total, err
}

func ingestTimeOf(rec []byte) time.Time {
	nanos, _, err := peekMeta(rec)
	if err != nil || nanos == zeroTimeNanos {
		return time.Time{}
	}
	return time.Unix(0, nanos).UTC()
}
