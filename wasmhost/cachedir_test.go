package wasmhost

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// TestCacheDirIsTheRoutersAlone: a cache directory others may write is narrowed to 0700, and
// files in it that others may write, or that another user owns, are removed before wazero
// reads any (wazero runs a cached file's code without checking it against the module).
func TestCacheDirIsTheRoutersAlone(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o777); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(dir, 0o777) // past the umask
	planted := filepath.Join(dir, "sub", "planted")
	if err := os.WriteFile(planted, []byte("code"), 0o666); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(planted, 0o666)
	foreign := filepath.Join(dir, "foreign")
	if err := os.WriteFile(foreign, []byte("code"), 0o600); err != nil {
		t.Fatal(err)
	}
	chowned := os.Chown(foreign, 65534, 65534) == nil // only root can give a file away
	ctx := context.Background()
	h, err := New(ctx, Options{CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	if info, err := os.Stat(dir); err != nil || info.Mode().Perm() != 0o700 {
		t.Errorf("cache directory mode %v (%v), want 0700", info.Mode().Perm(), err)
	}
	if _, err := os.Stat(planted); !os.IsNotExist(err) {
		t.Errorf("a file others may write is still in the cache: %v", err)
	}
	if _, err := os.Stat(foreign); chowned && !os.IsNotExist(err) {
		t.Errorf("a file another user owns is still in the cache: %v", err)
	}
	if _, err := h.Load(ctx, ModuleConfig{Name: "noop", Path: cGuest("noop"), PoolSize: 1}); err != nil {
		t.Fatal(err)
	}
}

// TestCacheDirOwnedByAnotherUser: the router keeps compiled code in memory rather than use a
// directory another user controls.
func TestCacheDirOwnedByAnotherUser(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Skip("cannot give the directory to another user (not root)")
	}
	ctx := context.Background()
	logs := &logRecorder{}
	h, err := New(ctx, Options{CacheDir: dir, Logger: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	if _, err := h.Load(ctx, ModuleConfig{Name: "noop", Path: cGuest("noop"), PoolSize: 1}); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("the router wrote %d entries into a directory another user owns: %v", len(entries), entries[0].Name())
	}
}

// TestCacheDirThroughALink: a cache directory reached through a symbolic link is checked and
// used where the link leads, while a link planted inside the cache is removed.
func TestCacheDirThroughALink(t *testing.T) {
	base := t.TempDir()
	real := filepath.Join(base, "shared-cache")
	if err := os.Mkdir(real, 0o700); err != nil {
		t.Fatal(err)
	}
	planted := filepath.Join(real, "planted")
	if err := os.Symlink(filepath.Join(base, "elsewhere"), planted); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "cache")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if err := secureCacheDir(link); err != nil {
		t.Fatalf("a linked cache directory owned by the router's user was refused: %v", err)
	}
	if _, err := os.Lstat(planted); !os.IsNotExist(err) {
		t.Errorf("a link inside the cache is still there: %v", err)
	}
}
