package wasmhost

import (
	"errors"
	"fmt"
)

// Sentinel errors; every error from Load and Check is a *ModuleError wrapping one of them (or an
// fs error for an unreadable file).
var (
	ErrABI         = errors.New("guest does not follow the ABI")
	ErrCompile     = errors.New("cannot compile guest")
	ErrInstantiate = errors.New("cannot instantiate guest")
	ErrConfig      = errors.New("invalid module configuration")
	ErrClosed      = errors.New("closed")
)

// ModuleError names the module a problem belongs to. errors.Is matches its Kind (a sentinel
// above) and its Err.
type ModuleError struct {
	Module string
	Kind   error  // ErrABI, ErrCompile, ...; nil for a file error
	Msg    string // what is wrong, e.g. `missing export "wr_filter" (needed for the filter role)`
	Err    error  // the underlying error, if any
}

func moduleErr(module string, kind error, msg string, err error) *ModuleError {
	return &ModuleError{Module: module, Kind: kind, Msg: msg, Err: err}
}

func (e *ModuleError) Error() string {
	s := fmt.Sprintf("module %q: %s", e.Module, e.Msg)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *ModuleError) Unwrap() []error {
	errs := make([]error, 0, 2)
	for _, err := range []error{e.Kind, e.Err} {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}
