package store

import "golang.org/x/sys/unix"

// dropMapped tells the kernel the process no longer needs the pages of a file mapping
// (MADV_DONTNEED): for a shared, read-only file mapping their contents stay in the page cache
// and are mapped again on the next access. The address comes from bbolt's own mapping, so
// no Go pointer is involved.
func dropMapped(addr, length uintptr) error {
	if _, _, errno := unix.Syscall(unix.SYS_MADVISE, addr, length, unix.MADV_DONTNEED); errno != 0 {
		return errno
	}
	return nil
}
