package logquery

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/store"
)

// benchEvents is the size of the log the search benchmarks run over.
const benchEvents = 1_000_000

// benchLog builds (once per machine, under the temporary directory) a log of benchEvents
// events of about 300 bytes: routing keys order.created, order.paid, payment.captured... in
// turn, a tenant header (one event in 1000 is "rare"), a JSON body.
func benchLog(b *testing.B) *store.Store {
	b.Helper()
	path := filepath.Join(os.TempDir(), fmt.Sprintf("wasmrouter-logquery-bench-%d.db", benchEvents))
	if _, err := os.Stat(path); err != nil {
		tmp := path + ".tmp"
		_ = os.Remove(tmp)
		st, err := store.Open(store.Options{Path: tmp, NoSync: true, MaxSize: 8 << 30})
		if err != nil {
			b.Fatal(err)
		}
		keys := []string{"order.created", "order.paid", "payment.captured", "payment.refunded", "user.signup"}
		t0 := time.Now().Add(-time.Hour)
		sem := make(chan struct{}, 4096)
		var wg sync.WaitGroup
		for i := range benchEvents {
			tenant := fmt.Sprintf("t%d", i%50)
			if i%1000 == 999 {
				tenant = "rare"
			}
			ev := &event.Event{
				Source: "in", Exchange: "events", RoutingKey: keys[i%len(keys)], IngestTime: t0.Add(time.Duration(i) * time.Millisecond),
				Headers: event.Table{"tenant": tenant, "attempt": int32(i % 3)},
				Body:    []byte(fmt.Sprintf(`{"id":%d,"customer":{"email":"c%d@example.com"},"items":[{"sku":"A1","qty":2},{"sku":"B2","qty":1}],"amount":%d.50}`, i, i, i%1000)),
			}
			ev.Props.MessageID = fmt.Sprintf("m-%d", i)
			sem <- struct{}{}
			wg.Add(1)
			st.Append(ev, store.FingerprintOf(ev), store.Window{}, func(_ uint64, _ bool, err error) {
				if err != nil {
					b.Error(err)
				}
				<-sem
				wg.Done()
			})
		}
		wg.Wait()
		if err := st.Close(); err != nil {
			b.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			b.Fatal(err)
		}
	}
	st, err := store.Open(store.Options{Path: path, ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	return st
}

// BenchmarkSearchFirstPage measures the first page (100 events) of a search as the content
// API answers it, over a log of a million events, with the API's scan budget (SearchBudget).
func BenchmarkSearchFirstPage(b *testing.B) {
	st := benchLog(b)
	last := st.LastSeq()
	for _, tc := range []struct{ name, query string }{
		{"latest", fmt.Sprintf("from_seq=%d", last-99)},
		{"all-oldest", ""},
		{"key-order.*", "key=order.*"},
		{"header-common", "header=tenant:t7"},
		{"key+header-rare", "key=order.created&header=tenant:rare"},
		{"header-absent", "header=tenant:nobody"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			v, _ := url.ParseQuery(tc.query)
			q, err := ParseQuery(v, time.Now())
			if err != nil {
				b.Fatal(err)
			}
			var n int
			var resume uint64
			for b.Loop() {
				n = 0
				resume, err = List(context.Background(), st, &q, SearchBudget, func(ev *event.Event) error {
					_ = NewRecord(ev)
					n++
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n), "events")
			b.ReportMetric(float64(resume), "resume_seq")
		})
	}
}
