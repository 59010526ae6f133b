package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Sizes of the small filesystem under the log: it starts small, is filled up, then enlarged.
const (
	diskSize     = "32m"
	diskEnlarged = "256m"
)

// diskScenario puts the event log on a small tmpfs, fills the filesystem while traffic flows,
// holds it full for a while, then enlarges it. The router must stop acknowledging (nothing may
// be acknowledged that is not in the log), report not ready, not crash nor spin, and resume.
func diskScenario() *scenario {
	var mnt string
	return &scenario{
		name:  "disk",
		about: "the disk under the log filling up (a small tmpfs), then enlarged",
		prepare: func(w *world) error {
			mnt = filepath.Join(w.dir, "disk")
			if err := os.MkdirAll(mnt, 0o755); err != nil {
				return err
			}
			if os.Geteuid() != 0 {
				return fmt.Errorf("%w: mounting a tmpfs needs root", errSkip)
			}
			if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+diskSize, "tmpfs", mnt).CombinedOutput(); err != nil {
				return fmt.Errorf("%w: cannot mount a tmpfs: %v: %s", errSkip, err, strings.TrimSpace(string(out)))
			}
			w.cleanups = append(w.cleanups, func() {
				if exec.Command("umount", mnt).Run() != nil {
					_ = exec.Command("umount", "-l", mnt).Run()
				}
			})
			w.storePath = filepath.Join(mnt, "router.db")
			w.sinks = []sinkSpec{{name: "out"}}
			return nil
		},
		faults: func(ctx context.Context, w *world, _ *rand.Rand) error {
			w.res.FaultKind = "filesystem filled, held full, then enlarged"
			if !sleepCtx(ctx, w.o.duration/4) {
				return nil
			}
			filled, err := fill(filepath.Join(mnt, "filler"))
			if err != nil {
				return err
			}
			w.res.Faults = 1
			obs := observeFull(ctx, w, w.o.duration/3)
			if out, err := exec.Command("mount", "-o", "remount,size="+diskEnlarged, mnt).CombinedOutput(); err != nil {
				return fmt.Errorf("enlarging the tmpfs: %v: %s", err, out)
			}
			recovered := time.Now()
			readyErr := w.router.waitReady(60 * time.Second)
			w.res.note("filled %d MiB; while full for %v: /readyz answered 503 %d times and 200 %d times; source queue depth %d -> %d; "+
				"log lines about failed appends: %d; router CPU %.0f%% of a core",
				filled>>20, Duration(obs.held), obs.notReady, obs.ready, obs.depthBefore, obs.depthAfter, obs.appendFailures, obs.cpuPercent)
			switch {
			case obs.exited:
				w.res.violate("the router exited while the disk was full")
			case obs.notReady == 0 && w.o.diskReadiness:
				w.res.violate("/readyz kept answering 200 while the log could not be written (want 503 with a reason)")
			case obs.becameReady > obs.recoveries && w.o.diskReadiness:
				w.res.violate("/readyz went from 503 to 200 %d times while the disk stayed full, but the log recovered only %d times: not ready must last the whole hold-back",
					obs.becameReady, obs.recoveries)
			}
			if obs.cpuPercent > 90 {
				w.res.violate("the router spun while the disk was full: %.0f%% of a core", obs.cpuPercent)
			}
			if readyErr != nil {
				w.res.violate("the router was not ready again within 60s of the disk being enlarged: %v", readyErr)
			} else {
				w.res.note("ready again %v after the disk was enlarged", Duration(time.Since(recovered)))
			}
			<-ctx.Done()
			return nil
		},
	}
}

// fill writes zeros to path until the filesystem has no room left; it returns the bytes written.
func fill(path string) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	var n int64
	for {
		m, err := f.Write(buf)
		n += int64(m)
		if errors.Is(err, syscall.ENOSPC) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// fullObservation is what the router did while the disk was full.
type fullObservation struct {
	held            time.Duration
	ready, notReady int
	// becameReady counts 503 -> 200 changes; recoveries, the log's "commits succeed again"
	// lines. On a full filesystem bbolt can still commit into pages it freed earlier, and after
	// such a commit the router is rightly ready; a change to 200 with no commit behind it is not.
	becameReady, recoveries int
	depthBefore, depthAfter int
	appendFailures          int
	cpuPercent              float64
	exited                  bool
}

// fullReserveBound is how much longer than asked the disk is held full while the router has
// not yet answered 503: the log file is written ahead of its data (RATIONALE.md, "The log's
// file is written ahead"), and commits go on into that reserve, and into pages bbolt freed,
// until it is used up, which at a low rate on a slow machine can outlast a short hold.
const fullReserveBound = 30 * time.Second

// observeFull watches the router for d, and past d until its first 503 (at most
// fullReserveBound more): readiness, the source queue and CPU use.
func observeFull(ctx context.Context, w *world, d time.Duration) fullObservation {
	var obs fullObservation
	bg := context.WithoutCancel(ctx)
	obs.depthBefore, _ = w.b.queueDepth(bg, w.srcQ)
	failuresBefore := w.router.logCount("log append failed")
	recoveriesBefore := w.router.logCount("commits succeed again")
	lastWasNotReady := false
	pid := w.router.pid()
	ticksBefore, _ := cpuTicks(pid)
	start := time.Now()
	for time.Since(start) < d || (obs.notReady == 0 && time.Since(start) < d+fullReserveBound) {
		if !w.router.running() {
			obs.exited = true
			break
		}
		switch code, _, _ := httpGet(w.router.admin, "/readyz"); code {
		case http.StatusOK:
			obs.ready++
			if lastWasNotReady {
				obs.becameReady++
			}
			lastWasNotReady = false
		case http.StatusServiceUnavailable:
			obs.notReady++
			lastWasNotReady = true
		}
		time.Sleep(200 * time.Millisecond)
	}
	obs.held = time.Since(start)
	if ticksAfter, err := cpuTicks(pid); err == nil {
		// Linux reports CPU time in clock ticks of 1/100 s (USER_HZ).
		obs.cpuPercent = float64(ticksAfter-ticksBefore) / obs.held.Seconds()
	}
	obs.depthAfter, _ = w.b.queueDepth(bg, w.srcQ)
	obs.appendFailures = w.router.logCount("log append failed") - failuresBefore
	obs.recoveries = w.router.logCount("commits succeed again") - recoveriesBefore
	return obs
}
