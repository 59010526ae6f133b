// Package exepages lets go of the executable's pages that the process mapped at start-up and
// no longer runs.
//
// Every package's initialisation, the configuration's parsing and the start of every
// component touch code and read-only data spread over the whole executable, and the kernel
// maps up to 64 KiB of cached pages around each page it faults in: soon after start-up nearly
// all of the executable's code and read-only data (19 MiB) is in the resident set, though the
// router runs far less of it while it moves events. Letting those pages go (MADV_DONTNEED)
// keeps them in the page cache; what the router still runs is mapped again with a minor
// fault. RATIONALE.md ("The executable's pages are let go") says what this does not change.
package exepages

import (
	"strconv"
	"strings"
)

// mapping is an address range of the executable that Release may advise.
type mapping struct {
	start, end uintptr
}

// parseMaps returns the private mappings of path in the text of /proc/self/maps that are not
// writable: code and read-only data. Writable mappings (the data section, written since) are
// never included: letting their pages go would bring the file's contents back.
func parseMaps(text, path string) []mapping {
	var out []mapping
	for _, line := range strings.Split(text, "\n") {
		// address perms offset dev inode pathname (the pathname may hold spaces)
		f := strings.SplitN(line, " ", 6)
		if len(f) < 6 || strings.TrimLeft(f[5], " ") != path {
			continue
		}
		perms := f[1]
		if len(perms) != 4 || perms[1] != '-' || perms[3] != 'p' {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		out = append(out, mapping{uintptr(start), uintptr(end)})
	}
	return out
}
