package store

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/wasmrouter/wasmrouter/event"
)

// mappedRSS is how much of the file at path this process has resident through its mappings
// (/proc/self/smaps), in bytes.
func mappedRSS(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("no smaps: %v", err)
	}
	defer f.Close()
	var total int64
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		switch {
		case len(fields) >= 5 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":"):
			in = len(fields) >= 6 && fields[5] == path
		case in && len(fields) >= 2 && fields[0] == "Rss:":
			kb, _ := strconv.ParseInt(fields[1], 10, 64)
			total += kb << 10
		}
	}
	return total
}

// Appending a log much larger than mappedTrimEvery, then reading it from disk, leaves at most about
// mappedTrimEvery of it mapped into the process: a backlog or a replay does not count the
// whole file in the router's resident memory.
func TestReadingTheLogLeavesLittleOfItResident(t *testing.T) {
	opts := testOptions(t)
	opts.ringSize = -1 // every read from the file
	s := openStore(t, opts)
	const n, size = 24000, 1024 // about 30 MiB of records
	// In small commits, as a router that keeps up makes them.
	const group = 20
	for i := 0; i < n; i += group {
		var wg sync.WaitGroup
		wg.Add(group)
		for j := range group {
			s.Append(testEvent(i+j, size), Fingerprint{}, Window{}, func(_ uint64, _ bool, err error) {
				if err != nil {
					t.Error(err)
				}
				wg.Done()
			})
		}
		wg.Wait()
	}
	const slack = 2 << 20 // the tree's branch pages and the kernel's fault-around
	if rss := mappedRSS(t, opts.Path); rss > mappedTrimEvery+slack {
		t.Fatalf("%d KiB of the log resident after appending it; want at most %d KiB", rss>>10, (mappedTrimEvery+slack)>>10)
	}
	read := 0
	for next := uint64(1); next <= n; {
		var err error
		next, err = s.Scan(next, 1000, nil, func(ev *event.Event) bool { read += len(ev.Body); return true })
		if err != nil {
			t.Fatal(err)
		}
	}
	if read != n*size {
		t.Fatalf("read %d bytes of bodies, want %d", read, n*size)
	}
	// Every record's head as well (a replay counting its selection).
	if err := s.ScanHeads(1, n, func(RecordHead) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if rss := mappedRSS(t, opts.Path); rss > mappedTrimEvery+slack {
		t.Fatalf("%d KiB of the log resident after reading it all; want at most %d KiB", rss>>10, (mappedTrimEvery+slack)>>10)
	}
	if size := s.Size(); size < 3*(mappedTrimEvery+slack) {
		t.Fatalf("the log is only %d KiB: the test proves nothing", size>>10)
	}
}
