package store

import (
	bolt "go.etcd.io/bbolt"
)

// mappedTrimEvery is how many bytes of the log may be read through the memory map (or
// appended) before the pages mapped into the process are let go. bbolt reads the file through
// a shared read-only mapping, and every page a reader touches stays in the process's resident
// set until the kernel is short of memory: delivering a backlog or replaying the log would
// otherwise count the whole log file, which grows without bound, in the router's resident
// memory. Letting them go is cheap and safe: the pages stay in the page cache (a later read
// maps them again with a minor fault) and bbolt never writes through the mapping. At 256 KiB
// the log's mapped pages stay under about 1 MiB (2 MiB at 1 MiB), for one madvise call per
// 256 KiB read or appended, about 12 us each on a 2 GiB log (BENCHMARKS.md, "The log's
// pages let go every 256 KiB").
const mappedTrimEvery = 256 << 10

// pointReadCost is what one random read (Get) counts towards mappedTrimEvery: the kernel
// maps up to 64 KiB of cached pages around a faulting address.
const pointReadCost = 64 << 10

// touched counts bytes read through the mapping within tx, and lets the mapped pages go once
// mappedTrimEvery bytes were read since the last time. It must be called inside a
// transaction: an open transaction keeps bbolt from remapping the file meanwhile.
func (s *Store) touched(tx *bolt.Tx, n int) {
	if s.mapRead.Add(int64(n)) < mappedTrimEvery {
		return
	}
	s.mapRead.Store(0)
	s.trimMapped(tx)
}

// wrote counts bytes the appender committed: each commit reads the tree's rightmost pages
// through the mapping, and the kernel maps the pages around each one it faults in (up to
// 64 KiB), which are the ones just written, so appending alone leaves the newest part of the
// file mapped.
func (s *Store) wrote(n int) {
	if n <= 0 || s.mapRead.Add(int64(n)) < mappedTrimEvery {
		return
	}
	err := s.view(func(tx *bolt.Tx) error {
		s.mapRead.Store(0)
		s.trimMapped(tx)
		return nil
	})
	if err != nil {
		s.log.Debug("store: releasing mapped pages", "err", err)
	}
}

// trimMapped drops the log's pages from the process's page tables (not from the page cache).
func (s *Store) trimMapped(tx *bolt.Tx) {
	size := tx.Size()
	if size <= 0 {
		return
	}
	if err := dropMapped(s.db.Info().Data, uintptr(size)); err != nil {
		s.log.Debug("store: releasing mapped pages", "err", err)
	}
}
