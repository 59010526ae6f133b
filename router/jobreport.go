package router

import "sync"

// maxJobFailures bounds the failures a job lists; the counts go on past it.
const maxJobFailures = 100

// JobFailure is an event a replay or redrive job did not get through, and why.
type JobFailure struct {
	Seq    uint64 `json:"seq"`
	Route  string `json:"route"`
	Target string `json:"target,omitempty"` // "" when a module failed the event (every target missed it)
	Reason string `json:"reason"`
	// DeadLettered is true when the job recorded a new dead letter for it; false when one
	// existed already (a redrive's event that failed again keeps its dead letter, pending).
	DeadLettered bool `json:"dead_lettered"`
}

// jobOutcomes counts what became of a job's events besides deliveries: dropped by a filter,
// failed (a module, or the broker refusing every try), and the failures themselves.
type jobOutcomes struct {
	mu           sync.Mutex
	dropped      uint64
	failed       uint64
	deadLettered uint64
	failures     []JobFailure
	seen         map[JobFailure]bool // one failure per (seq, route, target)
}

func (o *jobOutcomes) drop() {
	o.mu.Lock()
	o.dropped++
	o.mu.Unlock()
}

func (o *jobOutcomes) fail(f JobFailure) {
	o.mu.Lock()
	defer o.mu.Unlock()
	key := JobFailure{Seq: f.Seq, Route: f.Route, Target: f.Target}
	if o.seen[key] {
		return // another stream of the route recorded the same module failure
	}
	if o.seen == nil {
		o.seen = map[JobFailure]bool{}
	}
	o.seen[key] = true
	o.failed++
	if f.DeadLettered {
		o.deadLettered++
	}
	if len(o.failures) < maxJobFailures {
		o.failures = append(o.failures, f)
	}
}

// fill copies the counts into a progress report.
func (o *jobOutcomes) fill(p *ReplayProgress) {
	o.mu.Lock()
	defer o.mu.Unlock()
	p.Dropped, p.Failed, p.DeadLettered = o.dropped, o.failed, o.deadLettered
	p.Failures = append([]JobFailure(nil), o.failures...)
}

// watch hooks a job's stream to its outcomes; countDrops is set on one stream per route,
// so that an event a filter drops counts once.
func (o *jobOutcomes) watch(s *stream, countDrops bool) {
	s.onDropped = func(uint64) {
		if countDrops {
			o.drop()
		}
	}
	s.onFailed = func(seq uint64, target, reason string, deadLettered bool) {
		o.fail(JobFailure{Seq: seq, Route: s.route, Target: target, Reason: reason, DeadLettered: deadLettered})
	}
}
