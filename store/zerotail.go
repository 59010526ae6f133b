package store

import (
	"time"

	bolt "go.etcd.io/bbolt"
)

// The log's file is kept written with zeros ahead of its data (zeroAhead bytes past bbolt's
// high-water mark, in zeroChunk writes from the appender's commits). bbolt grows its file with
// truncate, which leaves a hole; every commit that then writes into the hole makes the
// filesystem allocate blocks, and its fdatasyncs must also commit that metadata to the
// journal. Overwriting blocks that are already written needs no metadata, so a commit's
// fdatasyncs flush only its pages (RATIONALE.md, "The log's file is written ahead").
//
// The tail is kept short: it is space taken from the disk ahead of the data, and on a disk
// that fills up, commits go on into it for as long as it lasts before they fail and the
// router stops acknowledging (RELIABILITY.md), about 2 s at 500 events/s of 1 KiB.
const (
	zeroAhead = 1 << 20
	zeroChunk = 128 << 10
	// zeroRetry is how long the tail is left alone after a write failed (a full disk): bbolt's
	// own growth goes on meanwhile.
	zeroRetry = 10 * time.Second
)

// zeroTail is the appender's state of the written-ahead tail.
type zeroTail struct {
	zf       zeroFile  // nil: not kept (read-only, NoSync, or not supported here)
	end      int64     // the file is written (no hole) from the high-water mark up to end
	failedAt time.Time // the last failed write; zero once one succeeds
}

// extend writes the next chunk of zeros if the tail is shorter than zeroAhead. It runs inside
// the appender's write transaction: bbolt allows one writer, so no other commit can use the
// pages past tx.Size() meanwhile, and this transaction's own pages are written at its commit,
// after the zeros.
func (s *Store) extendTail(tx *bolt.Tx) {
	z := &s.tail
	if z.zf == nil || (!z.failedAt.IsZero() && time.Since(z.failedAt) < zeroRetry) {
		return
	}
	hwm := tx.Size()
	if z.end < hwm {
		end, err := z.zf.writtenFrom(hwm)
		if err != nil {
			s.tailFailed(err)
			return
		}
		z.end = end
	}
	if z.end-hwm >= zeroAhead {
		return
	}
	if err := z.zf.writeZeros(z.end, zeroChunk); err != nil {
		s.tailFailed(err)
		return
	}
	z.end += zeroChunk
	if !z.failedAt.IsZero() {
		z.failedAt = time.Time{}
		s.log.Info("store: writing the log file ahead again")
	}
}

func (s *Store) tailFailed(err error) {
	if s.tail.failedAt.IsZero() {
		s.log.Warn("store: writing the log file ahead failed; commits go on without it", "err", err)
	}
	s.tail.failedAt = time.Now()
}

// zeroFile is the log file as the tail writes it: a descriptor of its own (bbolt's is not
// exported), writing only past the high-water mark.
type zeroFile interface {
	// writtenFrom returns the offset of the first hole at or after off (the file's size if
	// there is none).
	writtenFrom(off int64) (int64, error)
	writeZeros(off int64, n int) error
	close() error
}
