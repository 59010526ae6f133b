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

// EmitOption adds headers to an event EmitWith emits: WithHeader or WithOriginalHeaders.
type EmitOption struct {
	name, value string
	copy        bool
}

// WithHeader sets a string header on the emitted event.
func WithHeader(name, value string) EmitOption { return EmitOption{name: name, value: value} }

// WithOriginalHeaders starts the emitted event's headers from the original event's, with
// their AMQP types; WithHeader options set headers over them.
func WithOriginalHeaders() EmitOption { return EmitOption{copy: true} }

// ConfigOr returns the module config value name, or def when the config lacks it.
func ConfigOr(name, def string) string {
	if v, ok := Config(name); ok {
		return v
	}
	return def
}
