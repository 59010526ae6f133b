// Package inproc runs a router in the test's own process with app.Run, so that a test can
// reach its engine directly and the race detector sees the whole router. The router keeps its
// log in memory, is stopped gracefully when the test ends, and its last log lines are shown
// if the test failed.
package inproc

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/cmd/router/app"
	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/internal/testutil/logbuf"
	"github.com/wasmrouter/wasmrouter/router"
)

// StartTimeout bounds the wait for app.Run to wire everything.
const StartTimeout = 30 * time.Second

// StopTimeout bounds a graceful stop: app.Run must return this soon after its context ends.
const StopTimeout = 30 * time.Second

// failureLogLines is how much of the router's log a failed test shows.
const failureLogLines = 80

// noEnv keeps the process environment out of the tests' configurations.
func noEnv(string) (string, bool) { return "", false }

// LoadFile loads the configuration at path without the process environment, failing the test
// on any error diagnostic.
func LoadFile(t testing.TB, path string) *config.Config {
	t.Helper()
	cfg, diags := config.Load(path, noEnv)
	if diags.HasErrors() {
		var b bytes.Buffer
		config.FormatDiagnostics(&b, diags)
		t.Fatalf("config %s does not load:\n%s", path, b.String())
	}
	return cfg
}

// LoadBytes is LoadFile for a configuration held in memory; path names it and anchors its
// relative paths. The source is shown with the diagnostics.
func LoadBytes(t testing.TB, src []byte, path string) *config.Config {
	t.Helper()
	cfg, diags := config.LoadBytes(src, path, noEnv)
	if diags.HasErrors() {
		var b bytes.Buffer
		config.FormatDiagnostics(&b, diags)
		t.Fatalf("config does not load:\n%s\n%s", b.String(), src)
	}
	return cfg
}

// Options tune Start.
type Options struct {
	// LogLevel is the lowest level kept in Router.Logs (the zero value is Info).
	LogLevel slog.Level
}

// Router is a router running in this process.
type Router struct {
	Admin    string // the admin API's bound address
	Engine   *router.Engine
	Reloader *app.Reloader
	Logs     *logbuf.Buffer

	cancel  context.CancelFunc
	done    chan error
	once    sync.Once
	stopErr error
}

// Start runs cfg, with its admin API on a free loopback port, and returns once app.Run has
// wired everything; it does not wait for readiness (see WaitReady). The router is stopped when
// the test ends, if the test has not stopped it, and an error from that stop fails the test.
func Start(t testing.TB, cfg *config.Config, opts Options) *Router {
	t.Helper()
	r := &Router{Logs: &logbuf.Buffer{}, done: make(chan error, 1)}
	log := slog.New(slog.NewTextHandler(r.Logs, &slog.HandlerOptions{Level: opts.LogLevel}))
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	started := make(chan app.Running, 1)
	go func() {
		r.done <- app.Run(ctx, cfg, log, app.Options{
			AdminAddr: "127.0.0.1:0",
			Started:   func(run app.Running) { started <- run },
			LookupEnv: noEnv,
		})
	}()
	t.Cleanup(func() {
		if err := r.Stop(); err != nil {
			t.Errorf("router stopped with an error: %v", err)
		}
		if t.Failed() {
			t.Logf("router log (last lines):\n%s", r.Logs.Tail(failureLogLines))
		}
	})
	select {
	case run := <-started:
		r.Admin, r.Engine, r.Reloader = run.AdminAddr, run.Engine, run.Reloader
	case err := <-r.done:
		r.once.Do(cancel) // app.Run has returned: nothing left to stop
		t.Fatalf("router did not start: %v\n%s", err, r.Logs.Tail(40))
	case <-time.After(StartTimeout):
		t.Fatalf("router not started after %s:\n%s", StartTimeout, r.Logs.Tail(40))
	}
	return r
}

// Stop cancels the router and waits for app.Run to return, with its error; idempotent.
func (r *Router) Stop() error {
	r.once.Do(func() {
		r.cancel()
		select {
		case r.stopErr = <-r.done:
		case <-time.After(StopTimeout):
			r.stopErr = errors.New("app.Run did not return within " + StopTimeout.String() + " of cancel")
		}
	})
	return r.stopErr
}

// WaitReady waits until the engine reports ready (what /readyz answers), failing the test
// with the last reason after timeout.
func (r *Router) WaitReady(t testing.TB, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st := r.Engine.Status()
		if st.Ready {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("router not ready after %s: %s", timeout, st.Reason)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
