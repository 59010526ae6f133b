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
	return adviseMappings(func(m mapping) unix.Errno { return madvise(m.start, m.end, unix.MADV_DONTNEED) })
}

// Evict lets go of the executable's code and read-only data as Release does, and drops them
// from the page cache as well (MADV_PAGEOUT), after marking the mappings as read at random
// (MADV_RANDOM); it returns the bytes of address space it advised. Every page the process runs
// afterwards is read back alone, without read-ahead, and the kernel's fault-around (up to 64 KiB
// of cached pages mapped around each fault, which MADV_RANDOM does not turn off) then finds
// cached only the pages that ran since: Release keeps those resident instead of every 64 KiB
// block that start-up touched. Call it once, when start-up is over: each page run afterwards
// costs one read of the file the first time. RATIONALE.md ("Memory is bounded in bytes")
// says why.
func Evict() (int64, error) {
	// MADV_PAGEOUT reclaims the pages this process maps, and only those no other process maps
	// (another router running the same file keeps them); pages start-up read but no longer
	// maps stay cached. Kernels before 5.4 lack MADV_PAGEOUT: the pages are then let go as
	// Release does.
	return adviseMappings(func(m mapping) unix.Errno {
		if errno := madvise(m.start, m.end, unix.MADV_RANDOM); errno != 0 {
			return errno
		}
		if errno := madvise(m.start, m.end, unix.MADV_PAGEOUT); errno != 0 {
			return madvise(m.start, m.end, unix.MADV_DONTNEED)
		}
		return 0
	})
}

// adviseMappings applies advise to each mapping of the executable's code and read-only data,
// and returns the bytes of address space advised. The ranges come from the kernel's list of
// mappings, not from Go pointers.
func adviseMappings(advise func(mapping) unix.Errno) (int64, error) {
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
		if errno := advise(m); errno != 0 {
			return n, errno
		}
		n += int64(m.end - m.start)
	}
	return n, nil
}

func madvise(start, end uintptr, advice int) unix.Errno {
	_, _, errno := unix.Syscall(unix.SYS_MADVISE, start, end-start, uintptr(advice))
	return errno
}
