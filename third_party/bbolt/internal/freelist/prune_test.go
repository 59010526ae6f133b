package freelist

import (
	"testing"

	"go.etcd.io/bbolt/internal/common"
)

func sharedOf(f Interface) *shared {
	switch f := f.(type) {
	case *hashMap:
		return f.shared
	case *array:
		return f.shared
	}
	panic("unknown freelist")
}

func bothFreelists(t *testing.T, fn func(t *testing.T, f Interface)) {
	t.Run("hashmap", func(t *testing.T) { fn(t, NewHashMapFreelist()) })
	t.Run("array", func(t *testing.T) { fn(t, NewArrayFreelist()) })
}

func freeIDs(from, n int) []common.Pgid {
	ids := make([]common.Pgid, n)
	for i := range ids {
		ids[i] = common.Pgid(from + i)
	}
	return ids
}

// A page taken from the freelist that is never freed (an append-only bucket's full leaf)
// used to keep its allocating transaction's entry for ever.
func TestAllocsStayBoundedWhenPagesAreNeverFreed(t *testing.T) {
	bothFreelists(t, func(t *testing.T, f Interface) {
		const txs = 20 * allocsPruneMin
		f.Init(freeIDs(2, txs))
		most := 0
		for txid := common.Txid(2); txid < txs+2; txid++ {
			f.ReleasePendingPages()
			if f.Allocate(txid, 1) == 0 {
				t.Fatalf("tx %d: no free page", txid)
			}
			most = max(most, len(sharedOf(f).allocs))
		}
		if most >= 2*allocsPruneMin {
			t.Fatalf("allocs reached %d entries for %d pages never freed, want fewer than %d", most, txs, 2*allocsPruneMin)
		}
	})
}

// What a reader still needs stays: a page allocated after the oldest reader and freed before
// the next is released early, one allocated before it waits for it, however many entries were
// pruned in between.
func TestPruningKeepsWhatEarlyReleaseNeeds(t *testing.T) {
	bothFreelists(t, func(t *testing.T, f Interface) {
		s := sharedOf(f)
		const older, early = common.Pgid(2), common.Pgid(3)
		f.Init(freeIDs(2, 10*allocsPruneMin))
		if got := f.Allocate(10, 1); got != older {
			t.Fatalf("allocated %d, want %d", got, older)
		}
		f.AddReadonlyTXID(100)
		txid := common.Txid(101)
		f.ReleasePendingPages()
		if got := f.Allocate(txid, 1); got != early {
			t.Fatalf("allocated %d, want %d", got, early)
		}
		for txid++; txid < 101+3*allocsPruneMin; txid++ {
			f.ReleasePendingPages()
			f.Allocate(txid, 1)
		}
		if _, ok := s.allocs[older]; ok {
			t.Fatalf("the entry of a page allocated before the oldest reader was kept")
		}
		if got, ok := s.allocs[early]; !ok || got != 101 {
			t.Fatalf("the entry of a page allocated after the oldest reader: %d, %v; want 101", got, ok)
		}
		free := f.FreeCount()
		f.Free(txid, common.NewPage(older, 0, 0, 0))
		f.Free(txid, common.NewPage(early, 0, 0, 0))
		txid++
		f.ReleasePendingPages()
		if got := f.FreeCount(); got != free+1 {
			t.Fatalf("free pages %d, want the early one released alone (%d)", got, free+1)
		}
		if !f.Freed(older) || f.PendingCount() != 1 {
			t.Fatalf("the page allocated before the reader is not pending: pending %d", f.PendingCount())
		}
		f.RemoveReadonlyTXID(100)
		f.ReleasePendingPages()
		if f.PendingCount() != 0 {
			t.Fatalf("pending %d after the reader ended, want 0", f.PendingCount())
		}
		// Once the map has doubled again, the entries no reader needs are gone.
		for range 2 * len(s.allocs) {
			txid++
			f.ReleasePendingPages()
			f.Allocate(txid, 1)
		}
		if len(s.allocs) > allocsPruneMin {
			t.Fatalf("allocs kept %d entries with no reader", len(s.allocs))
		}
	})
}
