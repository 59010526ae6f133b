package streamlog

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
	"github.com/wasmrouter/wasmrouter/store"
)

// countingDialer is a Connector that counts the connections it hands out as the log's, and
// opens spare ones as amqpx's Cluster does.
type countingDialer struct {
	dialer
	handed atomic.Int32
	mu     sync.Mutex
	conns  []*amqp.Connection
}

func (d *countingDialer) Connection(ctx context.Context) (*amqp.Connection, error) {
	conn, err := d.dialer.Connection(ctx)
	if err == nil {
		d.handed.Add(1)
		d.mu.Lock()
		d.conns = append(d.conns, conn)
		d.mu.Unlock()
	}
	return conn, err
}

func (d *countingDialer) Dial(ctx context.Context, _ string) (*amqp.Connection, error) {
	return d.dialer.Connection(ctx)
}

func (d *countingDialer) closeAll() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.conns {
		_ = c.Close()
	}
}

// Routers started at the same moment on a stream that does not exist yet all open it on their
// first connection, and claim the same pairs at once: nobody's connection is closed by the
// broker in the declare race (RabbitMQ 3.10 answers the declare of a stream still being
// created before the stream can take messages; Options.Spare).
func TestRoutersStartingTogetherOnANewStream(t *testing.T) {
	rabbit.SkipIfShort(t)
	const routers, rounds = 6, 3
	pairs := []string{store.DeliveryCursorPrefix + "orders/a", store.DeliveryCursorPrefix + "orders/b"}
	for round := range rounds {
		stream := rabbit.Unique("streamlog.together")
		for _, q := range []string{stream, ControlStream(stream), LeaseQueue(stream, pairs[0]), LeaseQueue(stream, pairs[1])} {
			rabbit.DeleteQueueAtCleanup(t, q)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		var wg sync.WaitGroup
		dialers := make([]*countingDialer, routers)
		logs := make([]*Reopening, routers)
		errs := make([]error, routers)
		start := make(chan struct{})
		for i := range routers {
			dialers[i] = &countingDialer{dialer: dialer{rabbit.URL()}}
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				r, err := OpenReopening(ctx, dialers[i], Options{Native: mainNative(t), Stream: stream, BalanceEvery: -1}, fmt.Sprintf("router-%d", i))
				if err != nil {
					errs[i] = err
					return
				}
				logs[i] = r
				for _, p := range pairs {
					if _, err := r.Claim(p); err != nil {
						errs[i] = fmt.Errorf("claim %s: %w", p, err)
						return
					}
				}
			}()
		}
		close(start)
		wg.Wait()
		cancel()
		for i := range routers {
			d := dialers[i]
			if errs[i] != nil {
				t.Errorf("round %d, router %d: %v", round, i, errs[i])
			}
			if n := d.handed.Load(); n != 1 {
				t.Errorf("round %d, router %d took %d connections to open the log, want 1", round, i, n)
			}
			d.mu.Lock()
			for _, c := range d.conns {
				if c.IsClosed() {
					t.Errorf("round %d, router %d: the broker closed the log's connection", round, i)
				}
			}
			d.mu.Unlock()
		}
		// Every pair is held by exactly one router.
		for _, p := range pairs {
			holders := 0
			for _, r := range logs {
				if r == nil {
					continue
				}
				if l, err := r.Claim(p); err == nil {
					select {
					case <-l.Granted():
						holders++
					case <-time.After(0):
					}
				}
			}
			if holders > 1 {
				t.Errorf("round %d: pair %s held by %d routers", round, p, holders)
			}
		}
		for i, r := range logs {
			if r != nil {
				_ = r.Close()
			}
			dialers[i].closeAll()
		}
	}
}
