package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sort"
	"time"
)

var errDrain = errors.New("the router did not drain in time")

// drain waits until every confirmed id is accounted for in every sink, or until the router has
// settled (every stream at the log's last seq, the source queue empty, nothing arriving for a
// while): what is missing then is lost. It gives up after the drain timeout.
func (w *world) drain(ctx context.Context) error {
	deadline := time.Now().Add(w.o.drainTimeout)
	confirmed := w.pub.confirmedIDs()
	for {
		if w.missing(confirmed) == 0 {
			return nil
		}
		if w.settled(ctx) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w (%v)", errDrain, w.o.drainTimeout)
		}
		if !sleepCtx(ctx, 250*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// settled reports whether the router has nothing left to deliver and the checker nothing
// left to read.
func (w *world) settled(ctx context.Context) bool {
	if w.chk.quietFor() < 3*time.Second {
		return false
	}
	for _, r := range w.routers {
		st, err := getStatus(r.admin)
		if err != nil || !st.settled() {
			return false
		}
	}
	queues := []string{w.srcQ, w.dlqQ}
	for _, s := range w.sinks {
		queues = append(queues, w.sinkQ[s.name])
	}
	depths, err := w.b.queueDepths(ctx)
	if err != nil {
		return false
	}
	for _, q := range queues {
		if n, ok := depths[q]; !ok || n > 0 {
			return false
		}
	}
	return true
}

// missing counts the (id, sink) pairs not yet delivered nor dead-lettered.
func (w *world) missing(confirmed map[string]string) int {
	n := 0
	for id := range confirmed {
		for _, s := range w.sinks {
			if del, dead, _ := w.chk.where(s.name, id); del == 0 && dead == 0 {
				n++
			}
		}
	}
	return n
}

// account fills the result's figures from what the publisher confirmed and the checker saw.
func (w *world) account() {
	r := w.res
	r.Published, r.Confirmed = w.pub.counts()
	confirmed := w.pub.confirmedIDs()
	ids := make([]string, 0, len(confirmed))
	for id := range confirmed {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, s := range w.sinks {
		sr := SinkResult{Name: s.name}
		for _, id := range ids {
			class := confirmed[id]
			del, dead, reason := w.chk.where(s.name, id)
			sr.Duplicates += max(0, del-1) + max(0, dead-1)
			if del > 0 && dead > 0 {
				// The broker may have routed a publish whose confirm the closing channel took
				// with it; the router then counted it refused.
				sr.DeliveredAndDead++
			}
			switch {
			case del > 0:
				sr.Delivered++
			case dead > 0:
				sr.DeadLettered++
			default:
				sr.Lost++
				r.LostSample = appendSample(r.LostSample, s.name+":"+id)
			}
			switch {
			case class == classDeadLetter && del > 0:
				r.Misplaced++
				r.MisplacedSample = appendSample(r.MisplacedSample, fmt.Sprintf("%s:%s delivered, want dead-lettered", s.name, id))
			case class == classDeliver && dead > 0 && !s.allowDead:
				r.Misplaced++
				r.MisplacedSample = appendSample(r.MisplacedSample, fmt.Sprintf("%s:%s dead-lettered (%s), want delivered", s.name, id, reason))
			}
		}
		p50, p99, pmax, _ := w.chk.percentiles(s.name)
		sr.LatencyP50, sr.LatencyP99, sr.LatencyMax = Duration(p50), Duration(p99), Duration(pmax)
		r.Delivered += sr.Delivered
		r.DeadLettered += sr.DeadLettered
		r.Duplicates += sr.Duplicates
		r.Lost += sr.Lost
		r.Sinks = append(r.Sinks, sr)
	}
	w.chk.mu.Lock()
	defer w.chk.mu.Unlock()
	maps.Copy(r.DeadLetterReasons, w.chk.reasons)
	seen := map[string]bool{}
	for _, got := range w.chk.got {
		for id := range got {
			if _, ok := confirmed[id]; !ok && !seen[id] {
				seen[id] = true
				r.UnconfirmedArrived++
			}
		}
	}
	r.Mismatches = len(w.chk.mismatches)
	for _, m := range w.chk.mismatches {
		r.MismatchSample = appendSample(r.MismatchSample, m)
	}
}

func appendSample(list []string, s string) []string {
	if len(list) < 5 {
		return append(list, s)
	}
	return list
}
