package streamlog

import "github.com/wasmrouter/wasmrouter/router"

// The engine recognises the log on a stream as shared: it claims each pair before delivering.
var _ router.PairClaimer = (*Store)(nil)
