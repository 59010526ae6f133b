package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/amqpx"
	"github.com/wasmrouter/wasmrouter/store"
)

// FillLog writes n benchmark messages (see Message) into a new event log at path, as the
// router's source "in" would have logged them after consuming them from exchange. It is how
// replay runs get a history without spending minutes routing it first.
func FillLog(path, exchange, run string, n, size int) error {
	st, err := store.Open(store.Options{Path: path})
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	errs := make(chan error, 1)
	for i := range n {
		key, p := Message(run, i, size)
		d := amqp.Delivery{
			Exchange: exchange, RoutingKey: key, Headers: p.Headers, ContentType: p.ContentType,
			DeliveryMode: p.DeliveryMode, MessageId: p.MessageId, Timestamp: p.Timestamp, AppId: p.AppId, Body: p.Body,
		}
		ev := amqpx.EventFromDelivery(&d, "in")
		st.Append(ev, store.FingerprintOf(ev), store.Window{}, func(_ uint64, _ bool, err error) {
			if err != nil {
				select {
				case errs <- err:
				default:
				}
			}
		})
	}
	done := make(chan error, 1)
	st.Barrier(func(err error) { done <- err })
	err = <-done
	select {
	case aerr := <-errs:
		err = errors.Join(err, aerr)
	default:
	}
	if cerr := st.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err == nil && st.LastSeq() != uint64(n) {
		err = fmt.Errorf("bench: the log holds %d events, want %d", st.LastSeq(), n)
	}
	return err
}

// PublishConfirmed publishes n benchmark messages to exchange on one confirm-mode channel of a
// connection of its own, with up to window publishes awaiting their confirm, and returns once
// the broker has confirmed all of them: the plain amqp091-go way to move messages reliably,
// which replays are compared with. asReplayed sends the messages as a replay delivers them:
// mandatory, with the four x-router-* headers (docs/headers.md), which cost the broker too.
func PublishConfirmed(ctx context.Context, url, exchange, run string, n, size, window int, asReplayed bool) error {
	conn, err := dial(url)
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("bench: channel: %w", err)
	}
	return publishConfirmed(ctx, ch, exchange, run, n, size, window, asReplayed)
}

// Purge empties a queue.
func (b *Broker) Purge(queue string) error {
	return b.withChannel(func(ch *amqp.Channel) error {
		if _, err := ch.QueuePurge(queue, false); err != nil {
			return fmt.Errorf("bench: purge %s: %w", queue, err)
		}
		return nil
	})
}

// CommandRun is one run of a command that moves N messages to a queue and exits: the plain
// publisher or `router replay`.
type CommandRun struct {
	Side    string
	Bin     string
	Args    []string
	N       int
	Queue   string // where the N messages must be once the command has exited
	LogPath string
	Timeout time.Duration
}

// RunCommand runs c.Bin to its end on a quiet machine and measures it: wall time from start
// to exit, the process's CPU and peak RSS from its rusage, the broker's and the machine's CPU
// over the same span. The queue must then hold exactly N messages (the command waited for
// their confirms); it is purged afterwards for the next run.
func (e *Env) RunCommand(ctx context.Context, c CommandRun) (Result, error) {
	res := Result{Side: c.Side, N: c.N}
	e.waitQuiet(ctx)
	log, err := os.Create(c.LogPath)
	if err != nil {
		return res, fmt.Errorf("bench: %w", err)
	}
	defer log.Close()
	runCtx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	cmd := exec.CommandContext(runCtx, c.Bin, c.Args...)
	cmd.Stdout, cmd.Stderr = log, log
	brokerBefore := e.brokerCPU(nil)
	machineBefore, _, _ := SystemCPU()
	start := time.Now()
	err = cmd.Run()
	res.Elapsed = time.Since(start)
	machineAfter, _, _ := SystemCPU()
	res.BrokerCPU = e.brokerCPU(nil) - brokerBefore
	res.MachineCPU = machineAfter - machineBefore
	if ps := cmd.ProcessState; ps != nil {
		// The rusage's peak RSS is not reported: Linux keeps the forking parent's across exec.
		res.CPU = ps.UserTime() + ps.SystemTime()
	}
	if err != nil {
		tail, _ := os.ReadFile(c.LogPath)
		if len(tail) > 2000 {
			tail = tail[len(tail)-2000:]
		}
		return res, fmt.Errorf("bench: %s: %w\n%s", c.Side, err, tail)
	}
	q, err := e.Broker.Queue(c.Queue)
	if err != nil {
		return res, err
	}
	res.Delivered = q.Messages
	if err := e.Broker.Purge(c.Queue); err != nil {
		return res, err
	}
	if res.Delivered != c.N {
		return res, fmt.Errorf("bench: %s: the target queue held %d messages after the run, want %d", c.Side, res.Delivered, c.N)
	}
	return res, nil
}
