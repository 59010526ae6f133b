// Package config loads a router.hcl file into plain, validated specs. Every problem is reported
// as an hcl.Diagnostic with the position of the offending block or attribute, all of them in one
// pass, so that `router validate` can print FILE:LINE:COL for each.
package config

import (
	"time"

	"github.com/hashicorp/hcl/v2"
)

// Config is a whole, checked configuration. Slices keep declaration order.
type Config struct {
	File     string // the path as given on the command line
	Dir      string // the config file's directory; relative paths are resolved against it
	Router   RouterSpec
	Store    StoreSpec
	Clusters []ClusterSpec
	Sources  []SourceSpec
	Targets  []TargetSpec
	Modules  []ModuleSpec
	Routes   []RouteSpec
	Tests    []TestSpec
	Tracing  *TracingSpec // nil without a tracing block: no spans
	// Attrs is where attributes that runtime errors name were set ("store.path",
	// "router.admin_addr", "cluster.NAME.url"); see Config.At.
	Attrs map[string]hcl.Range
	// Ranges locate the router and store blocks (zero when the file has none).
	Ranges Ranges
}

// Ranges locate the router and store blocks, for diagnostics about them.
type Ranges struct {
	Router, Store hcl.Range
	AdminAddr     hcl.Range // the router block's admin_addr attribute
}

// RouterSpec is the optional router block.
type RouterSpec struct {
	AdminAddr      string // default "127.0.0.1:9464"
	AdminToken     string // never printed
	LogLevel       string // debug|info|warn|error, default info
	LogFormat      string // text|json, default text
	MaxMessageSize int64  // bytes; larger messages are dead-lettered at ingest; default 128MiB
	// MemoryLimit is the Go runtime's soft memory limit (GOMEMLIMIT), 0 for the default:
	// the GOMEMLIMIT variable, else 90% of the cgroup's memory.max, else none.
	MemoryLimit int64
}

// StoreSpec is the optional store block: the bbolt log (default) or the log on a RabbitMQ
// stream shared by several routers.
type StoreSpec struct {
	Backend   string        // BackendBbolt (default) | BackendStream
	Path      string        // bbolt: resolved against Dir; default "data/router.db"
	Retention time.Duration // default 168h; stream: x-max-age
	MaxSize   int64         // bytes, default 10GiB; stream: x-max-length-bytes
	OnFull    string        // bbolt: block (default) | drop_oldest
	Cluster   string        // stream: the cluster that holds the stream
	Stream    string        // stream: its name, default "wasmrouter.log"
	Takeover  time.Duration // stream: a pair moves within this after its router goes, default 15s
	// StreamPort is the stream protocol's port on the cluster's host, over which the events
	// are appended and read; 0: 5552, or 5551 with amqps://.
	StreamPort int
}

// ClusterSpec is a RabbitMQ cluster the router connects to.
type ClusterSpec struct {
	Name  string
	URL   string // may hold a password: print only RedactURL(URL)
	TLS   *TLSSpec
	Range hcl.Range // the block's label
}

// TLSSpec configures amqps:// connections. Paths are resolved against Config.Dir.
type TLSSpec struct {
	CAFile     string
	CertFile   string
	KeyFile    string
	ServerName string
}

// SourceSpec is a queue the router declares, binds and consumes.
type SourceSpec struct {
	Name               string
	Cluster            string
	Exchange           string
	Queue              string
	Bindings           []string // default ["#"]
	Prefetch           int      // default 256
	QueueType          string   // classic (default) | quorum
	DeliveryLimit      int      // quorum only; 0 = unset
	DeadLetterExchange string   // "" = unset
	Range              hcl.Range
}

// Target modes.
const (
	ModeSingle   = "single"   // the `cluster = "x"` form
	ModeAll      = "all"      // every cluster gets every event
	ModeFailover = "failover" // the first healthy cluster in list order
)

// Values of TargetSpec.Unroutable.
const (
	UnroutableFail = "fail"
	UnroutableDrop = "drop"
)

// TargetSpec is an exchange the router publishes to, on one or several clusters.
type TargetSpec struct {
	Name       string
	Clusters   []string // one element for the single `cluster` form
	Mode       string   // ModeSingle, ModeAll or ModeFailover
	Exchange   string
	RoutingKey string // "" = the event's routing key after transforms
	// Unroutable is what a message the broker returns as unroutable (no queue bound, under the
	// mandatory flag) means: UnroutableFail (default: retried, then dead-lettered) or
	// UnroutableDrop (counted and dropped, as a publisher without the mandatory flag would).
	Unroutable string
	Range      hcl.Range
}

// ModuleSpec is a WASM guest.
type ModuleSpec struct {
	Name      string
	Path      string // resolved against Dir
	Config    map[string]string
	Timeout   time.Duration // per call, default 100ms
	MaxMemory int64         // bytes, default 64MiB
	PoolSize  int           // instances, default 2
	Range     hcl.Range
	PathRange hcl.Range // the path attribute, for load errors
}

// RouteSpec connects a source to targets through modules.
type RouteSpec struct {
	Name       string
	Source     string
	Match      []string // default ["#"]
	Filters    []string
	Transforms []string
	Handler    string
	Targets    []string
	Retry      RetrySpec
	DeadLetter string // a target name, "" = dead events stay in the log
	Range      hcl.Range
	// Where each module reference sits, so a module load or ABI error can point at its use.
	FilterRanges    []hcl.Range
	TransformRanges []hcl.Range
	HandlerRange    hcl.Range
}

// RetrySpec is a route's retry policy. Defaults: 5 attempts, 200ms, 30s.
type RetrySpec struct {
	Attempts   int // tries in total, the first included
	Backoff    time.Duration
	MaxBackoff time.Duration
}

// TestSpec is an offline case for `router test`.
type TestSpec struct {
	Name   string
	Input  TestInput
	Expect TestExpect
	Range  hcl.Range
}

// TestInput is the event a test feeds in.
type TestInput struct {
	Source     string
	RoutingKey string
	Headers    map[string]string
	Body       string
}

// TestExpect is what a test checks. Nil pointers and maps mean "not checked".
type TestExpect struct {
	Route      string
	Targets    []string // non-nil (possibly empty) when given; empty = dropped or unmatched
	Verdict    string   // "" (not checked), or one of TestVerdicts
	Reason     *string  // a substring of the failure reason (with Verdict "dead_letter")
	RoutingKey *string
	Body       *string
	Headers    map[string]string
	Emitted    []TestEmit // non-nil when given: the handler's events, in order
	// VerdictRange is where the verdict (or the reason implying it) is written, for messages.
	VerdictRange hcl.Range
}

// TestVerdicts are the values of a test's expected verdict.
var TestVerdicts = []string{"deliver", "drop", "dead_letter", "unmatched"}

// TestEmit is one event a test expects a handler to emit. Nil fields are not checked.
type TestEmit struct {
	Target     string
	RoutingKey *string
	Body       *string
	Headers    map[string]string
}
