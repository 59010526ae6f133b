package wr

// Result is what an entry point returns (docs/guest-abi.md).
type Result int32

const (
	Continue   Result = 0 // keep the event
	Drop       Result = 1 // stop the event for this route; nothing to dead-letter
	Retry      Result = 2 // transient failure
	DeadLetter Result = 3 // permanent failure
)

// Level is the level of a Log line.
type Level int32

const (
	LevelDebug Level = 0
	LevelInfo  Level = 1
	LevelWarn  Level = 2
	LevelError Level = 3
)
