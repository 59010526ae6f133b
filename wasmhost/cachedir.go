package wasmhost

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// secureCacheDir prepares dir for compiled code. wazero names each cache file after the
// module's content hash but runs what the file holds without checking it, so whoever can write
// the directory can make the router run code of their choosing. The directory must therefore
// be writable by the router's user alone: it is created 0700, an existing one owned by this
// user is narrowed to 0700, and one owned by anyone else is refused (the caller then keeps
// compiled code in memory). Files and directories inside that this user does not own, or that
// others may write, are removed. See RATIONALE.md ("The compilation cache").
func secureCacheDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	// The directory itself may be reached through a symbolic link (a cache shared by a test
	// suite, a mounted volume): what must be the router's alone is the directory it leads to.
	// Entries inside may not be links.
	dir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return err
	}
	if err := checkOwned(dir, true); err != nil {
		return err
	}
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		if checkOwned(path, d.IsDir()) != nil {
			if rerr := os.RemoveAll(path); rerr != nil {
				return fmt.Errorf("removing %s, which others may write: %w", path, rerr)
			}
			if d.IsDir() {
				return filepath.SkipDir
			}
		}
		return nil
	})
}

// checkOwned requires path to be owned by this process's user and not a symbolic link; a
// directory (fix true) is narrowed to 0700, anything else must not be writable by others.
func checkOwned(path string, fix bool) error {
	info, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if info.Mode()&fs.ModeSymlink != 0 {
		return fmt.Errorf("%s is a symbolic link", path)
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	if ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("%s is owned by user %d, not by the router's user %d", path, st.Uid, os.Geteuid())
	}
	if info.Mode().Perm()&0o022 == 0 {
		return nil
	}
	if fix {
		return os.Chmod(path, 0o700)
	}
	return errors.New(path + " is writable by other users")
}
