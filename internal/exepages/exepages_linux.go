package exepages

import (
	"os"

	"golang.org/x/sys/unix"
)

// Release lets go of the resident pages of the executable's code and read-only data, and
// returns the bytes of address space it advised. The pages stay in the page cache; the next
// access to any of them maps it again (a minor fault). Safe at any time: these mappings are
// never written, so their contents are the file's.
func Release() (int64, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0, err
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	var n int64
	for _, m := range parseMaps(string(maps), exe) {
		// The range comes from the kernel's list of mappings, not from a Go pointer.
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, m.start, m.end-m.start, unix.MADV_DONTNEED); errno != 0 {
			return n, errno
		}
		n += int64(m.end - m.start)
	}
	return n, nil
}
