package router

import (
	"testing"
	"time"
)

// cursorLog records cursor moves; a stream's other uses of the log are not reached here.
type cursorLog struct {
	Log
	moves []uint64
}

func (l *cursorLog) SetCursor(_ string, seq uint64) { l.moves = append(l.moves, seq) }

type pendingConf struct{ done chan struct{} }

func (c pendingConf) Done() <-chan struct{} { return c.done }
func (c pendingConf) Err() error            { return nil }

// windowOf is a replay stream of the events from..to with n of them published and unconfirmed.
func windowOf(n int, next, to uint64) (*stream, []pendingConf) {
	s := &stream{window: 1024, windowBytes: 2 << 20, next: next, bounds: bounds{replay: true, to: to}}
	confs := make([]pendingConf, n)
	for i := range n {
		confs[i] = pendingConf{done: make(chan struct{})}
		pe := &pendingEvent{seq: uint64(i + 1), size: 1800}
		pe.msgs = append(pe.one[:0], pendingMsg{conf: confs[i]})
		s.inflight = append(s.inflight, pe)
		s.inflightBytes += pe.size
	}
	return s, confs
}

// An unpaced replay reads again once an eighth of its window is free, or when the rest of its
// range fits, and meanwhile waits on the confirm that makes that room; a live or paced stream
// reads whenever there is room.
func TestReplayRefillsByTheEighth(t *testing.T) {
	s, confs := windowOf(1024, 2000, 100000)
	head := s.headConfirm()
	if s.wantsFill() {
		t.Fatal("a full window wants to read")
	}
	if got := s.refillConfirm(head); got != confs[127] {
		t.Fatalf("a full window waits on %v, want the 128th event's confirm", got)
	}
	s.inflight = s.inflight[:1000]
	if s.wantsFill() {
		t.Fatal("a window with 24 free places wants to read")
	}
	if got := s.refillConfirm(head); got != confs[103] {
		t.Fatal("with 24 free places the wait is not on the 104th event's confirm")
	}
	close(confs[103].done)
	if got := s.refillConfirm(head); got != head {
		t.Fatal("a resolved confirm was chosen to wait on: the wait would not wait")
	}
	s.inflight = s.inflight[:896]
	if !s.wantsFill() {
		t.Fatal("a window with an eighth free does not read")
	}
	s.inflight, s.next = s.inflight[:1000], 100000-23
	if !s.wantsFill() {
		t.Fatal("a window with room for the rest of the range does not read")
	}
	s.next = 2000
	for _, live := range []bounds{{}, {replay: true, to: 100000, rate: 50}} {
		s.bounds = live
		if !s.wantsFill() || s.refillConfirm(head) != head {
			t.Fatalf("stream %+v: waits for an eighth of its window", live)
		}
	}
}

// An unpaced replay hands its cursor to the log at most every replayCursorEvery, and its last
// position when it ends; a live stream hands over every move.
func TestReplayCursorCadence(t *testing.T) {
	log := &cursorLog{}
	e := &Engine{store: log}
	s := &stream{e: e, cursor: "replay/x/r/t", bounds: bounds{replay: true, to: 1000}}
	s.advance(10)
	s.advance(20)
	s.advance(30)
	if len(log.moves) != 1 || log.moves[0] != 10 {
		t.Fatalf("moves %v, want only the first (10) within %v", log.moves, replayCursorEvery)
	}
	s.storedAt = time.Now().Add(-replayCursorEvery)
	s.advance(40)
	if len(log.moves) != 2 || log.moves[1] != 40 {
		t.Fatalf("moves %v, want 10 then 40 once %v passed", log.moves, replayCursorEvery)
	}
	s.advance(50)
	s.flushCursor()
	s.flushCursor()
	if len(log.moves) != 3 || log.moves[2] != 50 {
		t.Fatalf("moves %v, want the last position (50) handed over once at the end", log.moves)
	}
	live := &stream{e: e, cursor: "deliver/r/t"}
	log.moves = nil
	live.advance(1)
	live.advance(2)
	if len(log.moves) != 2 {
		t.Fatalf("a live stream handed over %v, want every move", log.moves)
	}
}
