// Package guest holds the guest SDKs' sources, so that `router guest new` can write the SDK a
// scaffold needs next to it: the scaffold then builds without fetching anything but the
// language's own compiler. The SDKs themselves are guest/wr (Go), guest/c (C) and guest/as
// (AssemblyScript).
package guest

import "embed"

// SDKs holds wr/*.go (tests included; writers skip them), c/wasmrouter.h, and the
// AssemblyScript SDK with the package files that pin its compiler.
//
//go:embed wr/*.go c/wasmrouter.h as/assembly/wr.ts as/package.json as/package-lock.json
var SDKs embed.FS
