package store

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/event"
)

// pipelinedAppend appends n events with up to window of them in flight, as an ingest loop with
// a prefetch window does, and waits for all.
func pipelinedAppend(b *testing.B, s *Store, n, window, bodyLen int) {
	sem := make(chan struct{}, window)
	var wg sync.WaitGroup
	wg.Add(n)
	for i := range n {
		sem <- struct{}{}
		ev := testEvent(i, bodyLen)
		ev.Props.MessageID = "" // distinct bodies keep fingerprints distinct
		s.Append(ev, FingerprintOf(ev), Window{}, func(_ uint64, _ bool, err error) {
			if err != nil {
				b.Error(err)
			}
			<-sem
			wg.Done()
		})
	}
	wg.Wait()
}

func reportAppend(b *testing.B, s *Store, start time.Time, events int) {
	b.ReportMetric(float64(events)/time.Since(start).Seconds(), "events/s")
	b.ReportMetric(float64(events)/float64(s.commits.Load()), "events/commit")
}

// BenchmarkAppend appends 1 KiB events with fsync on.
func BenchmarkAppend(b *testing.B) {
	b.Run("pipelined", func(b *testing.B) {
		opts := testOptions(b)
		opts.NoSync = false
		s := openStore(b, opts)
		b.SetBytes(1024)
		start := time.Now()
		pipelinedAppend(b, s, b.N, 4096, 1024)
		reportAppend(b, s, start, b.N)
	})
	b.Run("parallel-sync", func(b *testing.B) {
		opts := testOptions(b)
		opts.NoSync = false
		s := openStore(b, opts)
		b.SetBytes(1024)
		b.SetParallelism(64) // many appenders, each waiting for its own commit
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			done := make(chan error, 1)
			for i := 0; pb.Next(); i++ {
				ev := testEvent(i, 1024)
				s.Append(ev, FingerprintOf(ev), Window{}, func(_ uint64, _ bool, err error) { done <- err })
				if err := <-done; err != nil {
					b.Error(err)
				}
			}
		})
		reportAppend(b, s, start, b.N)
	})
}

// loadedStore returns a store holding n small events, written without fsync, with no ring so
// that reads go to the file.
func loadedStore(b *testing.B, n int) *Store {
	opts := testOptions(b)
	opts.ringSize = -1
	s := openStore(b, opts)
	pipelinedAppend(b, s, n, 8192, 100)
	return s
}

// BenchmarkStats1M counts events per source over a million records (peek only).
func BenchmarkStats1M(b *testing.B) {
	const n = 1_000_000
	s := loadedStore(b, n)
	b.ResetTimer()
	for b.Loop() {
		st, err := s.Stats(true)
		if err != nil || st.Events != n {
			b.Fatalf("%d events, %v", st.Events, err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkScan reads 100k records from the file: "peek" skips them all after peeking the
// routing key, "decode" decodes every one.
func BenchmarkScan(b *testing.B) {
	const n = 100_000
	s := loadedStore(b, n)
	for name, keep := range map[string]func(string, string) bool{
		"peek":   func(_, rk string) bool { return rk == "none" },
		"decode": nil,
	} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				seen := 0
				for from := uint64(1); from <= n; {
					next, err := s.Scan(from, 10000, event.ByHead(keep), func(*event.Event) bool { seen++; return true })
					if err != nil {
						b.Fatal(err)
					}
					from = next
				}
				if keep == nil && seen != n {
					b.Fatalf("saw %d", seen)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

func BenchmarkEncode(b *testing.B) {
	ev := testEvent(1, 1024)
	fp := FingerprintOf(ev)
	buf := make([]byte, 0, 4096)
	b.SetBytes(1024)
	for b.Loop() {
		var err error
		if buf, err = appendRecord(buf[:0], ev, fp); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	rec := encodedBench(b)
	b.SetBytes(1024)
	for b.Loop() {
		if _, _, err := decodeRecord(rec, 1); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPeek(b *testing.B) {
	rec := encodedBench(b)
	for b.Loop() {
		if _, _, err := peekRecord(rec); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIngestEncode is the log's share of ingesting one event: its fingerprint and its
// record, as two encodings (FingerprintOf then the record) or one (Encode).
func BenchmarkIngestEncode(b *testing.B) {
	s := openStore(b, testOptions(b))
	ev := testEvent(1, 1024)
	ev.IngestTime = time.Now()
	b.Run("fingerprint-then-record", func(b *testing.B) {
		b.SetBytes(1024)
		defer cpuPerOp(b)()
		for b.Loop() {
			_ = s.EncodeWith(ev, FingerprintOf(ev))
		}
	})
	b.Run("encode", func(b *testing.B) {
		b.SetBytes(1024)
		defer cpuPerOp(b)()
		for b.Loop() {
			_ = s.Encode(ev)
		}
	})
}

func BenchmarkFingerprint(b *testing.B) {
	ev := testEvent(1, 1024)
	b.SetBytes(1024)
	for b.Loop() {
		FingerprintOf(ev)
	}
}

func encodedBench(b *testing.B) []byte {
	ev := testEvent(1, 1024)
	rec, err := appendRecord(nil, ev, FingerprintOf(ev))
	if err != nil {
		b.Fatal(err)
	}
	return rec
}

// BenchmarkAppendPaced appends 1 KiB events with fsync on at a fixed rate, in bursts of four
// as a consumer receives them, and reports what an ingest at less than full load sees: the
// append's latency (from Append to its done call) and the CPU time per event, commits
// included. wait-<d> is the group commit wait of every small batch (-1ns: none); adaptive is
// the default, a wait only while the machine is busy.
func BenchmarkAppendPaced(b *testing.B) {
	for _, rate := range []int{1000, 3000, 6000} {
		for _, wait := range []time.Duration{defaultBatchWait, time.Millisecond, -1, 0} {
			name := "wait-" + wait.String()
			if wait == 0 {
				name = "adaptive"
			}
			b.Run(fmt.Sprintf("rate-%d/%s", rate, name), func(b *testing.B) {
				opts := testOptions(b)
				opts.NoSync = false
				opts.batchWait = wait
				if wait != 0 {
					opts.machineBusy = func() bool { return true }
				}
				s := openStore(b, opts)
				const burst = 4
				lat := make([]time.Duration, b.N)
				var wg sync.WaitGroup
				wg.Add(b.N)
				tick := time.NewTicker(time.Second * burst / time.Duration(rate))
				defer tick.Stop()
				done := cpuPerOp(b)
				start := time.Now()
				for i := 0; i < b.N; i++ {
					if i%burst == 0 {
						<-tick.C
					}
					ev := testEvent(i, 1024)
					at := time.Now()
					s.Append(ev, FingerprintOf(ev), Window{}, func(_ uint64, _ bool, err error) {
						if err != nil {
							b.Error(err)
						}
						lat[i] = time.Since(at)
						wg.Done()
					})
				}
				wg.Wait()
				done()
				elapsed := time.Since(start)
				slices.Sort(lat)
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
				b.ReportMetric(float64(b.N)/float64(s.commits.Load()), "events/commit")
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
			})
		}
	}
}
