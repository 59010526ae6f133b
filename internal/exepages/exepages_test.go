package exepages

import (
	"reflect"
	"testing"
)

func TestParseMapsKeepsOnlyTheExecutablesReadOnlyMappings(t *testing.T) {
	const maps = `00400000-00e78000 r-xp 00000000 fe:00 1234                               /opt/router bin/router
00e78000-019e0000 r--p 00a78000 fe:00 1234                               /opt/router bin/router
019e0000-01a8e000 rw-p 015e0000 fe:00 1234                               /opt/router bin/router
01a8e000-01ab4000 rw-p 00000000 00:00 0
7f0000000000-7f0000100000 r--s 00000000 fe:00 99                         /data/router.db
7f0000200000-7f0000300000 r-xp 00000000 fe:00 77                         /usr/lib/x86_64-linux-gnu/libc.so.6
7f0000300000-7f0000400000 r--p 00000000 fe:00 1234                       /opt/router bin/router.old
7f0000400000-7f0000500000 r--s 00000000 fe:00 1234                       /opt/router bin/router
7fff0000-7fff1000 r-xp 00000000 00:00 0                                  [vdso]
`
	got := parseMaps(maps, "/opt/router bin/router")
	want := []mapping{{0x400000, 0xe78000}, {0xe78000, 0x19e0000}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("parseMaps = %x, want %x", got, want)
	}
}
