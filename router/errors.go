package router

import "errors"

var errNoClusterUp = errors.New("no cluster of the target is connected")
