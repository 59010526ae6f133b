package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/wasmrouter/wasmrouter/internal/admin"
	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/router"
	"github.com/wasmrouter/wasmrouter/wasmhost"
)

// ReplayBody is the JSON of POST /api/v1/replay. WithConfig is an extension (docs/admin-api.md): a
// candidate configuration file (on the router's machine) for a dry run to compare against.
type ReplayBody struct {
	router.ReplayRequest
	WithConfig string `json:"with_config,omitempty"`
}

// replayAPI serves the replay endpoints from an engine.
type replayAPI struct {
	engine *router.Engine
	host   *wasmhost.Host
	log    *slog.Logger
	// A candidate configuration (with_config) is loaded only when the API has a token, and
	// only from under dir, the running configuration's directory: otherwise anyone reaching
	// the admin port could make the router read any file it can.
	tokenSet bool
	dir      string
}

var _ admin.Replayer = replayAPI{}

func (a replayAPI) StartReplay(ctx context.Context, body []byte) (string, error) {
	var req ReplayBody
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return "", fmt.Errorf("%w: %v", admin.ErrBadRequest, err)
	}
	if req.WithConfig != "" {
		path, err := a.candidatePath(req.WithConfig)
		if err != nil {
			return "", fmt.Errorf("%w: with_config: %v", admin.ErrBadRequest, err)
		}
		req.WithConfig = path
	}
	id, err := StartReplay(ctx, a.engine, a.host, req)
	if errors.Is(err, router.ErrBadReplay) {
		err = fmt.Errorf("%w: %v", admin.ErrBadRequest, err)
	}
	return id, err
}

// candidatePath resolves a with_config path against the running configuration's directory
// and refuses one outside it (symbolic links followed) or any when no token is set.
func (a replayAPI) candidatePath(path string) (string, error) {
	if !a.tokenSet {
		return "", errors.New("a candidate configuration is accepted over the admin API only when router.admin_token is set")
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(a.dir, path)
	}
	dir, err := filepath.EvalSymlinks(a.dir)
	if err != nil {
		return "", err
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", errors.New("no such file under the configuration's directory")
	}
	rel, err := filepath.Rel(dir, real)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", errors.New("the file must be under the running configuration's directory")
	}
	return path, nil
}

func (a replayAPI) ReplayStatus(id string) (any, bool) {
	return a.engine.ReplayStatus(id)
}

func (a replayAPI) StopReplay(id string) bool { return a.engine.StopReplay(id) }

// StartReplay starts a replay or dry-run job on engine, loading the candidate configuration
// of a --with-config dry run into host.
func StartReplay(ctx context.Context, engine *router.Engine, host *wasmhost.Host, req ReplayBody) (string, error) {
	if !req.DryRun {
		if req.WithConfig != "" {
			return "", fmt.Errorf("%w: with_config needs dry_run", router.ErrBadReplay)
		}
		return engine.StartReplay(ctx, req.ReplayRequest)
	}
	var candidate *router.Topology
	if req.WithConfig != "" {
		topo, release, err := LoadCandidate(ctx, host, req.WithConfig)
		if err != nil {
			return "", err
		}
		candidate = topo
		id, err := engine.StartDryRun(req.ReplayRequest, candidate)
		if err != nil {
			release()
			return "", err
		}
		go func() {
			_, _ = engine.WaitReplay(context.Background(), id)
			release()
		}()
		return id, nil
	}
	return engine.StartDryRun(req.ReplayRequest, nil)
}

// LoadCandidate loads another configuration's routes and guests for a dry-run comparison.
func LoadCandidate(ctx context.Context, host *wasmhost.Host, path string) (*router.Topology, func(), error) {
	cfg, diags := config.Load(path, nil)
	if diags.HasErrors() {
		var b strings.Builder
		config.FormatDiagnostics(&b, diags)
		return nil, nil, fmt.Errorf("%w: candidate configuration:\n%s", router.ErrBadReplay, b.String())
	}
	modules, diags := LoadModules(ctx, host, cfg, 1)
	release := func() { CloseModules(context.Background(), modules) }
	if diags.HasErrors() {
		release()
		var b strings.Builder
		config.FormatDiagnostics(&b, diags)
		return nil, nil, fmt.Errorf("%w: candidate configuration:\n%s", router.ErrBadReplay, b.String())
	}
	topo, err := router.NewTopology(cfg, modules)
	if err != nil {
		release()
		return nil, nil, err
	}
	return topo, release, nil
}

// ReplayJobs answers GET /api/v1/replay.
func (a replayAPI) ReplayJobs() any { return a.engine.ReplayJobs() }
