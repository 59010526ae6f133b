package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/wasmrouter/wasmrouter/cmd/router/app"
	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/router"
	"github.com/wasmrouter/wasmrouter/store"
)

// openOffline opens the log and the routes for work without a running router. A log that a
// router holds while its admin API does not answer gets a message that says both.
func openOffline(ctx context.Context, cfg *config.Config, readOnly bool, stderr io.Writer) (*app.Offline, error) {
	off, err := app.OpenOffline(ctx, cfg, cliLogger(stderr), readOnly)
	if errors.Is(err, store.ErrLocked) {
		return nil, lockedWithoutAdminAPI(cfg)
	}
	if err != nil {
		return nil, explainOpen(cfg, err)
	}
	return off, nil
}

// replayOffline runs the job on the log directly, the router being stopped.
func replayOffline(ctx context.Context, cfg *config.Config, body app.ReplayBody, stderr io.Writer) (router.ReplayProgress, error) {
	off, err := openOffline(ctx, cfg, body.DryRun, stderr)
	if err != nil {
		return router.ReplayProgress{}, err
	}
	defer func() {
		if err := off.Close(); err != nil {
			fmt.Fprintf(stderr, "router replay: closing the event log: %v\n", err)
		}
	}()
	if body.DryRun {
		return dryRunOffline(ctx, off, body, stderr)
	}
	engine, err := off.Engine()
	if err != nil {
		return router.ReplayProgress{}, err
	}
	var id string
	err = engine.RunOffline(ctx, func(ctx context.Context) error {
		if err := waitClusters(ctx, off.Clusters, stderr); err != nil {
			return err
		}
		var err error
		if id, err = app.StartReplay(ctx, engine, off.Host, body); err != nil {
			return err
		}
		return followLocal(ctx, engine, id, newProgress(stderr, jobLabel(false, id)))
	})
	if id == "" {
		return router.ReplayProgress{}, err
	}
	// RunOffline has stopped the job if ctx ended first; its state says so.
	p, _ := engine.ReplayStatus(id)
	return p, nil
}

// clusterPatience is how long a job waits for every cluster to connect before it starts anyway.
const clusterPatience = 3 * time.Second

// waitClusters gives the clusters a moment to connect, so that a job starts with its targets
// reachable rather than in an outage. A broker that stays away is named; the job then starts,
// and its events for that broker's targets wait until it is back.
func waitClusters(ctx context.Context, clusters func() []event.ClusterStatus, stderr io.Writer) error {
	deadline := time.Now().Add(clusterPatience)
	for {
		var down []string
		for _, c := range clusters() {
			if !c.Connected {
				down = append(down, fmt.Sprintf("%s (%s): %s", c.Name, c.URL, c.LastError))
			}
		}
		switch {
		case len(down) == 0:
			return nil
		case time.Now().After(deadline):
			fmt.Fprintf(stderr, "not connected to %s; deliveries there wait until it is\n", strings.Join(down, "; "))
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("interrupted while connecting to %s", strings.Join(down, "; "))
		case <-time.After(10 * time.Millisecond): // a connection takes a few ms; every one counts in a short job
		}
	}
}

// followLocal shows a job's progress in this process until it ends or ctx does.
func followLocal(ctx context.Context, engine *router.Engine, id string, view *progressView) error {
	finished := make(chan struct{})
	go func() {
		_, _ = engine.WaitReplay(ctx, id)
		close(finished)
	}()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		p, _ := engine.ReplayStatus(id)
		if p.State != "running" {
			view.finish(p.Done, p.Total)
			return nil
		}
		view.update(p.Done, p.Total)
		select {
		case <-ctx.Done():
			view.finish(p.Done, p.Total)
			return nil
		case <-tick.C:
		case <-finished: // the end is reported at once, not at the next tick
		}
	}
}

// dryRunOffline reports what a replay would deliver, reading the log and running the guests
// here, with no broker.
func dryRunOffline(ctx context.Context, off *app.Offline, body app.ReplayBody, stderr io.Writer) (router.ReplayProgress, error) {
	st, topo := off.Store, off.Topology
	p := router.ReplayProgress{State: "running", Started: time.Now().UTC()}
	sel, err := body.Resolve(topo, st.FirstSeq(), st.LastSeq(), time.Now())
	if err != nil {
		return p, err
	}
	var candidate *router.Topology
	if body.WithConfig != "" {
		cand, release, err := app.LoadCandidate(ctx, off.Host, body.WithConfig)
		if err != nil {
			return p, err
		}
		defer release()
		candidate = cand
	}
	if p.Total, err = router.CountDryRun(st, topo, &sel, candidate); err != nil {
		return p, err
	}
	view := newProgress(stderr, "dry run")
	rep, err := router.DryRun(ctx, st, topo, &sel, candidate, func(n uint64) { view.update(n, p.Total) })
	p.Done, p.Finished = rep.Events, time.Now().UTC()
	view.finish(p.Done, p.Total)
	switch {
	case errors.Is(err, context.Canceled):
		p.State = "stopped"
	case err != nil:
		p.State, p.Error = "failed", err.Error()
	default:
		p.State, p.DryRun = "done", &rep
	}
	return p, nil
}
