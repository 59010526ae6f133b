package router

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/store"
)

// redriveKey is one (route, target) stream of a redrive.
type redriveKey struct{ route, target string }

// StartRedrive sends dead-lettered events through their routes again (after a module fix, or
// once a target accepts them), as a replay job: each to the target it failed for, or to all of
// the route's targets when a module failed it. When the job completes, a dead letter is marked
// redriven if its event reached every target it was sent to again; one that failed again (or
// was dropped, or whose event retention removed) stays pending.
func (e *Engine) StartRedrive(dls []store.DeadLetter) (string, error) {
	topo := e.topo.Load()
	seqs := map[redriveKey]map[uint64]bool{}
	keysOf := make([][]redriveKey, len(dls))
	var lo, hi uint64
	for i, dl := range dls {
		r := topo.Route(dl.Route)
		if r == nil {
			return "", fmt.Errorf("%w: dead letter %d: route %q is no longer configured", ErrBadReplay, dl.ID, dl.Route)
		}
		targets := []string{dl.Target}
		if dl.Target == "" {
			targets = r.DeliveryTargets(topo)
		} else if topo.Targets[dl.Target] == nil {
			return "", fmt.Errorf("%w: dead letter %d: target %q is no longer configured", ErrBadReplay, dl.ID, dl.Target)
		}
		for _, tn := range targets {
			k := redriveKey{dl.Route, tn}
			if seqs[k] == nil {
				seqs[k] = map[uint64]bool{}
			}
			seqs[k][dl.Seq] = true
			keysOf[i] = append(keysOf[i], k)
		}
		if lo == 0 || dl.Seq < lo {
			lo = dl.Seq
		}
		hi = max(hi, dl.Seq)
	}
	if len(seqs) == 0 {
		return "", fmt.Errorf("%w: no dead letters selected", ErrBadReplay)
	}
	id := newJobID()
	jobCtx, cancel := context.WithCancel(context.Background())
	job := &replayJob{id: id, selected: uint64(len(dls)), started: time.Now().UTC(), cancel: cancel, finished: make(chan struct{}), state: "running"}
	var streams []*stream
	// Every stream of a key (one per cluster in "all" mode) counts its deliveries: a key is
	// through when each of its streams delivered every selected event.
	counts := map[redriveKey][]*atomic.Uint64{}
	for k, set := range seqs {
		job.total += uint64(len(set))
		for i, p := range e.publishersFor(topo.Targets[k.target]) {
			s := e.newStream(k.route, k.target, p.cursorSuffix, p.pub)
			s.cursor = "replay/" + id + "/" + strings.TrimPrefix(s.cursor, "deliver/")
			s.from, s.to, s.replay, s.lag = lo, hi, true, nil
			s.keep = func(ev *event.Event) bool { return set[ev.Seq] }
			n := new(atomic.Uint64)
			counts[k] = append(counts[k], n)
			s.onDelivered = func() { n.Add(1); job.delivered.Add(1) }
			if i == 0 {
				s.progress = func(uint64, bool) { job.done.Add(1) }
			}
			job.outcomes.watch(s, i == 0)
			streams = append(streams, s)
		}
	}
	through := func(k redriveKey) bool {
		for _, n := range counts[k] {
			if n.Load() != uint64(len(seqs[k])) {
				return false
			}
		}
		return true
	}
	if err := e.replays.add(job); err != nil {
		cancel()
		return "", err
	}
	go func() {
		defer e.replays.wg.Done()
		err := e.runReplay(jobCtx, streams, false)
		defer e.logFinished(job)
		defer func() { job.finish(nil, err) }()
		if err != nil {
			return
		}
		for i, dl := range dls {
			ok := true
			for _, k := range keysOf[i] {
				ok = ok && through(k)
			}
			if !ok {
				continue
			}
			if err := e.store.MarkRedriven(dl.ID); err != nil {
				e.log.Error("marking dead letter redriven", "id", dl.ID, "error", err)
			}
		}
	}()
	e.log.Info("redrive started", "id", id, "dead_letters", len(dls))
	return id, nil
}
