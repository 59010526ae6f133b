package app

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watchDebounce is how long the watcher waits after the last write before it reloads: an
// editor's save or a build writes a file in several steps (truncate, write, rename), and one
// reload should see the result, not each step.
const watchDebounce = 300 * time.Millisecond

// serveTriggers reloads on each signal from hangup, and, with watch, when the configuration
// file or a module file it names changes. The returned channel closes once it has stopped,
// after ctx ends.
func (r *Reloader) serveTriggers(ctx context.Context, hangup <-chan os.Signal, watch bool) <-chan struct{} {
	done := make(chan struct{})
	var changes <-chan struct{}
	if watch {
		changes = r.watchFiles(ctx)
	}
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-hangup:
				if !ok {
					hangup = nil
					continue
				}
				r.Do(ctx, ReloadRequest{}, "signal")
			case _, ok := <-changes:
				if !ok {
					changes = nil
					continue
				}
				r.Do(ctx, ReloadRequest{}, "watch")
			}
		}
	}()
	return done
}

// watchedFiles are the configuration file and the module files of the generation in force.
func (r *Reloader) watchedFiles() map[string]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	files := map[string]bool{}
	if abs, err := filepath.Abs(r.gen.cfg.File); err == nil {
		files[abs] = true
	}
	for _, m := range r.gen.cfg.Modules {
		if abs, err := filepath.Abs(m.Path); err == nil {
			files[abs] = true
		}
	}
	return files
}

// watchFiles signals, debounced, each change to a watched file. It watches their directories,
// not the files: editors and build tools replace a file by renaming a new one over it, which
// ends a watch on the file itself. The set is refreshed after each signal, since a reload may
// name other modules.
func (r *Reloader) watchFiles(ctx context.Context) <-chan struct{} {
	out := make(chan struct{})
	w, err := fsnotify.NewWatcher()
	if err != nil {
		r.log.Error("cannot watch the configuration files; reload with SIGHUP or the admin API", "error", err)
		close(out)
		return out
	}
	dirs := map[string]bool{}
	var files map[string]bool
	refresh := func() {
		files = r.watchedFiles()
		for f := range files {
			dir := filepath.Dir(f)
			if dirs[dir] {
				continue
			}
			if err := w.Add(dir); err != nil {
				r.log.Warn("cannot watch a directory", "dir", dir, "error", err)
				continue
			}
			dirs[dir] = true
		}
	}
	refresh()
	r.log.Info("watching the configuration for changes", "files", len(files))
	go func() {
		defer close(out)
		defer w.Close()
		timer := time.NewTimer(time.Hour)
		timer.Stop()
		pending := false
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if abs, err := filepath.Abs(ev.Name); err != nil || !files[abs] || ev.Op == fsnotify.Chmod {
					continue
				}
				pending = true
				timer.Reset(watchDebounce)
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				r.log.Warn("watching the configuration files", "error", err)
			case <-timer.C:
				if !pending {
					continue
				}
				pending = false
				select {
				case out <- struct{}{}:
				case <-ctx.Done():
					return
				}
				refresh()
			}
		}
	}()
	return out
}
