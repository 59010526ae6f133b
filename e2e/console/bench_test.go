package console

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
)

// benchBatch is how many events one measured run routes.
const benchBatch = 10000

// routeBatch publishes n order events (each delivered to targets a and b) with a window of
// unconfirmed publishes, and returns the rate from the first publish to the moment every
// stream has delivered the last.
func (w *world) routeBatch(n int) float64 {
	w.t.Helper()
	conn := rabbit.Dial(w.t)
	defer conn.Close()
	ch := rabbit.Channel(w.t, conn)
	if err := ch.Confirm(false); err != nil {
		w.t.Fatal(err)
	}
	target := w.router.Engine.Status().Store.LastSeq + uint64(n)
	window := make(chan *amqp.DeferredConfirmation, 1000)
	done := make(chan error, 1)
	go func() {
		for dc := range window {
			if !dc.Wait() {
				done <- fmt.Errorf("publish nacked")
				return
			}
		}
		done <- nil
	}()
	body := []byte(`{"id":1,"customer":{"email":"c@example.com"},"amount":120.5}`)
	start := time.Now()
	for i := 0; i < n; i++ {
		dc, err := ch.PublishWithDeferredConfirm(w.names.source, "order.created", false, false, amqp.Publishing{Body: body})
		if err != nil {
			w.t.Fatal(err)
		}
		window <- dc
	}
	close(window)
	if err := <-done; err != nil {
		w.t.Fatal(err)
	}
	w.waitSettled(target)
	return float64(n) / time.Since(start).Seconds()
}

// BenchmarkRoutingWithConsoleTabs compares the end-to-end rate with no console open against
// the rate with five tabs on the overview (each polling the status and counters every 2 s)
// and one following the event stream. The runs alternate, three of each, and the medians are
// reported: the machine may be shared, and alternating spreads other load over both.
func BenchmarkRoutingWithConsoleTabs(b *testing.B) {
	browserTimeout = 15 * time.Minute
	w := newWorld(b, "")
	b.Logf("warm-up: %.0f events/s", w.routeBatch(2000)) // connections, the log's first pages
	var without, with []float64
	var tabs []context.CancelFunc
	openTabs := func() {
		for i := 0; i < 6; i++ {
			ctx, cancel := chromedp.NewContext(w.ctx)
			tabs = append(tabs, cancel)
			path, ready := "/", "#flow svg"
			if i == 5 {
				path, ready = "/events?follow=1", "#events-table"
			}
			if err := chromedp.Run(ctx, chromedp.Navigate(w.base+path), chromedp.WaitVisible(ready, chromedp.ByQuery)); err != nil {
				b.Fatalf("tab %d: %v", i, err)
			}
		}
	}
	closeTabs := func() {
		for _, c := range tabs {
			c()
		}
		tabs = nil
	}
	for b.Loop() {
		for range 3 {
			without = append(without, w.routeBatch(benchBatch))
			openTabs()
			with = append(with, w.routeBatch(benchBatch))
			closeTabs()
		}
	}
	med := func(v []float64) float64 {
		s := append([]float64(nil), v...)
		sort.Float64s(s)
		return s[len(s)/2]
	}
	b.ReportMetric(med(without), "events/s_no_console")
	b.ReportMetric(med(with), "events/s_6_tabs")
	b.ReportMetric(med(with)/med(without), "ratio")
	b.Logf("without: %.0f, with six tabs: %.0f events/s", without, with)
}
