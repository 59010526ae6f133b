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
