package main

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/internal/admin"
	"github.com/wasmrouter/wasmrouter/router"
)

// runningJob is a job that runs until it is stopped.
type runningJob struct{ stopped atomic.Bool }

func (j *runningJob) StartReplay(context.Context, []byte) (string, error) { return "job-1", nil }

func (j *runningJob) ReplayStatus(id string) (any, bool) {
	state := "running"
	if j.stopped.Load() {
		state = "stopped"
	}
	return router.ReplayProgress{ID: id, State: state, Total: 10, Done: 1}, id == "job-1"
}

func (j *runningJob) StopReplay(id string) bool {
	j.stopped.Store(true)
	return id == "job-1"
}

func TestFollowStopsTheJobInTheRouterWhenInterrupted(t *testing.T) {
	job := &runningJob{}
	addr := serveAdminWith(t, admin.Options{Token: "s3cret", Replayer: job})
	client, err := newAdminClient(addr, "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	interrupted, interrupt := context.WithCancel(ctx)
	interrupt()
	_, err = client.follow(interrupted, "job-1", "redrive", newProgress(&syncBuffer{}, "redriving"))
	if err == nil || err.Error() != "redrive job-1 stopped" {
		t.Errorf("follow after an interrupt: %v", err)
	}
	if !job.stopped.Load() {
		t.Error("the job was not stopped in the router")
	}
	if err := client.stopReplay(ctx, "nope"); err == nil || !strings.Contains(err.Error(), "no such replay") {
		t.Errorf("stopping an unknown job: %v", err)
	}
}

func TestFollowingARouterThatWentAwayIsNoFallback(t *testing.T) {
	client, err := newAdminClient(deadAddr(t), "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = client.follow(ctx, "job-1", "redrive", newProgress(&syncBuffer{}, "redriving"))
	// The job was started: working offline now would run it a second time.
	if err == nil || errors.Is(err, errNoRouter) || !strings.Contains(err.Error(), "following redrive job-1") {
		t.Errorf("follow without a router: %v", err)
	}
}
