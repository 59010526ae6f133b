package router

import "sort"

// ReplayJobs reports the jobs the engine knows, newest first, for the console's list.
func (e *Engine) ReplayJobs() []ReplayProgress {
	e.replays.mu.Lock()
	jobs := make([]*replayJob, 0, len(e.replays.jobs))
	for _, j := range e.replays.jobs {
		jobs = append(jobs, j)
	}
	e.replays.mu.Unlock()
	out := make([]ReplayProgress, 0, len(jobs))
	for _, j := range jobs {
		out = append(out, j.progress())
	}
	sort.Slice(out, func(i, k int) bool { return out[i].Started.After(out[k].Started) })
	return out
}
