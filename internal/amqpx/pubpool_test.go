package amqpx

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
)

// withChannelMax asks the broker for a lower channel_max in the URL; the broker agrees on the
// lower of its own and this.
func withChannelMax(url string, n int) string {
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	return fmt.Sprintf("%s%schannel_max=%d", url, sep, n)
}

// TestPublishersShareChannelsWithinChannelMax runs more publishers than the negotiated
// channel_max allows channels: every publisher still gets its messages confirmed, in its own
// order, the channels stay within the limit, and a consumer on the same cluster still gets a
// channel (it is on the other connection). Status reports the limit and the sharing.
func TestPublishersShareChannelsWithinChannelMax(t *testing.T) {
	rabbit.SkipIfShort(t)
	const channelMax, publishers, each = 4, 10, 20
	conn := rabbit.Dial(t)
	ex, q := declareTarget(t, rabbit.Channel(t, conn))
	c := startCluster(t, withChannelMax(rabbit.URL(), channelMax), fastOptions(nil))
	waitConnected(t, c, true)
	var consuming atomic.Bool
	s := newSource(t)
	startConsume(t, c, s, func(d *Delivery) { _ = d.AckThrough() }, consuming.Store)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pubs := make([]*Publisher, publishers)
	for i := range pubs {
		pubs[i] = c.NewPublisher()
	}
	var wg sync.WaitGroup
	errs := make(chan error, publishers)
	for i, pub := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var confs []*Confirm
			for j := range each {
				conf, err := pub.Publish(ctx, ex, "ok.share", amqp.Publishing{MessageId: fmt.Sprintf("%d-%d", i, j)})
				if err != nil {
					errs <- fmt.Errorf("publisher %d, message %d: %w", i, j, err)
					return
				}
				confs = append(confs, conf)
			}
			for j, conf := range confs {
				if err := conf.Wait(ctx); err != nil {
					errs <- fmt.Errorf("publisher %d, confirm %d: %w", i, j, err)
					return
				}
				// Confirms of one publisher resolve in its publish order.
				for _, earlier := range confs[:j] {
					select {
					case <-earlier.Done():
					default:
						errs <- fmt.Errorf("publisher %d: confirm %d resolved before an earlier one", i, j)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	waitFor(t, "every message in the queue", 30*time.Second, func() bool { return rabbit.QueueLen(t, conn, q) == publishers*each })
	waitFor(t, "consuming", 30*time.Second, consuming.Load)

	st := c.Status()
	pubSt := st.Connections[1]
	if pubSt.Role != RolePublish || pubSt.ChannelMax != channelMax || pubSt.Channels > channelMax || pubSt.Publishers != publishers || pubSt.SharedChannels == 0 {
		t.Fatalf("publishing connection: %+v; want channel_max %d, at most that many channels, %d publishers sharing", pubSt, channelMax, publishers)
	}
	if conSt := st.Connections[0]; conSt.Role != RoleConsume || conSt.ChannelMax != channelMax || conSt.Channels != 1 {
		t.Fatalf("consuming connection: %+v", conSt)
	}

	// A publisher that ends leaves the channel it shared to the others.
	for _, pub := range pubs[:publishers-1] {
		if err := pub.Close(); err != nil {
			t.Fatal(err)
		}
	}
	last := pubs[publishers-1]
	conf, err := last.Publish(ctx, ex, "ok.share", amqp.Publishing{MessageId: "after"})
	if err != nil {
		t.Fatal(err)
	}
	if err := conf.Wait(ctx); err != nil {
		t.Fatalf("publish after the others closed: %v", err)
	}
	if err := last.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the channels closed", 30*time.Second, func() bool {
		return c.Status().Connections[1].Channels == 0
	})
}
