package amqpx

import (
	"context"
	"log/slog"
	"sync"
)

// Pauser pauses and resumes consumption, for example while the event log is full or broken.
// While paused, a Consume given this Pauser (WithPauser) holds no consumer: it closes its
// channel, so that every unacknowledged message goes back to the queue (for another router or
// for later), reports not ready, and waits for Resume. One Pauser may serve several sources.
// The zero value is a resumed Pauser; a nil *Pauser never pauses.
type Pauser struct {
	mu      sync.Mutex
	paused  bool
	reason  string
	changes chan struct{} // closed on the next Pause or Resume
}

// Pause stops consumption; reason is logged. Pausing a paused Pauser only updates the reason.
func (p *Pauser) Pause(reason string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paused {
		p.reason = reason
		return
	}
	p.paused, p.reason = true, reason
	p.notifyLocked()
}

// Resume lets consumption start again.
func (p *Pauser) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.paused {
		return
	}
	p.paused, p.reason = false, ""
	p.notifyLocked()
}

// Paused reports whether consumption is paused, and why.
func (p *Pauser) Paused() (bool, string) {
	if p == nil {
		return false, ""
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.paused, p.reason
}

func (p *Pauser) notifyLocked() {
	if p.changes != nil {
		close(p.changes)
		p.changes = nil
	}
}

// changed returns a channel closed on the next Pause or Resume; nil (never ready) for a nil
// Pauser.
func (p *Pauser) changed() <-chan struct{} {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.changes == nil {
		p.changes = make(chan struct{})
	}
	return p.changes
}

// wait returns once the Pauser is resumed (true) or ctx has ended (false).
func (p *Pauser) wait(ctx context.Context, log *slog.Logger) bool {
	logged := false
	for {
		changed := p.changed()
		paused, reason := p.Paused()
		if !paused {
			return ctx.Err() == nil
		}
		if !logged {
			log.Info("consumption paused", "reason", reason)
			logged = true
		}
		select {
		case <-ctx.Done():
			return false
		case <-changed:
		}
	}
}
