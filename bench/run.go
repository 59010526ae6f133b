// Package bench measures the router end to end against the plain amqp091-go loop a user would
// write instead (package loop), on the same broker: throughput over a pre-filled queue, CPU
// and memory per side from /proc, and ingest-to-delivery latency at a fixed rate.
// bench/cmd/e2e runs the sides alternately and prints the figures; scripts/bench.sh runs it.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// Env is what every run shares: the broker (and an optional second cluster), where its
// process is, and where runs keep their files.
type Env struct {
	Broker    *Broker
	Second    *Broker       // nil unless a side delivers to a second cluster
	BrokerPID int           // 0: broker CPU is not measured
	WorkDir   string        // parent of each run's private directory; should be on the broker's disk
	QuietWait time.Duration // longest wait for an idle machine before a run; default 10s
	Poll      time.Duration
	Progress  io.Writer // nil: silent
}

// ThroughputSpec is one throughput run: N pre-filled messages of Size bytes.
type ThroughputSpec struct {
	N       int
	Size    int
	Timeout time.Duration // for the consumer to move all N messages
}

// Result is one throughput run of one side.
type Result struct {
	Side       string
	N          int
	Elapsed    time.Duration // from starting the consumer process to the target queue holding N
	CPU        time.Duration // the consumer process's CPU time (user+system, all threads)
	BrokerCPU  time.Duration // RabbitMQ's CPU time over the same span
	MachineCPU time.Duration // the whole machine's busy CPU time over the same span
	RSS, Peak  int64         // the consumer's resident set at the end, and its peak
	Anon       int64         // the anonymous part of RSS at the end (without mapped files)
	Delivered  int           // what the target queue held at the end (N unless duplicated)
	SourceLeft int           // what the source queue held after the consumer stopped
	IOCalls    int64         // the consumer's read and write system calls (ProcSample)
	Switches   int64         // its context switches
	Voluntary  int64         // the voluntary part of Switches
	InBroker   bool          // the side runs inside the broker (the Shovel): CPU, RSS are 0, its CPU is in BrokerCPU
	// Instructions is what the consumer executed per message, counted by callgrind (0 when
	// not counted; see Callgrind).
	Instructions float64
}

// Rate is messages per second.
func (r Result) Rate() float64 { return float64(r.N) / r.Elapsed.Seconds() }

// CPUPerMsg is the consumer's CPU time per message.
func (r Result) CPUPerMsg() time.Duration { return r.CPU / time.Duration(r.N) }

// OtherCPU is the machine's busy time not spent by the consumer or the broker (the
// benchmark's own polling, and any other load, which makes the figures less reliable).
func (r Result) OtherCPU() time.Duration { return r.MachineCPU - r.CPU - r.BrokerCPU }

func (e *Env) logf(format string, args ...any) {
	if e.Progress != nil {
		fmt.Fprintf(e.Progress, format+"\n", args...)
	}
}

// Throughput fills a fresh source queue with spec.N messages, starts the side, and measures
// until the target queue holds them all. It deletes what it declared.
func (e *Env) Throughput(ctx context.Context, side Side, spec ThroughputSpec) (res Result, err error) {
	res = Result{Side: side.Name(), N: spec.N}
	run, cleanup, err := e.prepare(side)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, cleanup()) }()

	t := run.Topology
	e.logf("%s: filling %s with %d messages of %d bytes", side.Name(), t.SourceQueue, spec.N, spec.Size)
	if err := e.Broker.Prefill(ctx, t.SourceExchange, t.SourceQueue, spec.N, spec.Size); err != nil {
		return res, err
	}
	e.waitQuiet(ctx)

	brokerBefore := e.brokerCPU(side)
	machineBefore, _, _ := SystemCPU()
	p, err := side.Start(run)
	if err != nil {
		return res, err
	}
	stopped := false
	defer func() {
		if stopped {
			return
		}
		if stopErr := p.Stop(30 * time.Second); stopErr != nil {
			err = errors.Join(err, p.withLog(fmt.Errorf("bench: stopping %s: %w", side.Name(), stopErr)))
		}
	}()

	waitCtx, cancel := context.WithTimeout(ctx, spec.Timeout)
	defer cancel()
	counter, counting := p.(instructionCounter)
	counting = counting && counter.counted()
	mark := 0
	if counting {
		if mark, err = e.startCount(waitCtx, counter, t.TargetQueue, spec.N, p.Exited()); err != nil {
			return res, p.withLog(err)
		}
	}
	done, got, err := e.waitDelivered(waitCtx, side, t.TargetQueue, spec.N, p.Exited())
	if err != nil {
		return res, p.withLog(err)
	}
	if counting {
		ir, err := counter.dumpInstructions()
		if err != nil {
			return res, p.withLog(err)
		}
		if got > mark {
			res.Instructions = float64(ir) / float64(got-mark)
		}
	}
	res.Elapsed = done.Sub(p.Started())
	res.InBroker = p.PID() == 0
	if !res.InBroker {
		sample, err := readSide(p)
		if err != nil {
			return res, err
		}
		res.CPU, res.RSS, res.Peak, res.Anon = sample.CPU, sample.RSS, sample.Peak, sample.Anon
		res.IOCalls, res.Switches, res.Voluntary = sample.IOCalls, sample.Switches, sample.Voluntary
	}
	res.BrokerCPU = e.brokerCPU(side) - brokerBefore
	machineAfter, _, _ := SystemCPU()
	res.MachineCPU = machineAfter - machineBefore
	res.Delivered = got

	stopped = true
	if err := p.Stop(30 * time.Second); err != nil {
		return res, p.withLog(fmt.Errorf("bench: stopping %s: %w", side.Name(), err))
	}
	src, err := e.Broker.Queue(t.SourceQueue)
	if err != nil {
		return res, err
	}
	res.SourceLeft = src.Messages
	if res.InBroker {
		e.logf("%s: %d messages in %s: %.0f msg/s, inside the broker (broker CPU %.1f us/msg)",
			side.Name(), spec.N, res.Elapsed.Round(time.Millisecond), res.Rate(), float64(res.BrokerCPU)/float64(res.N)/1e3)
		return res, nil
	}
	e.logf("%s: %d messages in %s: %.0f msg/s, %.1f us CPU/msg, peak RSS %.1f MiB (anonymous at the end: %.1f MiB)",
		side.Name(), spec.N, res.Elapsed.Round(time.Millisecond), res.Rate(),
		float64(res.CPUPerMsg())/1e3, float64(res.Peak)/(1<<20), float64(res.Anon)/(1<<20))
	if counting {
		e.logf("%s: %.0f instructions/msg over the last %d messages (callgrind)", side.Name(), res.Instructions, got-mark)
	}
	return res, nil
}

// startCount waits until the target queue holds a fifth of n messages, zeroes the process's
// instruction count and returns how many messages the queue held just after.
func (e *Env) startCount(ctx context.Context, c instructionCounter, queue string, n int, exited <-chan struct{}) (int, error) {
	if _, _, err := e.Broker.WaitQueue(ctx, queue, e.Poll, exited, func(q QueueState) bool { return q.Messages >= n/5 }); err != nil {
		return 0, err
	}
	if err := c.zeroInstructions(); err != nil {
		return 0, err
	}
	q, err := e.Broker.Queue(queue)
	return q.Messages, err
}

// waitDelivered waits until the target queue (and the second cluster's, when the side uses
// it) holds n messages, and returns when that was seen and the count in the main one.
func (e *Env) waitDelivered(ctx context.Context, side Side, queue string, n int, exited <-chan struct{}) (time.Time, int, error) {
	full := func(q QueueState) bool { return q.Messages >= n }
	var secondDone time.Time
	errc := make(chan error, 1)
	if side.SecondCluster() {
		go func() {
			var err error
			secondDone, _, err = e.Second.WaitQueue(ctx, queue, e.Poll, exited, full)
			errc <- err
		}()
	}
	done, q, err := e.Broker.WaitQueue(ctx, queue, e.Poll, exited, full)
	if side.SecondCluster() {
		err = errors.Join(err, <-errc)
		if secondDone.After(done) {
			done = secondDone
		}
	}
	return done, q.Messages, err
}

// prepare declares a fresh topology for side and makes its private directory; cleanup
// undoes both.
func (e *Env) prepare(side Side) (RunDir, func() error, error) {
	t := NewTopology("bench." + side.Name())
	dir, err := os.MkdirTemp(e.WorkDir, side.Name()+"-")
	if err != nil {
		return RunDir{}, nil, fmt.Errorf("bench: %w", err)
	}
	cleanup := func() error {
		err := e.Broker.Delete(t)
		if side.SecondCluster() {
			err = errors.Join(err, e.Second.DeleteTarget(t.TargetExchange, t.TargetQueue))
		}
		return errors.Join(err, os.RemoveAll(dir))
	}
	err = e.Broker.Declare(t)
	if err == nil && side.SecondCluster() {
		if e.Second == nil {
			err = errors.New("bench: the side delivers to a second cluster but none is configured")
		} else {
			err = e.Second.DeclareTarget(t.TargetExchange, t.TargetQueue, nil)
		}
	}
	if err != nil {
		return RunDir{}, nil, errors.Join(err, cleanup())
	}
	return RunDir{Topology: t, Dir: dir}, cleanup, nil
}

// brokerCPU is the CPU time of the broker, and of the nodes side brings along (a log on a
// cluster of its own).
func (e *Env) brokerCPU(side Side) time.Duration {
	pids := []int{e.BrokerPID}
	if own, ok := side.(interface{ brokerPIDs() []int }); ok {
		pids = append(pids, own.brokerPIDs()...)
	}
	var cpu time.Duration
	for _, pid := range pids {
		if pid == 0 {
			continue
		}
		if s, err := ReadProc(pid); err == nil {
			cpu += s.CPU
		}
	}
	return cpu
}

// waitQuiet gives the machine up to QuietWait (default 10s) to settle before a run: the
// broker finishes the work a pre-fill leaves it (paging, index writes) and, on a shared
// machine, other load may pass. Quiet means under a quarter of a core busy over a quarter
// second, so that each side starts on an equally idle machine.
func (e *Env) waitQuiet(ctx context.Context) {
	limit := e.QuietWait
	if limit == 0 {
		limit = 10 * time.Second
	}
	const window = 250 * time.Millisecond
	deadline := time.Now().Add(limit)
	prev, _, err := SystemCPU()
	if err != nil {
		return
	}
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return
		case <-time.After(window):
		}
		cur, _, _ := SystemCPU()
		if cur-prev < window/4 {
			return
		}
		prev = cur
	}
	e.logf("the machine stayed busy for %s before the run; measuring anyway (see the other-CPU column)", limit)
}
