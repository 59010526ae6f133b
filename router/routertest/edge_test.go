package routertest_test

import (
	"errors"
	"testing"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/router/routertest"
)

func TestFakeSourceConformance(t *testing.T) {
	routertest.RunSourceSuite(t, func(*testing.T) routertest.SourceHarness {
		src := routertest.NewSource("in")
		return routertest.SourceHarness{
			Source: src,
			Publish: func(_ *testing.T, key string, body []byte) {
				src.Publish(&event.Event{RoutingKey: key, Body: body})
			},
			PublishUndecodable: func(_ *testing.T, key string) { src.PublishUndecodable(key) },
		}
	})
}

func TestFakePublisherConformance(t *testing.T) {
	routertest.RunPublisherSuite(t, func(*testing.T) routertest.PublisherHarness {
		tgt := routertest.NewTarget("main")
		tgt.Refuse(func(m *event.Message) error {
			if m.Exchange == "missing" {
				return errors.New("NOT_FOUND - no exchange")
			}
			return nil
		})
		return routertest.PublisherHarness{
			Publisher: tgt.Publisher(),
			Exchange:  "x",
			Received: func(t *testing.T, n int) []event.Message {
				got := tgt.Received("x")
				if len(got) < n {
					t.Fatalf("%d messages received, want %d", len(got), n)
				}
				return got[:n]
			},
			Missing: "missing",
			Cut:     func(_ *testing.T, up bool) { tgt.SetDown(!up) },
		}
	})
}
