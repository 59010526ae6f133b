package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// LatencySpec is one latency run: messages published at a fixed rate for a while.
type LatencySpec struct {
	Rate     float64       // messages per second
	Duration time.Duration // of publishing
	Warmup   time.Duration // samples of messages sent this early are left out
	Size     int
	Timeout  time.Duration // for the side to start consuming, and for the last messages to arrive
}

// LatencyResult is one latency run of one side. Latency is from the moment a message was due
// to be published (so a publisher that falls behind adds to it) to its receipt from the
// target queue.
type LatencyResult struct {
	Side               string
	Rate               float64
	Sent, Received     int
	P50, P90, P99, Max time.Duration
	CPU                time.Duration // the consumer process's CPU time over the whole run
	Peak               int64         // its peak resident set
	InBroker           bool          // the side runs inside the broker: CPU and Peak are not measured
}

// CPUPerMsg is the consumer's CPU time per message sent, start-up included.
func (r LatencyResult) CPUPerMsg() time.Duration {
	if r.Sent == 0 {
		return 0
	}
	return r.CPU / time.Duration(r.Sent)
}

// Latency starts the side on an empty source queue, publishes spec.Rate messages per second to
// it for spec.Duration, and times each message's arrival in the target queue.
func (e *Env) Latency(ctx context.Context, side Side, spec LatencySpec) (res LatencyResult, err error) {
	res = LatencyResult{Side: side.Name(), Rate: spec.Rate}
	if spec.Rate <= 0 || spec.Duration <= 0 {
		return res, errors.New("bench: latency: rate and duration must be positive")
	}
	run, cleanup, err := e.prepare(side)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, cleanup()) }()
	t := run.Topology

	e.waitQuiet(ctx)
	p, err := side.Start(run)
	if err != nil {
		return res, err
	}
	defer func() {
		if stopErr := p.Stop(30 * time.Second); stopErr != nil {
			err = errors.Join(err, p.withLog(fmt.Errorf("bench: stopping %s: %w", side.Name(), stopErr)))
		}
	}()
	readyCtx, cancel := context.WithTimeout(ctx, spec.Timeout)
	defer cancel()
	if _, _, err := e.Broker.WaitQueue(readyCtx, t.SourceQueue, e.Poll, p.Exited(), func(q QueueState) bool { return q.Consumers > 0 }); err != nil {
		return res, p.withLog(fmt.Errorf("bench: %s did not start consuming: %w", side.Name(), err))
	}

	total := int(spec.Rate * spec.Duration.Seconds())
	probe, err := startProbe(e.Broker.URL, t.TargetQueue, total)
	if err != nil {
		return res, err
	}
	defer probe.close()

	e.logf("%s: publishing %d messages at %.0f msg/s", side.Name(), total, spec.Rate)
	start, err := publishPaced(ctx, e.Broker.URL, t.SourceExchange, t.SourceQueue, spec, total)
	res.Sent = total
	if err != nil {
		return res, err
	}
	select {
	case <-probe.done:
	case <-time.After(spec.Timeout):
	case <-ctx.Done():
	}
	res.InBroker = p.PID() == 0
	if sample, err := readSide(p); !res.InBroker && err == nil {
		res.CPU, res.Peak = sample.CPU, sample.Peak
	}
	samples := probe.stop()
	res.Received = len(samples)
	var kept []time.Duration
	warm := start.Add(spec.Warmup).UnixNano()
	for _, s := range samples {
		if s.sent >= warm {
			kept = append(kept, s.latency)
		}
	}
	res.P50, res.P90, res.P99, res.Max = Percentile(kept, 50), Percentile(kept, 90), Percentile(kept, 99), Percentile(kept, 100)
	if res.Received < res.Sent {
		return res, fmt.Errorf("bench: %s: %d of %d messages arrived within %s", side.Name(), res.Received, res.Sent, spec.Timeout)
	}
	e.logf("%s: latency p50 %s, p99 %s, max %s", side.Name(), res.P50, res.P99, res.Max)
	return res, nil
}

// Percentile returns the p-th percentile (nearest rank) of ds, sorting ds in place; 0 when
// ds is empty.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	if !slices.IsSorted(ds) {
		slices.Sort(ds)
	}
	rank := min(max(int(math.Ceil(p/100*float64(len(ds)))), 1), len(ds))
	return ds[rank-1]
}

// publishPaced publishes total messages at spec.Rate on a connection of its own, each stamped
// with the time it was due, and returns when the first was due. Messages that fall due while
// it is busy are sent at once, keeping their due time.
func publishPaced(ctx context.Context, url, exchange, run string, spec LatencySpec, total int) (time.Time, error) {
	b, err := Dial(url)
	if err != nil {
		return time.Time{}, err
	}
	defer b.Close()
	ch, err := b.channel()
	if err != nil {
		return time.Time{}, err
	}
	defer ch.Close()
	interval := time.Duration(float64(time.Second) / spec.Rate)
	start := time.Now()
	for i := range total {
		due := start.Add(time.Duration(i) * interval)
		if wait := time.Until(due); wait > 0 {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return start, ctx.Err()
			}
		}
		key, msg := Message(run, i, spec.Size)
		msg.Headers[SentHeader] = due.UnixNano()
		if err := ch.PublishWithContext(ctx, exchange, key, false, false, msg); err != nil {
			return start, fmt.Errorf("bench: publish %d: %w", i, err)
		}
	}
	return start, nil
}

type sample struct {
	sent    int64 // Unix ns
	latency time.Duration
}

// probe consumes the target queue and records each message's latency.
type probe struct {
	broker  *Broker
	samples chan []sample
	done    chan struct{} // closed once want messages have arrived
	cancel  context.CancelFunc
}

func startProbe(url, queue string, want int) (*probe, error) {
	b, err := Dial(url)
	if err != nil {
		return nil, err
	}
	ch, err := b.channel()
	if err == nil {
		err = ch.Qos(1000, 0, false)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var deliveries <-chan amqp.Delivery
	if err == nil {
		deliveries, err = ch.ConsumeWithContext(ctx, queue, "", true, false, false, false, nil)
	}
	if err != nil {
		cancel()
		b.Close()
		return nil, fmt.Errorf("bench: latency probe: %w", err)
	}
	pr := &probe{broker: b, samples: make(chan []sample, 1), done: make(chan struct{}), cancel: cancel}
	go func() {
		got := make([]sample, 0, want)
		for d := range deliveries {
			now := time.Now().UnixNano()
			if sent, ok := sentAt(d.Headers[SentHeader]); ok {
				got = append(got, sample{sent: sent, latency: time.Duration(now - sent)})
			}
			if len(got) == want {
				close(pr.done)
			}
		}
		pr.samples <- got
	}()
	return pr, nil
}

// sentAt reads the SentHeader header: an int64 as published, or its decimal string, as a side
// that keeps headers as strings (Redpanda Connect) republishes it.
func sentAt(v any) (int64, bool) {
	switch v := v.(type) {
	case int64:
		return v, true
	case string:
		n, err := strconv.ParseInt(v, 10, 64)
		return n, err == nil
	}
	return 0, false
}

// stop ends consuming and returns the samples.
func (pr *probe) stop() []sample {
	pr.cancel()
	return <-pr.samples
}

func (pr *probe) close() { pr.broker.Close() }
