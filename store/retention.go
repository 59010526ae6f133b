package store

import (
	"bytes"
	"time"

	bolt "go.etcd.io/bbolt"
)

func (s *Store) runRetention() {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.retentionEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		case <-s.retentionKick:
		}
		if err := s.enforce(); err != nil {
			s.log.Warn("store: retention", "err", err)
		}
		s.Size() // the appender updates the gauge at most every sizeEvery: the last commits' growth
	}
}

func (s *Store) kickRetention() {
	select {
	case s.retentionKick <- struct{}{}:
	default:
	}
}

func (s *Store) stopping() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

// enforce removes the events older than Retention, then applies MaxSize. It deletes in
// chunks, one transaction each, so that appends wait for one chunk at most.
func (s *Store) enforce() error {
	if s.opts.Retention > 0 {
		cutoff := s.opts.Now().UnixNano() - int64(s.opts.Retention)
		expired := func(ingest int64) bool { return ingest < cutoff }
		var deleted, undelivered uint64
		for !s.stopping() {
			n, lost, err := s.deleteOldest(retentionChunk, expired)
			deleted, undelivered = deleted+n, undelivered+lost
			if err != nil {
				return err
			}
			if n < retentionChunk {
				break
			}
		}
		if undelivered > 0 {
			s.log.Warn("store: retention removed events not yet delivered to every target",
				"removed", deleted, "undelivered", undelivered, "retention", s.opts.Retention)
		}
	}
	if s.opts.MaxSize > 0 {
		return s.enforceSize()
	}
	return nil
}

// enforceSize checks the used bytes against MaxSize. With OnFull "block" it only sets or
// clears Full; with "drop_oldest" it deletes the oldest events, delivered or not, until the
// used bytes are under 90% of MaxSize.
func (s *Store) enforceSize() error {
	used, err := s.usedBytes()
	if err != nil {
		return err
	}
	if s.opts.OnFull == OnFullBlock {
		s.setFull(used >= s.opts.MaxSize, used)
		return nil
	}
	if used < s.opts.MaxSize {
		return nil
	}
	target := s.opts.MaxSize / 10 * 9
	var dropped, lost uint64
	for used > target && !s.stopping() {
		events := s.lastSeq.Load() - min(s.deletedThrough.Load(), s.lastSeq.Load())
		if events == 0 {
			break
		}
		// Delete about as many as should free the excess, judged by the average record.
		n := uint64(used-target)/max(uint64(used)/events, 1) + 1
		d, l, err := s.deleteOldest(int(min(n, retentionChunk)), nil)
		dropped, lost = dropped+d, lost+l
		if s.m != nil {
			s.m.Lost.Add(float64(l))
		}
		if err != nil {
			return err
		}
		if d == 0 {
			break
		}
		if used, err = s.usedBytes(); err != nil {
			return err
		}
	}
	if dropped == 0 {
		return nil
	}
	s.log.Warn("store: over max_size, dropped the oldest events",
		"dropped", dropped, "undelivered", lost, "used_bytes", used, "max_size", s.opts.MaxSize)
	return nil
}

// usedBytes is the part of the file that holds data: its high-water mark minus free pages.
func (s *Store) usedBytes() (int64, error) {
	var hwm int64
	if err := s.view(func(tx *bolt.Tx) error { hwm = tx.Size(); return nil }); err != nil {
		return 0, err
	}
	return hwm - int64(s.db.Stats().FreeAlloc), nil
}

// deleteOldest deletes up to n events from the start of the log, stopping at the first one
// expired (if given) rejects, and the fingerprint index generations left without events. It
// returns how many it deleted and how many of those some cursor had not yet passed.
func (s *Store) deleteOldest(n int, expired func(ingest int64) bool) (deleted, undelivered uint64, err error) {
	minCursor := s.MinCursor()
	var first, last uint64
	err = s.db.Update(func(tx *bolt.Tx) error {
		evb := tx.Bucket(bucketEvents)
		var victims [][]byte
		c := evb.Cursor()
		for k, v := c.First(); k != nil && len(victims) < n; k, v = c.Next() {
			ingest, _, perr := peekMeta(v)
			if perr == nil && expired != nil && !expired(ingest) {
				break
			}
			if perr != nil {
				// An unreadable record would otherwise block retention for good.
				s.log.Warn("store: removing unreadable record", "seq", seqOf(k), "err", perr)
			}
			victims = append(victims, bytes.Clone(k))
		}
		if len(victims) == 0 {
			return nil
		}
		for _, k := range victims {
			if err := evb.Delete(k); err != nil {
				return err
			}
		}
		first, last = seqOf(victims[0]), seqOf(victims[len(victims)-1])
		deleted = uint64(len(victims))
		return nil
	})
	if err != nil || deleted == 0 {
		return 0, 0, err
	}
	s.rmu.Lock()
	storeMax(&s.deletedThrough, last)
	s.rmu.Unlock()
	if last > minCursor {
		undelivered = last - max(first-1, minCursor)
	}
	return deleted, undelivered, nil
}
