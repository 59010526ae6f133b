package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wasmrouter/wasmrouter/internal/admin"
	"github.com/wasmrouter/wasmrouter/router"
)

// RedriveBody is the JSON of POST /api/v1/dlq/replay: the selection of `router dlq replay`.
type RedriveBody struct {
	IDs   []uint64 `json:"ids"`
	Route string   `json:"route"`
	Since string   `json:"since"` // a duration ago ("15m") or an RFC 3339 time
	All   bool     `json:"all"`
}

// DefaultDeadLetterLimit is how many dead letters a list gives unless told otherwise.
const DefaultDeadLetterLimit = 100

// deadLetterAPI serves the dlq endpoints from the running router's log and engine.
type deadLetterAPI struct {
	engine *router.Engine
	store  router.Log
}

var _ admin.DeadLetters = deadLetterAPI{}

// ListDeadLetters selects by the query's route, since, all, ids (comma-separated) and limit
// (DefaultDeadLetterLimit unless given; 0: no limit).
func (a deadLetterAPI) ListDeadLetters(query url.Values) (any, error) {
	sel, limit, err := parseDeadLetterQuery(query, time.Now())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", admin.ErrBadRequest, err)
	}
	dls, err := SelectDeadLetters(a.store, &sel, limit)
	if err != nil {
		return nil, err
	}
	out := make([]DeadLetterRecord, len(dls))
	for i, dl := range dls {
		out[i] = NewDeadLetterRecord(dl)
	}
	return out, nil
}

// parseDeadLetterQuery reads the query parameters of GET /api/v1/dlq, times relative to now.
func parseDeadLetterQuery(query url.Values, now time.Time) (sel DeadLetterSelection, limit int, err error) {
	for name := range query {
		switch name {
		case "route", "since", "all", "ids", "limit":
		default:
			// A misspelt filter would silently select everything.
			return sel, 0, fmt.Errorf("unknown parameter %q (route, since, all, ids, limit)", name)
		}
	}
	sel.Route = query.Get("route")
	if sel.Since, err = router.ParseWhen(query.Get("since"), now); err != nil {
		return sel, 0, fmt.Errorf("since: %w", err)
	}
	if v := query.Get("all"); v != "" {
		if sel.All, err = strconv.ParseBool(v); err != nil {
			return sel, 0, fmt.Errorf("all: %q is not a boolean", v)
		}
	} else {
		sel.All = query.Has("all") // a bare ?all
	}
	for _, list := range query["ids"] {
		for _, s := range strings.Split(list, ",") {
			if s = strings.TrimSpace(s); s == "" {
				continue
			}
			id, err := strconv.ParseUint(s, 10, 64)
			if err != nil || id == 0 {
				return sel, 0, fmt.Errorf("ids: %q is not a positive number", s)
			}
			sel.IDs = append(sel.IDs, id)
		}
	}
	limit = DefaultDeadLetterLimit
	if v := query.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 0 {
			return sel, 0, fmt.Errorf("limit: %q is not a number >= 0", v)
		}
	}
	return sel, limit, nil
}

// RedriveDeadLetters starts a redrive of the selection in body on the engine, with the rules of
// `router dlq replay`.
func (a deadLetterAPI) RedriveDeadLetters(_ context.Context, body []byte) (string, []uint64, error) {
	var req RedriveBody
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return "", nil, fmt.Errorf("%w: %v", admin.ErrBadRequest, err)
	}
	sel := DeadLetterSelection{IDs: req.IDs, Route: req.Route, All: req.All}
	var err error
	if sel.Since, err = router.ParseWhen(req.Since, time.Now()); err != nil {
		return "", nil, fmt.Errorf("%w: since: %v", admin.ErrBadRequest, err)
	}
	dls, err := SelectForRedrive(a.store, &sel)
	if err != nil {
		return "", nil, badRequest(err)
	}
	if len(dls) == 0 {
		return "", nil, nil
	}
	ids := make([]uint64, len(dls))
	for i, dl := range dls {
		ids[i] = dl.ID
	}
	id, err := a.engine.StartRedrive(dls)
	if err != nil {
		return "", nil, badRequest(err)
	}
	return id, ids, nil
}

// badRequest marks the caller's mistakes for a 400; other errors are the router's.
func badRequest(err error) error {
	if errors.Is(err, ErrBadSelection) || errors.Is(err, router.ErrBadReplay) {
		return fmt.Errorf("%w: %v", admin.ErrBadRequest, err)
	}
	return err
}
