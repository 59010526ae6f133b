//go:build !linux

package store

import "errors"

func openZeroFile(string) (zeroFile, error) {
	return nil, errors.ErrUnsupported
}
