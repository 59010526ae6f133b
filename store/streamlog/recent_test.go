package streamlog

import (
	"reflect"
	"testing"
)

// The records in memory are read in order from any offset, in batches, stopping where fn
// does; a read that reaches records no longer in memory says where the broker must go on.
func TestRecentRecordsEach(t *testing.T) {
	r := newRecentRecords(100) // keeps 100 to 200 records
	for off := uint64(1); off <= 150; off++ {
		r.add(off, []byte{byte(off)}, off%10 == 0)
	}
	read := func(from, to uint64, stopAfter int) (offs []uint64, next uint64, done bool) {
		next, done = r.each(from, to, func(off uint64, body []byte, mark bool) bool {
			if body[0] != byte(off) || mark != (off%10 == 0) {
				t.Fatalf("record %d: body %v mark %v", off, body, mark)
			}
			offs = append(offs, off)
			return len(offs) < stopAfter
		})
		return offs, next, done
	}
	seq := func(a, b uint64) []uint64 {
		var out []uint64
		for i := a; i <= b; i++ {
			out = append(out, i)
		}
		return out
	}
	if offs, next, done := read(5, 140, 1000); !done || next != 141 || !reflect.DeepEqual(offs, seq(5, 140)) {
		t.Fatalf("[5, 140]: %v next %d done %v", offs, next, done)
	}
	if offs, next, done := read(100, 1000, 70); !done || next != 151 || !reflect.DeepEqual(offs, seq(100, 150)) {
		t.Fatalf("[100, 1000] stopping after 70: %v next %d done %v", offs, next, done)
	}
	if offs, next, done := read(20, 1000, 3); !done || next != 23 || !reflect.DeepEqual(offs, seq(20, 22)) {
		t.Fatalf("[20, ...] stopping after 3: %v next %d done %v", offs, next, done)
	}
	for off := uint64(151); off <= 260; off++ { // the older half goes
		r.add(off, []byte{byte(off)}, off%10 == 0)
	}
	if offs, next, done := read(5, 260, 1000); done || next != 5 || len(offs) != 0 {
		t.Fatalf("[5, 260] after the oldest went: %v next %d done %v; want the broker from 5", offs, next, done)
	}
	first := r.ring[0].off
	if offs, next, done := read(first, 260, 1000); !done || next != 261 || !reflect.DeepEqual(offs, seq(first, 260)) {
		t.Fatalf("[%d, 260]: %d records, next %d done %v", first, len(offs), next, done)
	}
}
